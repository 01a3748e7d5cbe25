//! The `pix` dialect's wire shapes and its part of the OpenAPI description. The handler reads
//! raw bytes (a signature covers the exact text received); these types describe the wire for
//! readers and tools and are never deserialised into. Length limits are the ones the handler
//! enforces (a test compares them).

use serde::Serialize;
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(super::init_collect, super::query, super::report),
    tags((name = "pix", description = "The pix dialect: BRL orders paid by PIX.")),
)]
pub struct PixApi;

/// Always `PIX`.
#[derive(Serialize, ToSchema)]
pub enum PixPaymentType {
    #[serde(rename = "PIX")]
    Pix,
}

/// Always `BRL`.
#[derive(Serialize, ToSchema)]
pub enum PixCurrency {
    #[serde(rename = "BRL")]
    Brl,
}

/// `POST /accountProxyCollect/initCollect`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitCollectRequest {
    /// The merchant's order number; a retry with the same parameters gets the original reply.
    #[schema(min_length = 1, max_length = 50, example = "P-10042")]
    pub user_order_number: String,
    /// BRL amount, at most two decimals.
    #[schema(
        min_length = 1,
        max_length = 12,
        pattern = r"^[0-9]+(\.[0-9]{1,2})?$",
        example = "10.50"
    )]
    pub submit_amount: String,
    pub payment_type: PixPaymentType,
    pub currency_type: PixCurrency,
    #[schema(max_length = 255, example = "https://shop.example/pix-notify")]
    pub notify_url: Option<String>,
    /// **kassa:** the payer pages' language: `en`, `pt-BR`, `nl`, `de`, `fr`, `it` or `pl`
    /// (a well-formed tag of another language falls back to the browser's, then the country's).
    #[schema(
        max_length = 35,
        pattern = "^(|[A-Za-z0-9]{1,8}([-_][A-Za-z0-9]{1,8})*)$",
        example = "pt-BR"
    )]
    pub language: Option<String>,
}

/// `POST /proxyCollectQuery/query`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PixQueryRequest {
    #[schema(min_length = 1, max_length = 50, example = "P-10042")]
    pub user_order_number: String,
}

/// `POST /proxyCollectQuery/report`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PixReportRequest {
    /// The day, `yyyy-MM-dd` in the operator's time zone: begun, and not before the app.
    #[schema(min_length = 10, max_length = 10, example = "2026-11-21")]
    pub date: String,
    /// The `next` of the previous page; absent for the first.
    #[schema(max_length = 16, pattern = "^([0-9]{16})?$")]
    pub after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PixReportReply {
    pub code: PixSuccessCode,
    pub msg: PixSuccessMsg,
    pub data: crate::report::openapi::ReportData,
}

/// `0`: success.
#[derive(Serialize, ToSchema)]
#[schema(minimum = 0, maximum = 0)]
pub struct PixSuccessCode(pub u8);

/// `success`.
#[derive(Serialize, ToSchema)]
pub enum PixSuccessMsg {
    #[serde(rename = "success")]
    Success,
}

/// A new PIX order; `X-Sign` signs this object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitCollectData {
    /// The app the data belongs to: check it is yours before trusting the rest.
    #[schema(example = 1001)]
    pub app_id: i64,
    pub order_no: String,
    /// The payer's page.
    pub url: String,
    /// The BR Code (PIX copy-and-paste).
    pub qr_code: String,
    /// 10 waiting, 20 paid, 30 failed.
    pub order_state: i32,
    pub serial_no: String,
}

#[derive(Serialize, ToSchema)]
pub struct InitCollectReply {
    pub code: PixSuccessCode,
    pub msg: PixSuccessMsg,
    pub data: InitCollectData,
}

/// A PIX order's state; `X-Sign` signs this object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PixOrderData {
    /// The app the data belongs to: check it is yours before trusting the rest.
    #[schema(example = 1001)]
    pub app_id: i64,
    pub serial_no: String,
    pub order_no: String,
    pub amount: String,
    pub arrival_amount: String,
    /// 10 waiting, 20 paid, 30 failed.
    pub order_state: i32,
    /// Why the order failed.
    #[schema(nullable = false)]
    pub message: Option<String>,
    /// When the order became final, `yyyy-MM-dd HH:mm:ss` in the operator's time zone.
    #[schema(nullable = false)]
    pub trans_time: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PixQueryReply {
    pub code: PixSuccessCode,
    pub msg: PixSuccessMsg,
    pub data: PixOrderData,
}

/// Every pix error: `code` is one of the table in docs/pix-api.md.
#[derive(Serialize, ToSchema)]
pub struct PixErrorReply {
    #[schema(minimum = 1000, maximum = 9999, example = 1003)]
    pub code: u16,
    pub msg: String,
}

/// The error answers every pix operation can give (409 only where orders are created).
#[derive(IntoResponses)]
#[allow(dead_code)] // a description, never built
pub enum PixErrors {
    #[response(
        status = 400,
        description = "A field is missing, malformed, too long or not allowed; or the order breaks a rule."
    )]
    BadRequest(PixErrorReply),
    #[response(
        status = 401,
        description = "X-Sign is missing, malformed or wrong; or X-App-Id names no app, or one without a key."
    )]
    Unauthorized(PixErrorReply),
    #[response(status = 404, description = "No such order.")]
    NotFound(PixErrorReply),
    #[response(status = 413, description = "The body is larger than 64 KiB.")]
    TooLarge(PixErrorReply),
    #[response(status = 429, description = "The app is over its rate limit.", headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(PixErrorReply),
    #[response(status = 500, description = "An internal error; nothing was stored.")]
    Internal(PixErrorReply),
    #[response(status = 503, description = "Overloaded, timed out or the database is unavailable.", headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(PixErrorReply),
}

/// The pix dialect's authentication headers.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // a description, never built
pub struct PixAuthHeaders {
    /// The app's id (a positive integer).
    #[param(rename = "X-App-Id", pattern = "^[1-9][0-9]{0,17}$", example = "1003")]
    x_app_id: String,
    /// Base64 SHA256withRSA signature of the body's canonical string.
    #[param(rename = "X-Sign", example = "c2lnbmF0dXJl")]
    x_sign: String,
}
