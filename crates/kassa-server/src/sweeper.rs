//! The expiry sweep: orders not final when their time runs out fail with "the order expired".
//! Every node sweeps; the conditional update in the store makes racing sweeps harmless. A full
//! batch is followed by the next at once, so the sweep keeps up with any creation rate; and
//! an overdue order refuses payment whether or not the sweep has reached it (the lifecycle).

use crate::lifecycle::LifecycleError;
use crate::{Gateway, now_ms};
use kassa_core::OrderEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Orders expired per sweep at most; the next sweep takes the rest.
const MAX_PER_SWEEP: i64 = 500;

/// Expires at most one batch of the orders due now; returns how many this call expired.
pub async fn sweep_once(gateway: &Gateway) -> usize {
    sweep_batch(gateway).await.0
}

/// One batch: how many were expired, and whether the batch was full (more may be due).
async fn sweep_batch(gateway: &Gateway) -> (usize, bool) {
    let due = match gateway.store.expired_orders(now_ms(), MAX_PER_SWEEP).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "expiry sweep: cannot list orders");
            return (0, false);
        }
    };
    let full = due.len() as i64 == MAX_PER_SWEEP;
    let mut expired = 0;
    for order_no in due {
        match gateway.change_order(&order_no, &OrderEvent::Expired).await {
            Ok(_) => expired += 1,
            // Paid or expired by someone else in the meantime.
            Err(LifecycleError::Illegal(_)) => {}
            Err(e) => tracing::warn!(order_no = %order_no, error = %e, "expiry sweep"),
        }
    }
    (expired, full)
}

/// Sweeps every `interval_ms` until `shutdown` turns true.
pub async fn run(gateway: Arc<Gateway>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let (expired, full) = sweep_batch(&gateway).await;
        if expired > 0 {
            tracing::info!(expired, "expired orders");
        }
        if full {
            continue; // more are due: no pause until the backlog is gone
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
