// Checks the callbacks of one app: the platform key's RSA signature (`sign` in a collect body,
// `X-Sign` for pix), the Standard Webhooks signature when the receiver holds the app's secret,
// and `appId`. Only then is the body read as an order.
package kassa.client;

import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;

public final class CallbackVerifier {
    private final VerifyingKey platformKey;
    private final long appId;
    private final String webhookSecret;

    /** `webhookSecret` (`whsec_…`, or null): when given the Standard Webhooks signature is
     * required too; it binds a callback to the app and stops replays. */
    public CallbackVerifier(VerifyingKey platformKey, long appId, String webhookSecret) {
        this.platformKey = platformKey;
        this.appId = appId;
        this.webhookSecret = webhookSecret;
    }

    /** Verifies a callback received now; `headers` by name in any case. */
    public Models.Callback verify(Map<String, String> headers, byte[] body) {
        return verify(headers, body, System.currentTimeMillis() / 1000);
    }

    public Models.Callback verify(Map<String, String> headers, byte[] body, long nowS) {
        Map<String, String> lower = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        lower.putAll(headers);
        return verify(lower::get, body, nowS);
    }

    /** For any HTTP library: `header` looks a header up by its lower-case name. */
    public Models.Callback verify(Function<String, String> header, byte[] body, long nowS) {
        if (webhookSecret != null) {
            Webhooks.verify(webhookSecret, header.apply("webhook-id"), header.apply("webhook-timestamp"),
                    header.apply("webhook-signature"), body, nowS);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(body)).toString();
        } catch (CharacterCodingException error) {
            throw new KassaException.Malformed("the callback is not UTF-8");
        }
        String xSign = header.apply("x-sign");
        Map<String, Object> data = Verify.signed(text, platformKey, appId, xSign);
        String webhookId = header.apply("webhook-id");
        return xSign != null
                ? new Models.Callback("pix", Models.PixOrder.of(data), webhookId, data)
                : new Models.Callback("collect", Models.CollectOrder.of(data), webhookId, data);
    }
}
