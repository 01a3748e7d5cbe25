//! What every upstream connector shares: one HTTP client per channel with the channel's
//! timeouts, no redirects, the SSRF-guarded resolver unless private upstreams are allowed, and
//! replies read up to [`MAX_REPLY_BYTES`]; and the errors that tell the router what to do next.

use kassa_core::{Channel, OrderNo};
use kassa_signature::VerifyingKey;
use std::time::Duration;

/// The most of an upstream's reply kassa reads.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// The most of a page of an upstream's day report (1,000 lines of ~120 bytes, signed).
pub const MAX_REPORT_REPLY_BYTES: usize = 1024 * 1024;

/// Why a call to the upstream failed. After a create, routing tries the next channel unless the
/// upstream may have acted on it ([`UpstreamError::outcome_unknown`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The connection could not be made: the request was never sent.
    #[error("cannot connect to the upstream: {0}")]
    NotConnected(String),
    /// No answer after the request was sent (a timeout, a dropped connection): its outcome is
    /// unknown.
    #[error("the upstream did not answer: {0}")]
    Unreachable(String),
    /// The upstream answered 5xx or redirected.
    #[error("the upstream is unavailable: HTTP {0}")]
    Unavailable(u16),
    /// The upstream refused the request with its own code.
    #[error("the upstream refused: {code} {msg}")]
    Refused { code: String, msg: String },
    /// The answer is not what the API promises (not JSON, too large, fields missing).
    #[error("the upstream's answer is malformed: {0}")]
    Malformed(String),
    /// The reply's signature does not verify with the upstream's key.
    #[error("the upstream's reply is not signed with its platform key")]
    BadSignature,
    /// A query found no such order at the upstream.
    #[error("the upstream has no such order")]
    NotFound,
}

impl UpstreamError {
    /// The label of this error in metrics and routing records.
    pub fn label(&self) -> &'static str {
        match self {
            UpstreamError::NotConnected(_) => "not_connected",
            UpstreamError::Unreachable(_) => "unreachable",
            UpstreamError::Unavailable(_) => "unavailable",
            UpstreamError::Refused { .. } => "refused",
            UpstreamError::Malformed(_) => "malformed",
            UpstreamError::BadSignature => "bad_signature",
            UpstreamError::NotFound => "not_found",
        }
    }

    /// Whether the upstream may have acted on the call although kassa cannot tell: no answer,
    /// or an answer kassa cannot believe. Such a create is reconciled by a query before any
    /// other channel is tried.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unreachable(_)
                | UpstreamError::Malformed(_)
                | UpstreamError::BadSignature
        )
    }

    /// A query's refusal with the API's "no such order" code is [`UpstreamError::NotFound`].
    pub fn not_found_if(self, not_found_code: &str) -> UpstreamError {
        match self {
            UpstreamError::Refused { code, .. } if code == not_found_code => {
                UpstreamError::NotFound
            }
            other => other,
        }
    }
}

/// kassa's order id at an upstream for one of its orders: derived from the order alone, so a
/// retried create is an idempotent replay at the upstream, never a second live order.
pub fn upstream_order_id(order_no: &OrderNo) -> String {
    format!("{UPSTREAM_ORDER_ID_PREFIX}{order_no}")
}

const UPSTREAM_ORDER_ID_PREFIX: &str = "kassa-";

/// kassa's order behind an upstream order id (as an upstream's callback names it).
pub fn order_no_of(upstream_order_id: &str) -> Option<OrderNo> {
    OrderNo::parse(upstream_order_id.strip_prefix(UPSTREAM_ORDER_ID_PREFIX)?)
}

/// Refuses signed data about another account at the upstream than kassa's (`appId`).
pub fn check_app_id(
    data: &serde_json::Map<String, serde_json::Value>,
    app_id: i64,
) -> Result<(), UpstreamError> {
    let named = match data.get("appId") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    if named == Some(app_id) {
        Ok(())
    } else {
        Err(UpstreamError::Malformed(format!(
            "signed for appId {:?}, not kassa's {app_id}",
            data.get("appId")
        )))
    }
}

/// The HTTP side of one channel.
pub struct UpstreamHttp {
    client: reqwest::Client,
    base_url: String,
    pub app_id: i64,
    pub upstream_key: VerifyingKey,
}

