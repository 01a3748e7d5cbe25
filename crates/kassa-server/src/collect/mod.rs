//! The `collect` dialect (seed 000): `POST /{usd|eur}/collect/apply` and `/query`.
//!
//! Each request is a flat JSON object with `appId` and `sign`; each reply is the envelope
//! `{"status","error","msg","data"}` whose `data` kassa signs with the platform key. This module
//! only translates: the rules of orders live in `kassa_core`.

mod error;

pub use error::{Code, CollectError};

use crate::notary::Notary;
use crate::wire::Fields;
use crate::{Gateway, dialect, ids, now_ms};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use kassa_core::validate::{self, FieldError, MAX_URL_CHARS};
use kassa_core::{
    AmountMinor, App, AppId, Country, Currency, NewOrder, Order, OrderNo, OrderStatus, PayType,
    Payer, PaymentMethod, Personal,
};
use kassa_signature::{SignedObject, digest_hex, parse_signed_object};
use serde_json::Map;
use std::sync::Arc;

pub use crate::dialect::MAX_BODY_BYTES;
/// The seed's limit on `orderId`.
pub const MAX_ORDER_ID_CHARS: usize = 48;
const MAX_NAME_CHARS: usize = 128;
const MAX_SUBJECT_CHARS: usize = 128;
const MAX_BODY_FIELD_CHARS: usize = 1024;

/// The `status` integer of the seed for a core status.
pub fn status_code(status: OrderStatus) -> i32 {
    match status {
        OrderStatus::Created => 0,
        OrderStatus::InProgress => 1,
        OrderStatus::Succeeded => 2,
        OrderStatus::Failed => 3,
        OrderStatus::Exception => -1,
    }
}

type Reply = Result<String, CollectError>;

/// The success envelope around an already signed `data` object.
fn success(data: &str) -> Response {
    let body = format!(r#"{{"status":"1","error":"00000000","msg":"","data":{data}}}"#);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn respond(reply: Reply) -> Response {
    match reply {
        Ok(data) => success(&data),
        Err(error) => error.into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/{currency}/collect/apply",
    tag = "collect",
    summary = "Create an order",
    params(("currency" = crate::openapi::CollectCurrency, Path, description = "The app's currency")),
    request_body(content = crate::openapi::ApplyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order (or, for an identical retry, the original reply).", body = crate::openapi::ApplyReply),
        crate::openapi::CollectErrors,
        (status = 409, description = "The orderId was used before with other parameters.", body = crate::openapi::CollectErrorReply),
    )
)]
pub async fn apply(
    State(gateway): State<Arc<Gateway>>,
    Path(currency): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(apply_reply(&gateway, &currency, body).await)
}

#[utoipa::path(
    post,
    path = "/{currency}/collect/query",
    tag = "collect",
    summary = "Query an order",
    params(("currency" = crate::openapi::CollectCurrency, Path, description = "The app's currency")),
    request_body(content = crate::openapi::QueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order's state, signed.", body = crate::openapi::QueryReply),
        crate::openapi::CollectErrors,
    )
)]
pub async fn query(
    State(gateway): State<Arc<Gateway>>,
    Path(currency): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(query_reply(&gateway, &currency, body).await)
}

pub async fn unknown_endpoint(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(100).collect();
    CollectError::new(
        Code::UnknownEndpoint,
        format!("no endpoint {method} {path}"),
    )
    .into_response()
}

fn path_currency(segment: &str) -> Result<Currency, CollectError> {
    match segment {
        "usd" => Ok(Currency::Usd),
        "eur" => Ok(Currency::Eur),
        _ => Err(CollectError::new(
            Code::UnknownEndpoint,
            format!("no collect endpoint for {segment:.10}; use /usd/collect/… or /eur/collect/…"),
        )),
    }
}

/// What every `collect` request starts with, checked: its app, its signed fields, its orderId.
struct Authenticated<'a> {
    app: App,
    object: SignedObject<'a>,
    merchant_order_id: String,
}

/// Reads the body, finds the app, verifies `sign`, checks the URL's currency, reads `orderId`.
async fn authenticate<'a>(
    gateway: &Gateway,
    currency_segment: &str,
    body: &'a Result<Bytes, BytesRejection>,
) -> Result<Authenticated<'a>, CollectError> {
    let currency = path_currency(currency_segment)?;
    let object = parse_signed_object(dialect::body_text(body)?)?;
    let app_id = AppId(Fields::new(&object.fields).positive_integer("appId")?);
    let sign = object.sign.as_deref().unwrap_or("");
    let app = dialect::verified_app(gateway, app_id, &object.canonical, sign).await?;
    if app.currency != currency {
        return Err(CollectError::new(
            Code::WrongCurrency,
            format!(
                "appId {app_id} is a {} app; use /{}/collect/…",
                app.currency,
                app.currency.code().to_lowercase()
            ),
        ));
    }
    let merchant_order_id = merchant_order_id(&Fields::new(&object.fields))?;
    Ok(Authenticated {
        app,
        object,
        merchant_order_id,
    })
}

