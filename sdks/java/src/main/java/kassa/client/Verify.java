// Believing kassa: an answer or callback is trusted only once the platform key's signature over
// its canonical string verifies and its `appId` is the receiver's app.
package kassa.client;

import java.util.Map;

public final class Verify {
    private static final String COLLECT_OK = "00000000";

    private Verify() {}

    /** Checks signed data (`sign` inside it, or `xSign` from the header) and its appId. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> signed(String dataText, VerifyingKey platformKey, long appId, String xSign) {
        Canonical.Signed signed = Canonical.ofText(dataText);
        String signature = xSign != null ? xSign : signed.sign();
        if (signature == null || signature.isEmpty()) {
            throw new KassaException.BadSignature("the data carries no signature");
        }
        platformKey.verify(signed.canonical(), signature);
        Map<String, Object> data = (Map<String, Object>) Json.parse(dataText);
        Object named = data.get("appId");
        if (!(named instanceof Json.Number n) || !n.literal().equals(Long.toString(appId))) {
            throw new KassaException.WrongApp("the signed data belongs to app " + named + ", not to app " + appId);
        }
        return data;
    }

    /** An answer's verified `data`; a refusal throws KassaException.Api. `dialect` is
     * "collect" or "pix"; `xSign` the pix answer's X-Sign header (or null). */
    public static Map<String, Object> answer(String dialect, int httpStatus, String body, String xSign,
            long retryAfterS, VerifyingKey platformKey, long appId) {
        String dataText = null;
        Map<String, Object> envelope = new java.util.HashMap<>();
        for (Json.RawField field : Json.rawFields(body)) {
            envelope.put(field.key(), field.value());
            if (field.key().equals("data")) dataText = field.raw();
        }
        if (dialect.equals("collect")) {
            if (!"1".equals(envelope.get("status")) || !COLLECT_OK.equals(envelope.get("error"))) {
                throw new KassaException.Api("collect", String.valueOf(envelope.get("error")),
                        String.valueOf(envelope.getOrDefault("msg", "")), httpStatus, retryAfterS);
            }
        } else if (dialect.equals("pix")) {
            Object code = envelope.get("code");
            if (!(code instanceof Json.Number n) || !n.literal().equals("0")) {
                throw new KassaException.Api("pix", String.valueOf(code),
                        String.valueOf(envelope.getOrDefault("msg", "")), httpStatus, retryAfterS);
            }
            if (xSign == null || xSign.isEmpty()) {
                throw new KassaException.BadSignature("the answer has no X-Sign header");
            }
        } else {
            throw new IllegalArgumentException("dialect is collect or pix");
        }
        if (dataText == null || !(envelope.get("data") instanceof Map)) {
            throw new KassaException.Malformed("no data in a successful answer");
        }
        return signed(dataText, platformKey, appId, dialect.equals("pix") ? xSign : null);
    }
}
