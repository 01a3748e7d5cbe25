//! The `collect` dialect's wire shapes and its part of the OpenAPI description. The handler
//! reads raw bytes (a signature covers the exact text received); these types describe the
//! wire for readers and tools and are never deserialised into. Length limits are the ones the
//! handler enforces (a test compares them).

use serde::Serialize;
use utoipa::{IntoResponses, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(super::apply, super::query, super::report),
    components(schemas(CollectCurrency)),
    tags((name = "collect", description = "The collect dialect: cashier, bank-transfer and e-wallet orders in USD and EUR.")),
)]
pub struct CollectApi;

/// `usd` or `eur`: the currency of the collect app named by `appId`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CollectCurrency {
    Usd,
    Eur,
}

/// `POST /{currency}/collect/apply`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// The app (one per merchant and currency).
    #[schema(minimum = 1, example = 1001)]
    pub app_id: i64,
    /// The merchant's order id; a retry with the same parameters gets the original reply.
    #[schema(min_length = 1, max_length = 48, example = "A-10042")]
    pub order_id: String,
    /// Payer's name (personal data: masked in logs).
    #[schema(min_length = 1, max_length = 128, example = "Maria Jansen")]
    pub name: String,
    /// Payer's phone, international format.
    #[schema(min_length = 1, max_length = 32, example = "+31612345678")]
    pub phone: String,
    /// Payer's e-mail.
    #[schema(min_length = 1, max_length = 254, example = "maria@example.nl")]
    pub email: String,
    /// Decimal amount with at most two decimals.
    #[schema(
        min_length = 1,
        max_length = 15,
        pattern = r"^[0-9]+(\.[0-9]{1,2})?$",
        example = "25.00"
    )]
    pub amount: String,
    pub pay_type: CollectPayType,
    /// A method code of the pay type (see the method table), or `CASHIER`.
    #[schema(min_length = 1, max_length = 32, example = "CASHIER")]
    pub in_bank_code: String,
    /// Where the payer returns after a success.
    #[schema(min_length = 1, max_length = 512, example = "https://shop.example/ok")]
    pub call_back_url: String,
    /// Where the payer returns after a failure.
    #[schema(
        min_length = 1,
        max_length = 512,
        example = "https://shop.example/fail"
    )]
    pub call_back_fail_url: String,
    /// Where the callback goes.
    #[schema(max_length = 512, example = "https://shop.example/notify")]
    pub notify_url: Option<String>,
    #[schema(max_length = 128, example = "Order 42")]
    pub subject: Option<String>,
    /// ISO 3166 numeric code of the payer's country, for the cashier's method list: `000`
    /// (any), `040`, `056`, `380`, `528`, `616`. Like every optional field, `""` counts as absent.
    #[schema(pattern = "^(|000|040|056|380|528|616)$", example = "528")]
    pub country: Option<String>,
    #[schema(max_length = 1024)]
    pub body: Option<String>,
    /// **kassa:** the payer pages' language: `en`, `pt-BR`, `nl`, `de`, `fr`, `it` or `pl`
    /// (a well-formed tag of another language falls back to the browser's, then the country's).
    #[schema(
        max_length = 35,
        pattern = "^(|[A-Za-z0-9]{1,8}([-_][A-Za-z0-9]{1,8})*)$",
        example = "pt-BR"
    )]
    pub language: Option<String>,
    /// The merchant's id of the payer.
    #[schema(min_length = 1, max_length = 64, example = "149597870")]
    pub partner_user_id: String,
    /// Base64 SHA256withRSA signature of the canonical string.
    #[schema(min_length = 1, example = "c2lnbmF0dXJl")]
    pub sign: String,
}

/// How the payer pays: on kassa's cashier page, by bank transfer or by e-wallet.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CollectPayType {
    Cashier,
    BankTransfer,
    Ewallet,
}

/// `POST /{currency}/collect/query`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    #[schema(minimum = 1, example = 1001)]
    pub app_id: i64,
    #[schema(min_length = 1, max_length = 48, example = "A-10042")]
    pub order_id: String,
    /// kassa's order number: the faster look-up. Like every optional field, `""` counts as
    /// absent.
    #[schema(max_length = 16, pattern = "^([0-9]{16})?$")]
    pub order_no: Option<String>,
    #[schema(min_length = 1, example = "c2lnbmF0dXJl")]
    pub sign: String,
}

