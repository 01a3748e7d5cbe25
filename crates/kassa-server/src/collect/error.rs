//! The `collect` dialect's error codes: one table, eight digits, grouped in families. Each
//! error is answered as `{"status":"0","error":CODE,"msg":TEXT}` with the family's HTTP status.
//! `docs/collect-api.md` lists the same table; a test keeps them equal.

use crate::dialect::ApiError;
use axum::response::Response;

crate::dialect::error_table! {
    &'static str;
    MalformedJson = "10000001", BAD_REQUEST, "The body is not a flat JSON object (bad JSON, not an object, duplicate key, nested value, not UTF-8).";
    WrongType = "10000002", BAD_REQUEST, "A field has the wrong JSON type (for example appId as a string).";
    MissingField = "10000003", BAD_REQUEST, "A required field is missing, null or empty.";
    FieldTooLong = "10000004", BAD_REQUEST, "A field is longer than allowed.";
    InvalidField = "10000005", BAD_REQUEST, "A field's value is malformed: amount, e-mail, phone, URL, charset, or not one of the allowed values.";
    BodyTooLarge = "10000006", PAYLOAD_TOO_LARGE, "The body is larger than 64 KiB.";
    MissingSign = "20000001", UNAUTHORIZED, "sign is missing or empty.";
    MalformedSign = "20000002", UNAUTHORIZED, "sign is not standard base64 with padding.";
    WrongSign = "20000003", UNAUTHORIZED, "sign does not verify with the app's registered public key, or no app has this appId (one answer for both).";
    UnknownApp = "20000004", UNAUTHORIZED, "Not answered any more: an unknown appId is answered like a wrong sign (20000003), so that app ids cannot be probed without a key.";
    NoKeyRegistered = "20000005", UNAUTHORIZED, "The app has no usable public key registered.";
    AppSuspended = "20000006", FORBIDDEN, "The operator has suspended the app's merchant: no new order is taken (queries and reports still answer; a retry of an order made before still gets its answer).";
    WrongCurrency = "30000001", BAD_REQUEST, "The appId belongs to an app of another currency than the URL's.";
    MethodNotForCurrency = "30000002", BAD_REQUEST, "The inBankCode does not collect this currency.";
    MethodNotForPayType = "30000003", BAD_REQUEST, "The inBankCode does not belong to the payType.";
    AmountOutOfLimits = "30000004", BAD_REQUEST, "The amount is outside the limits of the currency, method or app.";
    CountryNotServed = "30000005", BAD_REQUEST, "Cashier mode without country, or no method is offered for the country and currency.";
    ForbiddenTarget = "30000006", BAD_REQUEST, "A callback or redirect URL points at a loopback, private, link-local or other non-public address.";
    OrderNotFound = "40000001", NOT_FOUND, "No order of this app has this orderId (and orderNo, when given).";
    UnknownEndpoint = "40000002", NOT_FOUND, "No such endpoint.";
    MethodNotAllowed = "40000003", METHOD_NOT_ALLOWED, "The endpoint takes POST only (a GET, for example); the Allow header says so.";
    DuplicateOrder = "50000001", CONFLICT, "The orderId was used before with other parameters.";
    Internal = "90000001", INTERNAL_SERVER_ERROR, "An internal error; nothing was stored. Retry later.";
    Unavailable = "90000002", SERVICE_UNAVAILABLE, "The database is temporarily unavailable, kassa is overloaded, or the request outlasted the request timeout (its change may have been stored). Retry unchanged, after Retry-After seconds when given: a retried create gets the original reply.";
    RateLimited = "90000003", TOO_MANY_REQUESTS, "The app made more requests per second than the operator allows; nothing was stored. Retry after Retry-After seconds.";
}

#[derive(serde::Serialize)]
struct ErrorEnvelope<'a> {
    status: &'static str,
    error: &'static str,
    msg: &'a str,
}

/// An error in the `collect` envelope.
pub fn error_response(error: ApiError) -> Response {
    let code = Code::of(error.kind);
    let body = ErrorEnvelope {
        status: "0",
        error: code.value(),
        msg: &error.msg,
    };
    crate::dialect::error_response(code.http_status(), body, error.retry_after_s)
}