fn merchant_order_id(fields: &Fields) -> Result<String, FieldError> {
    let order_id = fields.required("orderId", MAX_ORDER_ID_CHARS)?;
    validate::order_id("orderId", &order_id, MAX_ORDER_ID_CHARS)?;
    Ok(order_id)
}

fn url(fields: &Fields, name: &'static str, required: bool) -> Result<Option<String>, FieldError> {
    dialect::url_field(fields, name, MAX_URL_CHARS, required)
}

/// Reads and checks every field of an apply request, in the seed's order.
fn new_order(
    fields: &Fields,
    app: &App,
    merchant_order_id: String,
    request_fingerprint: String,
) -> Result<NewOrder, CollectError> {
    let name = fields.required("name", MAX_NAME_CHARS)?;
    let phone = fields.required("phone", 32)?;
    validate::phone("phone", &phone)?;
    let email = fields.required("email", 254)?;
    validate::email("email", &email)?;
    let amount_text = fields.required("amount", AmountMinor::MAX_TEXT_LEN)?;
    let amount_minor =
        AmountMinor::parse(&amount_text).map_err(|e| error::amount_error("amount", e))?;
    let pay_type = match PayType::parse(&fields.required("payType", 32)?) {
        Some(p @ (PayType::Cashier | PayType::BankTransfer | PayType::Ewallet)) => p,
        _ => {
            return Err(FieldError::invalid(
                "payType",
                "must be CASHIER, BANK_TRANSFER or EWALLET",
            )
            .into());
        }
    };
    let bank_code = fields.required("inBankCode", 32)?;
    let method = PaymentMethod::by_code(&bank_code)
        .filter(|m| m.pay_type != PayType::Pix)
        .ok_or_else(|| {
            FieldError::invalid(
                "inBankCode",
                format!("{bank_code} is not a payment method (see the method table of the API)"),
            )
        })?;
    if method.pay_type != pay_type {
        return Err(CollectError::new(
            Code::MethodNotForPayType,
            format!(
                "inBankCode {} belongs to payType {}, not {}",
                method.code,
                method.pay_type.code(),
                pay_type.code()
            ),
        ));
    }
    let callback_url = url(fields, "callBackUrl", true)?;
    let callback_fail_url = url(fields, "callBackFailUrl", true)?;
    let notify_url = url(fields, "notifyUrl", false)?;
    let subject = fields.optional("subject", MAX_SUBJECT_CHARS)?;
    let country = match fields.optional("country", 3)? {
        None => None,
        Some(code) => Some(Country::parse(&code).map(|c| c.code).ok_or_else(|| {
            FieldError::invalid("country", "must be one of 000, 040, 056, 380, 528, 616")
        })?),
    };
    let body = fields.optional("body", MAX_BODY_FIELD_CHARS)?;
    let partner_user_id = fields.required("partnerUserId", 64)?;
    validate::partner_user_id("partnerUserId", &partner_user_id)?;
    Ok(NewOrder {
        app_id: app.app_id,
        merchant_order_id,
        amount_minor,
        method,
        country,
        payer: Some(Payer {
            name: Personal::new(name),
            phone: Personal::new(phone),
            email: Personal::new(email),
            partner_user_id,
        }),
        subject,
        body,
        callback_url,
        callback_fail_url,
        notify_url,
        request_fingerprint,
    })
}

fn apply_data(gateway: &Gateway, order: &Order) -> String {
    let mut data = Map::new();
    data.insert("orderId".into(), order.merchant_order_id.clone().into());
    data.insert("orderNo".into(), order.order_no.as_str().into());
    data.insert(
        "payUrl".into(),
        format!("{}/pay/{}", gateway.config.public_url, order.cashier_token).into(),
    );
    gateway.notary.sign(data)
}

/// Which statuses the seed's merchant hears about: final ones, and exception.
pub fn notifies(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Succeeded | OrderStatus::Failed | OrderStatus::Exception
    )
}

/// The callback body: the query's `data` (`orderId, orderNo, amount, actualAmount, fee,
/// status, payTime, errorMsg`) signed with the platform key.
pub fn callback_body(notary: &Notary, order: &Order) -> String {
    order_data(notary, order)
}

