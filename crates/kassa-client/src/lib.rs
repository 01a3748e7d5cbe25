//! A merchant's client of kassa: typed requests to both of its APIs, signed with the merchant's
//! key; answers and callbacks believed only once the platform key's signature verifies and
//! their `appId` is the client's app; the dialect's error codes as typed errors; a timeout on
//! every call and safe retries (an identical create is replayed, never doubled).
//!
//! ```no_run
//! use kassa_client::{AmountMinor, Client, Currency, SigningKey, VerifyingKey};
//! use kassa_client::collect::{ApplyRequest, PayType};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::parse(&std::fs::read_to_string("merchant.key.pem")?)?;
//! let platform = VerifyingKey::parse(&std::fs::read_to_string("platform.pub.pem")?)?;
//! let client = Client::builder("http://127.0.0.1:8080", 1001, key, platform).build()?;
//!
//! let created = client
//!     .collect(Currency::Eur)?
//!     .apply(&ApplyRequest {
//!         order_id: "order-1".into(),
//!         amount: AmountMinor(2500),
//!         pay_type: PayType::Cashier,
//!         in_bank_code: "CASHIER".into(),
//!         country: Some("000".into()),
//!         name: "Jane Doe".into(),
//!         phone: "+31612345678".into(),
//!         email: "jane@example.com".into(),
//!         partner_user_id: "user-1".into(),
//!         call_back_url: "https://shop.example/paid".into(),
//!         call_back_fail_url: "https://shop.example/failed".into(),
//!         notify_url: Some("https://shop.example/kassa".into()),
//!         subject: None,
//!         body: None,
//!     })
//!     .await?;
//! println!("send the payer to {}", created.pay_url);
//!
//! let order = client.collect(Currency::Eur)?.query("order-1", None).await?;
//! println!("status {:?}, received {}", order.status, order.actual_amount);
//! # Ok(())
//! # }
//! ```
//!
//! PIX orders and a callback handler:
//!
//! ```no_run
//! use kassa_client::{AmountMinor, CallbackVerifier, Client, Event};
//! use kassa_client::pix::InitRequest;
//! # async fn example(client: Client, verifier: CallbackVerifier,
//! #     headers: reqwest::header::HeaderMap, body: Vec<u8>) -> Result<(), kassa_client::Error> {
//! let created = client
//!     .pix()
//!     .init_collect(&InitRequest {
//!         user_order_number: "pix-1".into(),
//!         submit_amount: AmountMinor(1234),
//!         notify_url: None,
//!     })
//!     .await?;
//! let fields = kassa_client::brcode::decode(&created.qr_code).expect("kassa emits valid codes");
//! assert_eq!(fields.text(&[54]), Some("12.34"));
//!
//! // In the handler of the notifyUrl: verify, apply if new, answer `success`.
//! match verifier.verify(&headers, &body)?.event {
//!     Event::Pix(order) => println!("{} is {:?}", order.serial_no, order.order_state),
//!     Event::Collect(order) => println!("{} is {:?}", order.order_id, order.status),
//! }
//! # Ok(())
//! # }
//! ```

pub mod callback;
pub mod collect;
mod envelope;
mod error;
pub mod pix;
mod report;
mod transport;
mod wire;

pub use callback::{Callback, CallbackHeaders, CallbackVerifier, Event};
pub use error::{ApiError, Dialect, Error};
pub use kassa_core::brcode;
pub use kassa_core::{AmountMinor, Currency};
pub use kassa_signature::{SigningKey, VerifyingKey};
pub use report::SettlementReport;
pub use transport::RetryPolicy;

use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Checks an answer kassa gave (saved, or received by other means than this client): the
/// dialect's envelope, the platform key's signature over `data` (`x_sign` is the pix answer's
/// `X-Sign` header) and that `data` is about `app_id`. Returns `data`'s text, or the refusal.
pub fn verify_answer(
    dialect: Dialect,
    http_status: u16,
    x_sign: Option<&str>,
    body: &str,
    platform_key: &VerifyingKey,
    app_id: i64,
) -> Result<String, Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(sign) = x_sign.and_then(|s| s.parse().ok()) {
        headers.insert("x-sign", sign);
    }
    let answer = transport::Answer {
        status: http_status,
        headers,
        body: body.to_string(),
    };
    match dialect {
        Dialect::Collect => envelope::collect_data(&answer, platform_key, app_id),
        Dialect::Pix => envelope::pix_data(&answer, platform_key, app_id),
    }
}

/// The default time kassa has to answer one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one app. Cheap to clone; share one per app.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    app_id: i64,
    key: SigningKey,
    platform_key: VerifyingKey,
    timeout: Duration,
    retry: RetryPolicy,
}

/// Settings of a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    app_id: i64,
    key: SigningKey,
    platform_key: VerifyingKey,
    timeout: Duration,
    retry: RetryPolicy,
}

impl ClientBuilder {
    /// The time kassa has to answer one attempt (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = timeout;
        self
    }

    /// How failed attempts are retried (default: twice, after 250 ms then 500 ms, or after
    /// kassa's `Retry-After`).
    pub fn retry(mut self, retry: RetryPolicy) -> ClientBuilder {
        self.retry = retry;
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base_url = self.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "the base URL must be http(s)://…, not {base_url:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| Error::Usage(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                app_id: self.app_id,
                key: self.key,
                platform_key: self.platform_key,
                timeout: self.timeout,
                retry: self.retry,
            }),
        })
    }
}

impl Client {
    /// A client of app `app_id` at `base_url`, signing with the merchant's `key` and believing
    /// only what `platform_key` (`kassa keys platform`) signed.
    pub fn builder(
        base_url: impl Into<String>,
        app_id: i64,
        key: SigningKey,
        platform_key: VerifyingKey,
    ) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            app_id,
            key,
            platform_key,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    pub fn app_id(&self) -> i64 {
        self.inner.app_id
    }

    /// The collect API of a currency (USD or EUR).
    pub fn collect(&self, currency: Currency) -> Result<collect::Collect<'_>, Error> {
        if currency == Currency::Brl {
            return Err(Error::Usage(
                "BRL orders are PIX orders: use Client::pix".into(),
            ));
        }
        Ok(collect::Collect {
            client: self,
            currency,
        })
    }

    /// The PIX API (BRL).
    pub fn pix(&self) -> pix::Pix<'_> {
        pix::Pix { client: self }
    }

    /// The signature of fields: the canonical string signed with the merchant's key.
    fn sign_fields(&self, fields: &Map<String, Value>) -> String {
        let canonical =
            kassa_signature::canonical_of_map(fields).expect("the client builds flat objects");
        self.inner.key.sign_base64(canonical.as_bytes())
    }

    /// A collect body: the fields with `sign` set.
    fn sign_body(&self, mut fields: Map<String, Value>) -> String {
        kassa_signature::sign_map(&self.inner.key, &mut fields);
        serde_json::to_string(&fields).expect("a map serialises")
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<transport::Answer, Error> {
        let url = format!("{}{path}", self.inner.base_url);
        let inner = &self.inner;
        transport::post(&inner.http, inner.timeout, inner.retry, &url, headers, body).await
    }
}
