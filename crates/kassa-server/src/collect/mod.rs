//! The `collect` dialect (seed 000): `POST /{usd|eur}/collect/apply` and `/query`, and
//! kassa's own `/report` (a day's settlement report) in the same style.
//!
//! Each request is a flat JSON object with `appId` and `sign`; each reply is the envelope
//! `{"status","error","msg","data"}` whose `data` kassa signs with the platform key. This module
//! only translates: the rules of orders live in `kassa_core`, the create pipeline in
//! [`crate::dialect`].

mod error;
pub mod openapi;

pub use error::Code;

use crate::dialect::{self, ApiError, Dialect, ErrorKind, Incoming, Words};
use crate::notary::{Notary, Signature, Signed};
use crate::wire::Fields;
use crate::{Gateway, ServerConfig};
use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kassa_core::validate::{self, FieldError, MAX_URL_CHARS};
use kassa_core::{
    AmountMinor, App, AppId, Country, Currency, NewOrder, Order, OrderNo, OrderStatus, PayType,
    Payer, PaymentMethod, Personal,
};
use kassa_signature::SignedObject;
use serde_json::{Map, Value};
use std::sync::Arc;

pub use crate::dialect::MAX_BODY_BYTES;
/// The seed's limit on `orderId`.
pub const MAX_ORDER_ID_CHARS: usize = 48;
const MAX_NAME_CHARS: usize = 128;
const MAX_SUBJECT_CHARS: usize = 128;
const MAX_BODY_FIELD_CHARS: usize = 1024;

/// The `collect` dialect.
pub struct Collect;

static WORDS: Words = Words {
    app: "appId",
    app_id: "appId",
    sign: "sign",
    order_id: "orderId",
    order_id_max_chars: MAX_ORDER_ID_CHARS,
    amount: "amount",
    success_url: "callBackUrl",
    fail_url: "callBackFailUrl",
    notify_url: "notifyUrl",
    fields: &[
        "appId",
        "orderId",
        "orderNo",
        "name",
        "phone",
        "email",
        "amount",
        "payType",
        "inBankCode",
        "callBackUrl",
        "callBackFailUrl",
        "notifyUrl",
        "subject",
        "language",
        "country",
        "body",
        "partnerUserId",
    ],
};

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

/// Which statuses the seed's merchant hears about: final ones, and exception.
pub fn notifies(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Succeeded | OrderStatus::Failed | OrderStatus::Exception
    )
}

#[utoipa::path(
    post,
    path = "/{currency}/collect/apply",
    tag = "collect",
    summary = "Create an order",
    params(("currency" = openapi::CollectCurrency, Path, description = "The app's currency")),
    request_body(content = openapi::ApplyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order (or, for an identical retry, the original reply).", body = openapi::ApplyReply),
        openapi::CollectErrors,
        (status = 409, description = "The orderId was used before with other parameters.", body = openapi::CollectErrorReply),
    )
)]
pub async fn apply(
    State(gateway): State<Arc<Gateway>>,
    Path(currency): Path<String>,
    incoming: Incoming,
) -> Response {
    let reply = match path_currency(&currency) {
        Ok(_) => dialect::create(&Collect, &gateway, &incoming).await,
        Err(e) => Err(e),
    };
    dialect::respond(&Collect, reply)
}

#[utoipa::path(
    post,
    path = "/{currency}/collect/query",
    tag = "collect",
    summary = "Query an order",
    params(("currency" = openapi::CollectCurrency, Path, description = "The app's currency")),
    request_body(content = openapi::QueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order's state, signed.", body = openapi::QueryReply),
        openapi::CollectErrors,
    )
)]
pub async fn query(
    State(gateway): State<Arc<Gateway>>,
    Path(currency): Path<String>,
    incoming: Incoming,
) -> Response {
    let reply = match path_currency(&currency) {
        Ok(_) => query_reply(&gateway, &incoming).await,
        Err(e) => Err(e),
    };
    dialect::respond(&Collect, reply)
}

