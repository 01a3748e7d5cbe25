//! What both merchant dialects do alike: read the body, authenticate the app by its signature,
//! check callback targets, give a retry its original reply, and store a new order under a fresh
//! number. Errors are neutral here; each dialect maps them onto its own code table and words.

use crate::ratelimit::RetryAfterS;
use crate::wire::Fields;
use crate::{Gateway, ids};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use kassa_core::validate::FieldError;
use kassa_core::{App, AppId, Order, OrderError, OrderNo};
use kassa_signature::{CanonicalError, VerifyError};
use kassa_store::{InsertOutcome, StoreError};

/// Declares a dialect's error table: `Code` with each code's wire value, HTTP status and
/// documented meaning, and the mapping of a refused field onto the table's format codes (every
/// table has `MissingField`, `WrongType`, `FieldTooLong` and `InvalidField`).
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

            /// The code of a refused field, by what is wrong with it.
            pub fn of_field(problem: &kassa_core::validate::Problem) -> Code {
                use kassa_core::validate::Problem;
                match problem {
                    Problem::Missing => Code::MissingField,
                    Problem::WrongType(_) => Code::WrongType,
                    Problem::TooLong { .. } => Code::FieldTooLong,
                    Problem::Invalid(_) => Code::InvalidField,
                }
            }
        }
    };
}
pub(crate) use error_table;

/// Largest request body accepted by every dialect.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Fresh order numbers tried before giving up (a collision is a 1 in 10^15 event).
const ORDER_NO_ATTEMPTS: usize = 3;

#[derive(Debug)]
pub enum DialectError {
    BodyTooLarge,
    Unreadable(String),
    Canonical(CanonicalError),
    Field(FieldError),
    UnknownApp(AppId),
    NoKey(AppId),
    Signature(VerifyError),
    Order(OrderError),
    ForbiddenTarget {
        field: &'static str,
        why: String,
    },
    /// The merchant's order id was used before with other parameters.
    Duplicate {
        order_id: String,
        order_no: OrderNo,
    },
    Store(StoreError),
    NoFreeOrderNo,
    /// The app spent its request budget (`--app-rate-limit`).
    RateLimited(RetryAfterS),
}

impl From<CanonicalError> for DialectError {
    fn from(e: CanonicalError) -> Self {
        DialectError::Canonical(e)
    }
}
impl From<FieldError> for DialectError {
    fn from(e: FieldError) -> Self {
        DialectError::Field(e)
    }
}
impl From<VerifyError> for DialectError {
    fn from(e: VerifyError) -> Self {
        DialectError::Signature(e)
    }
}
impl From<OrderError> for DialectError {
    fn from(e: OrderError) -> Self {
        DialectError::Order(e)
    }
}
impl From<StoreError> for DialectError {
    fn from(e: StoreError) -> Self {
        DialectError::Store(e)
    }
}

/// An error reply in a dialect's envelope, with `Retry-After` when the client should wait.
pub fn error_response(
    status: StatusCode,
    envelope: impl serde::Serialize,
    retry_after_s: Option<u64>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (status, axum::Json(envelope)).into_response();
    if let Some(wait_s) = retry_after_s {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, wait_s.into());
    }
    response
}

/// The request body as text, within the size limit.
pub fn body_text(body: &Result<Bytes, BytesRejection>) -> Result<&str, DialectError> {
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(DialectError::BodyTooLarge);
        }
        Err(rejection) => return Err(DialectError::Unreadable(rejection.body_text())),
    };
    std::str::from_utf8(bytes).map_err(|_| DialectError::Unreadable("the body is not UTF-8".into()))
}

