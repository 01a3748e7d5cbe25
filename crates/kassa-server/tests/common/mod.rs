//! The test server shared by the HTTP suites: a real `kassa` router on a loopback port over a
//! fresh database, with a shop (EUR and USD apps), another merchant and a keyless app.
#![allow(dead_code)] // each suite uses its own subset

use kassa_core::{AppId, Currency};
use kassa_server::dialect::Dialects;
use kassa_server::keys::{FormKey, load_or_create_platform_key};
pub use kassa_server::listen::ConnectionLimits;
use kassa_server::notary::Notary;
use kassa_server::rails::Rails;
use kassa_server::{Gateway, GatewayParts, ServerConfig, now_ms, router};
use kassa_signature::{SigningKey, VerifyingKey, sign_map, verify_json};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{SqlStore, Store};
use serde_json::{Map, Value, json};
use std::sync::{Arc, OnceLock};

/// The shop's receiving PIX key (a random EVP key).
pub const PIX_KEY: &str = "7d9f0335-8dcc-4054-9bf9-0dbd61d36906";

pub fn merchant_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap())
}

pub fn other_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap())
}

pub struct Server {
    pub gateway: Arc<Gateway>,
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<SqlStore>,
    pub platform: VerifyingKey,
    pub eur: AppId,
    pub usd: AppId,
    /// The shop's BRL app, with a receiving PIX key.
    pub brl: AppId,
    /// The other merchant's BRL app, without a PIX key.
    pub other_brl: AppId,
    /// A EUR app of another merchant, with another key.
    pub other_eur: AppId,
    /// A EUR app with no key registered.
    pub keyless_eur: AppId,
    _db: TestDatabase,
}

