//! The `pix` dialect's error codes: one table, four digits, grouped in families like
//! `collect`'s. Each error is answered as `{"code":CODE,"msg":TEXT}` with the family's HTTP
//! status. `docs/pix-api.md` lists the same table; a test keeps them equal.

use crate::dialect::ApiError;
use axum::response::Response;

crate::dialect::error_table! {
    u16;
    MalformedJson = 1001, BAD_REQUEST, "The body is not a flat JSON object (bad JSON, not an object, duplicate key, nested value, not UTF-8).";
    WrongType = 1002, BAD_REQUEST, "A field has the wrong JSON type (for example submitAmount as a number).";
    MissingField = 1003, BAD_REQUEST, "A required field is missing, null or empty.";
    FieldTooLong = 1004, BAD_REQUEST, "A field is longer than its maximum length.";
    InvalidField = 1005, BAD_REQUEST, "A field's value is malformed or not allowed: amount format, paymentType other than PIX, currencyType other than BRL, URL.";
    BodyTooLarge = 1006, PAYLOAD_TOO_LARGE, "The body is larger than 64 KiB.";
    MissingSign = 2001, UNAUTHORIZED, "The X-Sign header is missing or empty.";
    MalformedSign = 2002, UNAUTHORIZED, "X-Sign is not standard base64 with padding.";
    WrongSign = 2003, UNAUTHORIZED, "X-Sign does not verify with the app's registered public key, or X-App-Id names no app (one answer for both).";
    UnknownApp = 2004, UNAUTHORIZED, "The X-App-Id header is missing, or not a positive integer written as plain digits (no spaces, no leading zeros).";
    NoKeyRegistered = 2005, UNAUTHORIZED, "The app has no usable public key registered.";
    AppSuspended = 2006, FORBIDDEN, "The operator has suspended the app's merchant: no new order is taken (queries and reports still answer; a retry of an order made before still gets its answer).";
    WrongCurrency = 3001, BAD_REQUEST, "The app collects another currency than BRL.";
    AmountOutOfLimits = 3002, BAD_REQUEST, "submitAmount is zero or outside the app's limits.";
    NoPixKey = 3003, BAD_REQUEST, "The operator has not set the app's receiving PIX key yet.";
    ForbiddenTarget = 3004, BAD_REQUEST, "notifyUrl points at a loopback, private, link-local or other non-public address.";
    OrderNotFound = 4001, NOT_FOUND, "No order of this app has this userOrderNumber.";
    UnknownEndpoint = 4002, NOT_FOUND, "No such endpoint.";
    MethodNotAllowed = 4003, METHOD_NOT_ALLOWED, "The endpoint takes POST only (a GET, for example); the Allow header says so.";
    DuplicateOrder = 5001, CONFLICT, "The userOrderNumber was used before with other parameters.";
    Internal = 9001, INTERNAL_SERVER_ERROR, "An internal error; nothing was stored. Retry later.";
    Unavailable = 9002, SERVICE_UNAVAILABLE, "The database is temporarily unavailable, kassa is overloaded, or the request outlasted the request timeout (its change may have been stored). Retry unchanged, after Retry-After seconds when given: a retried create gets the original reply.";
    RateLimited = 9003, TOO_MANY_REQUESTS, "The app made more requests per second than the operator allows; nothing was stored. Retry after Retry-After seconds.";
}

#[derive(serde::Serialize)]
struct ErrorEnvelope<'a> {
    code: u16,
    msg: &'a str,
}

/// An error in the `pix` envelope.
pub fn error_response(error: ApiError) -> Response {
    let code = Code::of(error.kind);
    let body = ErrorEnvelope {
        code: code.value(),
        msg: &error.msg,
    };
    crate::dialect::error_response(code.http_status(), body, error.retry_after_s)
}
