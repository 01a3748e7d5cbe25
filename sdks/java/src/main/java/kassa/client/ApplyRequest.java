// A new collect order: the fields of `POST /{usd|eur}/collect/apply` but appId and sign, which
// the client adds. toString masks the payer's personal data.
package kassa.client;

import java.util.LinkedHashMap;
import java.util.Map;

public final class ApplyRequest {
    private final Map<String, Object> fields = new LinkedHashMap<>();

    /** The required fields; `payType` is CASHIER, BANK_TRANSFER or EWALLET. */
    public ApplyRequest(String orderId, long amountMinor, String payType, String inBankCode, String name,
            String phone, String email, String partnerUserId, String callBackUrl, String callBackFailUrl) {
        fields.put("orderId", orderId);
        fields.put("amount", Models.minorToAmount(amountMinor));
        fields.put("payType", payType);
        fields.put("inBankCode", inBankCode);
        fields.put("name", name);
        fields.put("phone", phone);
        fields.put("email", email);
        fields.put("partnerUserId", partnerUserId);
        fields.put("callBackUrl", callBackUrl);
        fields.put("callBackFailUrl", callBackFailUrl);
    }

    public ApplyRequest notifyUrl(String url) {
        fields.put("notifyUrl", url);
        return this;
    }

    /** Cashier mode's country: 000 (all), 040, 056, 380, 528, 616. */
    public ApplyRequest country(String country) {
        fields.put("country", country);
        return this;
    }

    public ApplyRequest subject(String subject) {
        fields.put("subject", subject);
        return this;
    }

    public ApplyRequest body(String body) {
        fields.put("body", body);
        return this;
    }

    Map<String, Object> fields() {
        return fields;
    }

    @Override
    public String toString() {
        return "ApplyRequest(orderId=" + fields.get("orderId") + ", amount=" + fields.get("amount")
                + ", inBankCode=" + fields.get("inBankCode") + ", name=***, phone=***, email=***)";
    }
}
