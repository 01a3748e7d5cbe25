//! Metrics: every metric kassa exports is named and described here, and recorded through the
//! small functions below, so that names, labels and units live in one place.
//!
//! kassa records through the `metrics` facade and exports with `metrics-exporter-prometheus`
//! (without its HTTP listener: the admin listener serves `/metrics`). Why this pair: the facade
//! costs a branch when no recorder is installed (metrics off), the store crate records without
//! depending on an exporter, and the exporter writes the classic Prometheus text format that
//! `promtool check metrics` and every Prometheus read. Gauges of stored state (callbacks due,
//! exceptions) and of the process are read when Prometheus scrapes, not on the hot path.
//!
//! Labels are low-cardinality only: dialect, route template, method, status class, currency,
//! payment method, rail, channel, outcome. Never an order id or an app id.

use kassa_core::{Currency, OrderStatus};
use kassa_store::telemetry::{Kept, with_kept};
use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const HTTP_REQUESTS: &str = "kassa_http_requests_total";
pub const HTTP_SECONDS: &str = "kassa_http_request_duration_seconds";
pub const HTTP_SHED: &str = "kassa_http_shed_total";
pub const HTTP_TIMEOUTS: &str = "kassa_http_timeouts_total";
pub const HTTP_RATE_LIMITED: &str = "kassa_http_rate_limited_total";
pub const HTTP_IN_FLIGHT: &str = "kassa_http_requests_in_flight";
pub const HTTP_CONNECTIONS: &str = "kassa_http_connections_open";
pub const ORDERS_CREATED: &str = "kassa_orders_created_total";
pub const ORDER_TRANSITIONS: &str = "kassa_order_transitions_total";
pub const COLLECTED_MINOR: &str = "kassa_collected_amount_minor_total";
pub const ORDERS_EXPIRED: &str = "kassa_orders_expired_total";
pub const ORDERS_IN_EXCEPTION: &str = "kassa_orders_in_exception";
pub const CALLBACKS_DUE: &str = "kassa_callbacks_due";
pub const CALLBACKS_DEAD: &str = "kassa_callbacks_dead";
pub const CALLBACKS_DIED: &str = "kassa_callbacks_died_total";
pub const CALLBACKS_IN_FLIGHT: &str = "kassa_callbacks_in_flight";
pub const CALLBACK_OLDEST_AGE: &str = "kassa_callback_oldest_pending_age_seconds";
pub const CALLBACK_ATTEMPTS: &str = "kassa_callback_attempts_total";
pub const CALLBACK_DELIVERY_SECONDS: &str = "kassa_callback_delivery_seconds";
pub const RAIL_CALLS: &str = "kassa_rail_calls_total";
pub const RAIL_SECONDS: &str = "kassa_rail_call_duration_seconds";
pub const RAIL_CALLBACKS: &str = "kassa_rail_callbacks_total";
pub const RAIL_RECONCILIATIONS: &str = "kassa_rail_reconciliations_total";
pub const RAIL_CIRCUIT_OPEN: &str = "kassa_rail_circuit_open";
pub const RECONCILIATION_DIFFERENCES: &str = "kassa_reconciliation_differences";
pub const LEDGER_BREAKS: &str = "kassa_ledger_breaks";
pub const RETENTION_REMOVED: &str = "kassa_retention_removed_total";
pub const POOL_CONNECTIONS: &str = "kassa_store_pool_connections";
pub const POOL_MAX: &str = "kassa_store_pool_max_connections";
pub const SIGNATURES: &str = "kassa_signatures_total";
pub const VERIFICATIONS: &str = "kassa_signature_verifications_total";
pub const BUILD_INFO: &str = "kassa_build_info";
pub const DATABASE_UP: &str = "kassa_database_up";
pub const READY: &str = "kassa_ready";
pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
pub const PROCESS_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_START: &str = "process_start_time_seconds";

/// Latency buckets in seconds: from a cached query (~100 µs) to a request cut at its timeout.
const SECONDS_BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];
/// Callback delivery, from the status change to the acknowledgement: seconds to a day.
const DELIVERY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3_600.0, 86_400.0,
];
/// SQLite group-commit batch sizes (the writer takes at most 128).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 96.0, 128.0];

