//! The `collect` dialect's error codes: one table, eight digits, grouped in families. Each
//! error is answered as `{"status":"0","error":CODE,"msg":TEXT}` with the family's HTTP status.
//! `docs/collect-api.md` lists the same table; a test keeps them equal.

use axum::response::{IntoResponse, Response};
use kassa_core::validate::FieldError;
use kassa_core::{AmountError, OrderError};
use kassa_signature::{CanonicalError, VerifyError};

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
    WrongSign = "20000003", UNAUTHORIZED, "sign does not verify with the app's registered public key.";
    UnknownApp = "20000004", UNAUTHORIZED, "No app has this appId.";
    NoKeyRegistered = "20000005", UNAUTHORIZED, "The app has no usable public key registered.";
    WrongCurrency = "30000001", BAD_REQUEST, "The appId belongs to an app of another currency than the URL's.";
    MethodNotForCurrency = "30000002", BAD_REQUEST, "The inBankCode does not collect this currency.";
    MethodNotForPayType = "30000003", BAD_REQUEST, "The inBankCode does not belong to the payType.";
    AmountOutOfLimits = "30000004", BAD_REQUEST, "The amount is outside the limits of the currency, method or app.";
    CountryNotServed = "30000005", BAD_REQUEST, "Cashier mode without country, or no method is offered for the country and currency.";
    ForbiddenTarget = "30000006", BAD_REQUEST, "A callback or redirect URL points at a loopback, private, link-local or other non-public address.";
    OrderNotFound = "40000001", NOT_FOUND, "No order of this app has this orderId (and orderNo, when given).";
    UnknownEndpoint = "40000002", NOT_FOUND, "No such endpoint.";
    DuplicateOrder = "50000001", CONFLICT, "The orderId was used before with other parameters.";
    Internal = "90000001", INTERNAL_SERVER_ERROR, "An internal error; nothing was stored. Retry later.";
    Unavailable = "90000002", SERVICE_UNAVAILABLE, "The database is temporarily unavailable or kassa is overloaded; nothing was stored. Retry later (after Retry-After seconds when given).";
    RateLimited = "90000003", TOO_MANY_REQUESTS, "The app made more requests per second than the operator allows; nothing was stored. Retry after Retry-After seconds.";
}

/// An error reply of the `collect` dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectError {
    pub code: Code,
    pub msg: String,
    /// Sent as `Retry-After` when the client should wait before retrying.
    pub retry_after_s: Option<u64>,
}

impl CollectError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        CollectError {
            code,
            msg: msg.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(self, wait: crate::ratelimit::RetryAfterS) -> Self {
        CollectError {
            retry_after_s: Some(wait.0),
            ..self
        }
    }
}

#[derive(serde::Serialize)]
struct ErrorEnvelope<'a> {
    status: &'static str,
    error: &'static str,
    msg: &'a str,
}

impl IntoResponse for CollectError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            status: "0",
            error: self.code.value(),
            msg: &self.msg,
        };
        crate::dialect::error_response(self.code.http_status(), body, self.retry_after_s)
    }
}

impl From<FieldError> for CollectError {
    fn from(error: FieldError) -> Self {
        let code = Code::of_field(&error.problem);
        CollectError::new(code, error.to_string())
    }
}

impl From<CanonicalError> for CollectError {
    fn from(error: CanonicalError) -> Self {
        let code = match error {
            CanonicalError::SignNotString => Code::WrongType,
            _ => Code::MalformedJson,
        };
        CollectError::new(code, error.to_string())
    }
}

impl From<VerifyError> for CollectError {
    fn from(error: VerifyError) -> Self {
        let code = match &error {
            VerifyError::MissingSign => Code::MissingSign,
            VerifyError::Base64 => Code::MalformedSign,
            VerifyError::Mismatch => Code::WrongSign,
            VerifyError::Canonical(_) => Code::MalformedJson,
        };
        CollectError::new(code, error.to_string())
    }
}

impl From<OrderError> for CollectError {
    fn from(error: OrderError) -> Self {
        let code = match error {
            OrderError::MethodNotForCurrency { .. } => Code::MethodNotForCurrency,
            OrderError::CountryRequired | OrderError::NoMethodForCountry { .. } => {
                Code::CountryNotServed
            }
            OrderError::AmountOutOfLimits { .. } => Code::AmountOutOfLimits,
            OrderError::WrongCurrency { .. } => Code::WrongCurrency,
            // Errors of the payer's side; a merchant's request never causes them.
            OrderError::MethodNotOffered { .. } | OrderError::AlreadyStarted => Code::Internal,
        };
        CollectError::new(code, error.to_string())
    }
}

/// An amount that does not parse is a malformed field.
pub fn amount_error(field: &'static str, error: AmountError) -> CollectError {
    CollectError::new(Code::InvalidField, format!("{field} {error}"))
}

impl From<crate::dialect::DialectError> for CollectError {
    fn from(error: crate::dialect::DialectError) -> Self {
        use crate::dialect::DialectError as E;
        match error {
            E::BodyTooLarge => CollectError::new(
                Code::BodyTooLarge,
                format!(
                    "the body is larger than {} KiB",
                    crate::dialect::MAX_BODY_BYTES / 1024
                ),
            ),
            E::Unreadable(why) => CollectError::new(Code::MalformedJson, why),
            E::Canonical(e) => e.into(),
            E::Field(e) => e.into(),
            E::UnknownApp(app_id) => {
                CollectError::new(Code::UnknownApp, format!("appId {app_id} is unknown"))
            }
            E::NoKey(app_id) => CollectError::new(
                Code::NoKeyRegistered,
                format!("appId {app_id} has no usable public key registered"),
            ),
            E::Signature(e) => e.into(),
            E::Order(e) => e.into(),
            E::ForbiddenTarget { field, why } => {
                CollectError::new(Code::ForbiddenTarget, format!("{field} {why}"))
            }
            E::Duplicate { order_id, order_no } => CollectError::new(
                Code::DuplicateOrder,
                format!(
                    "orderId {order_id} was used before with other parameters (orderNo {order_no})"
                ),
            ),
            E::Store(e) => e.into(),
            E::NoFreeOrderNo => {
                CollectError::new(Code::Internal, "could not draw a free order number")
            }
            E::RateLimited(retry_after) => CollectError::new(
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

impl From<kassa_store::StoreError> for CollectError {
    fn from(error: kassa_store::StoreError) -> Self {
        tracing::error!(error = %error, "store error");
        if error.is_transient() {
            CollectError::new(Code::Unavailable, "the database is temporarily unavailable")
        } else {
            CollectError::new(Code::Internal, "internal error")
        }
    }
}
