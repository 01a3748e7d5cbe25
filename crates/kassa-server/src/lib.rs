//! kassa's HTTP server: the merchant-facing dialects, the payer-facing cashier routes, and
//! the shared state that wires the core, the store, the rails and the signature rules together.
//!
//! Three seams hold it together: [`dialect::Dialect`] (each merchant API), [`rails::Rail`]
//! (where money moves) and `kassa_store::Store` (the database). Handlers stay thin: parse and
//! check the wire format, call the core, store, sign, reply.

pub mod accounts;
pub mod admin;
pub mod backoffice;
pub mod cache;
pub mod callback_client;
pub mod cashier;
pub mod collect;
pub mod dialect;
pub mod dispatcher;
pub mod fairness;
pub mod front;
pub mod health;
pub mod http_metrics;
pub mod ids;
pub mod keys;
pub mod lifecycle;
pub mod listen;
pub mod logo;
pub mod notary;
pub mod onboarding;
pub mod openapi;
pub mod passwords;
pub mod payer_text;
pub mod pix;
pub mod pix_location;
pub mod process_stats;
pub mod qr;
pub mod rails;
pub mod ratelimit;
pub mod report;
pub mod request_id;
pub mod retention;
pub mod sealing;
pub mod settlement;
pub mod shed;
pub mod ssrf;
pub mod status_watch;
pub mod sweeper;
pub mod telemetry;
pub mod totp;
pub mod wire;

use axum::Router;
use axum::routing::get;
use kassa_store::Store;
use std::sync::Arc;

/// Everything a request handler needs. Built once at start by [`Gateway::new`]; shared by all
/// requests.
pub struct Gateway {
    pub store: Arc<dyn Store>,
    /// Signs every reply and callback (platform key, parsed once) and dates them.
    pub notary: notary::Notary,
    /// Merchants' public keys, parsed once per registered key.
    pub merchant_keys: keys::MerchantKeys,
    pub config: ServerConfig,
    /// The merchant-facing dialects this gateway speaks.
    pub dialects: Arc<dialect::Dialects>,
    /// Where payments are made, and which rail takes a new order.
    pub rails: rails::Rails,
    /// Wakes this process's callback dispatcher when a status change queued a callback.
    pub dispatcher_wake: Arc<tokio::sync::Notify>,
    /// SSRF verdicts on callback and redirect hosts, cached.
    pub targets: ssrf::TargetChecker,
    /// Signs the payer's forms (CSRF tokens).
    pub form_key: keys::FormKey,
    /// App rows, briefly (see `ServerConfig::app_cache_ttl_ms`).
    pub apps: cache::AppCache,
    /// Signed query replies per order state.
    pub replies: cache::ReplyCache,
    /// Per-app request budgets (see `ServerConfig::app_rate_limit_per_s`).
    pub app_rates: ratelimit::AppRates,
    /// Whether the database answers, as last checked (see [`health`]).
    pub database: Arc<health::DatabaseHealth>,
    /// Payers' pages waiting for their order to change.
    pub status_watch: Arc<status_watch::StatusWatch>,
}

/// What a gateway is built from; everything else it holds starts empty.
pub struct GatewayParts {
    pub store: Arc<dyn Store>,
    pub notary: notary::Notary,
    pub form_key: keys::FormKey,
    pub config: ServerConfig,
    pub dialects: dialect::Dialects,
    pub rails: rails::Rails,
    /// Poked when a status change queued a callback (the dispatcher waits on it).
    pub dispatcher_wake: Arc<tokio::sync::Notify>,
}

impl Gateway {
    /// The one way to build a gateway, for `kassa serve` and the tests alike.
    pub fn new(parts: GatewayParts) -> Gateway {
        let app_cache_ttl = std::time::Duration::from_millis(parts.config.app_cache_ttl_ms);
        let status_watch = status_watch::StatusWatch::new(parts.config.max_status_waiters);
        Gateway {
            store: parts.store,
            notary: parts.notary,
            merchant_keys: keys::MerchantKeys::default(),
            config: parts.config,
            dialects: Arc::new(parts.dialects),
            rails: parts.rails,
            dispatcher_wake: parts.dispatcher_wake,
            targets: ssrf::TargetChecker::default(),
            form_key: parts.form_key,
            apps: cache::AppCache::new(app_cache_ttl),
            replies: cache::ReplyCache::default(),
            app_rates: ratelimit::AppRates::default(),
            database: Arc::default(),
            status_watch,
        }
    }

