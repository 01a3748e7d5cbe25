//! The expiry sweep: orders not final when their time runs out fail with "the order expired".
//! Every node sweeps; the conditional update in the store makes racing sweeps harmless.

use crate::lifecycle::LifecycleError;
use crate::{Gateway, now_ms};
use kassa_core::OrderEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Orders expired per sweep at most; the next sweep takes the rest.
const MAX_PER_SWEEP: i64 = 500;

/// Expires every order that is due now; returns how many this call expired.
pub async fn sweep_once(gateway: &Gateway) -> usize {
    let due = match gateway.store.expired_orders(now_ms(), MAX_PER_SWEEP).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "expiry sweep: cannot list orders");
            return 0;
        }
    };
    let mut expired = 0;
    for order_no in due {
        match gateway.change_order(&order_no, &OrderEvent::Expired).await {
            Ok(_) => expired += 1,
            // Paid or expired by someone else in the meantime.
            Err(LifecycleError::Illegal(_)) => {}
            Err(e) => tracing::warn!(order_no = %order_no, error = %e, "expiry sweep"),
        }
    }
    expired
}

/// Sweeps every `interval_ms` until `shutdown` turns true.
pub async fn run(gateway: Arc<Gateway>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let expired = sweep_once(&gateway).await;
        if expired > 0 {
            tracing::info!(expired, "expired orders");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
