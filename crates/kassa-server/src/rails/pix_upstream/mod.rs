//! The connector to an upstream PSP that speaks the `pix` API: creates and queries PIX orders
//! there with `X-App-Id` and `X-Sign` (kassa's key at the upstream over the body's canonical
//! string); every reply's `data` is verified against its `X-Sign` with the upstream's platform
//! key before a field of it is read. The HTTP side and its bounds are the shared
//! [`UpstreamHttp`].

pub mod transformers;

use super::upstream::day_report::{self, ReportPage};
use super::upstream::{MAX_REPLY_BYTES, MAX_REPORT_REPLY_BYTES, UpstreamError, UpstreamHttp};
use kassa_core::{AmountMinor, Channel};
use kassa_signature::{SigningKey, canonical_of_map};
use serde_json::{Map, Value};
use transformers::{PixCreated, PixOrder};

/// One upstream account (a `pix-upstream` channel), ready to call.
pub struct PixUpstream {
    http: UpstreamHttp,
    key: SigningKey,
}

impl PixUpstream {
    pub fn new(
        channel: &Channel,
        key: SigningKey,
        allow_private: bool,
    ) -> Result<PixUpstream, String> {
        let http = UpstreamHttp::new(channel, allow_private)?;
        Ok(PixUpstream { http, key })
    }

    /// Creates the PIX order at the upstream (a retry with the same order id is a replay).
    pub async fn create(
        &self,
        upstream_order_id: &str,
        amount: AmountMinor,
        notify_url: &str,
    ) -> Result<PixCreated, UpstreamError> {
        let body = transformers::init_request(upstream_order_id, amount, notify_url);
        let data = self
            .call(transformers::INIT_PATH, body, MAX_REPLY_BYTES)
            .await?;
        PixCreated::try_from(&data)
    }

    pub async fn query(&self, upstream_order_id: &str) -> Result<PixOrder, UpstreamError> {
        let body = transformers::query_request(upstream_order_id);
        let data = self
            .call(transformers::QUERY_PATH, body, MAX_REPLY_BYTES)
            .await
            .map_err(|e| e.not_found_if(transformers::ORDER_NOT_FOUND))?;
        PixOrder::try_from(&data)
    }

    /// A page of the upstream's report of `date` (its day) for kassa's account there.
    pub async fn report_page(
        &self,
        date: &str,
        after: Option<&str>,
    ) -> Result<ReportPage, UpstreamError> {
        let body = day_report::request(date, after);
        let data = self
            .call(transformers::REPORT_PATH, body, MAX_REPORT_REPLY_BYTES)
            .await?;
        super::upstream::check_app_id(&data, self.http.app_id)?;
        day_report::page(&data)
    }

    /// An upstream callback's order, if its `X-Sign` verifies with the upstream's key and it is
    /// about kassa's own account there (its `appId`, where the upstream sends one).
    pub fn verify_callback(
        &self,
        body: &str,
        x_sign: Option<&str>,
    ) -> Result<PixOrder, UpstreamError> {
        let data = match serde_json::from_str(body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(UpstreamError::Malformed(
                    "the callback is not a JSON object".into(),
                ));
            }
        };
        self.check_sign(&data, x_sign)?;
        if data.contains_key("appId") {
            super::upstream::check_app_id(&data, self.http.app_id)?;
        }
        PixOrder::try_from(&data)
    }

    fn check_sign(
        &self,
        data: &Map<String, Value>,
        x_sign: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let sign = x_sign.ok_or(UpstreamError::BadSignature)?;
        let canonical =
            canonical_of_map(data).map_err(|e| UpstreamError::Malformed(format!("data: {e}")))?;
        self.http
            .upstream_key
            .verify_base64(canonical.as_bytes(), sign)
            .map_err(|_| UpstreamError::BadSignature)
    }

    /// Posts `body` signed in `X-Sign`; the reply's `data`, verified against its `X-Sign`.
    async fn call(
        &self,
        path: &str,
        body: Map<String, Value>,
        max_reply_bytes: usize,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let canonical = canonical_of_map(&body).expect("kassa builds flat bodies");
        let headers = [
            ("x-app-id", self.http.app_id.to_string()),
            ("x-sign", self.key.sign_base64(canonical.as_bytes())),
        ];
        let (reply_headers, text) = self
            .http
            .post(path, &body, &headers, max_reply_bytes)
            .await?;
        let data = transformers::envelope_data(&text)?;
        let sign = reply_headers.get("x-sign").and_then(|v| v.to_str().ok());
        self.check_sign(&data, sign)?;
        Ok(data)
    }
}
