// The client of one app: typed, signed requests to both of kassa's APIs with
// java.net.http.HttpClient; answers believed only once verified; a timeout on every attempt and
// safe retries (an identical create is replayed by kassa, never doubled).
package kassa.client;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

public final class KassaClient {
    public static final int MAX_ANSWER_BYTES = 1024 * 1024;
    private static final long MAX_PAUSE_MS = 10_000;

    private final String baseUrl;
    private final long appId;
    private final SigningKey key;
    private final VerifyingKey platformKey;
    private final Duration timeout;
    private final int maxRetries;
    private final long firstPauseMs;
    private final HttpClient http;

    /** A client of app `appId` at `baseUrl`, signing with the merchant's key and believing only
     * what `platformKey` (`kassa keys platform`) signed: 10 s per attempt, two retries. */
    public KassaClient(String baseUrl, long appId, SigningKey key, VerifyingKey platformKey) {
        this(baseUrl, appId, key, platformKey, Duration.ofSeconds(10), 2, 250);
    }

    public KassaClient(String baseUrl, long appId, SigningKey key, VerifyingKey platformKey, Duration timeout,
            int maxRetries, long firstPauseMs) {
        if (!baseUrl.startsWith("http://") && !baseUrl.startsWith("https://")) {
            throw new IllegalArgumentException("the base URL must be http(s)://…");
        }
        this.baseUrl = baseUrl.replaceAll("/+$", "");
        this.appId = appId;
        this.key = key;
        this.platformKey = platformKey;
        this.timeout = timeout;
        this.maxRetries = maxRetries;
        this.firstPauseMs = firstPauseMs;
        this.http = HttpClient.newBuilder()
                .connectTimeout(timeout)
                .followRedirects(HttpClient.Redirect.NEVER)
                .version(HttpClient.Version.HTTP_1_1)
                .build();
    }

    /** A new collect order; build it with {@link ApplyRequest}. */
    public Models.CollectCreated apply(String currency, ApplyRequest request) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("appId", appId);
        fields.putAll(request.fields());
        return Models.CollectCreated.of(collect(currency, "apply", fields));
    }

    public Models.CollectOrder query(String currency, String orderId, String orderNo) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("appId", appId);
        fields.put("orderId", orderId);
        fields.put("orderNo", orderNo);
        return Models.CollectOrder.of(collect(currency, "query", fields));
    }

    /** One page of a day's settlement report (`date` yyyy-MM-dd; `after` the previous `next`). */
    public Models.SettlementReport report(String currency, String date, String after) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("appId", appId);
        fields.put("date", date);
        fields.put("after", after);
        return Models.SettlementReport.of(collect(currency, "report", fields));
    }

    /** A new PIX order with its BR Code; `notifyUrl` may be null. */
    public Models.PixCreated pixInitCollect(String userOrderNumber, long submitAmountMinor, String notifyUrl) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("userOrderNumber", userOrderNumber);
        fields.put("submitAmount", Models.minorToAmount(submitAmountMinor));
        fields.put("paymentType", "PIX");
        fields.put("currencyType", "BRL");
        fields.put("notifyUrl", notifyUrl);
        return Models.PixCreated.of(pix("/accountProxyCollect/initCollect", fields));
    }

    public Models.PixOrder pixQuery(String userOrderNumber) {
        return Models.PixOrder.of(pix("/proxyCollectQuery/query", Map.of("userOrderNumber", userOrderNumber)));
    }

    public Models.SettlementReport pixReport(String date, String after) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("date", date);
        fields.put("after", after);
        return Models.SettlementReport.of(pix("/proxyCollectQuery/report", fields));
    }

    private Map<String, Object> collect(String currency, String operation, Map<String, Object> fields) {
        if (!currency.equals("USD") && !currency.equals("EUR")) {
            throw new IllegalArgumentException("collect orders are USD or EUR; BRL orders are PIX orders");
        }
        fields.values().removeIf(v -> v == null);
        fields.put("sign", key.sign(Canonical.ofFields(fields)));
        Answer answer = post("/" + currency.toLowerCase() + "/collect/" + operation, Json.write(fields), null);
        return Verify.answer("collect", answer.status, answer.body, null, answer.retryAfterS, platformKey, appId);
    }

    private Map<String, Object> pix(String path, Map<String, Object> fields) {
        Map<String, Object> present = new LinkedHashMap<>(fields);
        present.values().removeIf(v -> v == null);
        Answer answer = post(path, Json.write(present), key.sign(Canonical.ofFields(present)));
        return Verify.answer("pix", answer.status, answer.body, answer.xSign, answer.retryAfterS, platformKey, appId);
    }

    private record Answer(int status, String body, String xSign, long retryAfterS) {}

    private Answer post(String path, String body, String xSign) {
        long pauseMs = firstPauseMs;
        for (int attempt = 0; ; attempt++) {
            boolean last = attempt >= maxRetries;
            try {
                Answer answer = postOnce(path, body, xSign);
                boolean retry = answer.status == 429 || answer.status == 500 || answer.status == 502
                        || answer.status == 503 || answer.status == 504;
                if (!retry || last) return answer;
                sleep(Math.min(answer.retryAfterS >= 0 ? answer.retryAfterS * 1000 : pauseMs, MAX_PAUSE_MS));
            } catch (KassaException.Transport error) {
                if (last) throw error;
                sleep(pauseMs);
            }
            pauseMs = Math.min(pauseMs * 2, MAX_PAUSE_MS);
        }
    }

    private Answer postOnce(String path, String body, String xSign) {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(baseUrl + path))
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
        if (xSign != null) {
            request.header("X-App-Id", Long.toString(appId)).header("X-Sign", xSign);
        }
        try {
            HttpResponse<InputStream> response = http.send(request.build(), HttpResponse.BodyHandlers.ofInputStream());
            byte[] bytes;
            try (InputStream in = response.body()) {
                bytes = in.readNBytes(MAX_ANSWER_BYTES + 1);
            }
            if (bytes.length > MAX_ANSWER_BYTES) {
                throw new KassaException.Malformed("the answer is larger than " + MAX_ANSWER_BYTES + " bytes");
            }
            String retryAfter = response.headers().firstValue("retry-after").orElse("");
            return new Answer(response.statusCode(), new String(bytes, StandardCharsets.UTF_8),
                    response.headers().firstValue("x-sign").orElse(null),
                    retryAfter.matches("[0-9]{1,9}") ? Long.parseLong(retryAfter) : -1);
        } catch (HttpTimeoutException error) {
            throw new KassaException.Transport("kassa did not answer within " + timeout.toMillis() + " ms");
        } catch (IOException error) {
            throw new KassaException.Transport("cannot reach kassa: " + error.getMessage());
        } catch (InterruptedException error) {
            Thread.currentThread().interrupt();
            throw new KassaException.Transport("interrupted");
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException error) {
            Thread.currentThread().interrupt();
            throw new KassaException.Transport("interrupted");
        }
    }
}
