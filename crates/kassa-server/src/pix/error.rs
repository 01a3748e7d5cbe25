//! The `pix` dialect's error codes: one table, four digits, grouped in families like
//! `collect`'s. Each error is answered as `{"code":CODE,"msg":TEXT}` with the family's HTTP
//! status. `docs/pix-api.md` lists the same table; a test keeps them equal.

use crate::dialect::DialectError;
use axum::response::{IntoResponse, Response};
use kassa_core::OrderError;
use kassa_core::validate::FieldError;
use kassa_signature::{CanonicalError, VerifyError};

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
    WrongSign = 2003, UNAUTHORIZED, "X-Sign does not verify with the app's registered public key.";
    UnknownApp = 2004, UNAUTHORIZED, "The X-App-Id header is missing, not a positive integer, or names no app.";
    NoKeyRegistered = 2005, UNAUTHORIZED, "The app has no usable public key registered.";
    NotPixApp = 3001, BAD_REQUEST, "The app collects another currency than BRL.";
    AmountOutOfLimits = 3002, BAD_REQUEST, "submitAmount is zero or outside the app's limits.";
    NoPixKey = 3003, BAD_REQUEST, "The operator has not set the app's receiving PIX key yet.";
    ForbiddenTarget = 3004, BAD_REQUEST, "notifyUrl points at a loopback, private, link-local or other non-public address.";
    OrderNotFound = 4001, NOT_FOUND, "No order of this app has this userOrderNumber.";
    UnknownEndpoint = 4002, NOT_FOUND, "No such endpoint.";
    DuplicateOrder = 5001, CONFLICT, "The userOrderNumber was used before with other parameters.";
    Internal = 9001, INTERNAL_SERVER_ERROR, "An internal error; nothing was stored. Retry later.";
    Unavailable = 9002, SERVICE_UNAVAILABLE, "The database is temporarily unavailable or kassa is overloaded; nothing was stored. Retry later (after Retry-After seconds when given).";
    RateLimited = 9003, TOO_MANY_REQUESTS, "The app made more requests per second than the operator allows; nothing was stored. Retry after Retry-After seconds.";
}

/// An error reply of the `pix` dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixError {
    pub code: Code,
    pub msg: String,
    /// Sent as `Retry-After` when the client should wait before retrying.
    pub retry_after_s: Option<u64>,
}

impl PixError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        PixError {
            code,
            msg: msg.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(self, wait: crate::ratelimit::RetryAfterS) -> Self {
        PixError {
            retry_after_s: Some(wait.0),
            ..self
        }
    }
}

#[derive(serde::Serialize)]
struct ErrorEnvelope<'a> {
    code: u16,
    msg: &'a str,
}

impl IntoResponse for PixError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            code: self.code.value(),
            msg: &self.msg,
        };
        crate::dialect::error_response(self.code.http_status(), body, self.retry_after_s)
    }
}

impl From<FieldError> for PixError {
    fn from(error: FieldError) -> Self {
        let code = Code::of_field(&error.problem);
        PixError::new(code, error.to_string())
    }
}

impl From<DialectError> for PixError {
    fn from(error: DialectError) -> Self {
        use DialectError as E;
        match error {
            E::BodyTooLarge => PixError::new(
                Code::BodyTooLarge,
                format!(
                    "the body is larger than {} KiB",
                    crate::dialect::MAX_BODY_BYTES / 1024
                ),
            ),
            E::Unreadable(why) => PixError::new(Code::MalformedJson, why),
            E::Canonical(CanonicalError::SignNotString) => {
                PixError::new(Code::WrongType, "sign must be a string")
            }
            E::Canonical(e) => PixError::new(Code::MalformedJson, e.to_string()),
            E::Field(e) => e.into(),
            E::UnknownApp(app_id) => {
                PixError::new(Code::UnknownApp, format!("X-App-Id {app_id} names no app"))
            }
            E::NoKey(app_id) => PixError::new(
                Code::NoKeyRegistered,
                format!("app {app_id} has no usable public key registered"),
            ),
            E::Signature(e) => {
                let code = match e {
                    VerifyError::MissingSign => Code::MissingSign,
                    VerifyError::Base64 => Code::MalformedSign,
                    _ => Code::WrongSign,
                };
                PixError::new(code, e.to_string().replace("sign ", "X-Sign "))
            }
            E::Order(OrderError::AmountOutOfLimits { amount, limits, .. }) => PixError::new(
                Code::AmountOutOfLimits,
                format!("submitAmount {amount} BRL is outside the limits {limits} BRL"),
            ),
            E::Order(e) => PixError::new(Code::Internal, e.to_string()),
            E::ForbiddenTarget { field, why } => {
                PixError::new(Code::ForbiddenTarget, format!("{field} {why}"))
            }
            E::Duplicate { order_id, order_no } => PixError::new(
                Code::DuplicateOrder,
                format!(
                    "userOrderNumber {order_id} was used before with other parameters (orderNo {order_no})"
                ),
            ),
            E::Store(e) => {
                tracing::error!(error = %e, "store error");
                if e.is_transient() {
                    PixError::new(Code::Unavailable, "the database is temporarily unavailable")
                } else {
                    PixError::new(Code::Internal, "internal error")
                }
            }
            E::NoFreeOrderNo => PixError::new(Code::Internal, "could not draw a free order number"),
            E::RateLimited(retry_after) => PixError::new(
                Code::RateLimited,
                format!(
                    "too many requests from this app; retry after {} s",
                    retry_after.0
                ),
            )
            .retry_after(retry_after),
        }
    }
}