    /// Changes orders with this gateway's store, notary and dialects.
    pub fn lifecycle(&self) -> lifecycle::Lifecycle<'_> {
        lifecycle::Lifecycle {
            store: self.store.as_ref(),
            notary: &self.notary,
            dialects: &self.dialects,
        }
    }

    /// Applies an event to an order (see [`lifecycle::Lifecycle::apply_event`]) and wakes the
    /// dispatcher for the callback it may have queued.
    pub async fn change_order(
        &self,
        order_no: &kassa_core::OrderNo,
        event: &kassa_core::OrderEvent,
    ) -> Result<kassa_core::Order, lifecycle::LifecycleError> {
        let order = self
            .lifecycle()
            .apply_event(order_no, event, now_ms())
            .await?;
        self.dispatcher_wake.notify_one();
        Ok(order)
    }

    /// Applies a person's event with its audit entry, written in the transaction of the change
    /// (see [`lifecycle::Lifecycle::apply_event_audited`]), and wakes the dispatcher.
    pub async fn change_order_audited(
        &self,
        order_no: &kassa_core::OrderNo,
        event: &kassa_core::OrderEvent,
        audit: &kassa_store::AuditEntry,
    ) -> Result<kassa_core::Order, lifecycle::LifecycleError> {
        let order = self
            .lifecycle()
            .apply_event_audited(order_no, event, now_ms(), Some(audit))
            .await?;
        self.dispatcher_wake.notify_one();
        Ok(order)
    }

    /// Applies what a rail reported (see [`lifecycle::Lifecycle::apply_rail_outcome`]) and
    /// wakes the dispatcher.
    pub async fn settle_from_rail(
        &self,
        order_no: &kassa_core::OrderNo,
        outcome: &kassa_core::RailOutcome,
    ) -> Result<kassa_core::Order, lifecycle::LifecycleError> {
        let order = self
            .lifecycle()
            .apply_rail_outcome(order_no, outcome, now_ms())
            .await?;
        self.dispatcher_wake.notify_one();
        Ok(order)
    }

    /// Changes an order with `edit` (see [`lifecycle::Lifecycle::change`]) and wakes the
    /// dispatcher.
    pub async fn change<F>(
        &self,
        order_no: &kassa_core::OrderNo,
        edit: F,
    ) -> Result<kassa_core::Order, lifecycle::LifecycleError>
    where
        F: Fn(&mut kassa_core::Order) -> Result<(), lifecycle::LifecycleError>,
    {
        let order = self.lifecycle().change(order_no, now_ms(), edit).await?;
        self.dispatcher_wake.notify_one();
        Ok(order)
    }
}

impl dialect::Dialects {
    /// The dialects of the seeds: `collect`, then `pix`. Registered here, in the crate root,
    /// so that the dialect machinery itself names no dialect.
    pub fn standard() -> dialect::Dialects {
        dialect::Dialects::default()
            .with(collect::Collect)
            .with(pix::Pix)
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
    /// The longest a request's body may take to arrive (never more than the request timeout);
    /// until it has, the request holds no slot of `max_in_flight`.
    pub body_read_timeout_ms: u64,
    /// Bodies one client address may be sending at once; more are answered 503.
    pub max_uploads_per_address: usize,
    /// Accept callback and redirect targets on private and loopback addresses (sandboxes, tests).
    pub allow_private_targets: bool,
    /// The only ports callback and redirect targets may use; empty: any port.
    pub allowed_target_ports: Vec<u16>,
    /// How long an app row is reused before it is read again: an operator's change to an app
    /// takes effect within this time. 0 reads it on every request.
    pub app_cache_ttl_ms: u64,
    /// Most requests handled at once, counted apart for the merchant APIs and for the rest
    /// (payer pages, health); more are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Verified merchant-API requests each app may make per second (bursts of as many);
    /// above it, 429 with `Retry-After`. 0: no limit.
    pub app_rate_limit_per_s: u32,
    /// Payers' pages that may wait at once for their order to change (the PIX page's long
    /// poll); they hold no slot of `max_in_flight`. More are answered 503 and poll instead.
    pub max_status_waiters: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: "http://127.0.0.1:8080".into(),
            collect_order_lifetime_ms: 30 * 60 * 1000,
            pix_order_lifetime_ms: 24 * 60 * 60 * 1000,
            request_timeout_ms: 30_000,
            body_read_timeout_ms: 10_000,
            max_uploads_per_address: 16,
            allow_private_targets: false,
            allowed_target_ports: Vec::new(),
            app_cache_ttl_ms: 1_000,
            max_in_flight: 1_024,
            app_rate_limit_per_s: 0,
            max_status_waiters: 20_000,
        }
    }
}

/// Milliseconds since the Unix epoch: the one place the server reads the clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The whole HTTP surface: every dialect's routes, the payer's pages, operations.
///
/// The layers every request passes wrap the routed router once, from outside, as one service
/// ([`front::Front`]), instead of each route through `Router::layer`: a route's layers are boxed
/// services that axum clones, box by box, for every request (43 allocations of a query's 185
/// went to that).
pub fn router(gateway: Arc<Gateway>) -> Router {
    let mut routes = Router::new();
    for dialect in gateway.dialects.iter() {
        routes = routes.merge(dialect.routes());
    }
    let document = openapi::document_of(&gateway.dialects);
    let in_flight = Arc::new(shed::InFlight::new(
        &gateway.config,
        gateway.dialects.clone(),
        gateway.database.clone(),
    ));
    let dialects = gateway.dialects.clone();
    let routed = routes
        .merge(cashier::routes())
        .merge(pix_location::routes())
        .merge(rails::callback::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(docs(document))
        // Inside the router, where the matched route is known, for the metrics' route label.
        .route_layer(front::MarkRouteLayer)
        .fallback(dialect::unknown_endpoint)
        .method_not_allowed_fallback(dialect::wrong_method)
        .with_state(gateway);
    let layered = front::Front::new(routed, dialects, in_flight);
    Router::new().fallback_service(layered)
}

/// Only kassa's own files for Swagger UI (scripts and styles it serves itself; the inline
/// styles and `data:` icons Swagger UI draws with); no framing.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Swagger UI at `/docs` and the description at `/openapi.json`, under a strict CSP.
fn docs(document: utoipa::openapi::OpenApi) -> Router<Arc<Gateway>> {
    let swagger = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document);
    Router::new()
        .merge(swagger)
        .layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                let headers = response.headers_mut();
                headers.insert(
                    axum::http::header::CONTENT_SECURITY_POLICY,
                    axum::http::HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
                );
                headers.insert(
                    axum::http::header::X_CONTENT_TYPE_OPTIONS,
                    axum::http::HeaderValue::from_static("nosniff"),
                );
                response
            },
        ))
}