/// The app whose registered key verifies `sign` over `canonical`.
pub async fn verified_app(
    gateway: &Gateway,
    app_id: AppId,
    canonical: &str,
    sign: &str,
) -> Result<App, DialectError> {
    let app = gateway
        .apps
        .get(gateway.store.as_ref(), app_id)
        .await?
        .ok_or(DialectError::UnknownApp(app_id))?;
    let key = gateway
        .merchant_keys
        .for_app(&app)
        .map_err(|e| {
            tracing::error!(app_id = app_id.0, error = %e, "registered public key unusable");
            DialectError::NoKey(app_id)
        })?
        .ok_or(DialectError::NoKey(app_id))?;
    key.verify_base64(canonical.as_bytes(), sign)?;
    let per_s = gateway.config.app_rate_limit_per_s;
    if per_s > 0 {
        gateway
            .app_rates
            .admit(app_id, per_s, crate::now_ms())
            .map_err(DialectError::RateLimited)?;
    }
    Ok(app)
}

/// A callback or redirect URL field: required or not, an absolute http(s) URL of `max_chars`.
pub fn url_field(
    fields: &Fields,
    name: &'static str,
    max_chars: usize,
    required: bool,
) -> Result<Option<String>, FieldError> {
    let value = if required {
        Some(fields.required(name, max_chars)?)
    } else {
        fields.optional(name, max_chars)?
    };
    if let Some(value) = &value {
        kassa_core::validate::http_url(name, value)?;
    }
    Ok(value)
}

/// Refuses callback and redirect targets on private, loopback and similar addresses (SSRF),
/// unless the operator allowed them.
pub async fn check_targets(
    gateway: &Gateway,
    targets: &[(&'static str, &Option<String>)],
) -> Result<(), DialectError> {
    if gateway.config.allow_private_targets {
        return Ok(());
    }
    for (field, target) in targets {
        let Some(target) = target else { continue };
        let url = url::Url::parse(target).map_err(|e| FieldError::invalid(field, e.to_string()))?;
        gateway
            .targets
            .check(&url)
            .await
            .map_err(|why| DialectError::ForbiddenTarget { field, why })?;
    }
    Ok(())
}

/// A retry of a create request: the original reply if the parameters are the same.
fn replay(existing: &Order, request_fingerprint: &str) -> Result<String, DialectError> {
    if existing.request_fingerprint == request_fingerprint {
        Ok(existing.create_reply.clone())
    } else {
        Err(DialectError::Duplicate {
            order_id: existing.merchant_order_id.clone(),
            order_no: existing.order_no.clone(),
        })
    }
}

/// The reply to give if the app already has an order with this id: its original reply for an
/// identical retry (even if rules changed since), a duplicate error otherwise. Asked only when
/// a request is refused: on the happy path the insert itself finds an earlier order.
pub async fn earlier_reply(
    gateway: &Gateway,
    app_id: AppId,
    merchant_order_id: &str,
    request_fingerprint: &str,
) -> Result<Option<String>, DialectError> {
    match gateway
        .store
        .order_by_merchant_order_id(app_id, merchant_order_id)
        .await?
    {
        Some(existing) => replay(&existing, request_fingerprint).map(Some),
        None => Ok(None),
    }
}

/// Stores a new order after `prepare` filled in what depends on its number (the reply, a BR
/// Code), drawing a new number on the rare collision; a concurrent identical request gets the
/// same reply.
pub async fn insert_new_order(
    gateway: &Gateway,
    mut order: Order,
    prepare: impl Fn(&mut Order),
) -> Result<String, DialectError> {
    for _ in 0..ORDER_NO_ATTEMPTS {
        prepare(&mut order);
        match gateway.store.insert_order(&order).await {
            Ok(InsertOutcome::Inserted) => {
                tracing::info!(
                    app_id = order.app_id.0,
                    order_no = %order.order_no,
                    amount = %order.amount_minor,
                    currency = %order.currency,
                    method = order.method.code,
                    "order created"
                );
                return Ok(order.create_reply);
            }
            Ok(InsertOutcome::Existing(existing)) => {
                return replay(&existing, &order.request_fingerprint);
            }
            Err(StoreError::OrderNoTaken) => {
                let fresh = ids::new_order_ids();
                order.order_no = fresh.order_no;
                order.cashier_token = fresh.cashier_token;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(DialectError::NoFreeOrderNo)
}
