// Typed values of kassa's answers and callbacks. Money is long minor units (cents).
package kassa.client;

import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class Models {
    private static final Pattern AMOUNT = Pattern.compile("(0|[1-9][0-9]{0,11})(?:\\.([0-9]{1,2}))?");

    private Models() {}

    /** collect `status`: 0 not started, 1 in progress, 2 succeeded, 3 failed, -1 exception. */
    public static final int NOT_STARTED = 0, IN_PROGRESS = 1, SUCCEEDED = 2, FAILED = 3, EXCEPTION = -1;
    /** pix `orderState`: 10 processing, 20 succeeded, 30 failed. */
    public static final int PIX_PROCESSING = 10, PIX_SUCCEEDED = 20, PIX_FAILED = 30;

    /** "25.00" → 2500. */
    public static long amountToMinor(Object text) {
        Matcher match = text instanceof String s ? AMOUNT.matcher(s) : null;
        if (match == null || !match.matches()) {
            throw new KassaException.Malformed("not an amount: " + text);
        }
        String cents = match.group(2) == null ? "00" : (match.group(2) + "0").substring(0, 2);
        return Long.parseLong(match.group(1)) * 100 + Long.parseLong(cents);
    }

    /** 2500 → "25.00". */
    public static String minorToAmount(long minor) {
        if (minor < 0) throw new IllegalArgumentException("an amount is not negative");
        return String.format("%d.%02d", minor / 100, minor % 100);
    }

    static String text(Map<String, Object> data, String name) {
        if (!(data.get(name) instanceof String s)) {
            throw new KassaException.Malformed(name + " is missing or not text");
        }
        return s;
    }

    static String optional(Map<String, Object> data, String name) {
        return data.get(name) instanceof String s ? s : null;
    }

    static long integer(Map<String, Object> data, String name) {
        if (!(data.get(name) instanceof Json.Number n)) {
            throw new KassaException.Malformed(name + " is missing or not a number");
        }
        try {
            return n.asLong();
        } catch (NumberFormatException error) {
            throw new KassaException.Malformed(name + " is not an integer");
        }
    }

    public record CollectCreated(long appId, String orderId, String orderNo, String payUrl) {
        static CollectCreated of(Map<String, Object> d) {
            return new CollectCreated(integer(d, "appId"), text(d, "orderId"), text(d, "orderNo"), text(d, "payUrl"));
        }
    }

    public record CollectOrder(long appId, String orderId, String orderNo, int status, long amountMinor,
            long actualAmountMinor, long feeMinor, String payTime, String errorMsg) {
        static CollectOrder of(Map<String, Object> d) {
            long status = integer(d, "status");
            if (status < -1 || status > 3) throw new KassaException.Malformed("unknown status " + status);
            return new CollectOrder(integer(d, "appId"), text(d, "orderId"), text(d, "orderNo"), (int) status,
                    amountToMinor(d.get("amount")), amountToMinor(d.get("actualAmount")),
                    amountToMinor(d.get("fee")), optional(d, "payTime"), optional(d, "errorMsg"));
        }

        public boolean isFinal() {
            return status == SUCCEEDED || status == FAILED;
        }
    }

    public record PixCreated(long appId, String orderNo, String url, String qrCode, int orderState, String serialNo) {
        static PixCreated of(Map<String, Object> d) {
            return new PixCreated(integer(d, "appId"), text(d, "orderNo"), text(d, "url"), text(d, "qrCode"),
                    (int) integer(d, "orderState"), text(d, "serialNo"));
        }
    }

    public record PixOrder(long appId, String serialNo, String orderNo, int orderState, long amountMinor,
            long arrivalAmountMinor, String transTime, String message) {
        static PixOrder of(Map<String, Object> d) {
            long state = integer(d, "orderState");
            if (state != PIX_PROCESSING && state != PIX_SUCCEEDED && state != PIX_FAILED) {
                throw new KassaException.Malformed("unknown orderState " + state);
            }
            return new PixOrder(integer(d, "appId"), text(d, "serialNo"), text(d, "orderNo"), (int) state,
                    amountToMinor(d.get("amount")), amountToMinor(d.get("arrivalAmount")),
                    optional(d, "transTime"), optional(d, "message"));
        }

        public boolean isFinal() {
            return orderState != PIX_PROCESSING;
        }
    }

    /** One page of a day's settlement report; totals (null otherwise) on the first page only. */
    public record SettlementReport(long appId, String date, String currency, String timeZone, String lines,
            Long orders, Long grossMinor, Long feeMinor, Long netMinor, String methods, String next) {
        static SettlementReport of(Map<String, Object> d) {
            return new SettlementReport(integer(d, "appId"), text(d, "date"), text(d, "currency"),
                    text(d, "timeZone"), text(d, "lines"), d.containsKey("orders") ? integer(d, "orders") : null,
                    minor(d, "gross"), minor(d, "fee"), minor(d, "net"), optional(d, "methods"), optional(d, "next"));
        }

        private static Long minor(Map<String, Object> d, String name) {
            return d.containsKey(name) ? amountToMinor(d.get(name)) : null;
        }
    }

    /** A verified callback: "collect" with a CollectOrder or "pix" with a PixOrder; `webhookId`
     * is the same on every retry of one callback. */
    public record Callback(String dialect, Object order, String webhookId, Map<String, Object> data) {
        public CollectOrder collectOrder() {
            return (CollectOrder) order;
        }

        public PixOrder pixOrder() {
            return (PixOrder) order;
        }
    }
}