/// The installed exporter: one per process, as the facade's recorder is.
static EXPORTER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the exporter (once per process; later calls return the same handle) and describes
/// every metric. Until this is called, recording costs next to nothing: metrics are off.
pub fn install() -> PrometheusHandle {
    EXPORTER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(CALLBACK_DELIVERY_SECONDS.into()),
                        &DELIVERY_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(kassa_store::telemetry::WRITE_BATCH_SIZE.into()),
                        &BATCH_BUCKETS,
                    )
                })
                .expect("the bucket lists are not empty")
                .install_recorder()
                .expect("the only recorder of this process");
            kassa_store::telemetry::recorder_installed();
            describe();
            build_info();
            handle
        })
        .clone()
}

/// Keeps histogram memory bounded between scrapes: samples are folded into buckets every few
/// seconds, whether or not anyone scrapes.
pub async fn run_upkeep(handle: PrometheusHandle, mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        handle.run_upkeep();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => {}
        }
    }
}

fn build_info() {
    let commit = option_env!("KASSA_BUILD_COMMIT").unwrap_or("unknown");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => commit).set(1.0);
}

/// Counters with their help text.
const COUNTERS: [(&str, &str); 16] = [
    (
        RETENTION_REMOVED,
        "Rows retention took out of the hot tables, by kind (orders_archived, callbacks_deleted).",
    ),
    (
        HTTP_REQUESTS,
        "HTTP requests answered, by dialect, route, method and status class.",
    ),
    (
        HTTP_SHED,
        "Requests answered 503 at once because a budget was full or the database down, by reason.",
    ),
    (
        HTTP_TIMEOUTS,
        "Requests cut off by a deadline (body upload or whole request), by phase.",
    ),
    (
        HTTP_RATE_LIMITED,
        "Merchant requests answered 429 because their app was over its rate limit, by dialect.",
    ),
    (
        ORDERS_CREATED,
        "Orders created (not replays), by dialect, currency and method.",
    ),
    (ORDER_TRANSITIONS, "Order status changes, by from and to."),
    (
        COLLECTED_MINOR,
        "Amounts received on orders that succeeded, in minor units, by currency.",
    ),
    (
        ORDERS_EXPIRED,
        "Orders failed because their time ran out, by dialect.",
    ),
    (
        CALLBACKS_DIED,
        "Callbacks given up after their maximum age.",
    ),
    (
        CALLBACK_ATTEMPTS,
        "Callback attempts, by outcome: acknowledged, refused, timeout, connect_error, blocked (SSRF or port rules), error.",
    ),
    (
        RAIL_CALLS,
        "Calls to rails, by rail, channel, call and outcome (ok or error).",
    ),
    (
        RAIL_CALLBACKS,
        "Callbacks from upstream channels, by result (applied, duplicate, in_progress, conflict, forged, malformed, unknown_channel, unknown_order, store_error).",
    ),
    (
        RAIL_RECONCILIATIONS,
        "Upstream orders checked by reconciliation, by result (settled, in_progress, not_found, unreachable, …).",
    ),
    (
        SIGNATURES,
        "Signatures made with the platform key (replies and callbacks).",
    ),
    (
        VERIFICATIONS,
        "Merchant signatures checked, by result: ok, malformed, wrong (a wrong signature or an unknown app).",
    ),
];

/// Gauges with their help text.
const GAUGES: [(&str, &str); 15] = [
    (
        LEDGER_BREAKS,
        "Breaks of the books' invariants found by the last periodic check (kassa ledger check); 0 when they hold.",
    ),
    (
        RAIL_CIRCUIT_OPEN,
        "1 while a channel's circuit is open (routing passes it by), else 0; by channel.",
    ),
    (
        RECONCILIATION_DIFFERENCES,
        "Differences with the upstream found by the last reconciliation of each channel's days (kassa reconcile), by channel and kind.",
    ),
    (
        HTTP_IN_FLIGHT,
        "Requests being handled now, by budget (api or pages).",
    ),
    (HTTP_CONNECTIONS, "Open client connections, by listener."),
    (
        ORDERS_IN_EXCEPTION,
        "Orders waiting for the operator (status exception).",
    ),
    (CALLBACKS_DUE, "Callbacks whose next attempt is due."),
    (CALLBACKS_DEAD, "Callbacks given up and not resent."),
    (
        CALLBACKS_IN_FLIGHT,
        "Callback attempts in flight from this node.",
    ),
    (
        CALLBACK_OLDEST_AGE,
        "Age of the oldest callback not yet delivered, in seconds (0 when none).",
    ),
    (
        POOL_CONNECTIONS,
        "Database connections of the pool, by state (open or idle).",
    ),
    (POOL_MAX, "Most database connections the pool may open."),
    (BUILD_INFO, "kassa's version and commit; always 1."),
    (
        DATABASE_UP,
        "1 while the database answers this node's probe, else 0.",
    ),
    (READY, "1 while /readyz answers 200, else 0."),
];

