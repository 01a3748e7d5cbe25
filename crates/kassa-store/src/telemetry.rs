//! The store's metrics, through the `metrics` facade (the process that runs kassa installs the
//! exporter; without one they cost next to nothing): how long each kind of statement takes,
//! SQLite's group commits (batch sizes, queue depth) and transient database errors. The names
//! live here, next to what they measure; `kassa-server`'s telemetry describes them with the rest.
//!
//! Also the handles kept per thread ([`with_kept`]), which this crate's and the server's hot
//! paths record through: the facade's macros copy and hash a metric's labels and look its key
//! up in the recorder's registry at every call.

use metrics::{Gauge, Histogram};
use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::LocalKey;
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

/// Whether the process's recorder is installed: until then every handle is the facade's no-op,
/// and one kept would stay a no-op after the install.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Called by whoever installs the process's recorder, right after: from then on handles are
/// kept ([`with_kept`]).
pub fn recorder_installed() {
    RECORDING.store(true, Ordering::Release);
}

/// Metric handles a thread has used, by their key. Bounded by the keys' cardinality: callers
/// key only by closed lists and route templates.
pub type Kept<K, H> = RefCell<Vec<(K, H)>>;

/// Runs `use_it` on the handle whose key `is_key` knows, made by `new` the first time on this
/// thread once the recorder is installed; before that (metrics off), on `new`'s no-op handle.
pub fn with_kept<K, H, R>(
    kept: &'static LocalKey<Kept<K, H>>,
    is_key: impl Fn(&K) -> bool,
    new: impl FnOnce() -> (K, H),
    use_it: impl FnOnce(&H) -> R,
) -> R {
    if !RECORDING.load(Ordering::Acquire) {
        return use_it(&new().1);
    }
    kept.with_borrow_mut(|kept| {
        let at = match kept.iter().position(|(known, _)| is_key(known)) {
            Some(at) => at,
            None => {
                kept.push(new());
                kept.len() - 1
            }
        };
        use_it(&kept[at].1)
    })
}

thread_local! {
    /// The operation histograms, by operation.
    static OPERATIONS_KEPT: Kept<&'static str, Histogram> = const { RefCell::new(Vec::new()) };
    /// The group commit's batch size and queue depth.
    static BATCHES_KEPT: Kept<(), (Histogram, Gauge)> = const { RefCell::new(Vec::new()) };
}

/// Runs `work`, recording how long it took as one `operation`.
pub(crate) async fn timed<T>(operation: &'static str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.await;
    let seconds = started.elapsed().as_secs_f64();
    with_kept(
        &OPERATIONS_KEPT,
        |known| *known == operation,
        || {
            let histogram = metrics::histogram!(OPERATION_SECONDS, "operation" => operation);
            (operation, histogram)
        },
        |histogram| histogram.record(seconds),
    );
    out
}

pub(crate) fn transient_error() {
    metrics::counter!(TRANSIENT_ERRORS).increment(1);
}

pub(crate) fn write_batch(size: usize, still_queued: usize) {
    with_kept(
        &BATCHES_KEPT,
        |()| true,
        || {
            let sizes = metrics::histogram!(WRITE_BATCH_SIZE);
            ((), (sizes, metrics::gauge!(WRITE_QUEUE_DEPTH)))
        },
        |(sizes, depth)| {
            sizes.record(size as f64);
            depth.set(still_queued as f64);
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{Counter, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// A recorder that counts how often a histogram is looked up and how often it records.
    #[derive(Default)]
    struct Counting {
        registered: AtomicUsize,
        recorded: Arc<AtomicUsize>,
    }

    struct Recorded(Arc<AtomicUsize>);

    impl HistogramFn for Recorded {
        fn record(&self, _value: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Recorder for &'static Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            if key.name() == OPERATION_SECONDS {
                self.registered.fetch_add(1, Ordering::Relaxed);
            }
            Histogram::from_arc(Arc::new(Recorded(self.recorded.clone())))
        }
    }

    #[test]
    fn a_timed_operation_looks_its_histogram_up_once_per_thread() {
        let recorder: &'static Counting = Box::leak(Box::default());
        metrics::set_global_recorder(recorder).expect("this test's process has no recorder");
        recorder_installed();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for _ in 0..5 {
            runtime.block_on(timed("order_by_no", async {}));
            runtime.block_on(timed("insert_order", async {}));
        }
        // Two operations, each looked up once on this thread, every call recorded.
        assert_eq!(recorder.registered.load(Ordering::Relaxed), 2);
        assert_eq!(recorder.recorded.load(Ordering::Relaxed), 10);
        // Another thread keeps its own.
        std::thread::spawn(move || runtime.block_on(timed("order_by_no", async {})))
            .join()
            .unwrap();
        assert_eq!(recorder.registered.load(Ordering::Relaxed), 3);
        assert_eq!(recorder.recorded.load(Ordering::Relaxed), 11);
    }
}
