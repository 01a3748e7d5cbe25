//! Reconciliation: kassa asks the upstream about every order opened there that is not final
//! once its next check is due — a while after it was opened, then with growing pauses — so that
//! a lost upstream callback, or a crash between a create and its answer, never leaves an order
//! hanging. A final answer is applied as a callback's would be. An order the upstream never got
//! expires once its time is up; one the upstream still calls in progress long after kassa's
//! expiry becomes an exception for the operator.
//!
//! Every node reconciles; queries are idempotent and changes conditional, so overlapping sweeps
//! do no harm.

use crate::{Gateway, now_ms};
use kassa_core::RailOutcome;
use kassa_store::UpstreamOrder;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Orders checked per sweep at most; the next sweep takes the rest.
const MAX_PER_SWEEP: i64 = 200;
/// Upstream queries in flight at once per node.
const MAX_CONCURRENT_QUERIES: usize = 8;

#[derive(Clone, Copy, Debug)]
pub struct ReconcilePolicy {
    /// The first pause between checks; it doubles after each.
    pub first_interval_ms: i64,
    /// The longest pause between two checks of one order.
    pub max_interval_ms: i64,
    /// How long past kassa's expiry an upstream may still call an order in progress before the
    /// operator is asked to look (an exception).
    pub grace_ms: i64,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            first_interval_ms: 60_000,
            max_interval_ms: 600_000,
            grace_ms: 3_600_000,
        }
    }
}

impl ReconcilePolicy {
    /// When an order checked `checks` times (this one included) is checked next.
    pub fn next_check_at_ms(&self, checks: i64, now_ms: i64) -> i64 {
        let doublings = checks.clamp(0, 20) as u32;
        let pause = self.first_interval_ms.saturating_mul(1 << doublings);
        now_ms + pause.min(self.max_interval_ms)
    }
}

/// Checks at most one batch of due orders; how many were checked.
pub async fn sweep_once(gateway: &Arc<Gateway>, policy: ReconcilePolicy) -> usize {
    if gateway.rails.book().is_none() {
        return 0;
    }
    let due = match gateway
        .store
        .upstream_orders_due(now_ms(), MAX_PER_SWEEP)
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "reconciliation: cannot list orders");
            return 0;
        }
    };
    let count = due.len();
    let mut tasks = tokio::task::JoinSet::new();
    for row in due {
        if tasks.len() >= MAX_CONCURRENT_QUERIES {
            tasks.join_next().await;
        }
        let gateway = gateway.clone();
        tasks.spawn(async move {
            let result = check(&gateway, &row, policy).await;
            crate::telemetry::reconciled(result);
        });
    }
    while tasks.join_next().await.is_some() {}
    count
}

/// Asks the upstream about one order and acts on the answer; the label of what came of it.
async fn check(gateway: &Gateway, row: &UpstreamOrder, policy: ReconcilePolicy) -> &'static str {
    let now = now_ms();
    let store = &gateway.store;
    let Ok(Some(order)) = store.order_by_no(&row.order_no).await else {
        return "store_error";
    };
    let connector = (gateway.rails.book())
        .and_then(|book| book.entry(&row.channel_id))
        .and_then(|entry| entry.connector);
    let Some(connector) = connector else {
        reschedule(gateway, row, policy).await;
        return "no_channel";
    };
    let started = std::time::Instant::now();
    let answer = connector.query(&order).await;
    let seconds = started.elapsed().as_secs_f64();
    crate::telemetry::rail_call(
        gateway.rails.of(&order).map_or("upstream", |r| r.name()),
        &row.channel_id,
        "query",
        answer.is_ok(),
        seconds,
    );
    let outcome = match answer {
        Ok(report) => {
            if row.upstream_order_no.is_none() {
                let mut found = row.clone();
                found.upstream_order_no = Some(report.upstream_order_no.clone());
                let _ = store.save_upstream(&found, &order.rail, None).await;
            }
            match report.outcome {
                Some(outcome) => outcome,
                None if now >= order.expires_at_ms + policy.grace_ms => RailOutcome::Exception {
                    reason:
                        "the upstream still reports the order in progress long after it expired"
                            .into(),
                },
                None => {
                    reschedule(gateway, row, policy).await;
                    return "in_progress";
                }
            }
        }
        Err(super::upstream::UpstreamError::NotFound) if order.is_overdue(now) => {
            RailOutcome::Expired
        }
        Err(e) => {
            tracing::info!(order_no = %row.order_no, channel = %row.channel_id, error = %e, "reconciliation: no answer yet");
            reschedule(gateway, row, policy).await;
            return e.label();
        }
    };
    match gateway.settle_from_rail(&row.order_no, &outcome).await {
        Ok(order) => {
            tracing::info!(order_no = %row.order_no, status = order.status.as_str(), "reconciled");
            "settled"
        }
        Err(crate::lifecycle::LifecycleError::Illegal(_)) => "already_final",
        Err(e) => {
            tracing::warn!(order_no = %row.order_no, error = %e, "reconciliation: cannot apply");
            reschedule(gateway, row, policy).await;
            "store_error"
        }
    }
}

async fn reschedule(gateway: &Gateway, row: &UpstreamOrder, policy: ReconcilePolicy) {
    let now = now_ms();
    let checks = row.checks + 1;
    let next = policy.next_check_at_ms(checks - 1, now);
    if let Err(e) = (gateway.store)
        .reschedule_upstream(&row.order_no, next, checks, now)
        .await
    {
        tracing::warn!(order_no = %row.order_no, error = %e, "reconciliation: cannot reschedule");
    }
}

/// Reconciles every `interval_ms` until `shutdown` turns true; a full batch is followed by the
/// next at once.
pub async fn run(
    gateway: Arc<Gateway>,
    policy: ReconcilePolicy,
    interval_ms: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        if sweep_once(&gateway, policy).await as i64 == MAX_PER_SWEEP {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest() {
        let policy = ReconcilePolicy {
            first_interval_ms: 1_000,
            max_interval_ms: 5_000,
            grace_ms: 0,
        };
        let pauses: Vec<i64> = (0..5)
            .map(|checks| policy.next_check_at_ms(checks, 100) - 100)
            .collect();
        assert_eq!(pauses, [1_000, 2_000, 4_000, 5_000, 5_000]);
        assert_eq!(policy.next_check_at_ms(i64::MAX, 0), 5_000);
    }
}
