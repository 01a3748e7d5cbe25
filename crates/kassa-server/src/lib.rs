//! kassa's HTTP server: the merchant-facing dialects, the payer-facing cashier routes, and
//! the shared state that wires the core, the store and the signature rules together.
//!
//! Handlers stay thin: parse and check the wire format, call the core, store, sign, reply.

pub mod cache;
pub mod cashier;
pub mod collect;
pub mod dialect;
pub mod dispatcher;
pub mod ids;
pub mod keys;
pub mod lifecycle;
pub mod listen;
pub mod notary;
pub mod openapi;
pub mod pix;
pub mod qr;
pub mod rails;
pub mod ratelimit;
pub mod shed;
pub mod ssrf;
pub mod sweeper;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};
use kassa_store::Store;
use std::sync::Arc;

/// Everything a request handler needs. Built once at start; shared by all requests.
pub struct Gateway {
    pub store: Arc<dyn Store>,
    /// Signs every reply and callback (platform key, parsed once) and dates them.
    pub notary: notary::Notary,
    /// Merchants' public keys, parsed once per registered key.
    pub merchant_keys: keys::MerchantKeys,
    pub config: ServerConfig,
    /// Wakes this process's callback dispatcher when a status change queued a callback.
    pub dispatcher_wake: Arc<tokio::sync::Notify>,
    /// SSRF verdicts on callback and redirect hosts, cached.
    pub targets: ssrf::TargetChecker,
    /// Where payments are made (the sandbox rail for now).
    pub rail: Arc<dyn rails::Rail>,
    /// Signs the payer's forms (CSRF tokens).
    pub form_key: keys::FormKey,
    /// App rows, briefly (see `ServerConfig::app_cache_ttl_ms`).
    pub apps: cache::AppCache,
    /// Signed query replies per order state.
    pub replies: cache::ReplyCache,
    /// Per-app request budgets (see `ServerConfig::app_rate_limit_per_s`).
    pub app_rates: ratelimit::AppRates,
}

impl Gateway {
    /// Applies an event to an order (see [`lifecycle::apply_event`]) and wakes the dispatcher
    /// for the callback it may have queued.
    pub async fn change_order(
        &self,
        order_no: &kassa_core::OrderNo,
        event: &kassa_core::OrderEvent,
    ) -> Result<kassa_core::Order, lifecycle::LifecycleError> {
        let order =
            lifecycle::apply_event(self.store.as_ref(), &self.notary, order_no, event, now_ms())
                .await?;
        self.dispatcher_wake.notify_one();
        Ok(order)
    }

    /// Changes an order with `edit` (see [`lifecycle::change`]) and wakes the dispatcher.
    pub async fn change<F>(
        &self,
        order_no: &kassa_core::OrderNo,
        edit: F,
    ) -> Result<kassa_core::Order, lifecycle::LifecycleError>
    where
        F: Fn(&mut kassa_core::Order) -> Result<(), lifecycle::LifecycleError>,
    {
        let order =
            lifecycle::change(self.store.as_ref(), &self.notary, order_no, now_ms(), edit).await?;
        self.dispatcher_wake.notify_one();
        Ok(order)
    }
}

/// Settings of the HTTP side that the operator chooses.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The base URL payers reach kassa at, without a trailing slash; `payUrl` starts with it.
    pub public_url: String,
    /// How long a `collect` order waits for its payer before it expires.
    pub collect_order_lifetime_ms: i64,
    /// How long a `pix` order waits for its payment before it expires.
    pub pix_order_lifetime_ms: i64,
    /// The longest a request may take end to end.
    pub request_timeout_ms: u64,
    /// Accept callback and redirect targets on private and loopback addresses (sandboxes, tests).
    pub allow_private_targets: bool,
    /// How long an app row is reused before it is read again: an operator's change to an app
    /// takes effect within this time. 0 reads it on every request.
    pub app_cache_ttl_ms: u64,
    /// Most requests handled at once; more are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Verified merchant-API requests each app may make per second (bursts of as many);
    /// above it, 429 with `Retry-After`. 0: no limit.
    pub app_rate_limit_per_s: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: "http://127.0.0.1:8080".into(),
            collect_order_lifetime_ms: 30 * 60 * 1000,
            pix_order_lifetime_ms: 24 * 60 * 60 * 1000,
            request_timeout_ms: 30_000,
            allow_private_targets: false,
            app_cache_ttl_ms: 1_000,
            max_in_flight: 1_024,
            app_rate_limit_per_s: 0,
        }
    }
}

/// Milliseconds since the Unix epoch: the one place the server reads the clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The whole HTTP surface.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/{currency}/collect/apply", post(collect::apply))
        .route("/{currency}/collect/query", post(collect::query))
        .route("/accountProxyCollect/initCollect", post(pix::init_collect))
        .route("/proxyCollectQuery/query", post(pix::query))
        .route("/pay/{token}", get(cashier::serve_page))
        .route("/pay/{token}/method", post(cashier::choose_method))
        .route("/pay/{token}/outcome", post(cashier::submit_outcome))
        .route("/pay/{token}/status", get(cashier::status))
        .route("/pay/{token}/qr.png", get(cashier::qr_png))
        .route("/assets/pix.js", get(cashier::pix_script))
        .route("/healthz", get(health))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::document()))
        .fallback(collect::unknown_endpoint)
        .layer(axum::extract::DefaultBodyLimit::max(
            dialect::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shed::InFlight::new(
                gateway.config.max_in_flight,
                gateway.config.request_timeout_ms,
            ),
            shed::limit,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(gateway)
}

/// `GET /healthz`: whether this node can reach its database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Health check",
    responses(
        (status = 200, description = "Ready.", body = String, content_type = "text/plain"),
        (status = 503, description = "The database is unreachable.", body = String, content_type = "text/plain"),
    )
)]
async fn health(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
) -> (axum::http::StatusCode, &'static str) {
    match gateway.store.setting(keys::PLATFORM_KEY_SETTING).await {
        Ok(_) => (axum::http::StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable\n",
            )
        }
    }
}