impl Server {
    /// Creates a PIX order of the shop's BRL app, signed as a merchant signs; the reply.
    pub async fn create_pix(&self, number: &str, amount: &str) -> Value {
        let body = json!({"userOrderNumber": number, "submitAmount": amount,
            "paymentType": "PIX", "currencyType": "BRL"})
        .to_string();
        let canonical = kassa_signature::parse_signed_object(&body)
            .unwrap()
            .canonical;
        self.client
            .post(format!("{}/accountProxyCollect/initCollect", self.base))
            .header("content-type", "application/json")
            .header("x-app-id", self.brl.0.to_string())
            .header("x-sign", merchant_key().sign_base64(canonical.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn start(db: TestDatabase) -> Server {
        Server::start_with(db, false).await
    }

    pub async fn start_allowing_private_targets(db: TestDatabase) -> Server {
        Server::start_with(db, true).await
    }

    pub async fn start_with(db: TestDatabase, allow_private_targets: bool) -> Server {
        Server::start_configured(db, |config| {
            config.allow_private_targets = allow_private_targets
        })
        .await
    }

    /// A server whose configuration `configure` adjusts, dating replies in UTC.
    pub async fn start_configured(
        db: TestDatabase,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Server {
        Server::start_in_zone(db, configure, jiff::tz::TimeZone::UTC).await
    }

    /// A server whose configuration `configure` adjusts, dating replies in `timezone`.
    pub async fn start_in_zone(
        db: TestDatabase,
        configure: impl FnOnce(&mut ServerConfig),
        timezone: jiff::tz::TimeZone,
    ) -> Server {
        Server::start_full(db, configure, timezone, ConnectionLimits::default()).await
    }

    /// A server with its connection limits chosen too.
    pub async fn start_full(
        db: TestDatabase,
        configure: impl FnOnce(&mut ServerConfig),
        timezone: jiff::tz::TimeZone,
        limits: ConnectionLimits,
    ) -> Server {
        let seams = (Dialects::standard(), Rails::standard());
        Server::start_seams(db, configure, timezone, limits, seams).await
    }

    /// A server that speaks `dialects` and pays through `rails`.
    pub async fn start_registered(db: TestDatabase, dialects: Dialects, rails: Rails) -> Server {
        let (utc, limits) = (jiff::tz::TimeZone::UTC, ConnectionLimits::default());
        Server::start_seams(db, |_| {}, utc, limits, (dialects, rails)).await
    }

    async fn start_seams(
        db: TestDatabase,
        configure: impl FnOnce(&mut ServerConfig),
        timezone: jiff::tz::TimeZone,
        limits: ConnectionLimits,
        (dialects, rails): (Dialects, Rails),
    ) -> Server {
        let store = Arc::new(db.store().await);
        let (kek, _) = kassa_server::sealing::Kek::generate();
        let platform_key = load_or_create_platform_key(store.as_ref(), &kek, now_ms())
            .await
            .unwrap();
        let form_key = FormKey::load_or_create(store.as_ref(), &kek, now_ms())
            .await
            .unwrap();
        let platform = platform_key.verifying_key().clone();
        let pem = merchant_key().public_key_pem();
        let shop = store
            .create_merchant(
                "Shop",
                &apps(&[Currency::Eur, Currency::Usd, Currency::Brl]),
                Some(&pem),
                1,
                None,
            )
            .await
            .unwrap();
        let other = store
            .create_merchant(
                "Other",
                &apps(&[Currency::Eur, Currency::Brl]),
                Some(&other_key().public_key_pem()),
                1,
                None,
            )
            .await
            .unwrap();
        let keyless = store
            .create_merchant("Keyless", &apps(&[Currency::Eur]), None, 1, None)
            .await
            .unwrap();
        let receiver =
            kassa_core::pix::PixReceiver::new(PIX_KEY, "Loja São João", "São Paulo").unwrap();
        store
            .set_app_pix(shop.apps[2].app_id, Some(&receiver), 1, None)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = ServerConfig {
            public_url: base.clone(),
            ..ServerConfig::default()
        };
        // Tests change apps and expect the next request to see it: no app caching here.
        config.app_cache_ttl_ms = 0;
        configure(&mut config);
        let gateway = Arc::new(Gateway::new(GatewayParts {
            store: store.clone() as Arc<dyn Store>,
            notary: Notary::new(platform_key, timezone),
            form_key,
            config,
            dialects,
            rails,
            dispatcher_wake: Default::default(),
        }));
        let served = gateway.clone();
        tokio::spawn(async move {
            kassa_server::listen::serve(listener, router(served), limits, std::future::pending())
                .await
                .unwrap()
        });
        Server {
            base,
            client: reqwest::Client::new(),
            gateway,
            store,
            platform,
            eur: shop.apps[0].app_id,
            usd: shop.apps[1].app_id,
            brl: shop.apps[2].app_id,
            other_brl: other.apps[1].app_id,
            other_eur: other.apps[0].app_id,
            keyless_eur: keyless.apps[0].app_id,
            _db: db,
        }
    }

    /// The URL of the server's database, for tests that reach under the store.
    pub fn database_url(&self) -> String {
        self._db.url.clone()
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Posts a body as given and parses the JSON reply.
    pub async fn post_json(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let (status, text) = self.post_raw(path, body).await;
        let reply = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, reply)
    }

    /// Signs with the shop's key, posts, and parses the reply.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_json(path, signed(body, merchant_key())).await
    }

    pub fn apply_body(&self, order_id: &str) -> Value {
        json!({
            "appId": self.eur.0,
            "orderId": order_id,
            "name": "Maria Jansen",
            "phone": "+31612345678",
            "email": "maria@example.nl",
            "amount": "25.00",
            "payType": "CASHIER",
            "inBankCode": "CASHIER",
            "country": "528",
            "callBackUrl": "https://shop.example/ok",
            "callBackFailUrl": "https://shop.example/fail",
            "notifyUrl": "https://shop.example/notify",
            "subject": "Order 42",
            "partnerUserId": "149597870"
        })
    }

    /// The signed `data` of a success reply, checked against the platform key.
    pub fn verified_data(&self, reply: &Value) -> Map<String, Value> {
        assert_eq!(reply["status"], "1", "{reply}");
        assert_eq!(reply["error"], "00000000");
        assert_eq!(reply["msg"], "");
        let data = reply["data"].as_object().unwrap().clone();
        verify_json(&self.platform, &serde_json::to_string(&data).unwrap()).unwrap();
        data
    }
}

pub fn apps(currencies: &[Currency]) -> Vec<kassa_store::NewApp> {
    currencies
        .iter()
        .map(|&currency| kassa_store::NewApp {
            currency,
            webhook_secret: kassa_core::Secret::new(kassa_signature::webhook::generate_secret()),
        })
        .collect()
}

pub fn signed(body: &Value, key: &SigningKey) -> String {
    let mut map = body.as_object().unwrap().clone();
    if map.values().any(|v| v.is_object() || v.is_array()) {
        // Nested values cannot be signed; kassa must refuse them before checking any sign.
        map.insert("sign".into(), json!("unsignable"));
        return serde_json::to_string(&map).unwrap();
    }
    sign_map(key, &mut map);
    serde_json::to_string(&map).unwrap()
}

pub fn assert_error(reply: &(u16, Value), http: u16, code: &str, field: &str) {
    let (status, body) = reply;
    assert_eq!(
        (*status, body["error"].as_str().unwrap_or("")),
        (http, code),
        "{body}"
    );
    assert_eq!(body["status"], "0");
    assert!(body.get("data").is_none(), "{body}");
    let msg = body["msg"].as_str().unwrap();
    assert!(msg.contains(field), "msg {msg:?} should name {field:?}");
}
