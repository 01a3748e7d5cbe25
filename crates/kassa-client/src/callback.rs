//! Verifying a callback kassa posted to the merchant's `notifyUrl`: the platform key's RSA
//! signature (`sign` in a collect body, `X-Sign` for pix), the Standard Webhooks signature with
//! the app's `whsec_` secret when the receiver holds it, and `appId` naming the receiver's app.
//! Only then is the body read as an order.

use crate::{Error, collect, envelope, pix};
use kassa_signature::{VerifyingKey, webhook};
use reqwest::header::HeaderMap;

/// The headers a callback's checks read, from any HTTP library.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallbackHeaders<'a> {
    pub x_sign: Option<&'a str>,
    pub webhook_id: Option<&'a str>,
    pub webhook_timestamp: Option<&'a str>,
    pub webhook_signature: Option<&'a str>,
}

impl<'a> CallbackHeaders<'a> {
    /// The headers of an `http` request (axum, hyper, reqwest).
    pub fn from_header_map(headers: &'a HeaderMap) -> CallbackHeaders<'a> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        CallbackHeaders {
            x_sign: get("x-sign"),
            webhook_id: get("webhook-id"),
            webhook_timestamp: get("webhook-timestamp"),
            webhook_signature: get("webhook-signature"),
        }
    }
}

/// What a verified callback says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Collect(collect::Order),
    Pix(pix::Order),
}

/// A verified callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    /// `webhook-id`: the same on every retry of one callback; deduplicate by it.
    pub webhook_id: Option<String>,
    pub event: Event,
}

/// Checks callbacks for one app. Hold one per app and reuse it.
pub struct CallbackVerifier {
    platform_key: VerifyingKey,
    app_id: i64,
    webhook_secret: Option<String>,
}

impl CallbackVerifier {
    /// Checks the RSA signature and `appId`.
    pub fn new(platform_key: VerifyingKey, app_id: i64) -> CallbackVerifier {
        CallbackVerifier {
            platform_key,
            app_id,
            webhook_secret: None,
        }
    }

    /// Also requires the Standard Webhooks signature by the app's secret (`whsec_…`), which
    /// binds the callback to the app and, with its timestamp, stops replays.
    pub fn with_webhook_secret(mut self, secret: impl Into<String>) -> CallbackVerifier {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// Verifies a callback received now.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Callback, Error> {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verify_at(CallbackHeaders::from_header_map(headers), body, now_s)
    }

    /// Verifies a callback as if received at `now_s` (seconds since the Unix epoch).
    pub fn verify_at(
        &self,
        headers: CallbackHeaders<'_>,
        body: &[u8],
        now_s: i64,
    ) -> Result<Callback, Error> {
        let text = std::str::from_utf8(body)
            .map_err(|_| Error::Malformed("the callback is not UTF-8".into()))?;
        if let Some(secret) = &self.webhook_secret {
            check_webhook(secret, &headers, body, now_s)?;
        }
        envelope::verify_signed(text, headers.x_sign, &self.platform_key, self.app_id)?;
        let event = match headers.x_sign {
            Some(_) => Event::Pix(pix::Order::from_data(text)?),
            None => Event::Collect(collect::Order::from_data(text)?),
        };
        Ok(Callback {
            webhook_id: headers.webhook_id.map(str::to_string),
            event,
        })
    }
}

fn check_webhook(
    secret: &str,
    headers: &CallbackHeaders<'_>,
    body: &[u8],
    now_s: i64,
) -> Result<(), Error> {
    let (Some(id), Some(timestamp), Some(signature)) = (
        headers.webhook_id,
        headers.webhook_timestamp,
        headers.webhook_signature,
    ) else {
        return Err(Error::BadSignature(
            "the Standard Webhooks headers are missing".into(),
        ));
    };
    webhook::verify(secret, id, timestamp, signature, body, now_s)
        .map_err(|e| Error::BadSignature(e.to_string()))
}
