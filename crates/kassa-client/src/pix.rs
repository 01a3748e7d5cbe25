//! The `pix` API (BRL): create a PIX order with its BR Code, query it, read a day's settlement
//! report. The signature travels in `X-Sign` and the app in `X-App-Id`.

use crate::report::{ReportWire, SettlementReport};
use crate::{Client, Error, envelope, wire};
use kassa_core::AmountMinor;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A new PIX order: `POST /accountProxyCollect/initCollect` (`paymentType` PIX and
/// `currencyType` BRL are added by the client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitRequest {
    pub user_order_number: String,
    pub submit_amount: AmountMinor,
    pub notify_url: Option<String>,
}

/// kassa's answer to a create.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub app_id: i64,
    pub order_no: String,
    /// The payer's page: QR code, copy-and-paste code, status.
    pub url: String,
    /// The BR Code (decode it with [`crate::brcode::decode`]).
    pub qr_code: String,
    pub order_state: i64,
    /// The merchant's `userOrderNumber`.
    pub serial_no: String,
}

/// An order's `orderState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// 10: waiting for the payment (also while an exception awaits the operator).
    Processing,
    /// 20, final.
    Succeeded,
    /// 30, final.
    Failed,
}

impl OrderState {
    pub fn from_code(code: i64) -> Option<OrderState> {
        Some(match code {
            10 => OrderState::Processing,
            20 => OrderState::Succeeded,
            30 => OrderState::Failed,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, OrderState::Processing)
    }
}

/// A PIX order as a query answer or a callback describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub app_id: i64,
    pub serial_no: String,
    pub order_no: String,
    pub order_state: OrderState,
    pub amount: AmountMinor,
    pub arrival_amount: AmountMinor,
    /// When final (queries only): `yyyy-MM-dd HH:mm:ss` in the operator's time zone.
    pub trans_time: Option<String>,
    /// Why it failed.
    pub message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderWire {
    app_id: i64,
    serial_no: String,
    order_no: String,
    order_state: i64,
    amount: String,
    arrival_amount: String,
    trans_time: Option<String>,
    message: Option<String>,
}

impl TryFrom<OrderWire> for Order {
    type Error = Error;

    fn try_from(wire: OrderWire) -> Result<Order, Error> {
        Ok(Order {
            app_id: wire.app_id,
            order_state: OrderState::from_code(wire.order_state).ok_or_else(|| {
                Error::Malformed(format!("unknown orderState {}", wire.order_state))
            })?,
            amount: wire::amount("amount", &wire.amount)?,
            arrival_amount: wire::amount("arrivalAmount", &wire.arrival_amount)?,
            serial_no: wire.serial_no,
            order_no: wire.order_no,
            trans_time: wire.trans_time,
            message: wire.message,
        })
    }
}

impl Order {
    pub(crate) fn from_data(data: &str) -> Result<Order, Error> {
        wire::parse::<OrderWire>(data)?.try_into()
    }
}

/// The PIX API, reached through [`Client::pix`].
pub struct Pix<'a> {
    pub(crate) client: &'a Client,
}

impl Pix<'_> {
    async fn call(&self, path: &str, fields: Map<String, Value>) -> Result<String, Error> {
        let client = self.client;
        let body = serde_json::to_string(&fields).expect("a map serialises");
        let headers = [
            ("x-app-id", client.inner.app_id.to_string()),
            ("x-sign", client.sign_fields(&fields)),
        ];
        let answer = client.post(path, &headers, &body).await?;
        envelope::pix_data(&answer, &client.inner.platform_key, client.inner.app_id)
    }

    /// Creates a PIX order. The identical request again returns the first answer; other
    /// fields under a used `user_order_number` are refused (`5001`).
    pub async fn init_collect(&self, request: &InitRequest) -> Result<Created, Error> {
        let mut fields = wire::object(json!({
            "userOrderNumber": request.user_order_number,
            "submitAmount": request.submit_amount.to_decimal_string(),
            "paymentType": "PIX",
            "currencyType": "BRL",
        }));
        if let Some(url) = &request.notify_url {
            fields.insert("notifyUrl".into(), Value::String(url.clone()));
        }
        let data = self
            .call("/accountProxyCollect/initCollect", fields)
            .await?;
        wire::parse(&data)
    }

    /// An order by the merchant's `userOrderNumber`.
    pub async fn query(&self, user_order_number: &str) -> Result<Order, Error> {
        let fields = wire::object(json!({ "userOrderNumber": user_order_number }));
        Order::from_data(&self.call("/proxyCollectQuery/query", fields).await?)
    }

    /// One page of a day's settlement report.
    pub async fn report(&self, date: &str, after: Option<&str>) -> Result<SettlementReport, Error> {
        let mut fields = wire::object(json!({ "date": date }));
        if let Some(after) = after {
            fields.insert("after".into(), Value::String(after.into()));
        }
        let data = self.call("/proxyCollectQuery/report", fields).await?;
        wire::parse::<ReportWire>(&data)?.try_into()
    }
}
