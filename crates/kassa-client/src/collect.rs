//! The `collect` API (USD, EUR): create and query orders and read a day's settlement report.
//! Wire structs and their mapping to typed values sit here, next to the calls.

use crate::report::{ReportWire, SettlementReport};
use crate::{Client, Error, envelope, wire};
use kassa_core::{AmountMinor, Currency};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;

/// `payType`: how the payer pays (`Cashier`, `BankTransfer`, `Ewallet`; `Pix` orders are
/// made with [`crate::pix`]). The core's own type, so client and server name them alike.
pub use kassa_core::PayType;

/// A new order: the fields of `POST /{currency}/collect/apply` but `appId` and `sign`, which
/// the client adds. `Debug` masks the payer's personal data.
#[derive(Clone)]
pub struct ApplyRequest {
    pub order_id: String,
    pub amount: AmountMinor,
    pub pay_type: PayType,
    /// The method: `CASHIER`, `IDEAL_EUR`, … (docs/collect-api.md).
    pub in_bank_code: String,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub partner_user_id: String,
    /// Where the payer goes after paying.
    pub call_back_url: String,
    /// Where the payer goes otherwise.
    pub call_back_fail_url: String,
    /// Where kassa sends callbacks.
    pub notify_url: Option<String>,
    /// Cashier mode's country: `000` (all), `040`, `056`, `380`, `528`, `616`.
    pub country: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
}

impl fmt::Debug for ApplyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplyRequest")
            .field("order_id", &self.order_id)
            .field("amount", &self.amount)
            .field("pay_type", &self.pay_type)
            .field("in_bank_code", &self.in_bank_code)
            .field("name", &"***")
            .field("phone", &"***")
            .field("email", &"***")
            .field("partner_user_id", &self.partner_user_id)
            .finish_non_exhaustive()
    }
}

impl ApplyRequest {
    fn fields(&self, app_id: i64) -> Map<String, Value> {
        let mut map = wire::object(json!({
            "appId": app_id,
            "orderId": self.order_id,
            "name": self.name,
            "phone": self.phone,
            "email": self.email,
            "amount": self.amount.to_decimal_string(),
            "payType": self.pay_type.code(),
            "inBankCode": self.in_bank_code,
            "callBackUrl": self.call_back_url,
            "callBackFailUrl": self.call_back_fail_url,
            "partnerUserId": self.partner_user_id,
        }));
        let optional = [
            ("notifyUrl", &self.notify_url),
            ("country", &self.country),
            ("subject", &self.subject),
            ("body", &self.body),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                map.insert(key.into(), Value::String(value.clone()));
            }
        }
        map
    }
}

/// kassa's answer to a create.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub app_id: i64,
    pub order_id: String,
    /// kassa's 16-digit order number.
    pub order_no: String,
    /// The payer's page.
    pub pay_url: String,
}

/// An order's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    NotStarted,
    InProgress,
    /// Final.
    Succeeded,
    /// Final: failed, cancelled or expired.
    Failed,
    /// The amount received differs, or the rail is unsure: the operator settles it.
    Exception,
}

impl Status {
    pub fn from_code(code: i64) -> Option<Status> {
        Some(match code {
            0 => Status::NotStarted,
            1 => Status::InProgress,
            2 => Status::Succeeded,
            3 => Status::Failed,
            -1 => Status::Exception,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }
}

/// An order as a query answer or a callback describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub app_id: i64,
    pub order_id: String,
    pub order_no: String,
    pub status: Status,
    pub amount: AmountMinor,
    /// What was received (gross); zero until paid.
    pub actual_amount: AmountMinor,
    pub fee: AmountMinor,
    /// When it succeeded: `yyyy-MM-dd HH:mm:ss` in the operator's time zone.
    pub pay_time: Option<String>,
    /// Why it failed or waits.
    pub error_msg: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderWire {
    app_id: i64,
    order_id: String,
    order_no: String,
    status: i64,
    amount: String,
    actual_amount: String,
    fee: String,
    pay_time: Option<String>,
    error_msg: Option<String>,
}

impl TryFrom<OrderWire> for Order {
    type Error = Error;

    fn try_from(wire: OrderWire) -> Result<Order, Error> {
        Ok(Order {
            app_id: wire.app_id,
            status: Status::from_code(wire.status)
                .ok_or_else(|| Error::Malformed(format!("unknown status {}", wire.status)))?,
            amount: wire::amount("amount", &wire.amount)?,
            actual_amount: wire::amount("actualAmount", &wire.actual_amount)?,
            fee: wire::amount("fee", &wire.fee)?,
            order_id: wire.order_id,
            order_no: wire.order_no,
            pay_time: wire.pay_time,
            error_msg: wire.error_msg,
        })
    }
}

impl Order {
    /// An order from verified signed data (a query's `data` or a callback's body).
    pub(crate) fn from_data(data: &str) -> Result<Order, Error> {
        wire::parse::<OrderWire>(data)?.try_into()
    }
}

/// The collect API of one currency, reached through [`Client::collect`].
pub struct Collect<'a> {
    pub(crate) client: &'a Client,
    pub(crate) currency: Currency,
}

impl Collect<'_> {
    fn path(&self, operation: &str) -> String {
        format!(
            "/{}/collect/{operation}",
            self.currency.code().to_lowercase()
        )
    }

    async fn call(&self, operation: &str, fields: Map<String, Value>) -> Result<String, Error> {
        let client = self.client;
        let body = client.sign_body(fields);
        let answer = client.post(&self.path(operation), &[], &body).await?;
        envelope::collect_data(&answer, &client.inner.platform_key, client.inner.app_id)
    }

    /// Creates an order. Sending the identical request again returns the first answer, so a
    /// timeout can be retried safely; other fields under a used `order_id` are refused
    /// (`50000001`).
    pub async fn apply(&self, request: &ApplyRequest) -> Result<Created, Error> {
        let data = self
            .call("apply", request.fields(self.client.inner.app_id))
            .await?;
        wire::parse(&data)
    }

    /// An order by the merchant's `order_id` (and kassa's `order_no`, when known).
    pub async fn query(&self, order_id: &str, order_no: Option<&str>) -> Result<Order, Error> {
        let mut fields = wire::object(json!({
            "appId": self.client.inner.app_id,
            "orderId": order_id,
        }));
        if let Some(order_no) = order_no {
            fields.insert("orderNo".into(), Value::String(order_no.into()));
        }
        Order::from_data(&self.call("query", fields).await?)
    }

    /// One page of a day's settlement report (`date` is `yyyy-MM-dd` in the operator's zone;
    /// `after` is the previous page's `next`).
    pub async fn report(&self, date: &str, after: Option<&str>) -> Result<SettlementReport, Error> {
        let mut fields = wire::object(json!({
            "appId": self.client.inner.app_id,
            "date": date,
        }));
        if let Some(after) = after {
            fields.insert("after".into(), Value::String(after.into()));
        }
        wire::parse::<ReportWire>(&self.call("report", fields).await?)?.try_into()
    }
}
