//! The `pix` dialect (seed 004): `POST /accountProxyCollect/initCollect` and
//! `POST /proxyCollectQuery/query` for BRL collections paid by PIX.
//!
//! The body carries no `appId` or `sign`: the app is named by the `X-App-Id` header and the
//! body is signed in `X-Sign` (PRODUCT.md). Replies are `{"code":0,"msg":"success","data":…}`
//! with `X-Sign` over `data`; errors are `{"code":…,"msg":…}` from one table (`error.rs`).

mod error;

pub use error::{Code, PixError};

use crate::dialect::{self, DialectError};
use crate::notary::Notary;
use crate::wire::Fields;
use crate::{Gateway, ids, now_ms};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kassa_core::validate::{self, FieldError};
use kassa_core::{AmountMinor, AppId, Currency, NewOrder, Order, OrderStatus, PaymentMethod};
use kassa_signature::{digest_hex, parse_signed_object};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Whether a path belongs to this dialect (for replies made before routing, such as 503s).
pub fn owns_path(path: &str) -> bool {
    path.starts_with("/accountProxyCollect/") || path.starts_with("/proxyCollectQuery/")
}

/// The seed's field limits.
pub const MAX_ORDER_NUMBER_CHARS: usize = 50;
const MAX_AMOUNT_CHARS: usize = 12;
const MAX_PAYMENT_TYPE_CHARS: usize = 20;
const MAX_CURRENCY_TYPE_CHARS: usize = 40;
const MAX_NOTIFY_URL_CHARS: usize = 255;
const MAX_MESSAGE_CHARS: usize = 200;

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

/// A reply's `data` and its detached signature (`X-Sign`).
struct Signed {
    data: String,
    sign: String,
}

impl Signed {
    /// Signs `data` as it will travel.
    fn of_json(notary: &Notary, data: String) -> Signed {
        let map: Map<String, Value> =
            serde_json::from_str(&data).expect("kassa's own data is JSON");
        Signed::of_map(notary, &map)
    }

    fn of_map(notary: &Notary, map: &Map<String, Value>) -> Signed {
        let (data, sign) = notary.sign_detached(map);
        Signed { data, sign }
    }

    /// One string for the reply cache: the signature (base64, no line breaks), then the data.
    fn to_cached(&self) -> String {
        format!("{}\n{}", self.sign, self.data)
    }

    fn from_cached(cached: &str) -> Signed {
        let (sign, data) = cached
            .split_once('\n')
            .expect("cached as sign, newline, data");
        Signed {
            data: data.to_string(),
            sign: sign.to_string(),
        }
    }
}

fn respond(reply: Result<Signed, PixError>) -> Response {
    match reply {
        Ok(signed) => signed_response(&signed),
        Err(error) => error.into_response(),
    }
}

/// The success envelope around `data`, with `X-Sign` over `data`.
fn signed_response(signed: &Signed) -> Response {
    let body = format!(r#"{{"code":0,"msg":"success","data":{}}}"#, signed.data);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE.as_str(), "application/json"),
            ("x-sign", signed.sign.as_str()),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    post,
    path = "/accountProxyCollect/initCollect",
    tag = "pix",
    summary = "Create a PIX order",
    params(crate::openapi::PixAuthHeaders),
    request_body(content = crate::openapi::InitCollectRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order and its BR Code (or, for an identical retry, the original reply).", body = crate::openapi::InitCollectReply, headers(("X-Sign" = String, description = "The platform's signature of data"))),
        crate::openapi::PixErrors,
        (status = 409, description = "The userOrderNumber was used before with other parameters.", body = crate::openapi::PixErrorReply),
    )
)]
pub async fn init_collect(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let reply = init_reply(&gateway, &headers, &body).await;
    respond(reply.map(|data| Signed::of_json(&gateway.notary, data)))
}

#[utoipa::path(
    post,
    path = "/proxyCollectQuery/query",
    tag = "pix",
    summary = "Query a PIX order",
    params(crate::openapi::PixAuthHeaders),
    request_body(content = crate::openapi::PixQueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order's state.", body = crate::openapi::PixQueryReply, headers(("X-Sign" = String, description = "The platform's signature of data"))),
        crate::openapi::PixErrors,
    )
)]
pub async fn query(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(query_reply(&gateway, &headers, &body).await)
}

/// Reads the body, finds the app of `X-App-Id`, verifies `X-Sign`, and requires a BRL app.
async fn authenticate<'a>(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: &'a Result<Bytes, BytesRejection>,
) -> Result<(kassa_core::App, kassa_signature::SignedObject<'a>), PixError> {
    let object = parse_signed_object(dialect::body_text(body)?).map_err(DialectError::from)?;
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let app_id = header_text("x-app-id")
        .filter(|v| !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            PixError::new(
                Code::UnknownApp,
                "the X-App-Id header must be a positive integer",
            )
        })?;
    let sign = header_text("x-sign").unwrap_or("");
    let app = dialect::verified_app(gateway, AppId(app_id), &object.canonical, sign).await?;
    if app.currency != Currency::Brl {
        return Err(PixError::new(
            Code::NotPixApp,
            format!(
                "app {app_id} collects {}, not BRL; use its collect endpoints",
                app.currency
            ),
        ));
    }
    Ok((app, object))
}

