//! Retention: final orders older than the order retention move to the archive, and callbacks
//! delivered or given up longer ago than the callback retention are deleted with their attempts
//! (the store's `RetentionStore`). Every node runs it; batches are small, and after each one the
//! task waits [`PAUSE_PER_BATCH_TIME`] times as long as the batch took, so retention takes at
//! most a fifth of the database's write time and creates and payments keep their pace while a
//! backlog of months is worked off.

use kassa_store::{Store, StoreError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Orders moved, or callbacks deleted, per batch.
pub const BATCH: i64 = 500;
/// After a batch, the pause is this many times the batch's own time.
const PAUSE_PER_BATCH_TIME: u32 = 4;
/// The shortest order retention: merchants query orders and retry creates well within it, and
/// an archived order's id may be used again.
pub const MIN_ORDER_RETENTION_MS: u64 = 30 * 86_400_000;
/// The shortest callback retention: the operator looks into failed deliveries within it.
pub const MIN_CALLBACK_RETENTION_MS: u64 = 86_400_000;
/// The longest retention either may have (ten years).
pub const MAX_RETENTION_MS: u64 = 3_650 * 86_400_000;

/// How long what is kept stays in the hot tables; `None` keeps it there for good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub order_retention_ms: Option<u64>,
    pub callback_retention_ms: Option<u64>,
}

impl RetentionPolicy {
    pub fn is_off(&self) -> bool {
        self.order_retention_ms.is_none() && self.callback_retention_ms.is_none()
    }

    /// Refuses a retention too short to be safe or too long to mean anything.
    pub fn check(&self) -> Result<(), String> {
        let bounds = [
            ("order", self.order_retention_ms, MIN_ORDER_RETENTION_MS),
            (
                "callback",
                self.callback_retention_ms,
                MIN_CALLBACK_RETENTION_MS,
            ),
        ];
        for (what, retention_ms, min_ms) in bounds {
            let Some(ms) = retention_ms else { continue };
            if !(min_ms..=MAX_RETENTION_MS).contains(&ms) {
                return Err(format!(
                    "the {what} retention must be from {} to {} days",
                    min_ms / 86_400_000,
                    MAX_RETENTION_MS / 86_400_000
                ));
            }
        }
        Ok(())
    }
}

/// What one batch of each kind did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub orders_archived: u64,
    pub callbacks_deleted: u64,
}

impl Pruned {
    /// A batch came back full: more may be waiting.
    fn full(&self) -> bool {
        self.orders_archived as i64 == BATCH || self.callbacks_deleted as i64 == BATCH
    }
}

/// One batch of each kind the policy asks for, at `now_ms`.
pub async fn prune_once(
    store: &dyn Store,
    policy: RetentionPolicy,
    now_ms: i64,
) -> Result<Pruned, StoreError> {
    let before = |retention_ms: u64| now_ms.saturating_sub(retention_ms as i64);
    let mut pruned = Pruned::default();
    if let Some(ms) = policy.callback_retention_ms {
        pruned.callbacks_deleted = store.delete_callbacks(before(ms), BATCH).await?;
    }
    if let Some(ms) = policy.order_retention_ms {
        pruned.orders_archived = store.archive_orders(before(ms), BATCH).await?;
    }
    crate::telemetry::pruned(pruned.orders_archived, pruned.callbacks_deleted);
    Ok(pruned)
}

/// Prunes until nothing the policy names is left; the totals (the operator's `kassa prune`).
pub async fn prune_all(store: &dyn Store, policy: RetentionPolicy) -> Result<Pruned, StoreError> {
    let mut total = Pruned::default();
    loop {
        let pruned = prune_once(store, policy, crate::now_ms()).await?;
        total.orders_archived += pruned.orders_archived;
        total.callbacks_deleted += pruned.callbacks_deleted;
        if !pruned.full() {
            return Ok(total);
        }
    }
}

/// Prunes until `shutdown` turns true: batch after paced batch while a backlog lasts, then a
/// look every `interval_ms`.
pub async fn run(
    store: std::sync::Arc<dyn Store>,
    policy: RetentionPolicy,
    interval_ms: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let started = Instant::now();
        let pause = match prune_once(store.as_ref(), policy, crate::now_ms()).await {
            Ok(pruned) if pruned.full() => started.elapsed() * PAUSE_PER_BATCH_TIME,
            Ok(_) => Duration::from_millis(interval_ms),
            Err(e) => {
                tracing::warn!(error = %e, "retention");
                Duration::from_millis(interval_ms)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_has_bounds() {
        let day = 86_400_000;
        let policy = |orders, callbacks| RetentionPolicy {
            order_retention_ms: orders,
            callback_retention_ms: callbacks,
        };
        assert!(policy(None, None).is_off());
        assert!(policy(None, None).check().is_ok());
        assert!(policy(Some(30 * day), Some(day)).check().is_ok());
        assert!(policy(Some(3_650 * day), Some(3_650 * day)).check().is_ok());
        let short = policy(Some(29 * day), None).check().unwrap_err();
        assert_eq!(short, "the order retention must be from 30 to 3650 days");
        assert!(policy(None, Some(day - 1)).check().is_err());
        assert!(policy(None, Some(3_651 * day)).check().is_err());
    }
}
