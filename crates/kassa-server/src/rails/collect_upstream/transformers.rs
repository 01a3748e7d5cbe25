//! The `collect` API as kassa speaks it to an upstream PSP: the create request it sends, the
//! replies it reads (the envelope, the created order, the queried order), and how the
//! upstream's statuses map onto the core's [`RailOutcome`]. Pure: no I/O.

use crate::rails::upstream::{UpstreamError, fields};
use kassa_core::{AmountMinor, Currency, MethodRoute, Payer, RailOutcome};
use serde_json::{Map, Value, json};

/// The upstream's "no error" code.
const OK_CODE: &str = "00000000";
/// The upstream's "no order of this app has this orderId" code.
pub const ORDER_NOT_FOUND: &str = "40000001";

/// What a create at the upstream is made of.
pub struct ApplyFields<'a> {
    pub upstream_app_id: i64,
    pub upstream_order_id: String,
    pub amount: AmountMinor,
    pub payer: &'a Payer,
    pub route: &'a MethodRoute,
    /// Where the upstream sends the payer back (kassa's page of the order, which then sends
    /// the payer on to the shop).
    pub return_url: String,
    /// Where the upstream calls kassa back.
    pub notify_url: String,
    /// The order's cashier country, passed on for the upstream's cashier.
    pub country: Option<String>,
}

/// The create request's fields, unsigned.
pub fn apply_request(fields: &ApplyFields<'_>) -> Map<String, Value> {
    let mut map = json!({
        "appId": fields.upstream_app_id,
        "orderId": fields.upstream_order_id,
        "name": fields.payer.name.expose(),
        "phone": fields.payer.phone.expose(),
        "email": fields.payer.email.expose(),
        "amount": fields.amount.to_decimal_string(),
        "payType": fields.route.upstream_pay_type,
        "inBankCode": fields.route.upstream_in_bank_code,
        "callBackUrl": fields.return_url,
        "callBackFailUrl": fields.return_url,
        "notifyUrl": fields.notify_url,
        "partnerUserId": fields.payer.partner_user_id,
    });
    if let Some(country) = &fields.country {
        map["country"] = Value::String(country.clone());
    }
    match map {
        Value::Object(map) => map,
        _ => unreachable!("built as an object"),
    }
}

/// The query request's fields, unsigned.
pub fn query_request(upstream_app_id: i64, upstream_order_id: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("appId".into(), json!(upstream_app_id));
    map.insert("orderId".into(), json!(upstream_order_id));
    map
}

/// The API path of an operation for a currency: `/eur/collect/apply`.
pub fn path(currency: Currency, operation: &str) -> String {
    format!("/{}/collect/{operation}", currency.code().to_lowercase())
}

/// The `data` object of a successful envelope (`status` "1", `error` "00000000"), as text for
/// the signature check; a refusal carries the upstream's code and message.
pub fn envelope_data(body: &str) -> Result<String, UpstreamError> {
    let envelope: Value = serde_json::from_str(body)
        .map_err(|e| UpstreamError::Malformed(format!("not JSON: {e}")))?;
    let text = |field: &str| {
        envelope
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if text("status") != "1" || text("error") != OK_CODE {
        return Err(UpstreamError::Refused {
            code: text("error").chars().take(16).collect(),
            msg: text("msg").chars().take(200).collect(),
        });
    }
    match envelope.get("data") {
        Some(data @ Value::Object(_)) => Ok(data.to_string()),
        _ => Err(UpstreamError::Malformed("no data object".into())),
    }
}

/// The upstream's answer to a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub upstream_order_no: String,
    /// The upstream's payment page; `None` when it gives none (the payer then stays on kassa's).
    pub pay_url: Option<String>,
}

impl TryFrom<&Map<String, Value>> for Created {
    type Error = UpstreamError;

    fn try_from(data: &Map<String, Value>) -> Result<Created, UpstreamError> {
        Ok(Created {
            upstream_order_no: fields::text(data, "orderNo")?,
            pay_url: fields::page_url(data, "payUrl")?,
        })
    }
}

/// An upstream order's state (`status` of the query reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamStatus {
    NotStarted,
    InProgress,
    Succeeded,
    Failed,
    /// The upstream waits for its own confirmation.
    Exception,
}

impl UpstreamStatus {
    /// The seed's codes: 0, 1, 2 (final), 3 (final), -1.
    pub fn from_code(code: i64) -> Option<UpstreamStatus> {
        Some(match code {
            0 => UpstreamStatus::NotStarted,
            1 => UpstreamStatus::InProgress,
            2 => UpstreamStatus::Succeeded,
            3 => UpstreamStatus::Failed,
            -1 => UpstreamStatus::Exception,
            _ => return None,
        })
    }
}

/// An upstream order as its query reply (or callback) describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamOrder {
    pub upstream_order_id: String,
    pub upstream_order_no: String,
    pub status: UpstreamStatus,
    pub amount: AmountMinor,
    pub actual_amount: AmountMinor,
    pub error_msg: Option<String>,
}