fn user_order_number(fields: &Fields) -> Result<String, FieldError> {
    let number = fields.required("userOrderNumber", MAX_ORDER_NUMBER_CHARS)?;
    validate::order_id("userOrderNumber", &number, MAX_ORDER_NUMBER_CHARS)?;
    Ok(number)
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

async fn init_reply(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: &Result<Bytes, BytesRejection>,
) -> Result<String, PixError> {
    let (app, object) = authenticate(gateway, headers, body).await?;
    let fields = Fields::new(&object.fields);
    let merchant_order_id = user_order_number(&fields)?;
    let fingerprint = digest_hex(object.canonical.as_bytes());
    let prepared = async {
        let amount_text = fields.required("submitAmount", MAX_AMOUNT_CHARS)?;
        let amount_minor = AmountMinor::parse(&amount_text)
            .map_err(|e| PixError::new(Code::InvalidField, format!("submitAmount {e}")))?;
        fixed(&fields, "paymentType", MAX_PAYMENT_TYPE_CHARS, "PIX")?;
        fixed(&fields, "currencyType", MAX_CURRENCY_TYPE_CHARS, "BRL")?;
        let notify_url = dialect::url_field(&fields, "notifyUrl", MAX_NOTIFY_URL_CHARS, false)?;
        let receiver = app.pix.clone().ok_or_else(|| {
            PixError::new(
                Code::NoPixKey,
                format!(
                    "app {} has no receiving PIX key yet; ask the operator",
                    app.app_id
                ),
            )
        })?;
        dialect::check_targets(gateway, &[("notifyUrl", &notify_url)]).await?;
        let new = NewOrder {
            app_id: app.app_id,
            merchant_order_id: merchant_order_id.clone(),
            amount_minor,
            method: PaymentMethod::by_code("PIX").expect("PIX is in the catalogue"),
            country: None,
            payer: None,
            subject: None,
            body: None,
            callback_url: None,
            callback_fail_url: None,
            notify_url,
            request_fingerprint: fingerprint.clone(),
        };
        let lifetime_ms = gateway.config.pix_order_lifetime_ms;
        let order = Order::create(&app, new, ids::new_order_ids(), now_ms(), lifetime_ms)
            .map_err(DialectError::from)?;
        Ok::<_, PixError>((order, receiver))
    };
    let (order, receiver) = match prepared.await {
        Ok(prepared) => prepared,
        // A retry gets its original answer even if limits or rules changed since.
        Err(refusal) => {
            return match dialect::earlier_reply(
                gateway,
                app.app_id,
                &merchant_order_id,
                &fingerprint,
            )
            .await?
            {
                Some(reply) => Ok(reply),
                None => Err(refusal),
            };
        }
    };
    let prepare = |o: &mut Order| {
        // The txid ties a payment to its order: the order number (16 digits).
        o.pix_code = Some(receiver.brcode(o.amount_minor, o.order_no.as_str()));
        o.create_reply = init_data(gateway, o);
    };
    Ok(dialect::insert_new_order(gateway, order, prepare).await?)
}

fn init_data(gateway: &Gateway, order: &Order) -> String {
    let mut data = Map::new();
    data.insert("orderNo".into(), order.order_no.as_str().into());
    data.insert(
        "url".into(),
        format!("{}/pay/{}", gateway.config.public_url, order.cashier_token).into(),
    );
    data.insert(
        "qrCode".into(),
        order.pix_code.clone().unwrap_or_default().into(),
    );
    data.insert("orderState".into(), order_state(order.status).into());
    data.insert("serialNo".into(), order.merchant_order_id.clone().into());
    serde_json::to_string(&data).expect("a JSON map always serialises")
}

async fn query_reply(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: &Result<Bytes, BytesRejection>,
) -> Result<Signed, PixError> {
    let (app, object) = authenticate(gateway, headers, body).await?;
    let merchant_order_id = user_order_number(&Fields::new(&object.fields))?;
    let order = gateway
        .store
        .order_by_merchant_order_id(app.app_id, &merchant_order_id)
        .await
        .map_err(DialectError::from)?
        .ok_or_else(|| {
            PixError::new(
                Code::OrderNotFound,
                format!("no order with userOrderNumber {merchant_order_id}"),
            )
        })?;
    // A reply whose data has not changed is not signed again.
    let cached = gateway.replies.get_or_render(&order, || {
        let mut data = state_data(order_state_fields(&order));
        if order.status.is_final() {
            data.insert(
                "transTime".into(),
                gateway.notary.local_datetime(order.updated_at_ms).into(),
            );
        }
        Signed::of_map(&gateway.notary, &data).to_cached()
    });
    Ok(Signed::from_cached(&cached))
}

/// The fields of an order's state that query replies and callbacks share.
fn order_state_fields(order: &Order) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        ("serialNo", order.merchant_order_id.clone().into()),
        ("orderNo", order.order_no.as_str().into()),
        ("amount", order.amount_minor.to_decimal_string().into()),
        (
            "arrivalAmount",
            order.actual_amount_minor.to_decimal_string().into(),
        ),
        ("orderState", order_state(order.status).into()),
    ];
    if order.status == OrderStatus::Failed
        && let Some(message) = &order.error_msg
    {
        let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        fields.push(("message", message.into()));
    }
    fields
}

fn state_data(fields: Vec<(&'static str, Value)>) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The callback of a PIX order: the seed's body, signed in `X-Sign`.
pub fn callback(notary: &Notary, order: &Order) -> (String, Vec<(String, String)>) {
    let (body, sign) = notary.sign_detached(&state_data(order_state_fields(order)));
    (
        body,
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Sign".into(), sign),
        ],
    )
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
                2 => &[401],
                3 => &[400],
                4 => &[404],
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