impl UpstreamHttp {
    pub fn new(channel: &Channel, allow_private: bool) -> Result<UpstreamHttp, String> {
        let upstream = channel
            .upstream
            .as_ref()
            .ok_or("the channel has no upstream")?;
        let upstream_key =
            VerifyingKey::parse(&upstream.platform_public_key).map_err(|e| e.to_string())?;
        let builder = crate::ssrf::outbound_client(
            concat!("kassa-upstream/", env!("CARGO_PKG_VERSION")),
            (
                Duration::from_millis(channel.connect_timeout_ms),
                Duration::from_millis(channel.request_timeout_ms),
            ),
            allow_private,
        );
        Ok(UpstreamHttp {
            client: builder.build().map_err(|e| e.to_string())?,
            base_url: upstream.base_url.clone(),
            app_id: upstream.app_id,
            upstream_key,
        })
    }

    /// Posts a JSON body with extra headers; the reply's headers and text (at most
    /// `max_reply_bytes`), whatever its status below 500.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Map<String, serde_json::Value>,
        headers: &[(&str, String)],
        max_reply_bytes: usize,
    ) -> Result<(reqwest::header::HeaderMap, String), UpstreamError> {
        let unreachable = |e: reqwest::Error| UpstreamError::Unreachable(e.to_string());
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::NotConnected(e.to_string())
            } else {
                UpstreamError::Unreachable(e.to_string())
            }
        })?;
        let status = response.status();
        if status.is_server_error() || status.is_redirection() {
            return Err(UpstreamError::Unavailable(status.as_u16()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > max_reply_bytes {
                let why = format!("a reply over {max_reply_bytes} bytes");
                return Err(UpstreamError::Malformed(why));
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| UpstreamError::Malformed("the reply is not UTF-8".into()))?;
        Ok((response.headers().clone(), text))
    }
}

/// Reading fields of an upstream's signed data, shared by the connectors' `transformers.rs`:
/// anything missing or out of shape is a named `Malformed` refusal, never a panic, and no text
/// longer than [`MAX_TEXT_CHARS`](fields::MAX_TEXT_CHARS) or holding control characters gets
/// further (it would end up in kassa's database and logs).
pub mod fields {
    use super::UpstreamError;
    use kassa_core::AmountMinor;
    use serde_json::{Map, Value};

    pub const MAX_TEXT_CHARS: usize = 255;
    /// Failure reasons kept from an upstream.
    const MAX_REASON_CHARS: usize = 200;

    fn malformed(field: &str, why: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Malformed(format!("{field}: {why}"))
    }

    pub fn text(data: &Map<String, Value>, field: &str) -> Result<String, UpstreamError> {
        let Some(Value::String(text)) = data.get(field) else {
            return Err(malformed(field, "missing or not a string"));
        };
        checked(field, text)
    }

    /// An upstream's text as kassa keeps it: at most [`MAX_TEXT_CHARS`], no control characters.
    pub fn checked(field: &str, text: &str) -> Result<String, UpstreamError> {
        if text.chars().count() > MAX_TEXT_CHARS || text.chars().any(char::is_control) {
            return Err(malformed(field, "too long or holding control characters"));
        }
        Ok(text.to_string())
    }

    pub fn amount(data: &Map<String, Value>, field: &str) -> Result<AmountMinor, UpstreamError> {
        let text = text(data, field)?;
        AmountMinor::parse(&text).map_err(|e| malformed(field, format!("{text:?}: {e}")))
    }

    /// A status code, written as a number or as digits.
    pub fn code(data: &Map<String, Value>, field: &str) -> Result<i64, UpstreamError> {
        let code = match data.get(field) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        code.ok_or_else(|| malformed(field, format!("{:?}", data.get(field))))
    }

    /// A page the payer may be sent to: an http(s) URL, or `None` when the upstream gives none.
    pub fn page_url(
        data: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let text = match data.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(_) => text(data, field)?,
        };
        if text.is_empty() {
            return Ok(None);
        }
        kassa_core::validate::http_url("payUrl", &text).map_err(|e| malformed(field, e))?;
        Ok(Some(text))
    }

    /// The reason of a failure as kassa keeps it.
    pub fn failure_reason(message: Option<&str>) -> String {
        let message = message.unwrap_or("failed at the upstream");
        message.chars().take(MAX_REASON_CHARS).collect()
    }
}