/// `POST /{currency}/collect/report`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportRequest {
    #[schema(minimum = 1, example = 1001)]
    pub app_id: i64,
    /// The day, `yyyy-MM-dd` in the operator's time zone: begun, and not before the app.
    #[schema(min_length = 10, max_length = 10, example = "2026-11-21")]
    pub date: String,
    /// The `next` of the previous page; absent for the first.
    #[schema(max_length = 16, pattern = "^([0-9]{16})?$")]
    pub after: Option<String>,
    #[schema(min_length = 1, example = "c2lnbmF0dXJl")]
    pub sign: String,
}

/// A report page's `data`, with the platform's `sign`.
#[derive(Serialize, ToSchema)]
pub struct ReportData {
    #[serde(flatten)]
    pub report: crate::report::openapi::ReportData,
    pub sign: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReportReply {
    pub status: SuccessStatus,
    pub error: NoError,
    pub msg: String,
    pub data: ReportData,
}

/// `"1"`: the request succeeded.
#[derive(Serialize, ToSchema)]
pub enum SuccessStatus {
    #[serde(rename = "1")]
    Succeeded,
}

/// `"00000000"`: no error.
#[derive(Serialize, ToSchema)]
pub enum NoError {
    #[serde(rename = "00000000")]
    None,
}

/// `"0"`: the request failed.
#[derive(Serialize, ToSchema)]
pub enum FailureStatus {
    #[serde(rename = "0")]
    Failed,
}

/// A collect reply's `data`, signed with the platform key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyData {
    /// The app the data belongs to: check it is yours before trusting the rest.
    #[schema(example = 1001)]
    pub app_id: i64,
    pub order_id: String,
    pub order_no: String,
    /// The payer's page.
    pub pay_url: String,
    pub sign: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApplyReply {
    pub status: SuccessStatus,
    pub error: NoError,
    /// Always empty.
    pub msg: String,
    pub data: ApplyData,
}

/// An order's state as queries and callbacks report it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderData {
    /// The app the data belongs to: check it is yours before trusting the rest.
    #[schema(example = 1001)]
    pub app_id: i64,
    pub order_id: String,
    pub order_no: String,
    pub amount: String,
    /// Gross amount received.
    pub actual_amount: String,
    pub fee: String,
    /// 0 created, 1 in progress, 2 succeeded, 3 failed, -1 exception.
    #[schema(minimum = -1, maximum = 3)]
    pub status: i32,
    /// `yyyy-MM-dd HH:mm:ss` in the operator's time zone; only once paid.
    #[schema(nullable = false)]
    pub pay_time: Option<String>,
    /// Why the order failed or is in exception.
    #[schema(nullable = false)]
    pub error_msg: Option<String>,
    pub sign: String,
}

#[derive(Serialize, ToSchema)]
pub struct QueryReply {
    pub status: SuccessStatus,
    pub error: NoError,
    pub msg: String,
    pub data: OrderData,
}

/// Every collect error: `error` is one of the table in docs/collect-api.md.
#[derive(Serialize, ToSchema)]
pub struct CollectErrorReply {
    pub status: FailureStatus,
    #[schema(pattern = "^[0-9]{8}$", example = "10000003")]
    pub error: String,
    pub msg: String,
}

/// The error answers every collect operation can give (409 only where orders are created).
#[derive(IntoResponses)]
#[allow(dead_code)] // a description, never built
pub enum CollectErrors {
    #[response(
        status = 400,
        description = "A field is missing, malformed, too long or not allowed; or the order breaks a rule (currency, method, limits, target)."
    )]
    BadRequest(CollectErrorReply),
    #[response(
        status = 401,
        description = "sign is missing, malformed or wrong; or the app is unknown or has no key."
    )]
    Unauthorized(CollectErrorReply),
    #[response(
        status = 404,
        description = "No such endpoint (currency), or no such order."
    )]
    NotFound(CollectErrorReply),
    #[response(status = 413, description = "The body is larger than 64 KiB.")]
    TooLarge(CollectErrorReply),
    #[response(status = 429, description = "The app is over its rate limit.", headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(CollectErrorReply),
    #[response(status = 500, description = "An internal error; nothing was stored.")]
    Internal(CollectErrorReply),
    #[response(status = 503, description = "Overloaded, timed out or the database is unavailable.", headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(CollectErrorReply),
}
