// The shared vectors (sdks/vectors/vectors.json): this SDK agrees with kassa on every one.
// Run: java -cp CLASSES kassa.client.VectorsTest PATH/TO/vectors.json
package kassa.client;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

public final class VectorsTest {
    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> list(Map<String, Object> vectors, String kind) {
        return (List<Map<String, Object>>) (List<?>) vectors.get(kind);
    }

    private static String outcome(Supplier<Object> call, Object[] value) {
        try {
            value[0] = call.get();
            return "ok";
        } catch (KassaException.Api error) {
            value[0] = error.code;
            return "api_error";
        } catch (KassaException.BadSignature error) {
            return "bad_signature";
        } catch (KassaException.WrongApp error) {
            return "wrong_app";
        } catch (KassaException.CrcMismatch error) {
            return "crc_mismatch";
        } catch (KassaException.Malformed error) {
            return "malformed";
        }
    }

    private static long number(Object value) {
        return ((Json.Number) value).asLong();
    }

    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        Map<String, Object> vectors =
                (Map<String, Object>) Json.parse(Files.readString(Path.of(args[0]), StandardCharsets.UTF_8));
        VerifyingKey platform = new VerifyingKey((String) vectors.get("platform_public_key_pem"));
        String secret = (String) vectors.get("webhook_secret");
        Check check = new Check();

        for (Map<String, Object> v : list(vectors, "canonical")) {
            check.test("canonical: " + v.get("name"), () -> {
                String json = (String) v.get("json");
                if (Boolean.TRUE.equals(v.get("error"))) {
                    Object[] ignored = new Object[1];
                    Check.equal("malformed", outcome(() -> Canonical.ofText(json), ignored), "refused");
                } else {
                    Check.equal(v.get("canonical"), Canonical.ofText(json).canonical(), "canonical");
                }
            });
        }
        SigningKey merchant = new SigningKey((String) vectors.get("merchant_private_key_pem"));
        VerifyingKey merchantPublic = new VerifyingKey((String) vectors.get("merchant_public_key_pem"));
        for (Map<String, Object> v : list(vectors, "signatures")) {
            check.test("signature of " + v.get("canonical"), () -> {
                String canonical = (String) v.get("canonical");
                Check.equal(v.get("sign"), merchant.sign(canonical), "sign");
                merchantPublic.verify(canonical, (String) v.get("sign"));
                Object[] ignored = new Object[1];
                Check.equal("bad_signature", outcome(() -> {
                    merchantPublic.verify(canonical + "x", (String) v.get("sign"));
                    return null;
                }, ignored), "a changed message");
            });
        }
        for (Map<String, Object> v : list(vectors, "answers")) {
            check.test("answer: " + v.get("name"), () -> {
                Object[] value = new Object[1];
                String got = outcome(() -> Verify.answer((String) v.get("dialect"), (int) number(v.get("http_status")),
                        (String) v.get("body"), (String) v.get("x_sign"), -1, platform, number(v.get("app_id"))), value);
                Check.equal(v.get("outcome"), got, "outcome");
                if (got.equals("ok")) Check.equal(v.get("data"), value[0], "data");
                if (got.equals("api_error")) Check.equal(v.get("code"), value[0], "code");
            });
        }
        for (Map<String, Object> v : list(vectors, "callbacks")) {
            check.test("callback: " + v.get("name"), () -> {
                CallbackVerifier verifier = new CallbackVerifier(platform, number(v.get("app_id")), secret);
                Map<String, String> headers = (Map<String, String>) v.get("headers");
                byte[] body = ((String) v.get("body")).getBytes(StandardCharsets.UTF_8);
                Object[] value = new Object[1];
                String got = outcome(() -> verifier.verify(headers, body, number(v.get("now_s"))), value);
                Check.equal(v.get("outcome"), got, "outcome");
                if (got.equals("ok")) {
                    Models.Callback callback = (Models.Callback) value[0];
                    Check.equal(v.get("dialect"), callback.dialect(), "dialect");
                    Check.equal(v.get("data"), callback.data(), "data");
                    Check.equal(headers.get("webhook-id"), callback.webhookId(), "webhook id");
                }
            });
        }
        for (Map<String, Object> v : list(vectors, "brcodes")) {
            check.test("BR Code: " + v.get("name"), () -> {
                Object[] value = new Object[1];
                String got = outcome(() -> BrCode.decode((String) v.get("code")), value);
                Check.equal(v.get("outcome"), got, "outcome");
                if (got.equals("ok")) Check.equal(v.get("fields"), value[0], "fields");
            });
        }
        check.test("a signing key never shows its material", () ->
                Check.that(!merchant.toString().contains("PRIVATE"), merchant.toString()));
        check.finish();
    }
}
