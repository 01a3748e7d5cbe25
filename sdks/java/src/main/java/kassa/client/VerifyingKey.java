// A public key that verifies SHA256withRSA signatures: PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or
// bare base64 DER. Signatures are standard base64 with padding.
package kassa.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Signature;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import java.util.regex.Pattern;

public final class VerifyingKey {
    private static final int MAX_SIGNATURE_BASE64 = 684;
    private static final Pattern BASE64 =
            Pattern.compile("(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?");

    private final PublicKey key;

    public VerifyingKey(String text) {
        try {
            String trimmed = text.strip();
            byte[] der;
            if (trimmed.contains("BEGIN RSA PUBLIC KEY")) {
                der = Der.spkiOfPkcs1(Der.pemBody(trimmed, "RSA PUBLIC KEY"));
            } else if (trimmed.startsWith("-----BEGIN")) {
                der = Der.pemBody(trimmed, "PUBLIC KEY");
            } else {
                der = Base64.getDecoder().decode(trimmed.replaceAll("\\s+", ""));
            }
            key = KeyFactory.getInstance("RSA").generatePublic(new X509EncodedKeySpec(der));
            Der.checkBits(((RSAPublicKey) key).getModulus().bitLength());
        } catch (GeneralSecurityException | IllegalArgumentException error) {
            throw new KassaException("not an RSA public key: " + error.getMessage());
        }
    }

    /** Throws BadSignature unless `signatureB64` signs `message` (its UTF-8 bytes). */
    public void verify(String message, String signatureB64) {
        if (signatureB64 == null || signatureB64.isEmpty()) {
            throw new KassaException.BadSignature("sign is missing");
        }
        if (signatureB64.length() > MAX_SIGNATURE_BASE64 || !BASE64.matcher(signatureB64).matches()) {
            throw new KassaException.BadSignature("sign is not standard base64 with padding");
        }
        boolean valid;
        try {
            Signature signature = Signature.getInstance("SHA256withRSA");
            signature.initVerify(key);
            signature.update(message.getBytes(StandardCharsets.UTF_8));
            valid = signature.verify(Base64.getDecoder().decode(signatureB64));
        } catch (GeneralSecurityException error) {
            valid = false;
        }
        if (!valid) {
            throw new KassaException.BadSignature("sign does not match the message");
        }
    }
}
