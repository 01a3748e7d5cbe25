//! The `pix` API as kassa speaks it to an upstream PSP: the create and query requests, the
//! envelope `{"code":0,"msg":"success","data":…}`, the created order (its BR Code checked before
//! anyone is shown it) and the order states 10/20/30 mapped onto the core's [`RailOutcome`].
//! Pure: no I/O.

use crate::rails::upstream::{UpstreamError, fields};
use kassa_core::{AmountMinor, RailOutcome};
use serde_json::{Map, Value, json};

pub const INIT_PATH: &str = "/accountProxyCollect/initCollect";
pub const QUERY_PATH: &str = "/proxyCollectQuery/query";
/// kassa's own day report, where the upstream is a kassa.
pub const REPORT_PATH: &str = "/proxyCollectQuery/report";
/// The upstream's "no order of this app has this userOrderNumber" code.
pub const ORDER_NOT_FOUND: &str = "4001";

/// The create request's body (signed in `X-Sign` by the connector).
pub fn init_request(
    upstream_order_id: &str,
    amount: AmountMinor,
    notify_url: &str,
) -> Map<String, Value> {
    let body = json!({
        "userOrderNumber": upstream_order_id,
        "submitAmount": amount.to_decimal_string(),
        "paymentType": "PIX",
        "currencyType": "BRL",
        "notifyUrl": notify_url,
    });
    body.as_object().cloned().unwrap_or_default()
}

pub fn query_request(upstream_order_id: &str) -> Map<String, Value> {
    json!({ "userOrderNumber": upstream_order_id })
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// The `data` of a successful envelope (code 0); a refusal carries the upstream's code.
pub fn envelope_data(body: &str) -> Result<Map<String, Value>, UpstreamError> {
    let envelope: Value = serde_json::from_str(body)
        .map_err(|e| UpstreamError::Malformed(format!("not JSON: {e}")))?;
    let code = envelope.get("code").and_then(Value::as_i64);
    if code != Some(0) {
        let msg = envelope
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(UpstreamError::Refused {
            code: code.map_or_else(|| "?".into(), |c| c.to_string()),
            msg: msg.chars().take(200).collect(),
        });
    }
    match envelope.get("data") {
        Some(Value::Object(data)) => Ok(data.clone()),
        _ => Err(UpstreamError::Malformed("no data object".into())),
    }
}

/// An upstream PIX order's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixState {
    Processing,
    Succeeded,
    Failed,
}

impl PixState {
    /// The seed's codes: 10, 20 (final), 30 (final).
    pub fn from_code(code: i64) -> Option<PixState> {
        match code {
            10 => Some(PixState::Processing),
            20 => Some(PixState::Succeeded),
            30 => Some(PixState::Failed),
            _ => None,
        }
    }
}

/// The upstream's answer to a create: its order, page and BR Code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixCreated {
    pub upstream_order_no: String,
    pub url: String,
    /// A BR Code that decodes with a correct CRC.
    pub qr_code: String,
    pub state: PixState,
}

impl TryFrom<&Map<String, Value>> for PixCreated {
    type Error = UpstreamError;

    fn try_from(data: &Map<String, Value>) -> Result<PixCreated, UpstreamError> {
        let qr_code = fields::text(data, "qrCode")?;
        kassa_core::brcode::decode(&qr_code)
            .map_err(|e| UpstreamError::Malformed(format!("qrCode is not a valid BR Code: {e}")))?;
        Ok(PixCreated {
            upstream_order_no: fields::text(data, "orderNo")?,
            url: fields::page_url(data, "url")?
                .ok_or_else(|| UpstreamError::Malformed("url: missing".into()))?,
            qr_code,
            state: state(data)?,
        })
    }
}

/// An upstream PIX order as its query reply (or callback) describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixOrder {
    pub upstream_order_id: String,
    pub upstream_order_no: String,
    pub state: PixState,
    pub amount: AmountMinor,
    pub arrival_amount: AmountMinor,
    pub message: Option<String>,
}

impl TryFrom<&Map<String, Value>> for PixOrder {
    type Error = UpstreamError;

