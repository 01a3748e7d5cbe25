//! Whether this node can reach its database, known at all times: a prober asks every second
//! (each ask bounded to [`CHECK_TIMEOUT_MS`]); `/healthz` answers from its own bounded ask;
//! `/readyz` also says whether the node should get traffic (schema current, not draining); and
//! while the database is known to be down, merchant and payer requests are answered 503 with
//! `Retry-After` at once (see `shed`) instead of each waiting out the pool's timeout. When the
//! database answers again, everything recovers by itself.

use crate::Gateway;
use kassa_store::SettingStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The longest one ask of the database may take before it counts as down.
pub const CHECK_TIMEOUT_MS: u64 = 800;

/// The last verdict on the database; up until a check says otherwise. And whether the node is
/// draining: shutting down, so that load balancers stop sending to it before it stops.
#[derive(Debug)]
pub struct DatabaseHealth {
    up: AtomicBool,
    draining: AtomicBool,
}

impl Default for DatabaseHealth {
    fn default() -> Self {
        DatabaseHealth {
            up: AtomicBool::new(true),
            draining: AtomicBool::new(false),
        }
    }
}

impl DatabaseHealth {
    /// From now on `/readyz` answers 503: the node is going away.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Asks the database once, within [`CHECK_TIMEOUT_MS`], and records the verdict.
    pub async fn check(&self, store: &dyn SettingStore) -> bool {
        let ask = store.setting(crate::keys::PLATFORM_KEY_SETTING);
        let up = match tokio::time::timeout(Duration::from_millis(CHECK_TIMEOUT_MS), ask).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "database check failed");
                false
            }
            Err(_) => {
                tracing::warn!(timeout_ms = CHECK_TIMEOUT_MS, "database check timed out");
                false
            }
        };
        let was_up = self.up.swap(up, Ordering::Relaxed);
        if was_up != up {
            tracing::warn!(up, "database reachability changed");
        }
        up
    }
}

/// Checks the database every `interval_ms` until `shutdown` turns true.
pub async fn run(gateway: Arc<Gateway>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        gateway.database.check(gateway.store.as_ref()).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// `GET /healthz`: whether this node can reach its database, answered within a second.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Health check",
    operation_id = "health",
    responses(
        (status = 200, description = "Ready.", body = String, content_type = "text/plain"),
        (status = 503, description = "The database is unreachable.", body = String, content_type = "text/plain"),
    )
)]
pub async fn healthz(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
) -> (axum::http::StatusCode, &'static str) {
    if gateway.database.check(gateway.store.as_ref()).await {
        (axum::http::StatusCode::OK, "ok\n")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable\n",
        )
    }
}

/// `GET /readyz`: whether this node should get traffic: not draining, the database answers,
/// and its schema is the one this build expects. The platform key is loaded before a node
/// serves at all.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness check",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready for traffic.", body = String, content_type = "text/plain"),
        (status = 503, description = "Draining, the database is unreachable, or migrations are pending.", body = String, content_type = "text/plain"),
    )
)]
pub async fn readyz(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
) -> (axum::http::StatusCode, &'static str) {
    match readiness(&gateway).await {
        Ok(()) => (axum::http::StatusCode::OK, "ready\n"),
        Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Ready, or why not (the text `/readyz` answers).
pub async fn readiness(gateway: &Gateway) -> Result<(), &'static str> {
    if gateway.database.is_draining() {
        return Err("draining\n");
    }
    if !gateway.database.check(gateway.store.as_ref()).await {
        return Err("database unreachable\n");
    }
    let pending = gateway.store.pending_migrations();
    match tokio::time::timeout(Duration::from_millis(CHECK_TIMEOUT_MS), pending).await {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(_)) => Err("migrations pending\n"),
        _ => Err("database unreachable\n"),
    }
}
