// The little DER that reading keys needs: PEM bodies, and PKCS#1 RSA keys wrapped as the
// PKCS#8 and SubjectPublicKeyInfo structures java.security reads.
package kassa.client;

import java.io.ByteArrayOutputStream;
import java.util.Base64;

final class Der {
    /** rsaEncryption's AlgorithmIdentifier: SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }. */
    private static final byte[] RSA_ALGORITHM = {
        0x30, 0x0d, 0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00
    };

    private Der() {}

    static byte[] pemBody(String pem, String label) {
        String begin = "-----BEGIN " + label + "-----";
        String end = "-----END " + label + "-----";
        int from = pem.indexOf(begin);
        int to = pem.indexOf(end);
        if (from < 0 || to < from) {
            throw new IllegalArgumentException("expected a " + label + " PEM block");
        }
        String body = pem.substring(from + begin.length(), to).replaceAll("\\s+", "");
        return Base64.getDecoder().decode(body);
    }

    static void checkBits(int bits) {
        if (bits < 2048 || bits > 4096) {
            throw new IllegalArgumentException("the key has " + bits + " bits; kassa accepts 2048 to 4096");
        }
    }

    static byte[] pkcs8OfPkcs1(byte[] pkcs1) {
        return tlv(0x30, concat(new byte[] {0x02, 0x01, 0x00}, RSA_ALGORITHM, tlv(0x04, pkcs1)));
    }

    static byte[] spkiOfPkcs1(byte[] pkcs1) {
        return tlv(0x30, concat(RSA_ALGORITHM, tlv(0x03, concat(new byte[] {0x00}, pkcs1))));
    }

    private static byte[] tlv(int tag, byte[] value) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(tag);
        int length = value.length;
        if (length < 0x80) {
            out.write(length);
        } else {
            int bytes = length > 0xffff ? 3 : length > 0xff ? 2 : 1;
            out.write(0x80 | bytes);
            for (int i = bytes - 1; i >= 0; i--) {
                out.write((length >> (8 * i)) & 0xff);
            }
        }
        out.writeBytes(value);
        return out.toByteArray();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }
}