/// Histograms with their help text.
const HISTOGRAMS: [(&str, &str); 3] = [
    (
        HTTP_SECONDS,
        "Time from a request's arrival to its answer, by dialect and route.",
    ),
    (
        CALLBACK_DELIVERY_SECONDS,
        "Time from the status change that queued a callback to its acknowledgement.",
    ),
    (
        RAIL_SECONDS,
        "Time a rail call took, by rail, channel and call.",
    ),
];

fn describe() {
    kassa_store::telemetry::describe();
    for (name, help) in COUNTERS {
        describe_counter!(name, Unit::Count, help);
    }
    for (name, help) in GAUGES {
        describe_gauge!(name, help);
    }
    for (name, help) in HISTOGRAMS {
        describe_histogram!(name, Unit::Seconds, help);
    }
}

/// Every series name kassa may export (a histogram's as `_bucket`, `_sum` and `_count`): what
/// dashboards and alerts may refer to.
pub fn exported_names() -> Vec<String> {
    let histograms = HISTOGRAMS
        .iter()
        .map(|(name, _)| *name)
        .chain(kassa_store::telemetry::HISTOGRAMS);
    let mut names: Vec<String> = histograms
        .flat_map(|name| ["_bucket", "_sum", "_count"].map(|suffix| format!("{name}{suffix}")))
        .collect();
    let plain = COUNTERS.iter().chain(GAUGES.iter()).map(|(name, _)| *name);
    names.extend(plain.chain(kassa_store::telemetry::PLAIN).map(String::from));
    names.extend(PROCESS_NAMES.map(String::from));
    names
}

const PROCESS_NAMES: [&str; 5] = [
    PROCESS_CPU,
    PROCESS_RSS,
    PROCESS_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START,
];

/// `2xx`, `4xx`, …: the status class label.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A method label from a closed list.
fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    }
}

pub fn http_request(
    dialect: &'static str,
    route: &str,
    method: &axum::http::Method,
    status: u16,
    seconds: f64,
) {
    let labels = HttpLabels {
        dialect,
        method: method_label(method),
        status_class: status_class(status),
    };
    with_kept(
        &HTTP_KEPT,
        |(known_route, known)| **known_route == *route && *known == labels,
        || ((route.into(), labels), http_handles(route, labels)),
        |(seconds_histogram, requests)| {
            seconds_histogram.record(seconds);
            requests.increment(1);
        },
    );
}

/// A request's labels other than its route, all from closed lists.
#[derive(Clone, Copy, PartialEq, Eq)]
struct HttpLabels {
    dialect: &'static str,
    method: &'static str,
    status_class: &'static str,
}

