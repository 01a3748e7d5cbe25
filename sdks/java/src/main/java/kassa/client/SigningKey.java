// SHA256withRSA (RSASSA-PKCS1-v1_5 with SHA-256) with java.security: the merchant's private key
// signs requests. PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM. toString never shows
// key material.
package kassa.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.interfaces.RSAPrivateKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;

public final class SigningKey {
    private final PrivateKey key;

    public SigningKey(String pem) {
        try {
            byte[] der;
            if (pem.contains("BEGIN RSA PRIVATE KEY")) {
                der = Der.pkcs8OfPkcs1(Der.pemBody(pem, "RSA PRIVATE KEY"));
            } else {
                der = Der.pemBody(pem, "PRIVATE KEY");
            }
            key = KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(der));
            Der.checkBits(((RSAPrivateKey) key).getModulus().bitLength());
        } catch (GeneralSecurityException | IllegalArgumentException error) {
            throw new KassaException("not an RSA private key: " + error.getMessage());
        }
    }

    /** The base64 signature of `message` (its UTF-8 bytes). */
    public String sign(String message) {
        try {
            Signature signature = Signature.getInstance("SHA256withRSA");
            signature.initSign(key);
            signature.update(message.getBytes(StandardCharsets.UTF_8));
            return Base64.getEncoder().encodeToString(signature.sign());
        } catch (GeneralSecurityException error) {
            throw new KassaException("signing failed: " + error.getMessage());
        }
    }

    @Override
    public String toString() {
        return "SigningKey(RSA, ***)";
    }
}
