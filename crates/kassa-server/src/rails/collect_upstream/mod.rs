//! The connector to an upstream PSP that speaks the `collect` API: creates and queries orders
//! there, signed with kassa's key at the upstream, every reply verified with the upstream's
//! platform key. Bounded: connect and whole-call timeouts from the channel, replies capped at
//! [`MAX_REPLY_BYTES`], redirects never followed, and (unless the operator allows private
//! upstreams) only public addresses resolved.
//!
//! Not yet wired into routing: the next step makes it a `Rail` over the stored channels, with
//! upstream callbacks and reconciliation (docs/rails.md).

pub mod transformers;

use kassa_core::{Channel, Currency};
use kassa_signature::{SigningKey, VerifyingKey, parse_signed_object, sign_map};
use serde_json::{Map, Value};
use std::time::Duration;
use transformers::{Created, ReplyError, UpstreamOrder};

/// The most of an upstream's reply kassa reads.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Why a call to the upstream failed. `Unreachable` and `Unavailable` mean another channel may
/// be tried; the others do not.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer: the connection failed or the call timed out (its outcome is unknown).
    #[error("the upstream did not answer: {0}")]
    Unreachable(String),
    /// The upstream answered 5xx or redirected.
    #[error("the upstream is unavailable: HTTP {0}")]
    Unavailable(u16),
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// The reply's signature does not verify with the upstream's key.
    #[error("the upstream's reply is not signed with its platform key")]
    BadSignature,
}

/// One upstream account (a `collect-upstream` channel), ready to call.
pub struct CollectUpstream {
    client: reqwest::Client,
    base_url: String,
    app_id: i64,
    key: SigningKey,
    upstream_key: VerifyingKey,
}

impl CollectUpstream {
    /// The connector of `channel`, with kassa's key there (unsealed by the caller).
    pub fn new(
        channel: &Channel,
        key: SigningKey,
        allow_private: bool,
    ) -> Result<CollectUpstream, String> {
        let upstream = channel
            .upstream
            .as_ref()
            .ok_or("the channel has no upstream")?;
        let upstream_key =
            VerifyingKey::parse(&upstream.platform_public_key).map_err(|e| e.to_string())?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(channel.connect_timeout_ms))
            .timeout(Duration::from_millis(channel.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("kassa-upstream/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(crate::ssrf::GuardedResolver));
        }
        Ok(CollectUpstream {
            client: builder.build().map_err(|e| e.to_string())?,
            base_url: upstream.base_url.clone(),
            app_id: upstream.app_id,
            key,
            upstream_key,
        })
    }

    pub fn app_id(&self) -> i64 {
        self.app_id
    }

    /// Creates the order at the upstream (a retry of the same fields is a replay there).
    pub async fn create(
        &self,
        currency: Currency,
        request: Map<String, Value>,
    ) -> Result<Created, UpstreamError> {
        let data = self
            .call(&transformers::path(currency, "apply"), request)
            .await?;
        Ok(Created::try_from(&data)?)
    }

    /// The upstream's state of kassa's order.
    pub async fn query(
        &self,
        currency: Currency,
        upstream_order_id: &str,
    ) -> Result<UpstreamOrder, UpstreamError> {
        let request = transformers::query_request(self.app_id, upstream_order_id);
        let data = self
            .call(&transformers::path(currency, "query"), request)
            .await?;
        Ok(UpstreamOrder::try_from(&data)?)
    }

    /// Signs and posts `request`; the verified `data` of the reply.
    async fn call(
        &self,
        path: &str,
        mut request: Map<String, Value>,
    ) -> Result<Map<String, Value>, UpstreamError> {
        sign_map(&self.key, &mut request);
        let unreachable = |e: reqwest::Error| UpstreamError::Unreachable(e.to_string());
        let mut response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .json(&request)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_server_error() || status.is_redirection() {
            return Err(UpstreamError::Unavailable(status.as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                let why = format!("a reply over {MAX_REPLY_BYTES} bytes");
                return Err(ReplyError::Malformed(why).into());
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body)
            .map_err(|_| ReplyError::Malformed("the reply is not UTF-8".into()))?;
        let data_text = transformers::envelope_data(&text)?;
        self.verified(&data_text)
    }

    /// The reply's `data`, if the upstream's key verifies its `sign`.
    fn verified(&self, data_text: &str) -> Result<Map<String, Value>, UpstreamError> {
        let object = parse_signed_object(data_text)
            .map_err(|e| ReplyError::Malformed(format!("data: {e}")))?;
        let sign = object.sign.as_deref().ok_or(UpstreamError::BadSignature)?;
        self.upstream_key
            .verify_base64(object.canonical.as_bytes(), sign)
            .map_err(|_| UpstreamError::BadSignature)?;
        match serde_json::from_str(data_text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(ReplyError::Malformed("data is not an object".into()).into()),
        }
    }
}