    fn try_from(data: &Map<String, Value>) -> Result<PixOrder, UpstreamError> {
        Ok(PixOrder {
            upstream_order_id: fields::text(data, "serialNo")?,
            upstream_order_no: fields::text(data, "orderNo")?,
            state: state(data)?,
            amount: fields::amount(data, "amount")?,
            arrival_amount: fields::amount(data, "arrivalAmount").unwrap_or(AmountMinor(0)),
            message: fields::text(data, "message").ok().filter(|m| !m.is_empty()),
        })
    }
}

impl PixOrder {
    /// What this state means for kassa's order: `None` while it is processing.
    pub fn outcome(&self) -> Option<RailOutcome> {
        match self.state {
            PixState::Processing => None,
            PixState::Succeeded => Some(RailOutcome::Paid {
                received: self.arrival_amount,
            }),
            PixState::Failed => Some(RailOutcome::Failed {
                reason: fields::failure_reason(self.message.as_deref()),
            }),
        }
    }
}

fn state(data: &Map<String, Value>) -> Result<PixState, UpstreamError> {
    let code = fields::code(data, "orderState")?;
    PixState::from_code(code).ok_or_else(|| UpstreamError::Malformed(format!("orderState {code}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn states_map_onto_outcomes() {
        let order = |state: i64| {
            PixOrder::try_from(&data(json!({
                "serialNo": "kassa-1", "orderNo": "7001", "orderState": state,
                "amount": "12.34", "arrivalAmount": "12.00", "message": "expired at the bank",
            })))
            .unwrap()
        };
        assert_eq!(order(10).outcome(), None);
        assert_eq!(
            order(20).outcome(),
            Some(RailOutcome::Paid {
                received: AmountMinor(1_200)
            })
        );
        assert_eq!(
            order(30).outcome(),
            Some(RailOutcome::Failed {
                reason: "expired at the bank".into()
            })
        );
        let unknown =
            data(json!({"serialNo": "a", "orderNo": "b", "orderState": 40, "amount": "1.00"}));
        assert!(PixOrder::try_from(&unknown).is_err());
    }

    #[test]
    fn a_created_order_needs_a_valid_br_code() {
        let created = |qr: &str| {
            PixCreated::try_from(&data(json!({
                "orderNo": "7001", "url": "https://psp.example/pix/1", "qrCode": qr,
                "orderState": 10, "serialNo": "kassa-1",
            })))
        };
        assert!(matches!(
            created("not a br code"),
            Err(UpstreamError::Malformed(_))
        ));
        let receiver = kassa_core::pix::PixReceiver::new(
            "00000000-0000-4000-8000-00000000d3e0",
            "Demo Shop",
            "Sao Paulo",
        )
        .unwrap();
        let valid = receiver.brcode(AmountMinor(1_234), "kassa1");
        assert_eq!(created(&valid).unwrap().qr_code, valid);
        let mut broken_crc = valid.clone();
        broken_crc.replace_range(
            valid.len() - 1..,
            if valid.ends_with('0') { "1" } else { "0" },
        );
        assert!(created(&broken_crc).is_err());
        let page = |url: &str| {
            PixCreated::try_from(&data(json!({
                "orderNo": "7001", "url": url, "qrCode": valid, "orderState": 10,
            })))
        };
        assert!(
            page("javascript:alert(1)").is_err(),
            "the payer is sent only to http(s) pages"
        );
        assert!(page("").is_err(), "the seed's url is required");
    }

    #[test]
    fn envelopes_are_read_or_refused() {
        let ok = r#"{"code":0,"msg":"success","data":{"orderNo":"1"}}"#;
        assert_eq!(envelope_data(ok).unwrap()["orderNo"], "1");
        assert!(matches!(
            envelope_data(r#"{"code":9001,"msg":"wrong sign"}"#),
            Err(UpstreamError::Refused { code, .. }) if code == "9001"
        ));
        assert!(matches!(
            envelope_data("[]"),
            Err(UpstreamError::Refused { .. })
        ));
        assert!(matches!(
            envelope_data("nope"),
            Err(UpstreamError::Malformed(_))
        ));
    }
}