#[utoipa::path(
    post,
    path = "/{currency}/collect/report",
    tag = "collect",
    summary = "A day's settlement report",
    description = "The app's orders that succeeded on one day of the operator's time zone: totals, totals by method and the order lines, 1,000 a page. See docs/ledger.md for the columns.",
    params(("currency" = openapi::CollectCurrency, Path, description = "The app's currency")),
    request_body(content = openapi::ReportRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One page of the report, signed.", body = openapi::ReportReply),
        openapi::CollectErrors,
    )
)]
pub async fn report(
    State(gateway): State<Arc<Gateway>>,
    Path(currency): Path<String>,
    incoming: Incoming,
) -> Response {
    let reply = match path_currency(&currency) {
        Ok(_) => crate::report::page_reply(&Collect, &gateway, &incoming).await,
        Err(e) => Err(e),
    };
    dialect::respond(&Collect, reply)
}

fn path_currency(segment: &str) -> Result<Currency, ApiError> {
    match segment {
        "usd" => Ok(Currency::Usd),
        "eur" => Ok(Currency::Eur),
        _ => Err(ApiError::new(
            ErrorKind::UnknownEndpoint,
            format!("no collect endpoint for {segment:.10}; use /usd/collect/… or /eur/collect/…"),
        )),
    }
}

fn url(fields: &Fields, name: &'static str, required: bool) -> Result<Option<String>, FieldError> {
    dialect::url_field(fields, name, MAX_URL_CHARS, required)
}

/// The payer as the seed describes them: name, phone, e-mail and the merchant's id for them.
fn payer(fields: &Fields) -> Result<Payer, FieldError> {
    let name = fields.required("name", MAX_NAME_CHARS)?;
    let phone = fields.required("phone", 32)?;
    validate::phone("phone", &phone)?;
    let email = fields.required("email", 254)?;
    validate::email("email", &email)?;
    Ok(Payer {
        name: Personal::new(name),
        phone: Personal::new(phone),
        email: Personal::new(email),
        partner_user_id: String::new(),
    })
}

/// `payType` and `inBankCode`: a method of the catalogue that belongs to the pay type.
fn method(fields: &Fields) -> Result<&'static PaymentMethod, ApiError> {
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
    if !method.accepts_pay_type(pay_type) {
        return Err(ApiError::new(
            ErrorKind::MethodNotForPayType,
            format!(
                "inBankCode {} belongs to payType {}, not {}",
                method.code,
                method.pay_type.code(),
                pay_type.code()
            ),
        ));
    }
    Ok(method)
}

fn country(fields: &Fields) -> Result<Option<&'static str>, FieldError> {
    match fields.optional("country", 3)? {
        None => Ok(None),
        Some(code) => Country::parse(&code).map(|c| Some(c.code)).ok_or_else(|| {
            FieldError::invalid("country", "must be one of 000, 040, 056, 380, 528, 616")
        }),
    }
}

/// Reads and checks every field of an apply request, in the seed's order.
fn new_order(fields: &Fields, app: &App, merchant_order_id: String) -> Result<NewOrder, ApiError> {
    let mut payer = payer(fields)?;
    let amount_text = fields.required("amount", AmountMinor::MAX_TEXT_LEN)?;
    let amount_minor = AmountMinor::parse(&amount_text)
        .map_err(|e| ApiError::new(ErrorKind::InvalidField, format!("amount {e}")))?;
    let method = method(fields)?;
    let callback_url = url(fields, "callBackUrl", true)?;
    let callback_fail_url = url(fields, "callBackFailUrl", true)?;
    let notify_url = url(fields, "notifyUrl", false)?;
    let subject = fields.optional("subject", MAX_SUBJECT_CHARS)?;
    let country = country(fields)?;
    let body = fields.optional("body", MAX_BODY_FIELD_CHARS)?;
    payer.partner_user_id = fields.required("partnerUserId", 64)?;
    validate::partner_user_id("partnerUserId", &payer.partner_user_id)?;
    Ok(NewOrder {
        app_id: app.app_id,
        merchant_order_id,
        amount_minor,
        method,
        country,
        payer: Some(payer),
        subject,
        body,
        callback_url,
        callback_fail_url,
        notify_url,
        language: dialect::language_field(fields)?,
        // Both are set by the create pipeline.
        request_fingerprint: String::new(),
        dialect: "",
    })
}

/// The signed state of an order, as query replies and callbacks carry it: `appId, orderId,
/// orderNo, amount, actualAmount, fee, status, payTime, errorMsg`. `appId` binds the signature
/// to the app: every app's data is signed by the one platform key, and an order id is unique
/// only per app, so without it one merchant's callback would verify at another's.
fn order_data(notary: &Notary, order: &Order) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("appId".into(), order.app_id.0.into());
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
    data
}

