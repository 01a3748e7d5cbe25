//! The `pix` dialect (seed 004): `POST /accountProxyCollect/initCollect` and
//! `POST /proxyCollectQuery/query` for BRL collections paid by PIX, and kassa's own
//! `POST /proxyCollectQuery/report` (a day's settlement report) in the same style.
//!
//! The body carries no `appId` or `sign`: the app is named by the `X-App-Id` header and the
//! body is signed in `X-Sign` (PRODUCT.md). Replies are `{"code":0,"msg":"success","data":…}`
//! with `X-Sign` over `data`; errors are `{"code":…,"msg":…}` from one table (`error.rs`).

mod error;
pub mod openapi;

pub use error::Code;

use crate::dialect::{self, ApiError, Dialect, ErrorKind, Incoming, Words};
use crate::notary::{Notary, Signature, Signed};
use crate::wire::Fields;
use crate::{Gateway, ServerConfig};
use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kassa_core::pix::CodeKind;
use kassa_core::validate::FieldError;
use kassa_core::{AmountMinor, App, AppId, Currency, NewOrder, Order, OrderStatus, PaymentMethod};
use kassa_signature::SignedObject;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The seed's field limits.
pub const MAX_ORDER_NUMBER_CHARS: usize = 50;
const MAX_AMOUNT_CHARS: usize = 12;
const MAX_PAYMENT_TYPE_CHARS: usize = 20;
const MAX_CURRENCY_TYPE_CHARS: usize = 40;
const MAX_NOTIFY_URL_CHARS: usize = 255;
const MAX_MESSAGE_CHARS: usize = 200;

/// The `pix` dialect.
pub struct Pix;

static WORDS: Words = Words {
    app: "app",
    app_id: "X-App-Id",
    sign: "X-Sign",
    order_id: "userOrderNumber",
    order_id_max_chars: MAX_ORDER_NUMBER_CHARS,
    amount: "submitAmount",
    success_url: "callBackUrl",
    fail_url: "callBackFailUrl",
    notify_url: "notifyUrl",
    fields: &[
        "userOrderNumber",
        "submitAmount",
        "paymentType",
        "currencyType",
        "notifyUrl",
        "language",
    ],
};

/// The seed's `orderState` for a core status.
pub fn order_state(status: OrderStatus) -> i32 {
    match status {
        OrderStatus::Created | OrderStatus::InProgress | OrderStatus::Exception => 10,
        OrderStatus::Succeeded => 20,
        OrderStatus::Failed => 30,
    }
}

/// PIX merchants hear about final states only.
pub fn notifies(status: OrderStatus) -> bool {
    status.is_final()
}

#[utoipa::path(
    post,
    path = "/accountProxyCollect/initCollect",
    tag = "pix",
    summary = "Create a PIX order",
    params(openapi::PixAuthHeaders),
    request_body(content = openapi::InitCollectRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order and its BR Code (or, for an identical retry, the original reply).", body = openapi::InitCollectReply, headers(("X-Sign" = String, description = "The platform's signature of data"))),
        openapi::PixErrors,
        (status = 409, description = "The userOrderNumber was used before with other parameters.", body = openapi::PixErrorReply),
    )
)]
pub async fn init_collect(State(gateway): State<Arc<Gateway>>, incoming: Incoming) -> Response {
    dialect::respond(&Pix, dialect::create(&Pix, &gateway, &incoming).await)
}

#[utoipa::path(
    post,
    path = "/proxyCollectQuery/query",
    tag = "pix",
    summary = "Query a PIX order",
    params(openapi::PixAuthHeaders),
    request_body(content = openapi::PixQueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order's state.", body = openapi::PixQueryReply, headers(("X-Sign" = String, description = "The platform's signature of data"))),
        openapi::PixErrors,
    )
)]
pub async fn query(State(gateway): State<Arc<Gateway>>, incoming: Incoming) -> Response {
    dialect::respond(&Pix, query_reply(&gateway, &incoming).await)
}

#[utoipa::path(
    post,
    path = "/proxyCollectQuery/report",
    tag = "pix",
    summary = "A day's settlement report",
    description = "The app's orders that succeeded on one day of the operator's time zone: totals, totals by method and the order lines, 1,000 a page. See docs/ledger.md for the columns.",
    params(openapi::PixAuthHeaders),
    request_body(content = openapi::PixReportRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One page of the report.", body = openapi::PixReportReply, headers(("X-Sign" = String, description = "The platform's signature of data"))),
        openapi::PixErrors,
    )
)]
pub async fn report(State(gateway): State<Arc<Gateway>>, incoming: Incoming) -> Response {
    dialect::respond(
        &Pix,
        crate::report::page_reply(&Pix, &gateway, &incoming).await,
    )
}

