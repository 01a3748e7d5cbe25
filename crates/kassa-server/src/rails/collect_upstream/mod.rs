//! The connector to an upstream PSP that speaks the `collect` API: creates and queries orders
//! there, signed with kassa's key at the upstream (`sign` in the body), every reply's `data`
//! verified with the upstream's platform key before a field of it is read. The HTTP side and
//! its bounds are the shared [`UpstreamHttp`].

pub mod transformers;

use super::upstream::day_report::{self, ReportPage};
use super::upstream::{MAX_REPLY_BYTES, MAX_REPORT_REPLY_BYTES, UpstreamError, UpstreamHttp};
use kassa_core::{Channel, Currency};
use kassa_signature::{SigningKey, parse_signed_object, sign_map};
use serde_json::{Map, Value};
use transformers::{Created, UpstreamOrder};

/// One upstream account (a `collect-upstream` channel), ready to call.
pub struct CollectUpstream {
    http: UpstreamHttp,
    key: SigningKey,
}

impl CollectUpstream {
    /// The connector of `channel`, with kassa's key there (unsealed by the caller).
    pub fn new(
        channel: &Channel,
        key: SigningKey,
        allow_private: bool,
    ) -> Result<CollectUpstream, String> {
        let http = UpstreamHttp::new(channel, allow_private)?;
        Ok(CollectUpstream { http, key })
    }

    pub fn app_id(&self) -> i64 {
        self.http.app_id
    }

    /// Creates the order at the upstream (a retry of the same fields is a replay there).
    pub async fn create(
        &self,
        currency: Currency,
        request: Map<String, Value>,
    ) -> Result<Created, UpstreamError> {
        let data = self
            .call(
                &transformers::path(currency, "apply"),
                request,
                MAX_REPLY_BYTES,
            )
            .await?;
        Created::try_from(&data)
    }

    /// The upstream's state of kassa's order.
    pub async fn query(
        &self,
        currency: Currency,
        upstream_order_id: &str,
    ) -> Result<UpstreamOrder, UpstreamError> {
        let request = transformers::query_request(self.http.app_id, upstream_order_id);
        let data = self
            .call(
                &transformers::path(currency, "query"),
                request,
                MAX_REPLY_BYTES,
            )
            .await
            .map_err(|e| e.not_found_if(transformers::ORDER_NOT_FOUND))?;
        UpstreamOrder::try_from(&data)
    }

    /// A page of the upstream's report of `date` (its day) for kassa's account there.
    pub async fn report_page(
        &self,
        currency: Currency,
        date: &str,
        after: Option<&str>,
    ) -> Result<ReportPage, UpstreamError> {
        let mut request = day_report::request(date, after);
        request.insert("appId".into(), self.http.app_id.into());
        let path = transformers::path(currency, "report");
        let data = self.call(&path, request, MAX_REPORT_REPLY_BYTES).await?;
        super::upstream::check_app_id(&data, self.http.app_id)?;
        day_report::page(&data)
    }

    /// An upstream callback's order, if the upstream's key verifies its `sign` and it is about
    /// kassa's own account there (its `appId`); forged or misdirected callbacks are refused.
    pub fn verify_callback(&self, body: &str) -> Result<UpstreamOrder, UpstreamError> {
        let data = self.verified(body)?;
        super::upstream::check_app_id(&data, self.http.app_id)?;
        UpstreamOrder::try_from(&data)
    }

    /// Signs and posts `request`; the verified `data` of the reply.
    async fn call(
        &self,
        path: &str,
        mut request: Map<String, Value>,
        max_reply_bytes: usize,
    ) -> Result<Map<String, Value>, UpstreamError> {
        sign_map(&self.key, &mut request);
        let (_, text) = self.http.post(path, &request, &[], max_reply_bytes).await?;
        self.verified(&transformers::envelope_data(&text)?)
    }

    /// A signed object's fields, if the upstream's key verifies its `sign`.
    fn verified(&self, text: &str) -> Result<Map<String, Value>, UpstreamError> {
        let object = parse_signed_object(text)
            .map_err(|e| UpstreamError::Malformed(format!("data: {e}")))?;
        let sign = object.sign.as_deref().ok_or(UpstreamError::BadSignature)?;
        self.http
            .upstream_key
            .verify_base64(object.canonical.as_bytes(), sign)
            .map_err(|_| UpstreamError::BadSignature)?;
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(UpstreamError::Malformed("data is not an object".into())),
        }
    }
}