async fn query_reply(gateway: &Gateway, incoming: &Incoming) -> Result<Signed, ApiError> {
    let auth = dialect::authenticate(&Collect, gateway, incoming).await?;
    let fields = Fields::new(&auth.object.fields);
    let merchant_order_id = Collect.merchant_order_id(&fields)?;
    let order_no = match fields.optional("orderNo", OrderNo::LEN)? {
        None => None,
        Some(text) => Some(
            OrderNo::parse(&text)
                .ok_or_else(|| FieldError::invalid("orderNo", "must be 16 digits"))?,
        ),
    };
    let app_id = auth.app.app_id;
    let version = match &order_no {
        // The platform number is the primary key: the faster look-up the seed promises.
        Some(order_no) => gateway
            .store
            .order_version_by_no(order_no)
            .await?
            .filter(|v| v.app_id == app_id && v.merchant_order_id == merchant_order_id),
        None => {
            gateway
                .store
                .order_version_by_merchant_order_id(app_id, &merchant_order_id)
                .await?
        }
    };
    let not_found = || {
        let with_no = order_no
            .map(|n| format!(" and orderNo {n}"))
            .unwrap_or_default();
        ApiError::new(
            ErrorKind::OrderNotFound,
            format!("no order with orderId {merchant_order_id}{with_no}"),
        )
    };
    let Some(version) = version else {
        return Err(not_found());
    };
    dialect::query_reply(&Collect, gateway, &version, not_found, |order| {
        order_data(&gateway.notary, order)
    })
    .await
}

#[async_trait]
impl Dialect for Collect {
    fn name(&self) -> &'static str {
        "collect"
    }

    fn routes(&self) -> Router<Arc<Gateway>> {
        Router::new()
            .route("/{currency}/collect/apply", post(apply))
            .route("/{currency}/collect/query", post(query))
            .route("/{currency}/collect/report", post(report))
    }

    fn owns_path(&self, path: &str) -> bool {
        path.split('/').nth(2) == Some("collect")
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <openapi::CollectApi as utoipa::OpenApi>::openapi()
    }

    fn words(&self) -> &'static Words {
        &WORDS
    }

    fn error_response(&self, error: ApiError) -> Response {
        error::error_response(error)
    }

    fn signature(&self) -> Signature {
        Signature::Embedded
    }

    /// The success envelope around the signed `data` object.
    fn success_response(&self, reply: &Signed) -> Response {
        let opening = r#"{"status":"1","error":"00000000","msg":"","data":"#;
        let body = crate::dialect::success_body(opening, &reply.data);
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }

    fn notifies(&self, status: OrderStatus) -> bool {
        notifies(status)
    }

    /// The callback body: the query's `data`, signed with the platform key.
    fn callback(&self, notary: &Notary, order: &Order) -> (String, Vec<(String, String)>) {
        let headers = vec![("Content-Type".into(), "application/json".into())];
        (notary.sign(order_data(notary, order)), headers)
    }

    async fn identify_app(
        &self,
        _gateway: &Gateway,
        _incoming: &Incoming,
        object: &SignedObject<'_>,
    ) -> Result<(AppId, String), ApiError> {
        let app_id = AppId(Fields::new(&object.fields).positive_integer("appId")?);
        Ok((app_id, object.sign.clone().unwrap_or_default()))
    }

    /// The app's currency must be the URL's.
    fn check_app(&self, app: &App, incoming: &Incoming) -> Result<(), ApiError> {
        let segment = incoming.uri.path().split('/').nth(1).unwrap_or_default();
        if path_currency(segment)? == app.currency {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::WrongCurrency,
            format!(
                "appId {} is a {} app; use /{}/collect/…",
                app.app_id,
                app.currency,
                app.currency.code().to_lowercase()
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
        config.collect_order_lifetime_ms
    }

    fn created(&self, gateway: &Gateway, _app: &App, order: &mut Order) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("appId".into(), order.app_id.0.into());
        data.insert("orderId".into(), order.merchant_order_id.clone().into());
        data.insert("orderNo".into(), order.order_no.as_str().into());
        data.insert(
            "payUrl".into(),
            crate::cashier::pay_url(&gateway.config, order).into(),
        );
        data
    }
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
                "2" => &[401, 403],
                "3" => &[400],
                "4" => &[404, 405],
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