/// A required field that must hold exactly `expected`.
fn fixed(
    fields: &Fields,
    name: &'static str,
    max: usize,
    expected: &str,
) -> Result<(), FieldError> {
    let value = fields.required(name, max)?;
    if value != expected {
        return Err(FieldError::invalid(name, format!("must be {expected}")));
    }
    Ok(())
}

fn new_order(fields: &Fields, app: &App, merchant_order_id: String) -> Result<NewOrder, ApiError> {
    let amount_text = fields.required("submitAmount", MAX_AMOUNT_CHARS)?;
    let amount_minor = AmountMinor::parse(&amount_text)
        .map_err(|e| ApiError::new(ErrorKind::InvalidField, format!("submitAmount {e}")))?;
    fixed(fields, "paymentType", MAX_PAYMENT_TYPE_CHARS, "PIX")?;
    fixed(fields, "currencyType", MAX_CURRENCY_TYPE_CHARS, "BRL")?;
    let notify_url = dialect::url_field(fields, "notifyUrl", MAX_NOTIFY_URL_CHARS, false)?;
    Ok(NewOrder {
        app_id: app.app_id,
        merchant_order_id,
        amount_minor,
        method: PaymentMethod::by_code("PIX").expect("PIX is in the catalogue"),
        country: None,
        payer: None,
        subject: None,
        body: None,
        callback_url: None,
        callback_fail_url: None,
        notify_url,
        language: dialect::language_field(fields)?,
        // Both are set by the create pipeline.
        request_fingerprint: String::new(),
        dialect: "",
    })
}

async fn query_reply(gateway: &Gateway, incoming: &Incoming) -> Result<Signed, ApiError> {
    let auth = dialect::authenticate(&Pix, gateway, incoming).await?;
    let merchant_order_id = Pix.merchant_order_id(&Fields::new(&auth.object.fields))?;
    let not_found = || {
        ApiError::new(
            ErrorKind::OrderNotFound,
            format!("no order with userOrderNumber {merchant_order_id}"),
        )
    };
    let version = gateway
        .store
        .order_version_by_merchant_order_id(auth.app.app_id, &merchant_order_id)
        .await?
        .ok_or_else(not_found)?;
    dialect::query_reply(&Pix, gateway, &version, not_found, |order| {
        let mut data = order_state_data(order);
        if order.status.is_final() {
            data.insert(
                "transTime".into(),
                gateway.notary.local_datetime(order.updated_at_ms).into(),
            );
        }
        data
    })
    .await
}

/// The fields of an order's state that query replies and callbacks share; `appId` binds the
/// signature to the app (see the `collect` dialect's `order_data`).
fn order_state_data(order: &Order) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("appId".into(), order.app_id.0.into());
    data.insert("serialNo".into(), order.merchant_order_id.clone().into());
    data.insert("orderNo".into(), order.order_no.as_str().into());
    data.insert(
        "amount".into(),
        order.amount_minor.to_decimal_string().into(),
    );
    data.insert(
        "arrivalAmount".into(),
        order.actual_amount_minor.to_decimal_string().into(),
    );
    data.insert("orderState".into(), order_state(order.status).into());
    if order.status == OrderStatus::Failed
        && let Some(message) = &order.error_msg
    {
        let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        data.insert("message".into(), message.into());
    }
    data
}

