//! Whether this node can reach its database, known at all times: a prober asks every second
//! (each ask bounded to [`CHECK_TIMEOUT_MS`]), and the database counts as down after
//! [`DOWN_AFTER_FAILED_ASKS`] failed asks in a row; `/healthz` answers from its own bounded ask;
//! `/readyz` also says whether the node should get traffic (schema current, not draining); and
//! while the database is known to be down, merchant and payer requests are answered 503 with
//! `Retry-After` at once (see `shed`) instead of each waiting out the pool's timeout. When the
//! database answers again, everything recovers by itself.

use crate::Gateway;
use kassa_store::SettingStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The longest one ask of the database may take before it counts as failed.
pub const CHECK_TIMEOUT_MS: u64 = 800;
/// Failed asks in a row before the database counts as down: one slow answer on a machine
/// starved of CPU is not an outage, and calling it one would refuse every request for a second.
pub const DOWN_AFTER_FAILED_ASKS: u32 = 2;

/// The last verdict on the database; up until a check says otherwise. And whether the node is
/// draining: shutting down, so that load balancers stop sending to it before it stops.
#[derive(Debug)]
pub struct DatabaseHealth {
    up: AtomicBool,
    failed_asks_in_a_row: AtomicU32,
    draining: AtomicBool,
}

impl Default for DatabaseHealth {
    fn default() -> Self {
        DatabaseHealth {
            up: AtomicBool::new(true),
            failed_asks_in_a_row: AtomicU32::new(0),
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

    /// Asks the database once, within [`CHECK_TIMEOUT_MS`], and returns the verdict: up on an
    /// answer, down after [`DOWN_AFTER_FAILED_ASKS`] failed asks in a row.
    pub async fn check(&self, store: &dyn SettingStore) -> bool {
        let answered = self.ask(store).await;
        let up = if answered {
            self.failed_asks_in_a_row.store(0, Ordering::Relaxed);
            true
        } else {
            let failed = self.failed_asks_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
            failed < DOWN_AFTER_FAILED_ASKS && self.up.load(Ordering::Relaxed)
        };
        let was_up = self.up.swap(up, Ordering::Relaxed);
        if was_up != up {
            tracing::warn!(up, "database reachability changed");
        }
        up
    }

    /// One ask, bounded in time: whether the database answered.
    async fn ask(&self, store: &dyn SettingStore) -> bool {
        let ask = store.setting(crate::keys::PLATFORM_KEY_SETTING);
        match tokio::time::timeout(Duration::from_millis(CHECK_TIMEOUT_MS), ask).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "database check failed");
                false
            }
            Err(_) => {
                tracing::warn!(timeout_ms = CHECK_TIMEOUT_MS, "database check timed out");
                false
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_store::{AuditEntry, StoreError, StoreResult};
    use std::sync::atomic::AtomicBool;

    /// Settings that answer, or fail as an unreachable database does, as the test says.
    #[derive(Default)]
    struct Settings {
        failing: AtomicBool,
    }

    #[async_trait::async_trait]
    impl SettingStore for Settings {
        async fn setting_or_insert(&self, _: &str, value: &str, _: i64) -> StoreResult<String> {
            Ok(value.to_string())
        }
        async fn set_setting(
            &self,
            _: &str,
            _: &str,
            _: i64,
            _: Option<&AuditEntry>,
        ) -> StoreResult<()> {
            Ok(())
        }
        async fn setting(&self, _: &str) -> StoreResult<Option<String>> {
            if self.failing.load(Ordering::Relaxed) {
                Err(StoreError::Unavailable("connection refused".into()))
            } else {
                Ok(None)
            }
        }
    }

    #[tokio::test]
    async fn one_failed_ask_is_not_an_outage_two_in_a_row_are() {
        let (health, settings) = (DatabaseHealth::default(), Settings::default());
        settings.failing.store(true, Ordering::Relaxed);
        assert!(health.check(&settings).await, "one failed ask");
        assert!(!health.check(&settings).await, "two in a row");
        assert!(!health.is_up());
        assert!(!health.check(&settings).await, "still down");
        settings.failing.store(false, Ordering::Relaxed);
        assert!(health.check(&settings).await, "one answer ends it");
        settings.failing.store(true, Ordering::Relaxed);
        assert!(health.check(&settings).await, "the count began again");
        settings.failing.store(false, Ordering::Relaxed);
        assert!(health.check(&settings).await);
        settings.failing.store(true, Ordering::Relaxed);
        assert!(
            health.check(&settings).await,
            "failures apart are not in a row"
        );
    }
}