/// A metric's name and label values, all `'static`.
type StaticKey = [&'static str; 4];

/// Whether two keys are the same strings, by address and length: a handle is found without
/// comparing text (a thread's list holds dozens of keys, and this runs a few times a request).
/// The same text at two addresses (a constant inlined in two places) only keeps a second handle
/// to the same metric; the list stays bounded by the call sites and their closed label lists.
fn same_key(known: &StaticKey, key: &StaticKey) -> bool {
    known.iter().zip(key).all(|(a, b)| std::ptr::eq(*a, *b))
}

thread_local! {
    static HTTP_KEPT: Kept<(Box<str>, HttpLabels), (Histogram, Counter)> =
        const { std::cell::RefCell::new(Vec::new()) };
    static COUNTERS_KEPT: Kept<StaticKey, Counter> = const { std::cell::RefCell::new(Vec::new()) };
    static GAUGES_KEPT: Kept<StaticKey, metrics::Gauge> =
        const { std::cell::RefCell::new(Vec::new()) };
    static HISTOGRAMS_KEPT: Kept<StaticKey, Histogram> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// [`with_kept`] for a counter of `'static` labels: counted once.
fn count_kept(key: StaticKey, make: impl FnOnce() -> Counter) {
    with_kept(
        &COUNTERS_KEPT,
        |known| same_key(known, &key),
        || (key, make()),
        |counter| counter.increment(1),
    );
}

/// [`with_kept`] for a gauge of `'static` labels: the kept handle.
fn gauge_kept(key: StaticKey, make: impl FnOnce() -> metrics::Gauge) -> metrics::Gauge {
    with_kept(
        &GAUGES_KEPT,
        |known| same_key(known, &key),
        || (key, make()),
        metrics::Gauge::clone,
    )
}

/// [`with_kept`] for a histogram of `'static` labels: `value` recorded once.
fn record_kept(key: StaticKey, make: impl FnOnce() -> Histogram, value: f64) {
    with_kept(
        &HISTOGRAMS_KEPT,
        |known| same_key(known, &key),
        || (key, make()),
        |histogram| histogram.record(value),
    );
}

fn http_handles(route: &str, labels: HttpLabels) -> (Histogram, Counter) {
    let route = route.to_string();
    let seconds = histogram!(HTTP_SECONDS, "dialect" => labels.dialect, "route" => route.clone());
    let requests = counter!(
        HTTP_REQUESTS,
        "dialect" => labels.dialect,
        "route" => route,
        "method" => labels.method,
        "status_class" => labels.status_class,
    );
    (seconds, requests)
}

/// Why a request was answered 503 at once.
#[derive(Clone, Copy, Debug)]
pub enum Shed {
    Overloaded,
    Uploads,
    AddressUploads,
    DatabaseDown,
}

pub fn shed(reason: Shed) {
    let reason = match reason {
        Shed::Overloaded => "overloaded",
        Shed::Uploads => "uploads",
        Shed::AddressUploads => "address_uploads",
        Shed::DatabaseDown => "database_down",
    };
    counter!(HTTP_SHED, "reason" => reason).increment(1);
}

/// A deadline cut a request: `body` (upload) or `request` (the whole request).
pub fn timed_out(phase: &'static str) {
    counter!(HTTP_TIMEOUTS, "phase" => phase).increment(1);
}

pub fn rate_limited(dialect: &'static str) {
    counter!(HTTP_RATE_LIMITED, "dialect" => dialect).increment(1);
}

/// Counts one up in a gauge while it lives: requests in flight, open connections, deliveries.
pub struct Level(metrics::Gauge);

impl Level {
    pub fn in_flight(budget: &'static str) -> Level {
        let key = [HTTP_IN_FLIGHT, budget, "", ""];
        Level::up(gauge_kept(
            key,
            || gauge!(HTTP_IN_FLIGHT, "budget" => budget),
        ))
    }

    pub fn connection(listener: &'static str) -> Level {
        Level::up(gauge!(HTTP_CONNECTIONS, "listener" => listener))
    }

    pub fn callback_in_flight() -> Level {
        let key = [CALLBACKS_IN_FLIGHT, "", "", ""];
        Level::up(gauge_kept(key, || gauge!(CALLBACKS_IN_FLIGHT)))
    }

    fn up(gauge: metrics::Gauge) -> Level {
        gauge.increment(1.0);
        Level(gauge)
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

pub fn order_created(dialect: &'static str, currency: Currency, method: &'static str) {
    let currency = currency.code();
    let key = [ORDERS_CREATED, dialect, currency, method];
    count_kept(
        key,
        || counter!(ORDERS_CREATED, "dialect" => dialect, "currency" => currency, "method" => method),
    );
}

/// A stored status change; a success adds what was received to the collected sum.
pub fn order_changed(from: OrderStatus, to: OrderStatus, currency: Currency, received_minor: i64) {
    if from == to {
        return;
    }
    counter!(ORDER_TRANSITIONS, "from" => from.as_str(), "to" => to.as_str()).increment(1);
    if to == OrderStatus::Succeeded {
        counter!(COLLECTED_MINOR, "currency" => currency.code())
            .increment(received_minor.max(0) as u64);
    }
}

pub fn order_expired(dialect: &str) {
    counter!(ORDERS_EXPIRED, "dialect" => dialect.to_string()).increment(1);
}

/// How a callback attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx with `success`.
    Acknowledged,
    /// An answer that was not an acknowledgement.
    Refused,
    Timeout,
    ConnectError,
    /// Refused by kassa itself: a forbidden address or port.
    Blocked,
    /// Anything else (no webhook secret, a broken answer).
    Error,
}

impl AttemptOutcome {
    pub fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Acknowledged => "acknowledged",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::ConnectError => "connect_error",
            AttemptOutcome::Blocked => "blocked",
            AttemptOutcome::Error => "error",
        }
    }
}

/// One finished attempt; `queued_for_s` is the time since the status change, for acknowledged
/// ones.
pub fn callback_attempt(outcome: AttemptOutcome, queued_for_s: f64, died: bool) {
    let label = outcome.label();
    count_kept(
        [CALLBACK_ATTEMPTS, label, "", ""],
        || counter!(CALLBACK_ATTEMPTS, "outcome" => label),
    );
    if outcome == AttemptOutcome::Acknowledged {
        let key = [CALLBACK_DELIVERY_SECONDS, "", "", ""];
        let delivered = || histogram!(CALLBACK_DELIVERY_SECONDS);
        record_kept(key, delivered, queued_for_s.max(0.0));
    }
    if died {
        counter!(CALLBACKS_DIED).increment(1);
    }
}

pub fn rail_call(rail: &'static str, channel: &str, call: &'static str, ok: bool, seconds: f64) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(RAIL_CALLS, "rail" => rail, "channel" => channel.to_string(), "call" => call, "outcome" => outcome)
        .increment(1);
    histogram!(RAIL_SECONDS, "rail" => rail, "channel" => channel.to_string(), "call" => call)
        .record(seconds);
}