#[async_trait]
impl Dialect for Pix {
    fn name(&self) -> &'static str {
        "pix"
    }

    fn routes(&self) -> Router<Arc<Gateway>> {
        Router::new()
            .route("/accountProxyCollect/initCollect", post(init_collect))
            .route("/proxyCollectQuery/query", post(query))
            .route("/proxyCollectQuery/report", post(report))
    }

    fn owns_path(&self, path: &str) -> bool {
        path.starts_with("/accountProxyCollect/") || path.starts_with("/proxyCollectQuery/")
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <openapi::PixApi as utoipa::OpenApi>::openapi()
    }

    fn words(&self) -> &'static Words {
        &WORDS
    }

    fn error_response(&self, error: ApiError) -> Response {
        error::error_response(error)
    }

    fn signature(&self) -> Signature {
        Signature::Detached
    }

    /// The success envelope around `data`, with `X-Sign` over `data`.
    fn success_response(&self, reply: &Signed) -> Response {
        let body =
            crate::dialect::success_body(r#"{"code":0,"msg":"success","data":"#, &reply.data);
        let sign = reply.detached_sign.as_deref().unwrap_or_default();
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE.as_str(), "application/json"),
                ("x-sign", sign),
            ],
            body,
        )
            .into_response()
    }

    fn notifies(&self, status: OrderStatus) -> bool {
        notifies(status)
    }

    /// The seed's body, signed in `X-Sign`.
    fn callback(&self, notary: &Notary, order: &Order) -> (String, Vec<(String, String)>) {
        let (body, sign) = notary.sign_detached(&order_state_data(order));
        let headers = vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Sign".into(), sign),
        ];
        (body, headers)
    }

    /// The app of `X-App-Id`, and the signature in `X-Sign`.
    async fn identify_app(
        &self,
        _gateway: &Gateway,
        incoming: &Incoming,
        _object: &SignedObject<'_>,
    ) -> Result<(AppId, String), ApiError> {
        let header_text = |name: &str| incoming.headers.get(name).and_then(|v| v.to_str().ok());
        // Exactly the digits of a positive integer: no spaces, no leading zeros (one app, one
        // spelling).
        let app_id = header_text("x-app-id")
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 18
                    && !v.starts_with('0')
                    && v.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::UnknownApp,
                    "the X-App-Id header must be a positive integer, without spaces or leading zeros",
                )
            })?;
        let sign = header_text("x-sign").unwrap_or("").trim().to_string();
        Ok((AppId(app_id), sign))
    }

    /// PIX collects BRL only.
    fn check_app(&self, app: &App, _incoming: &Incoming) -> Result<(), ApiError> {
        if app.currency == Currency::Brl {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::WrongCurrency,
            format!(
                "app {} collects {}, not BRL; use its collect endpoints",
                app.app_id, app.currency
            ),
        ))
    }

    fn new_order(
        &self,
        app: &App,
        fields: &Fields,
        merchant_order_id: String,
    ) -> Result<NewOrder, ApiError> {
        new_order(fields, app, merchant_order_id)
    }

    fn order_lifetime_ms(&self, config: &ServerConfig) -> i64 {
        config.pix_order_lifetime_ms
    }

    /// A PIX order needs a BR Code: its upstream's, or one kassa draws for the app's own key.
    fn check_opened(&self, app: &App, order: &Order) -> Result<(), ApiError> {
        if order.pix_code.is_some() || app.pix.is_some() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::NoPixKey,
            format!(
                "app {} has no receiving PIX key yet; ask the operator",
                app.app_id
            ),
        ))
    }

    /// The BR Code and the reply. A static code's txid ties a payment to its order (the order
    /// number); a dynamic code's location does (see [`crate::pix_location`]).
    fn created(&self, gateway: &Gateway, app: &App, order: &mut Order) -> Map<String, Value> {
        // A rail that opened the order elsewhere gave its own BR Code.
        if let (Some(receiver), None) = (&app.pix, &order.pix_code) {
            let location = match receiver.codes {
                CodeKind::Dynamic => crate::pix_location::location_of(gateway, order),
                CodeKind::Static => None,
            };
            if receiver.codes == CodeKind::Dynamic && location.is_none() {
                tracing::warn!(app_id = %app.app_id, "public URL too long for a dynamic PIX code's location; the code is static");
            }
            order.pix_code = Some(match location {
                Some(location) => receiver.dynamic_brcode(&location),
                None => receiver.brcode(order.amount_minor, order.order_no.as_str()),
            });
        }
        let mut data = Map::new();
        data.insert("appId".into(), order.app_id.0.into());
        data.insert("orderNo".into(), order.order_no.as_str().into());
        data.insert(
            "url".into(),
            crate::cashier::pay_url(&gateway.config, order).into(),
        );
        data.insert(
            "qrCode".into(),
            order.pix_code.clone().unwrap_or_default().into(),
        );
        data.insert("orderState".into(), order_state(order.status).into());
        data.insert("serialNo".into(), order.merchant_order_id.clone().into());
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_grouped_by_http_status() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.value()));
            let status = code.http_status().as_u16();
            let expected: &[u16] = match code.value() / 1000 {
                1 => &[400, 413],
                2 => &[401, 403],
                3 => &[400],
                4 => &[404, 405],
                5 => &[409],
                9 => &[429, 500, 503],
                other => panic!("unknown family {other}"),
            };
            assert!(
                expected.contains(&status),
                "{} answers {status}",
                code.value()
            );
        }
    }

    #[test]
    fn states_match_the_seed() {
        assert_eq!(order_state(OrderStatus::Created), 10);
        assert_eq!(order_state(OrderStatus::InProgress), 10);
        assert_eq!(order_state(OrderStatus::Exception), 10);
        assert_eq!(order_state(OrderStatus::Succeeded), 20);
        assert_eq!(order_state(OrderStatus::Failed), 30);
        assert!(!notifies(OrderStatus::Exception));
    }
}
