// Standard Webhooks signatures of callbacks: `webhook-signature` lists one or more
// space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the app's secret
// `whsec_<base64 key>`; the timestamp must be within five minutes of now (no replays).
package kassa.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public final class Webhooks {
    public static final long TOLERANCE_S = 300;
    private static final int MAX_SIGNATURES = 8;

    private Webhooks() {}

    /** The `v1,…` signature of one delivery. */
    public static String signature(String secret, String id, String timestamp, byte[] body) {
        if (!secret.startsWith("whsec_")) {
            throw new KassaException.BadSignature("a webhook secret is whsec_ followed by a base64 key");
        }
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(Base64.getDecoder().decode(secret.substring(6)), "HmacSHA256"));
            mac.update((id + "." + timestamp + ".").getBytes(StandardCharsets.UTF_8));
            return "v1," + Base64.getEncoder().encodeToString(mac.doFinal(body));
        } catch (GeneralSecurityException | IllegalArgumentException error) {
            throw new KassaException.BadSignature("a webhook secret is whsec_ followed by a base64 key");
        }
    }

    /** Throws BadSignature unless one of `signatures` signs the delivery within the tolerance. */
    public static void verify(String secret, String id, String timestamp, String signatures, byte[] body, long nowS) {
        if (id == null || timestamp == null || signatures == null) {
            throw new KassaException.BadSignature("the Standard Webhooks headers are missing");
        }
        if (!timestamp.matches("[0-9]{1,18}")) {
            throw new KassaException.BadSignature("webhook-timestamp is not a number of seconds");
        }
        if (Math.abs(nowS - Long.parseLong(timestamp)) > TOLERANCE_S) {
            throw new KassaException.BadSignature("webhook-timestamp is more than five minutes from now");
        }
        byte[] expected = signature(secret, id, timestamp, body).getBytes(StandardCharsets.UTF_8);
        String[] entries = signatures.split(" ");
        for (int i = 0; i < Math.min(entries.length, MAX_SIGNATURES); i++) {
            if (MessageDigest.isEqual(entries[i].getBytes(StandardCharsets.UTF_8), expected)) {
                return;
            }
        }
        throw new KassaException.BadSignature("no v1 signature in webhook-signature matches the secret");
    }
}