/// An upstream callback received, by what came of it.
pub fn rail_callback(result: &'static str) {
    counter!(RAIL_CALLBACKS, "result" => result).increment(1);
}

/// An upstream order checked by reconciliation, by what came of it.
pub fn reconciled(result: &'static str) {
    counter!(RAIL_RECONCILIATIONS, "result" => result).increment(1);
}

/// A channel's circuit as it is after a call.
pub fn circuit(channel: &str, state: kassa_core::BreakerState) {
    let open = if state == kassa_core::BreakerState::Open {
        1.0
    } else {
        0.0
    };
    gauge!(RAIL_CIRCUIT_OPEN, "channel" => channel.to_string()).set(open);
}

/// The differences stored by the last reconciliations, `(channel, kind, count)`; pairs seen
/// before and gone now read 0.
pub fn reconciliation_differences(counts: &[(String, String, i64)]) {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (channel, kind) in seen.iter() {
        if !counts.iter().any(|(c, k, _)| c == channel && k == kind) {
            let labels = [("channel", channel.clone()), ("kind", kind.clone())];
            gauge!(RECONCILIATION_DIFFERENCES, &labels).set(0.0);
        }
    }
    for (channel, kind, count) in counts {
        let labels = [("channel", channel.clone()), ("kind", kind.clone())];
        gauge!(RECONCILIATION_DIFFERENCES, &labels).set(*count as f64);
        seen.insert((channel.clone(), kind.clone()));
    }
}

/// What a retention batch archived and deleted.
pub fn pruned(orders_archived: u64, callbacks_deleted: u64) {
    if orders_archived > 0 {
        counter!(RETENTION_REMOVED, "kind" => "orders_archived").increment(orders_archived);
    }
    if callbacks_deleted > 0 {
        counter!(RETENTION_REMOVED, "kind" => "callbacks_deleted").increment(callbacks_deleted);
    }
}

pub fn ledger_breaks(breaks: usize) {
    gauge!(LEDGER_BREAKS).set(breaks as f64);
}

pub fn signed() {
    count_kept([SIGNATURES, "", "", ""], || counter!(SIGNATURES));
}

/// A merchant signature checked: `ok`, `malformed` (missing or not base64) or `wrong`.
pub fn verified(result: &'static str) {
    let key = [VERIFICATIONS, result, "", ""];
    count_kept(key, || counter!(VERIFICATIONS, "result" => result));
}