/// An upstream's day report (kassa's report endpoints, which an upstream kassa serves): the
/// request, and the order lines of a page as reconciliation reads them.
pub mod day_report {
    use super::UpstreamError;
    use kassa_core::AmountMinor;
    use serde_json::{Map, Value};

    /// One order the upstream reports paid that day.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ReportLine {
        pub upstream_order_no: String,
        pub upstream_order_id: String,
        pub gross: AmountMinor,
    }

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct ReportPage {
        pub lines: Vec<ReportLine>,
        /// Where the next page starts; `None` on the last.
        pub next: Option<String>,
    }

    /// The request's fields (the connector adds the app and the signature as its API does).
    pub fn request(date: &str, after: Option<&str>) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("date".into(), date.into());
        if let Some(after) = after {
            map.insert("after".into(), after.into());
        }
        map
    }

    fn malformed(why: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Malformed(format!("report: {why}"))
    }

    /// The `order` lines of a verified report page (`lines`, CSV in kassa's report columns).
    pub fn page(data: &Map<String, Value>) -> Result<ReportPage, UpstreamError> {
        let Some(Value::String(lines)) = data.get("lines") else {
            return Err(malformed("no lines"));
        };
        let mut page = ReportPage::default();
        for line in lines.lines().skip(1).filter(|l| l.starts_with("order,")) {
            let columns: Vec<&str> = line.split(',').collect();
            // record,orderNo,orderId,method,currency,orders,gross,…: 13 columns in all.
            if columns.len() != 13 {
                return Err(malformed(format!("a line of {} columns", columns.len())));
            }
            let gross = AmountMinor::parse(columns[6]).map_err(malformed)?;
            page.lines.push(ReportLine {
                upstream_order_no: super::fields::checked("report orderNo", columns[1])?,
                upstream_order_id: super::fields::checked("report orderId", columns[2])?,
                gross,
            });
        }
        page.next = match data.get("next") {
            None | Some(Value::Null) => None,
            Some(Value::String(next)) if next.len() <= 64 => Some(next.clone()),
            Some(_) => return Err(malformed("next is not a page key")),
        };
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_pages_are_read_and_bad_lines_refused() {
        let header = crate::report::CSV_HEADER;
        let data = |lines: &str, next: Option<&str>| {
            let mut map = serde_json::Map::new();
            map.insert("lines".into(), format!("{header}\n{lines}").into());
            if let Some(next) = next {
                map.insert("next".into(), next.into());
            }
            map
        };
        let good = "order,2611210000000042,kassa-2611210000000041,IDEAL_EUR,EUR,1,20.00,0.50,19.50,2026-11-21T14:03:07+01:00,,,\n";
        let page = day_report::page(&data(good, Some("2611210000000042"))).unwrap();
        assert_eq!(page.lines.len(), 1);
        assert_eq!(page.lines[0].upstream_order_id, "kassa-2611210000000041");
        assert_eq!(page.lines[0].gross, kassa_core::AmountMinor(2_000));
        assert_eq!(page.next.as_deref(), Some("2611210000000042"));
        let control = good.replace("kassa-2611210000000041", "kassa-26112\u{1b}[31m");
        assert!(day_report::page(&data(&control, None)).is_err());
        let short = "order,1,2,3\n";
        assert!(day_report::page(&data(short, None)).is_err());
        let amount = good.replace(",20.00,", ",20.5x,");
        assert!(day_report::page(&data(&amount, None)).is_err());
    }

    #[test]
    fn upstream_order_ids_are_derived_and_read_back() {
        let order_no = OrderNo::parse("6023071013539074").unwrap();
        assert_eq!(upstream_order_id(&order_no), "kassa-6023071013539074");
        assert_eq!(order_no_of("kassa-6023071013539074"), Some(order_no));
        assert_eq!(order_no_of("6023071013539074"), None);
        assert_eq!(order_no_of("kassa-x"), None);
    }
}