impl TryFrom<&Map<String, Value>> for UpstreamOrder {
    type Error = UpstreamError;

    fn try_from(data: &Map<String, Value>) -> Result<UpstreamOrder, UpstreamError> {
        let code = fields::code(data, "status")?;
        let status = UpstreamStatus::from_code(code)
            .ok_or_else(|| UpstreamError::Malformed(format!("status {code}")))?;
        Ok(UpstreamOrder {
            upstream_order_id: fields::text(data, "orderId")?,
            upstream_order_no: fields::text(data, "orderNo")?,
            status,
            amount: fields::amount(data, "amount")?,
            actual_amount: fields::amount(data, "actualAmount").unwrap_or(AmountMinor(0)),
            error_msg: fields::text(data, "errorMsg")
                .ok()
                .filter(|m| !m.is_empty()),
        })
    }
}

impl UpstreamOrder {
    /// What this state means for kassa's order: `None` while the upstream has not finished.
    /// A success reports what was received (a different amount becomes an exception in the
    /// core, as for any rail).
    pub fn outcome(&self) -> Option<RailOutcome> {
        match self.status {
            UpstreamStatus::NotStarted | UpstreamStatus::InProgress => None,
            UpstreamStatus::Succeeded => Some(RailOutcome::Paid {
                received: self.actual_amount,
            }),
            UpstreamStatus::Failed => Some(RailOutcome::Failed {
                reason: fields::failure_reason(self.error_msg.as_deref()),
            }),
            UpstreamStatus::Exception => Some(RailOutcome::Exception {
                reason: "the upstream awaits its own confirmation".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn statuses_map_onto_outcomes() {
        let order = |status: i64, actual: &str| {
            UpstreamOrder::try_from(&data(json!({
                "orderId": "kassa-1", "orderNo": "6023", "amount": "25.00",
                "actualAmount": actual, "fee": "0.00", "status": status, "errorMsg": "declined",
            })))
            .unwrap()
        };
        assert_eq!(order(0, "0.00").outcome(), None);
        assert_eq!(order(1, "0.00").outcome(), None);
        assert_eq!(
            order(2, "24.00").outcome(),
            Some(RailOutcome::Paid {
                received: AmountMinor(2_400)
            })
        );
        assert_eq!(
            order(3, "0.00").outcome(),
            Some(RailOutcome::Failed {
                reason: "declined".into()
            })
        );
        assert!(matches!(
            order(-1, "0.00").outcome(),
            Some(RailOutcome::Exception { .. })
        ));
        let unknown = data(json!({"orderId": "a", "orderNo": "b", "amount": "1.00", "status": 7}));
        assert!(UpstreamOrder::try_from(&unknown).is_err());
        let no_amount = data(json!({"orderId": "a", "orderNo": "b", "status": 1}));
        assert!(UpstreamOrder::try_from(&no_amount).is_err());
    }

    #[test]
    fn envelopes_are_read_or_refused() {
        let ok = r#"{"status":"1","error":"00000000","msg":"","data":{"orderNo":"6023","payUrl":"","sign":"x"}}"#;
        let data_text = envelope_data(ok).unwrap();
        let created =
            Created::try_from(&serde_json::from_str::<Map<String, Value>>(&data_text).unwrap())
                .unwrap();
        assert_eq!(
            created,
            Created {
                upstream_order_no: "6023".into(),
                pay_url: None
            }
        );
        let refused = r#"{"status":"0","error":"10000005","msg":"amount must be digits"}"#;
        assert_eq!(
            envelope_data(refused),
            Err(UpstreamError::Refused {
                code: "10000005".into(),
                msg: "amount must be digits".into()
            })
        );
        assert!(matches!(
            envelope_data("<html>"),
            Err(UpstreamError::Malformed(_))
        ));
        let created = |fields: Value| Created::try_from(&data(fields));
        let with_page = created(json!({"orderNo": "6023", "payUrl": "https://psp.example/pay/1"}));
        assert_eq!(
            with_page.unwrap().pay_url.as_deref(),
            Some("https://psp.example/pay/1")
        );
        assert!(created(json!({"orderNo": "6023", "payUrl": "javascript:alert(1)"})).is_err());
        assert!(
            created(json!({"orderNo": "6\n023"})).is_err(),
            "control characters"
        );
        assert!(
            created(json!({"orderNo": "6".repeat(256)})).is_err(),
            "over-long texts"
        );
        let no_data = r#"{"status":"1","error":"00000000","msg":""}"#;
        assert!(matches!(
            envelope_data(no_data),
            Err(UpstreamError::Malformed(_))
        ));
    }

    #[test]
    fn paths_follow_the_currency() {
        assert_eq!(path(Currency::Eur, "apply"), "/eur/collect/apply");
    }
}
