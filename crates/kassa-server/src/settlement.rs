//! Settlement: once a success journal's day has come (T+N of the app, in the operator's zone),
//! what it left owed on the merchant's pending account becomes available. Every node sweeps;
//! each settlement journal's id is derived from the success journal it settles, so a journal
//! settles exactly once however many nodes race for it. Every node also checks the books'
//! invariants now and then ([`watch_books`]), for the metrics.

use kassa_core::ledger::Journal;
use kassa_store::{Store, StoreError};
use std::time::Duration;
use tokio::sync::watch;

/// Success journals settled per batch; a full batch is followed by the next at once.
const BATCH: i64 = 500;

/// Settles every success journal due at `now_ms`; how many this call settled.
pub async fn settle_due(store: &dyn Store, now_ms: i64) -> Result<usize, StoreError> {
    let mut settled = 0;
    loop {
        let due = store.settlements_due(now_ms, BATCH).await?;
        let mut posted_now = 0;
        for one in &due {
            let journal = Journal::settlement(
                &one.journal_id,
                (one.app_id, one.currency),
                one.net_minor,
                now_ms,
            );
            // Nothing left owed (a fee that took it all): nothing to settle, and it is not due again.
            let Some(journal) = journal else { continue };
            if store.post_journal(&journal).await? {
                posted_now += 1;
            }
        }
        settled += posted_now;
        // Another node took this batch, or it was the last.
        if (due.len() as i64) < BATCH || posted_now == 0 {
            return Ok(settled);
        }
    }
}

/// Settles every `interval_ms` until `shutdown` turns true.
pub async fn run(
    store: std::sync::Arc<dyn Store>,
    interval_ms: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match settle_due(store.as_ref(), crate::now_ms()).await {
            Ok(0) => {}
            Ok(settled) => tracing::info!(settled, "settled journals"),
            Err(e) => tracing::warn!(error = %e, "settlement sweep"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Checks the books every `interval_ms` (the invariants of `kassa ledger check`), for the
/// metrics (`kassa_ledger_breaks`) and the log: a break found is an error to act on at once.
pub async fn watch_books(
    store: std::sync::Arc<dyn Store>,
    interval_ms: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match store.ledger_check().await {
            Ok(check) => {
                crate::telemetry::ledger_breaks(check.breaks());
                if !check.holds() {
                    tracing::error!(
                        breaks = check.breaks(),
                        currencies = ?check.currencies_unbalanced,
                        journals = ?check.journals_unbalanced,
                        strays = ?check.journals_without_success,
                        "the books do not hold: run kassa ledger check"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "ledger check"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