/// The signed state of an order, as query replies and callbacks carry it.
fn order_data(notary: &Notary, order: &Order) -> String {
    let mut data = Map::new();
    data.insert("orderId".into(), order.merchant_order_id.clone().into());
    data.insert("orderNo".into(), order.order_no.as_str().into());
    data.insert(
        "amount".into(),
        order.amount_minor.to_decimal_string().into(),
    );
    data.insert(
        "actualAmount".into(),
        order.actual_amount_minor.to_decimal_string().into(),
    );
    data.insert("fee".into(), order.fee_minor.to_decimal_string().into());
    data.insert("status".into(), status_code(order.status).into());
    if let Some(paid_at_ms) = order.paid_at_ms {
        data.insert("payTime".into(), notary.local_datetime(paid_at_ms).into());
    }
    if let Some(error_msg) = &order.error_msg {
        data.insert("errorMsg".into(), error_msg.clone().into());
    }
    notary.sign(data)
}

async fn apply_reply(
    gateway: &Gateway,
    currency: &str,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let Authenticated {
        app,
        object,
        merchant_order_id,
    } = authenticate(gateway, currency, &body).await?;
    let fields = Fields::new(&object.fields);
    // The signed canonical string covers every parameter: equal strings, equal requests.
    let fingerprint = digest_hex(object.canonical.as_bytes());
    let prepared = async {
        let new = new_order(
            &fields,
            &app,
            merchant_order_id.clone(),
            fingerprint.clone(),
        )?;
        dialect::check_targets(
            gateway,
            &[
                ("callBackUrl", &new.callback_url),
                ("callBackFailUrl", &new.callback_fail_url),
                ("notifyUrl", &new.notify_url),
            ],
        )
        .await?;
        let lifetime_ms = gateway.config.collect_order_lifetime_ms;
        Ok::<_, CollectError>(Order::create(
            &app,
            new,
            ids::new_order_ids(),
            now_ms(),
            lifetime_ms,
        )?)
    };
    match prepared.await {
        // The insert finds an earlier order with this id by itself (and replays or refuses).
        Ok(order) => {
            let prepare = |o: &mut Order| o.create_reply = apply_data(gateway, o);
            Ok(dialect::insert_new_order(gateway, order, prepare).await?)
        }
        // A retry gets its original answer even if limits or rules changed since.
        Err(refusal) => {
            match dialect::earlier_reply(gateway, app.app_id, &merchant_order_id, &fingerprint)
                .await?
            {
                Some(reply) => Ok(reply),
                None => Err(refusal),
            }
        }
    }
}

async fn query_reply(
    gateway: &Gateway,
    currency: &str,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let Authenticated {
        app,
        object,
        merchant_order_id,
    } = authenticate(gateway, currency, &body).await?;
    let fields = Fields::new(&object.fields);
    let order_no = match fields.optional("orderNo", OrderNo::LEN)? {
        None => None,
        Some(text) => Some(
            OrderNo::parse(&text)
                .ok_or_else(|| FieldError::invalid("orderNo", "must be 16 digits"))?,
        ),
    };
    let order = match &order_no {
        // The platform number is the primary key: the faster look-up the seed promises.
        Some(order_no) => gateway
            .store
            .order_by_no(order_no)
            .await?
            .filter(|o| o.app_id == app.app_id && o.merchant_order_id == merchant_order_id),
        None => {
            gateway
                .store
                .order_by_merchant_order_id(app.app_id, &merchant_order_id)
                .await?
        }
    };
    let order = order.ok_or_else(|| {
        let with_no = order_no
            .map(|n| format!(" and orderNo {n}"))
            .unwrap_or_default();
        CollectError::new(
            Code::OrderNotFound,
            format!("no order with orderId {merchant_order_id}{with_no}"),
        )
    })?;
    Ok(gateway
        .replies
        .get_or_render(&order, || order_data(&gateway.notary, &order)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_eight_digits_and_grouped_by_http_status() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let digits = code.value();
            assert_eq!(digits.len(), 8);
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            assert!(seen.insert(digits), "{digits} twice");
            let family = &digits[..1];
            let status = code.http_status().as_u16();
            let expected: &[u16] = match family {
                "1" => &[400, 413],
                "2" => &[401],
                "3" => &[400],
                "4" => &[404],
                "5" => &[409],
                "9" => &[429, 500, 503],
                _ => panic!("unknown family {family}"),
            };
            assert!(expected.contains(&status), "{digits} answers {status}");
        }
    }

    #[test]
    fn status_codes_match_the_seed() {
        assert_eq!(status_code(OrderStatus::Created), 0);
        assert_eq!(status_code(OrderStatus::InProgress), 1);
        assert_eq!(status_code(OrderStatus::Succeeded), 2);
        assert_eq!(status_code(OrderStatus::Failed), 3);
        assert_eq!(status_code(OrderStatus::Exception), -1);
    }
}
