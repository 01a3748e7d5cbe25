//! The errors of the merchant APIs, in words both dialects share: an [`ApiError`] is a kind
//! and a message. Each dialect gives every kind its wire code and HTTP status in one table
//! ([`error_table!`]) and wraps it in its own envelope; messages name fields the dialect's way
//! ([`Words`]).

use crate::ratelimit::RetryAfterS;
use kassa_core::validate::{FieldError, Problem};
use kassa_core::{AppId, OrderError, OrderNo};
use kassa_signature::{CanonicalError, VerifyError};
use kassa_store::StoreError;

/// What went wrong with a merchant's request. A dialect's table maps each kind it can answer
/// to a code; a kind missing from a table is answered as that table's `Internal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    MalformedJson,
    WrongType,
    MissingField,
    FieldTooLong,
    InvalidField,
    BodyTooLarge,
    MissingSign,
    MalformedSign,
    WrongSign,
    UnknownApp,
    NoKeyRegistered,
    AppSuspended,
    WrongCurrency,
    MethodNotForCurrency,
    MethodNotForPayType,
    AmountOutOfLimits,
    CountryNotServed,
    NoPixKey,
    ForbiddenTarget,
    OrderNotFound,
    UnknownEndpoint,
    MethodNotAllowed,
    DuplicateOrder,
    Internal,
    Unavailable,
    RateLimited,
}

/// An error answer, before a dialect puts it in its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub msg: String,
    /// Sent as `Retry-After` when the client should wait before retrying.
    pub retry_after_s: Option<u64>,
}

/// How a dialect names things in its messages.
#[derive(Debug)]
pub struct Words {
    /// The app in "… has no usable public key registered": `appId`, `app`.
    pub app: &'static str,
    /// Where the app id travels: `appId`, `X-App-Id`.
    pub app_id: &'static str,
    /// Where the signature travels: `sign`, `X-Sign`.
    pub sign: &'static str,
    /// The merchant's order id field: `orderId`, `userOrderNumber`, and its longest length.
    pub order_id: &'static str,
    pub order_id_max_chars: usize,
    /// The amount field: `amount`, `submitAmount`.
    pub amount: &'static str,
    /// The URL fields of a new order: the payer's success and failure returns, the callback.
    pub success_url: &'static str,
    pub fail_url: &'static str,
    pub notify_url: &'static str,
    /// Every field a request of the dialect may carry: a value that hides `&FIELD=` where a
    /// re-split could use it is refused (see `kassa_signature::ambiguous_split`).
    pub fields: &'static [&'static str],
}

impl ApiError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        ApiError {
            kind,
            msg: msg.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(self, wait: RetryAfterS) -> Self {
        ApiError {
            retry_after_s: Some(wait.0),
            ..self
        }
    }

    pub fn body_too_large() -> Self {
        ApiError::new(
            ErrorKind::BodyTooLarge,
            format!(
                "the body is larger than {} KiB",
                super::MAX_BODY_BYTES / 1024
            ),
        )
    }

    /// A signature that does not verify, or an app that does not exist: one answer for both.
    pub fn wrong_sign(words: &Words, app_id: AppId) -> Self {
        ApiError::new(
            ErrorKind::WrongSign,
            format!(
                "{} does not verify for {} {app_id} (unknown app or another key)",
                words.sign, words.app_id
            ),
        )
    }

    pub fn no_key(words: &Words, app_id: AppId) -> Self {
        ApiError::new(
            ErrorKind::NoKeyRegistered,
            format!("{} {app_id} has no usable public key registered", words.app),
        )
    }

    pub fn signature(words: &Words, error: VerifyError) -> Self {
        let kind = match &error {
            VerifyError::MissingSign => ErrorKind::MissingSign,
            VerifyError::Base64 => ErrorKind::MalformedSign,
            VerifyError::Mismatch => ErrorKind::WrongSign,
            VerifyError::Canonical(_) => ErrorKind::MalformedJson,
        };
        let msg = error
            .to_string()
            .replace("sign ", &format!("{} ", words.sign));
        ApiError::new(kind, msg)
    }

