//! The admin listener: `/metrics` for Prometheus, `/healthz` and `/readyz` for load balancers
//! and probes. It listens apart from the public port (loopback by default), so merchants and
//! payers never reach it; the public port keeps its own `/healthz` and `/readyz`.

use crate::health::{self, CHECK_TIMEOUT_MS};
use crate::{Gateway, now_ms, telemetry};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;

/// The Prometheus text format's content type.
const EXPOSITION_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Admin {
    gateway: Arc<Gateway>,
    /// `None` when metrics are off.
    exporter: Option<PrometheusHandle>,
}

/// The admin listener's routes.
pub fn router(gateway: Arc<Gateway>, exporter: Option<PrometheusHandle>) -> Router {
    let health_routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(gateway.clone());
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Admin { gateway, exporter })
        .merge(health_routes)
}

/// `GET /metrics`: the exposition, with the gauges of stored state read now (bounded in time:
/// an unanswering database leaves them as last read and `kassa_database_up` says so).
async fn metrics(State(admin): State<Admin>) -> Response {
    let Some(exporter) = &admin.exporter else {
        return (StatusCode::NOT_FOUND, "metrics are off (--metrics false)\n").into_response();
    };
    let gateway = &admin.gateway;
    let now = now_ms();
    let timeout = Duration::from_millis(CHECK_TIMEOUT_MS);
    let backlog = match tokio::time::timeout(timeout, gateway.store.backlog(now)).await {
        Ok(Ok(backlog)) => Some(backlog),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the backlog for metrics");
            None
        }
        Err(_) => None,
    };
    let differences = gateway.store.reconciliation_differences();
    match tokio::time::timeout(timeout, differences).await {
        Ok(Ok(counts)) => telemetry::reconciliation_differences(&counts),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot read reconciliation differences"),
        Err(_) => {}
    }
    let ready = health::readiness(gateway).await.is_ok();
    let pool = gateway.store.pool_status();
    let database_up = gateway.database.is_up();
    telemetry::scraped_state(backlog.as_ref(), pool, database_up, ready, now);
    let mut body = exporter.render();
    body.push_str(&telemetry::process_exposition());
    ([(header::CONTENT_TYPE, EXPOSITION_TYPE)], body).into_response()
}
