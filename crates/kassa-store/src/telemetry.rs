//! The store's metrics, through the `metrics` facade (the process that runs kassa installs the
//! exporter; without one they cost next to nothing): how long each kind of statement takes,
//! SQLite's group commits (batch sizes, queue depth) and transient database errors. The names
//! live here, next to what they measure; `kassa-server`'s telemetry describes them with the rest.

use std::future::Future;
use std::time::Instant;

pub const OPERATION_SECONDS: &str = "kassa_store_operation_duration_seconds";
pub const WRITE_BATCH_SIZE: &str = "kassa_store_write_batch_size";
pub const WRITE_QUEUE_DEPTH: &str = "kassa_store_write_queue_depth";
pub const TRANSIENT_ERRORS: &str = "kassa_store_transient_errors_total";
/// This crate's histograms, and its counters and gauges.
pub const HISTOGRAMS: [&str; 2] = [OPERATION_SECONDS, WRITE_BATCH_SIZE];
pub const PLAIN: [&str; 2] = [WRITE_QUEUE_DEPTH, TRANSIENT_ERRORS];

/// Every metric of this crate, with its help text, for the exporter.
pub fn describe() {
    metrics::describe_histogram!(
        OPERATION_SECONDS,
        metrics::Unit::Seconds,
        "Time a store operation took, by operation (commit included)."
    );
    metrics::describe_histogram!(
        WRITE_BATCH_SIZE,
        metrics::Unit::Count,
        "Writes committed together: new orders, status changes, callback claims and attempt records by the SQLite writer; new orders by PostgreSQL's batched insert."
    );
    metrics::describe_gauge!(
        WRITE_QUEUE_DEPTH,
        metrics::Unit::Count,
        "Writes waiting for the SQLite writer or PostgreSQL's batched insert, as it took its last batch."
    );
    metrics::describe_counter!(
        TRANSIENT_ERRORS,
        metrics::Unit::Count,
        "Database errors that a retry may cure (connection lost, pool timeout, serialisation)."
    );
}

/// Runs `work`, recording how long it took as one `operation`.
pub(crate) async fn timed<T>(operation: &'static str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.await;
    metrics::histogram!(OPERATION_SECONDS, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    out
}

pub(crate) fn transient_error() {
    metrics::counter!(TRANSIENT_ERRORS).increment(1);
}

pub(crate) fn write_batch(size: usize, still_queued: usize) {
    metrics::histogram!(WRITE_BATCH_SIZE).record(size as f64);
    metrics::gauge!(WRITE_QUEUE_DEPTH).set(still_queued as f64);
}