    pub fn duplicate(words: &Words, order_id: &str, order_no: &OrderNo) -> Self {
        ApiError::new(
            ErrorKind::DuplicateOrder,
            format!(
                "{} {order_id} was used before with other parameters (orderNo {order_no})",
                words.order_id
            ),
        )
    }

    /// A business rule of the core refused the order.
    pub fn order(words: &Words, error: OrderError) -> Self {
        let kind = match &error {
            OrderError::MethodNotForCurrency { .. } => ErrorKind::MethodNotForCurrency,
            OrderError::CountryRequired | OrderError::NoMethodForCountry { .. } => {
                ErrorKind::CountryNotServed
            }
            OrderError::AmountOutOfLimits { .. } => ErrorKind::AmountOutOfLimits,
            OrderError::WrongCurrency { .. } => ErrorKind::WrongCurrency,
            OrderError::AppSuspended => ErrorKind::AppSuspended,
            // Errors of the payer's side; a merchant's request never causes them.
            OrderError::MethodNotOffered { .. } | OrderError::AlreadyStarted => ErrorKind::Internal,
        };
        let msg = match &error {
            OrderError::AmountOutOfLimits {
                amount,
                currency,
                limits,
            } => format!(
                "{} {amount} {currency} is outside the limits {limits} {currency}",
                words.amount
            ),
            other => other.to_string(),
        };
        ApiError::new(kind, msg)
    }

    /// A value whose `&key=` would let the signature stand for a differently split request.
    pub fn ambiguous(field: &str, key: &str) -> Self {
        ApiError::new(
            ErrorKind::InvalidField,
            format!(
                "{field} holds \"&{key}=\", which would let its signature stand for a request with a separate {key}; write & as %26 there"
            ),
        )
    }

    pub fn rate_limited(wait: RetryAfterS) -> Self {
        ApiError::new(
            ErrorKind::RateLimited,
            format!("too many requests from this app; retry after {} s", wait.0),
        )
        .retry_after(wait)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        let kind = match &error.problem {
            Problem::Missing => ErrorKind::MissingField,
            Problem::WrongType(_) => ErrorKind::WrongType,
            Problem::TooLong { .. } => ErrorKind::FieldTooLong,
            Problem::Invalid(_) => ErrorKind::InvalidField,
        };
        ApiError::new(kind, error.to_string())
    }
}

impl From<CanonicalError> for ApiError {
    fn from(error: CanonicalError) -> Self {
        let kind = match error {
            CanonicalError::SignNotString => ErrorKind::WrongType,
            _ => ErrorKind::MalformedJson,
        };
        ApiError::new(kind, error.to_string())
    }
}

impl From<StoreError> for ApiError {
    /// Logged here, once: the merchant hears only whether to retry.
    fn from(error: StoreError) -> Self {
        tracing::error!(error = %error, "store error");
        if error.is_transient() {
            ApiError::new(
                ErrorKind::Unavailable,
                "the database is temporarily unavailable",
            )
        } else {
            ApiError::new(ErrorKind::Internal, "internal error")
        }
    }
}

/// Declares a dialect's error table: `Code` with each code's wire value, HTTP status and
/// documented meaning. Each variant is named after the [`ErrorKind`] it answers.
macro_rules! error_table {
    ($value:ty; $($name:ident = $wire:literal, $http:ident, $meaning:literal;)*) => {
        /// Every error this dialect answers with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Code { $($name),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// The code as it travels.
            pub fn value(self) -> $value {
                match self { $(Code::$name => $wire),* }
            }

            pub fn http_status(self) -> axum::http::StatusCode {
                match self { $(Code::$name => axum::http::StatusCode::$http),* }
            }

            /// What the code means, as the documentation states it.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$name => $meaning),* }
            }

            /// The code that answers a kind of error; `Internal` for kinds this dialect
            /// never meets.
            #[allow(unreachable_patterns)]
            pub fn of(kind: $crate::dialect::ErrorKind) -> Code {
                match kind {
                    $($crate::dialect::ErrorKind::$name => Code::$name,)*
                    _ => Code::Internal,
                }
            }
        }
    };
}
pub(crate) use error_table;