/// Gauges read at scrape time: the stored backlog, the pool, the node's health.
pub fn scraped_state(
    backlog: Option<&kassa_store::Backlog>,
    pool: kassa_store::PoolStatus,
    database_up: bool,
    ready: bool,
    now_ms: i64,
) {
    if let Some(backlog) = backlog {
        gauge!(CALLBACKS_DUE).set(backlog.callbacks_due as f64);
        gauge!(CALLBACKS_DEAD).set(backlog.callbacks_dead as f64);
        gauge!(ORDERS_IN_EXCEPTION).set(backlog.orders_in_exception as f64);
        let age_ms = backlog
            .oldest_pending_callback_ms
            .map_or(0, |queued_ms| (now_ms - queued_ms).max(0));
        gauge!(CALLBACK_OLDEST_AGE).set(age_ms as f64 / 1000.0);
    }
    gauge!(POOL_CONNECTIONS, "state" => "open").set(f64::from(pool.open));
    gauge!(POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
    gauge!(POOL_MAX).set(f64::from(pool.max));
    gauge!(DATABASE_UP).set(if database_up { 1.0 } else { 0.0 });
    gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

/// The process's own lines of the exposition (CPU, memory, file descriptors, start), written
/// straight from `/proc` at scrape time: CPU seconds are a fractional counter, which the facade's
/// integer counters cannot carry. Empty where there is no `/proc`.
pub fn process_exposition() -> String {
    let Some(process) = crate::process_stats::read() else {
        return String::new();
    };
    let lines: [(&str, &str, &str, f64); 5] = [
        (
            PROCESS_CPU,
            "counter",
            "CPU time of the process, user and system, in seconds.",
            process.cpu_seconds,
        ),
        (
            PROCESS_RSS,
            "gauge",
            "Resident memory of the process, in bytes.",
            process.rss_bytes as f64,
        ),
        (
            PROCESS_FDS,
            "gauge",
            "Open file descriptors of the process.",
            process.open_fds as f64,
        ),
        (
            PROCESS_MAX_FDS,
            "gauge",
            "Most file descriptors the process may open.",
            process.max_fds as f64,
        ),
        (
            PROCESS_START,
            "gauge",
            "When the process started, in seconds since the Unix epoch.",
            process.start_time_s,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in lines {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for (name, help) in COUNTERS {
            assert!(
                name.starts_with("kassa_") && name.ends_with("_total"),
                "{name}"
            );
            assert!(!help.is_empty());
        }
        for (name, _) in GAUGES {
            assert!(
                name.starts_with("kassa_") && !name.ends_with("_total"),
                "{name}"
            );
        }
        for (name, _) in HISTOGRAMS {
            assert!(
                name.starts_with("kassa_") && name.ends_with("_seconds"),
                "{name}"
            );
        }
        let names = exported_names();
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a name is declared twice");
    }

    #[test]
    fn recorded_events_appear_in_the_exposition() {
        let exporter = install();
        order_created("collect", Currency::Eur, "IDEAL_EUR");
        order_changed(
            OrderStatus::InProgress,
            OrderStatus::Succeeded,
            Currency::Eur,
            2_500,
        );
        order_changed(OrderStatus::Created, OrderStatus::Created, Currency::Eur, 0);
        callback_attempt(AttemptOutcome::Acknowledged, 1.5, false);
        // Twice with the same labels (the second through the thread's handles), once with
        // another status class on the same route.
        for status in [201, 201, 409] {
            http_request(
                "pix",
                "/v1/orders",
                &axum::http::Method::POST,
                status,
                0.003,
            );
        }
        for result in ["ok", "ok", "wrong"] {
            verified(result);
        }
        {
            let _level = Level::in_flight("api");
            let _level = Level::in_flight("api");
        }
        let text = exporter.render();
        for line in [
            r#"kassa_orders_created_total{dialect="collect",currency="EUR",method="IDEAL_EUR"} 1"#,
            r#"kassa_order_transitions_total{from="in_progress",to="succeeded"} 1"#,
            r#"kassa_collected_amount_minor_total{currency="EUR"} 2500"#,
            r#"kassa_callback_attempts_total{outcome="acknowledged"} 1"#,
            r#"kassa_callback_delivery_seconds_bucket{le="2.5"} 1"#,
            r#"kassa_http_requests_total{dialect="pix",route="/v1/orders",method="POST",status_class="2xx"} 2"#,
            r#"kassa_http_requests_total{dialect="pix",route="/v1/orders",method="POST",status_class="4xx"} 1"#,
            r#"kassa_http_request_duration_seconds_count{dialect="pix",route="/v1/orders"} 3"#,
            r#"kassa_http_requests_in_flight{budget="api"} 0"#,
            r#"kassa_signature_verifications_total{result="ok"} 2"#,
            r#"kassa_signature_verifications_total{result="wrong"} 1"#,
            "kassa_build_info{",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains(r#"from="created",to="created""#),
            "no change, no transition"
        );
    }
}
