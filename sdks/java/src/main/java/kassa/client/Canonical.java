// The canonical string of a flat JSON object: the exact text that is signed. Every top-level
// field but `sign`; null and "" left out; keys sorted by their UTF-8 bytes; `key=value` joined
// by `&`, strings as their raw text, numbers and booleans as the literal written in the JSON
// text. Nested values and duplicate keys are refused: one signature must mean one message.
package kassa.client;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

public final class Canonical {
    public static final String SIGN_FIELD = "sign";

    private Canonical() {}

    /** A received text's canonical string and its `sign` (or null). */
    public record Signed(String canonical, String sign) {}

    public static Signed ofText(String json) {
        List<String[]> parts = new ArrayList<>();
        String sign = null;
        for (Json.RawField field : Json.rawFields(json)) {
            Object value = field.value();
            if (value instanceof Map || value instanceof List) {
                throw new KassaException.Malformed("field " + field.key() + " must not be an object or an array");
            }
            if (field.key().equals(SIGN_FIELD)) {
                if (value != null && !(value instanceof String)) {
                    throw new KassaException.Malformed("field sign must be a string");
                }
                sign = (String) value;
            }
            parts.add(new String[] {field.key(), value == null ? null : value.toString()});
        }
        return new Signed(join(parts), sign);
    }

    /** The canonical string of fields the caller builds (Strings, Longs, Booleans). */
    public static String ofFields(Map<String, ?> fields) {
        List<String[]> parts = new ArrayList<>();
        fields.forEach((key, value) -> parts.add(new String[] {key, value == null ? null : value.toString()}));
        return join(parts);
    }

    private static String join(List<String[]> parts) {
        return parts.stream()
                .filter(p -> !p[0].equals(SIGN_FIELD) && p[1] != null && !p[1].isEmpty())
                .sorted((a, b) -> Arrays.compareUnsigned(
                        a[0].getBytes(StandardCharsets.UTF_8), b[0].getBytes(StandardCharsets.UTF_8)))
                .map(p -> p[0] + "=" + p[1])
                .reduce((a, b) -> a + "&" + b)
                .orElse("");
    }
}
