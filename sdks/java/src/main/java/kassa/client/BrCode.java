// BR Codes (EMV QRCPS-MPM, the payload of PIX QR codes): TLV fields — two-digit id, two-digit
// length, value — with templates at ids 26–51, 62 and 80–99, starting with `000201` and ending
// with field 63, a CRC16-CCITT-FALSE of everything before its four upper-case hex digits.
package kassa.client;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

public final class BrCode {
    public static final int MAX_PAYLOAD_LEN = 512;

    private BrCode() {}

    public static int crc16(byte[] data) {
        int crc = 0xffff;
        for (byte b : data) {
            crc ^= (b & 0xff) << 8;
            for (int bit = 0; bit < 8; bit++) {
                crc = (crc & 0x8000) != 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
            }
        }
        return crc;
    }

    private static boolean isTemplate(int id) {
        return (id >= 26 && id <= 51) || id == 62 || (id >= 80 && id <= 99);
    }

    /** The fields of a code by two-digit id (templates as nested maps, 63 left out). Throws
     * Malformed, or CrcMismatch when only the CRC is wrong. */
    public static Map<String, Object> decode(String code) {
        if (code.isEmpty() || code.length() > MAX_PAYLOAD_LEN) {
            throw new KassaException.Malformed("a BR Code has 1 to 512 characters");
        }
        if (!code.chars().allMatch(c -> c >= 0x20 && c < 0x7f)) {
            throw new KassaException.Malformed("a BR Code is printable ASCII");
        }
        Map<String, Object> fields = fields(code, false);
        String[] ids = fields.keySet().toArray(new String[0]);
        if (!ids[0].equals("00") || !"01".equals(fields.get("00"))) {
            throw new KassaException.Malformed("a BR Code starts with field 00 = \"01\"");
        }
        Object stated = fields.remove("63");
        if (!ids[ids.length - 1].equals("63") || !(stated instanceof String s) || !s.matches("[0-9A-F]{4}")) {
            throw new KassaException.Malformed("a BR Code ends with field 63 of four upper-case hex digits");
        }
        String computed = String.format("%04X",
                crc16(code.substring(0, code.length() - 4).getBytes(StandardCharsets.US_ASCII)));
        if (!computed.equals(stated)) {
            throw new KassaException.CrcMismatch("the CRC is " + stated + " but the code's CRC is " + computed);
        }
        return fields;
    }

    private static Map<String, Object> fields(String text, boolean nested) {
        Map<String, Object> fields = new LinkedHashMap<>();
        int at = 0;
        while (at < text.length()) {
            if (at + 4 > text.length() || !text.substring(at, at + 4).matches("[0-9]{4}")) {
                throw new KassaException.Malformed("at position " + at + ": expected a field id and length");
            }
            String id = text.substring(at, at + 2);
            int length = Integer.parseInt(text.substring(at + 2, at + 4));
            if (at + 4 + length > text.length()) {
                throw new KassaException.Malformed("field " + id + " runs past the end");
            }
            if (fields.containsKey(id)) {
                throw new KassaException.Malformed("field " + id + " appears twice");
            }
            String value = text.substring(at + 4, at + 4 + length);
            if (isTemplate(Integer.parseInt(id))) {
                if (nested) {
                    throw new KassaException.Malformed("field " + id + " nests a template in a template");
                }
                fields.put(id, fields(value, true));
            } else {
                fields.put(id, value);
            }
            at += 4 + length;
        }
        return fields;
    }
}
