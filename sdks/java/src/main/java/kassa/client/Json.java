// A small JSON reader and writer for kassa's messages, in the JDK alone. Numbers keep the
// literal as written (signatures cover the text as sent), objects keep their order and refuse
// duplicate keys, and each top-level value's exact text is kept for signature checks.
package kassa.client;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public final class Json {
    /** A number as its literal text. */
    public record Number(String literal) {
        public long asLong() {
            return Long.parseLong(literal);
        }

        @Override
        public String toString() {
            return literal;
        }
    }

    /** A top-level field of an object: its key, value and the value's exact text. */
    public record RawField(String key, Object value, String raw) {}

    private static final int MAX_DEPTH = 32;

    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    /** The value of a JSON text: Map, List, String, Json.Number, Boolean or null. */
    public static Object parse(String text) {
        Json json = new Json(text);
        Object value = json.value(0);
        json.end();
        return value;
    }

    /** The top-level fields of a JSON object text with each value's exact text. */
    public static List<RawField> rawFields(String text) {
        Json json = new Json(text);
        json.skip();
        if (!json.peek('{')) {
            throw new KassaException.Malformed("the body must be a JSON object");
        }
        List<RawField> fields = new ArrayList<>();
        json.at++;
        json.skip();
        if (json.peek('}')) {
            json.at++;
        } else {
            while (true) {
                json.skip();
                String key = json.string();
                json.skip();
                json.expect(':');
                json.skip();
                int begin = json.at;
                Object value = json.value(1);
                for (RawField field : fields) {
                    if (field.key().equals(key)) {
                        throw new KassaException.Malformed("field " + key + " appears more than once");
                    }
                }
                fields.add(new RawField(key, value, text.substring(begin, json.at)));
                json.skip();
                if (json.peek(',')) {
                    json.at++;
                    continue;
                }
                json.expect('}');
                break;
            }
        }
        json.end();
        return fields;
    }

    private void end() {
        skip();
        if (at != text.length()) {
            throw new KassaException.Malformed("not valid JSON: text after the value at " + at);
        }
    }

    private boolean peek(char c) {
        return at < text.length() && text.charAt(at) == c;
    }

    private void expect(char c) {
        if (!peek(c)) {
            throw new KassaException.Malformed("not valid JSON: expected '" + c + "' at " + at);
        }
        at++;
    }

    private void skip() {
        while (at < text.length() && " \t\n\r".indexOf(text.charAt(at)) >= 0) {
            at++;
        }
    }

    private Object value(int depth) {
        if (depth > MAX_DEPTH) {
            throw new KassaException.Malformed("not valid JSON: nested too deeply");
        }
        skip();
        if (at >= text.length()) {
            throw new KassaException.Malformed("not valid JSON: it ends early");
        }
        char c = text.charAt(at);
        if (c == '{') return object(depth);
        if (c == '[') return array(depth);
        if (c == '"') return string();
        if (text.startsWith("true", at)) return literal("true", Boolean.TRUE);
        if (text.startsWith("false", at)) return literal("false", Boolean.FALSE);
        if (text.startsWith("null", at)) return literal("null", null);
        return number();
    }

    private Object literal(String word, Object value) {
        at += word.length();
        return value;
    }

    private Map<String, Object> object(int depth) {
        Map<String, Object> map = new LinkedHashMap<>();
        at++;
        skip();
        if (peek('}')) {
            at++;
            return map;
        }
        while (true) {
            skip();
            String key = string();
            skip();
            expect(':');
            if (map.containsKey(key)) {
                throw new KassaException.Malformed("field " + key + " appears more than once");
            }
            map.put(key, value(depth + 1));
            skip();
            if (peek(',')) {
                at++;
                continue;
            }
            expect('}');
            return map;
        }
    }

    private List<Object> array(int depth) {
        List<Object> list = new ArrayList<>();
        at++;
        skip();
        if (peek(']')) {
            at++;
            return list;
        }
        while (true) {
            list.add(value(depth + 1));
            skip();
            if (peek(',')) {
                at++;
                continue;
            }
            expect(']');
            return list;
        }
    }

    private String string() {
        expect('"');
        StringBuilder out = new StringBuilder();
        while (at < text.length()) {
            char c = text.charAt(at++);
            if (c == '"') return out.toString();
            if (c < 0x20) throw new KassaException.Malformed("not valid JSON: a control character in a string");
            if (c != '\\') {
                out.append(c);
                continue;
            }
            if (at >= text.length()) break;
            char e = text.charAt(at++);
            switch (e) {
                case '"', '\\', '/' -> out.append(e);
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'n' -> out.append('\n');
                case 'r' -> out.append('\r');
                case 't' -> out.append('\t');
                case 'u' -> {
                    if (at + 4 > text.length()) {
                        throw new KassaException.Malformed("not valid JSON: a short \\u escape");
                    }
                    try {
                        out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                    } catch (NumberFormatException error) {
                        throw new KassaException.Malformed("not valid JSON: a bad \\u escape");
                    }
                    at += 4;
                }
                default -> throw new KassaException.Malformed("not valid JSON: a bad escape");
            }
        }
        throw new KassaException.Malformed("not valid JSON: an unclosed string");
    }

    private static final java.util.regex.Pattern NUMBER =
            java.util.regex.Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");

    private Number number() {
        int begin = at;
        while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) {
            at++;
        }
        String literal = text.substring(begin, at);
        if (!NUMBER.matcher(literal).matches()) {
            throw new KassaException.Malformed("not valid JSON at " + begin);
        }
        return new Number(literal);
    }

    /** A flat object as JSON text (Strings, Numbers, Longs, Booleans; nulls left out). */
    public static String write(Map<String, ?> fields) {
        StringBuilder out = new StringBuilder("{");
        for (Map.Entry<String, ?> field : fields.entrySet()) {
            if (field.getValue() == null) continue;
            if (out.length() > 1) out.append(',');
            quote(out, field.getKey());
            out.append(':');
            Object value = field.getValue();
            if (value instanceof String s) quote(out, s);
            else out.append(value);
        }
        return out.append('}').toString();
    }

    private static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                default -> {
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
            }
        }
        out.append('"');
    }
}
