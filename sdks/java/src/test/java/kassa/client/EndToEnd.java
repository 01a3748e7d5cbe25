// End to end against a real `kassa serve --demo`: create, pay through the sandbox, query,
// receive and verify the callback — for both APIs. The server and its settings come from the
// environment (KASSA_E2E_*), set by kassa's test suite (crates/kassa/tests/sdks.rs).
package kassa.client;

import com.sun.net.httpserver.HttpServer;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

public final class EndToEnd {
    private record Received(Map<String, String> headers, byte[] body) {}

    private static final LinkedBlockingQueue<Received> RECEIVED = new LinkedBlockingQueue<>(1000);

    private static String env(String name) {
        String value = System.getenv(name);
        if (value == null) throw new IllegalStateException(name + " is not set: no kassa server to talk to");
        return value;
    }

    private static String read(String pathVariable) throws Exception {
        return Files.readString(Path.of(env(pathVariable)), StandardCharsets.UTF_8);
    }

    private static KassaClient client(long appId) throws Exception {
        return new KassaClient(env("KASSA_E2E_URL"), appId, new SigningKey(read("KASSA_E2E_MERCHANT_KEY")),
                new VerifyingKey(read("KASSA_E2E_PLATFORM_KEY")));
    }

    private static void pay(String orderNo) throws Exception {
        Process process = new ProcessBuilder(env("KASSA_E2E_KASSA"), "trigger", orderNo, "--outcome", "paid",
                "--database-url", env("KASSA_E2E_DATABASE_URL")).redirectErrorStream(true).start();
        if (!process.waitFor(30, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new AssertionError("kassa trigger failed: " + new String(process.getInputStream().readAllBytes()));
        }
    }

    private static Received callbackOf(String orderNo) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline) {
            Received received = RECEIVED.poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
            if (received != null && new String(received.body, StandardCharsets.UTF_8).contains(orderNo)) {
                return received;
            }
        }
        throw new AssertionError("no callback for " + orderNo + " within 30 s");
    }

    private static HttpServer receiver() throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
        server.createContext("/notify", exchange -> {
            byte[] body;
            try (InputStream in = exchange.getRequestBody()) {
                body = in.readNBytes(64 * 1024);
            }
            Map<String, String> headers = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
            exchange.getRequestHeaders().forEach((name, values) -> headers.put(name, values.get(0)));
            RECEIVED.offer(new Received(headers, body));
            byte[] answer = "success".getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, answer.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(answer);
            }
        });
        server.start();
        return server;
    }

    private static void collect(String notifyUrl) throws Exception {
        long appId = Long.parseLong(env("KASSA_E2E_COLLECT_APP_ID"));
        KassaClient kassa = client(appId);
        String orderId = "java-" + UUID.randomUUID().toString().substring(0, 12);
        ApplyRequest order = new ApplyRequest(orderId, 2500, "CASHIER", "CASHIER", "Jane Doe", "+31612345678",
                "jane@example.com", "java-user", "https://shop.example/paid", "https://shop.example/failed")
                .country("000").notifyUrl(notifyUrl);
        Models.CollectCreated created = kassa.apply("EUR", order);
        Check.that(created.orderNo().matches("[0-9]{16}"), "a 16-digit order number");
        Check.that(created.payUrl().startsWith(env("KASSA_E2E_URL")), "payUrl on kassa");
        Check.equal(created, kassa.apply("EUR", order), "an identical create is replayed");
        ApplyRequest changed = new ApplyRequest(orderId, 2600, "CASHIER", "CASHIER", "Jane Doe", "+31612345678",
                "jane@example.com", "java-user", "https://shop.example/paid", "https://shop.example/failed")
                .country("000").notifyUrl(notifyUrl);
        try {
            kassa.apply("EUR", changed);
            throw new AssertionError("other fields under a used orderId must be refused");
        } catch (KassaException.Api refused) {
            Check.equal("50000001", refused.code, "code");
            Check.equal(409, refused.httpStatus, "HTTP status");
        }
        Check.equal(Models.NOT_STARTED, kassa.query("EUR", orderId, null).status(), "status before paying");
        pay(created.orderNo());
        Models.CollectOrder paid = kassa.query("EUR", orderId, created.orderNo());
        Check.equal(Models.SUCCEEDED, paid.status(), "status after paying");
        Check.equal(2500L, paid.actualAmountMinor(), "received");

        Received received = callbackOf(created.orderNo());
        VerifyingKey platform = new VerifyingKey(read("KASSA_E2E_PLATFORM_KEY"));
        Models.Callback callback = new CallbackVerifier(platform, appId, env("KASSA_E2E_COLLECT_SECRET"))
                .verify(received.headers, received.body);
        Check.equal("collect", callback.dialect(), "dialect");
        Check.equal(Models.SUCCEEDED, callback.collectOrder().status(), "callback status");
        Check.equal(orderId, callback.collectOrder().orderId(), "callback orderId");
        Check.that(callback.webhookId() != null, "a webhook id");
        try {
            new CallbackVerifier(platform, appId + 1000, null).verify(received.headers, received.body);
            throw new AssertionError("another app's callback must be refused");
        } catch (KassaException.WrongApp expected) {
            // as it should
        }
    }

    private static void pix(String notifyUrl) throws Exception {
        long appId = Long.parseLong(env("KASSA_E2E_PIX_APP_ID"));
        KassaClient kassa = client(appId);
        String number = "java-" + UUID.randomUUID().toString().substring(0, 12);
        Models.PixCreated created = kassa.pixInitCollect(number, 1234, notifyUrl);
        Map<String, Object> fields = BrCode.decode(created.qrCode());
        Check.equal("12.34", fields.get("54"), "amount in the BR Code");
        Check.equal(created.orderNo(), ((Map<?, ?>) fields.get("62")).get("05"), "txid");
        try {
            kassa.pixInitCollect("java-x", 0, null);
            throw new AssertionError("a zero amount must be refused");
        } catch (KassaException.Api refused) {
            Check.equal("3002", refused.code, "code");
        }
        pay(created.orderNo());
        Models.PixOrder paid = kassa.pixQuery(number);
        Check.equal(Models.PIX_SUCCEEDED, paid.orderState(), "state after paying");
        Check.equal(1234L, paid.arrivalAmountMinor(), "received");

        Received received = callbackOf(created.orderNo());
        Models.Callback callback = new CallbackVerifier(new VerifyingKey(read("KASSA_E2E_PLATFORM_KEY")), appId,
                env("KASSA_E2E_PIX_SECRET")).verify(received.headers, received.body);
        Check.equal("pix", callback.dialect(), "dialect");
        Check.equal(Models.PIX_SUCCEEDED, callback.pixOrder().orderState(), "callback state");
        Check.equal(number, callback.pixOrder().serialNo(), "callback serialNo");
    }

    public static void main(String[] args) throws Exception {
        HttpServer server = receiver();
        String notifyUrl = "http://127.0.0.1:" + server.getAddress().getPort() + "/notify";
        Check check = new Check();
        check.test("collect: create, pay, query, callback", () -> collect(notifyUrl));
        check.test("pix: create, pay, query, callback", () -> pix(notifyUrl));
        server.stop(0);
        check.finish();
    }
}
