//! `kassa bench`: the load generator. It starts `kassa serve` on loopback over a fresh database
//! (or targets `--target URL`), creates its merchant and signs every request body before the
//! measured window, drives a fixed number of keep-alive connections for a fixed time, and
//! reports throughput, latency percentiles, errors, the server's CPU per request (from
//! `/proc/PID/stat`), its peak RSS, and the crypto floor (one verify plus one sign with the same
//! keys and library), measured in the same run.

mod backoffice;
mod books;
mod callback_records;
mod limit;
pub mod null_gateway;
pub mod plain_client;
mod preloaded;
mod prune;
mod upstream;
mod writes;

use crate::{Failure, Outcome};
use clap::{Args, ValueEnum};
use kassa_core::{AppId, Currency};
use kassa_server::now_ms;
use kassa_signature::{SigningKey, sign_map};
use kassa_store::prelude::*;
use kassa_store::{CallbackState, NewApp, SqlStore, Store};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Unique orders created.
    Create,
    /// Existing orders queried.
    Query,
    /// 20 % create, 80 % query.
    Mixed,
    /// A backlog of due callbacks delivered to a loopback receiver that answers `success`, and
    /// the same bodies posted by a plain HTTP client, alternated over `--rounds` rounds; then
    /// the store's CPU per callback for its claim and its record, without HTTP.
    Callbacks,
    /// Create and query over a database that already holds `--preload` orders and over an empty
    /// one, alternated over `--rounds` rounds; medians and the ratios to empty.
    Preloaded,
    /// The cost of metrics: create and query against a server with metrics on and one with
    /// metrics off, alternated over `--rounds` rounds; medians and their ratios.
    MetricsCost,
    /// PIX creates through one upstream hop: a second `kassa serve` as the upstream PSP; then
    /// the gateway's memory with 10,000 orders awaiting reconciliation.
    Upstream,
    /// The books' cost: orders created and paid at the store with the success journal posted
    /// and without, alternated over `--rounds` rounds; medians and their ratio.
    Pay,
    /// A settlement report of a day of `--preload` succeeded orders: time and peak memory.
    Report,
    /// The back office's orders list over `--preload` orders, filter by filter (one operator,
    /// requests one after another), then the CSV export of them all: time and peak memory.
    Backoffice,
    /// The physical limit: create and query against kassa and against the null gateway (kassa's
    /// HTTP stack doing only the request's verify and, for a create, the reply's sign), in
    /// `--rounds` alternating rounds; medians, min and max, and kassa's ratios to it.
    Limit,
    /// Retention under load: `--preload` orders from months ago, create and query against a
    /// server archiving them (--order-retention 30d) and one that is not, alternated over
    /// `--rounds` rounds; medians, ratios, orders archived per second.
    Prune,
    /// Every scenario above, one after another.
    All,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "create")]
    scenario: Scenario,
    /// Seconds each measured run lasts.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Keep-alive connections driving the load.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Fixed request rate (per second, all connections together) instead of as fast as possible;
    /// latency is then measured from each request's scheduled time.
    #[arg(long)]
    rate: Option<u64>,
    /// A running kassa to measure instead of starting one (needs --database-url of its
    /// database, where the bench creates its merchant; no server CPU or memory figures).
    #[arg(long)]
    target: Option<String>,
    /// Orders in the database for the preloaded scenario.
    #[arg(long, default_value_t = 1_000_000)]
    preload: i64,
    /// Due callbacks for the callbacks scenario.
    #[arg(long, default_value_t = 20_000)]
    backlog: i64,
    /// One JSON object per scenario instead of a table.
    #[arg(long)]
    json: bool,
    /// Rounds of the scenarios that compare two servers or clients (callbacks, metrics-cost, pay,
    /// limit, prune, preloaded: each round measures both, in alternating order).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Orders left awaiting reconciliation for the upstream scenario's memory figure.
    #[arg(long, default_value_t = 10_000)]
    awaiting: usize,
}

/// Most request bodies signed ahead of a run.
const MAX_PRESIGNED: usize = 200_000;
/// Where the bench's creates and queries go (its shop's app is a euro app), on kassa and on the
/// null gateway alike.
const CREATE_PATH: &str = "/eur/collect/apply";
const QUERY_PATH: &str = "/eur/collect/query";
/// Orders that query runs cycle through.
const QUERY_ORDERS: i64 = 1_000;

/// A fresh database for one run: a temporary SQLite file, or a new PostgreSQL schema.
struct BenchDatabase {
    url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDatabase {
    async fn fresh(base: Option<&str>) -> Result<BenchDatabase, Failure> {
        match base {
            Some(url) if url.starts_with("postgres") => {
                let schema = format!("kassa_bench_{}_{}", std::process::id(), now_ms());
                sqlx::any::install_default_drivers();
                let admin = sqlx::AnyPool::connect(url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                let separator = if url.contains('?') { '&' } else { '?' };
                Ok(BenchDatabase {
                    url: format!("{url}{separator}options=-c%20search_path%3D{schema}"),
                    admin: Some((url.to_string(), schema)),
                    _dir: None,
                })
            }
            Some(url) => Ok(BenchDatabase {
                url: url.to_string(),
                admin: None,
                _dir: None,
            }),
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(BenchDatabase {
                    url,
                    admin: None,
                    _dir: Some(dir),
                })
            }
        }
    }

    fn name(&self) -> &'static str {
        if self.url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }

    async fn drop_schema(&self) {
        if let Some((url, schema)) = &self.admin
            && let Ok(admin) = sqlx::AnyPool::connect(url).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await;
        }
    }
}

/// A `kassa serve` this bench started; stopped on drop.
struct Server {
    child: Child,
    base: String,
    /// The back office's base URL (its pages are under `/admin/`).
    backoffice: String,
}

impl Server {
    fn start(database_url: &str, metrics: bool) -> Result<Server, Failure> {
        Server::start_with(database_url, metrics, &[])
    }

    /// `kassa serve` with `extra` options besides the bench's own.
    fn start_with(database_url: &str, metrics: bool, extra: &[&str]) -> Result<Server, Failure> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--backoffice-listen",
                "127.0.0.1:0",
                "--allow-private-callbacks",
            ])
            .args([
                "--callback-retry-interval",
                "1s",
                // Stopped at once when the bench is done with it (see `end_child`).
                "--drain-period",
                "0s",
                "--database-url",
                database_url,
                "--metrics",
                if metrics { "true" } else { "false" },
            ])
            .args(extra)
            .env("KASSA_LOG", "info")
            .env("KASSA_KEK", crate::kek::bench_kek())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut reader = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let mut backoffice = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                end_child(&mut child, Ending::Kill);
                return Err(Failure("kassa serve exited before listening".into()));
            }
            if let Some(rest) = line.strip_prefix("kassa back office on ") {
                backoffice = rest.trim().trim_end_matches("/admin/").to_string();
            }
            if let Some(rest) = line.strip_prefix("kassa listening on ") {
                let base = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                // Keep reading (and dropping) its output so it never blocks on a full pipe.
                std::thread::spawn(move || for _ in reader.lines() {});
                return Ok(Server {
                    child,
                    base,
                    backoffice,
                });
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        end_child(&mut self.child, Ending::Terminate);
    }
}

/// How long a child the bench is done with has to exit before it is killed.
const CHILD_EXIT_GRACE: Duration = Duration::from_secs(5);

/// How [`end_child`] ends a child.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// SIGTERM, which kassa's servers answer by stopping.
    Terminate,
    /// Nothing: the child stops by itself (a client that has answered).
    Await,
    /// SIGKILL at once (a child that failed to start).
    Kill,
}

/// Ends a child this bench started as it would end in service, killing it only if it has not
/// exited within [`CHILD_EXIT_GRACE`]. A normal exit matters to a build instrumented for
/// profile-guided optimisation (tools/perf/pgo.sh): a process writes its counts as it exits,
/// and a killed one writes none.
fn end_child(child: &mut Child, ending: Ending) {
    let exited = match ending {
        Ending::Kill => None,
        Ending::Terminate => {
            ask_to_stop(child);
            Some(exits_within(child, CHILD_EXIT_GRACE))
        }
        Ending::Await => Some(exits_within(child, CHILD_EXIT_GRACE)),
    };
    if exited == Some(false) {
        eprintln!(
            "kassa bench: process {} did not exit within {} s; killed",
            child.id(),
            CHILD_EXIT_GRACE.as_secs()
        );
    }
    // Both a no-op for a child already reaped.
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends `child` SIGTERM.
fn ask_to_stop(child: &Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) of a child not yet waited for, so its pid is still its own.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Whether `child` exits (and is reaped) within `grace`; a child that cannot be watched has not.
fn exits_within(child: &mut Child, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return false,
        }
    }
    false
}

/// CPU seconds a process has used (user + system), from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds_in(format!("/proc/{pid}/stat"))
}

/// CPU seconds this process has used (user + system).
fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds_in("/proc/self/stat")
}

/// CPU µs per item between two readings of CPU seconds, to the hundredth; none where either
/// reading failed or there were no items.
fn cpu_us_per(before: Option<f64>, after: Option<f64>, items: usize) -> Option<f64> {
    let (before, after) = before.zip(after).filter(|_| items > 0)?;
    Some(((after - before) * 1e8 / items as f64).round() / 100.0)
}

/// CPU seconds (user + system) from a `stat` file of `/proc`: a process's or one thread's.
fn cpu_seconds_in(stat_path: impl AsRef<std::path::Path>) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let ticks = |n| {
        kassa_store::scheduling::stat_field(&stat, n)?
            .parse::<f64>()
            .ok()
    };
    Some((ticks(14)? + ticks(15)?) / 100.0) // USER_HZ is 100 on Linux
}

/// The machine's CPU ticks so far, idle (or waiting for I/O) and in all, from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    machine_ticks_in(stat.lines().next()?)
}

/// [`machine_ticks`] of the summary line of `/proc/stat`: `cpu user nice system idle iowait irq
/// softirq steal …` (the guest times after these are already counted in user and nice).
fn machine_ticks_in(cpu_line: &str) -> Option<(u64, u64)> {
    let mut fields = cpu_line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((idle, ticks.iter().sum()))
}

/// The idle share between two [`machine_ticks`] readings, in percent (one decimal).
fn idle_pct(
    (idle_before, all_before): (u64, u64),
    (idle_after, all_after): (u64, u64),
) -> Option<f64> {
    let all = all_after.checked_sub(all_before).filter(|&all| all > 0)?;
    let idle = idle_after.checked_sub(idle_before)?;
    Some((idle as f64 * 1000.0 / all as f64).round() / 10.0)
}

/// The machine's idle share since `before` (a [`machine_ticks`] reading), in percent.
fn machine_idle_since(before: Option<(u64, u64)>) -> Option<f64> {
    before
        .zip(machine_ticks())
        .and_then(|(before, after)| idle_pct(before, after))
}

/// Peak resident memory of a process in MB, from `/proc/PID/status`.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Median microseconds of one verify plus one sign, with the same keys the run uses.
fn crypto_floor_us(merchant: &SigningKey, platform: &SigningKey) -> f64 {
    let message = b"amount=25.00&appId=1001&callBackFailUrl=https://shop.example/fail&orderId=X";
    let signature = merchant.sign(message);
    let mut samples: Vec<f64> = (0..500)
        .map(|_| {
            let start = Instant::now();
            merchant
                .verifying_key()
                .verify(message, &signature)
                .expect("own signature");
            let _ = platform.sign(message);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Everything a run needs about its merchant.
struct Shop {
    app_id: AppId,
    key: Arc<SigningKey>,
    platform: SigningKey,
}

async fn set_up_shop(store: &SqlStore) -> Result<Shop, Failure> {
    set_up_app(store, Currency::Eur).await
}

/// A merchant with one app of `currency`, and the platform key of the database.
async fn set_up_app(store: &SqlStore, currency: Currency) -> Result<Shop, Failure> {
    let key = SigningKey::generate()?;
    let kek = crate::kek::unlock(store).await?;
    let platform = kassa_server::keys::load_or_create_platform_key(store, &kek, now_ms()).await?;
    let apps = [NewApp {
        currency,
        webhook_secret: crate::operator::sealed_webhook_secret(&kek),
    }];
    let created = store
        .create_merchant(
            "Bench Shop",
            &apps,
            Some(&key.public_key_pem()),
            now_ms(),
            None,
        )
        .await?;
    Ok(Shop {
        app_id: created.apps[0].app_id,
        key: Arc::new(key),
        platform,
    })
}

fn signed_body(key: &SigningKey, body: Value) -> String {
    let mut map = body.as_object().expect("an object").clone();
    sign_map(key, &mut map);
    serde_json::to_string(&map).expect("JSON")
}

/// Signs `count` bodies made by `make` on every core.
async fn presign(
    key: &Arc<SigningKey>,
    count: usize,
    make: fn(AppId, usize) -> Value,
    app_id: AppId,
) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut tasks = Vec::new();
    for t in 0..threads {
        let key = key.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            (t..count)
                .step_by(threads)
                .map(|i| signed_body(&key, make(app_id, i)))
                .collect::<Vec<_>>()
        }));
    }
    let mut bodies = Vec::with_capacity(count);
    for task in tasks {
        bodies.extend(task.await.expect("signing thread"));
    }
    bodies
}

pub(super) fn create_body(app_id: AppId, i: usize) -> Value {
    json!({
        "appId": app_id.0, "orderId": format!("bench-{}-{i}", now_ms()), "name": "Jane Doe",
        "phone": "+31612345678", "email": "jane@example.com", "amount": "25.00",
        "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
        "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
        "partnerUserId": "bench",
    })
}

fn query_body(app_id: AppId, i: usize) -> Value {
    json!({"appId": app_id.0, "orderId": format!("preload-{}", i as i64 % QUERY_ORDERS)})
}

/// What one measured run produced.
struct Measured {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// The share of the machine's CPU time left idle during the run, in percent: with the
    /// load's concurrency fixed, a server that leaves the cores idle is bound by its requests'
    /// waits (a commit, a database), not by CPU.
    machine_idle_pct: Option<f64>,
}

/// What every load connection shares: where to send, what, and until when.
struct Load {
    create_url: String,
    query_url: String,
    deadline: Instant,
    rate: Option<u64>,
    connections: usize,
    creates: Arc<Vec<String>>,
    queries: Arc<Vec<String>>,
    next_create: std::sync::atomic::AtomicUsize,
    create_share: usize,
}

impl Load {
    /// A connection's pacing at a fixed total rate: staggered ticks, bursts to catch up.
    fn ticker(&self, connection: usize) -> Option<tokio::time::Interval> {
        self.rate.map(|r| {
            let every = Duration::from_secs_f64(self.connections as f64 / r as f64);
            let offset = every.mul_f64(connection as f64 / self.connections as f64);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            ticker
        })
    }

    /// The next request of a connection (its `i`-th turn): a create or a query body.
    fn next_request(&self, i: usize) -> Option<(&str, String)> {
        let share = self.create_share;
        let is_create = share == 100 || (share > 0 && i.is_multiple_of(100 / share));
        if is_create {
            let n = self
                .next_create
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = self.creates.get(n)?;
            Some((&self.create_url, body.clone()))
        } else {
            let body = self.queries[i % self.queries.len().max(1)].clone();
            Some((&self.query_url, body))
        }
    }

    /// One connection's loop: latencies from each request's scheduled time, and errors.
    async fn connection(self: Arc<Self>, connection: usize) -> (Vec<u32>, usize) {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let (mut latencies, mut errors) = (Vec::new(), 0usize);
        let mut ticker = self.ticker(connection);
        let mut i = connection;
        while Instant::now() < self.deadline {
            let scheduled = match ticker.as_mut() {
                Some(t) => t.tick().await.into_std(),
                None => Instant::now(),
            };
            if scheduled >= self.deadline {
                break;
            }
            let Some((url, body)) = self.next_request(i) else {
                break;
            };
            i += self.connections;
            let sent = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let ok = match sent {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            errors += usize::from(!ok);
            latencies.push(scheduled.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
        (latencies, errors)
    }
}

/// Drives the load: each connection sends the next body of its kind until time is up.
async fn drive(
    base: &str,
    connections: usize,
    duration: Duration,
    rate: Option<u64>,
    creates: Arc<Vec<String>>,
    queries: Arc<Vec<String>>,
    create_share: usize,
) -> Measured {
    let start = Instant::now();
    let load = Arc::new(Load {
        create_url: format!("{base}{CREATE_PATH}"),
        query_url: format!("{base}{QUERY_PATH}"),
        deadline: start + duration,
        rate,
        connections,
        creates,
        queries,
        next_create: std::sync::atomic::AtomicUsize::new(0),
        create_share,
    });
    let tasks: Vec<_> = (0..connections)
        .map(|c| tokio::spawn(load.clone().connection(c)))
        .collect();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.expect("load task");
        latencies_us.extend(l);
        errors += e;
    }
    Measured {
        requests: latencies_us.len(),
        errors,
        elapsed: start.elapsed(),
        latencies_us,
        machine_idle_pct: None,
    }
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[index]) / 1000.0
}

#[derive(Clone)]
struct Report {
    scenario: String,
    database: &'static str,
    connections: usize,
    fields: Value,
}

fn report(
    scenario: &str,
    db: &BenchDatabase,
    args: &BenchArgs,
    mut run: Measured,
    cpu_s: Option<f64>,
    rss: Option<f64>,
    floor_us: f64,
) -> Report {
    run.latencies_us.sort_unstable();
    let rps = run.requests as f64 / run.elapsed.as_secs_f64();
    let cpu_us = cpu_s
        .filter(|_| run.requests > 0)
        .map(|s| s * 1e6 / run.requests as f64);
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    Report {
        scenario: scenario.to_string(),
        database: db.name(),
        connections: args.connections,
        fields: json!({
            "scenario": scenario,
            "database": db.name(),
            "connections": args.connections,
            "rate": args.rate,
            "duration_s": round(run.elapsed.as_secs_f64()),
            "requests": run.requests,
            "requests_per_second": round(rps),
            "latency_ms": {
                "p50": percentile_ms(&run.latencies_us, 0.50),
                "p90": percentile_ms(&run.latencies_us, 0.90),
                "p99": percentile_ms(&run.latencies_us, 0.99),
                "p999": percentile_ms(&run.latencies_us, 0.999),
                "max": percentile_ms(&run.latencies_us, 1.0),
            },
            "errors": run.errors,
            "server_cpu_us_per_request": cpu_us.map(round),
            "machine_idle_pct": run.machine_idle_pct,
            "server_peak_rss_mb": rss.map(round),
            "crypto_floor_us": round(floor_us),
            "cpu_to_floor_ratio": cpu_us.map(|c| round(c / floor_us)),
        }),
    }
}

/// The requests of a run, signed before it starts: enough creates for its rate and length,
/// and queries of the preloaded orders.
async fn signed_bodies(
    shop: &Shop,
    args: &BenchArgs,
    create_share: usize,
) -> (Arc<Vec<String>>, Arc<Vec<String>>) {
    let expected = args.rate.map_or(4_000, |r| r as usize) * args.duration as usize + 1_000;
    let creates = if create_share > 0 {
        let count = expected.min(MAX_PRESIGNED);
        presign(&shop.key, count, create_body, shop.app_id).await
    } else {
        Vec::new()
    };
    let queries = presign(&shop.key, QUERY_ORDERS as usize, query_body, shop.app_id).await;
    (Arc::new(creates), Arc::new(queries))
}

/// A fresh database with the bench's shop and at least [`QUERY_ORDERS`] orders of it (the
/// ones queries ask for), `preload` when more.
async fn preloaded_shop(
    base_url: Option<&str>,
    preload: i64,
) -> Result<(BenchDatabase, SqlStore, Shop), Failure> {
    let db = BenchDatabase::fresh(base_url).await?;
    let store = SqlStore::connect(&db.url).await?;
    store.migrate().await?;
    let shop = set_up_shop(&store).await?;
    store
        .bench_preload_orders(shop.app_id, preload.max(QUERY_ORDERS), now_ms())
        .await?;
    Ok((db, store, shop))
}

/// One HTTP scenario (create, query, mixed) against a fresh server.
async fn http_run(
    scenario: &str,
    create_share: usize,
    preload: i64,
    args: &BenchArgs,
    base_url: Option<&str>,
) -> Result<Vec<Report>, Failure> {
    let (db, store, shop) = preloaded_shop(base_url, preload).await?;
    let server = match &args.target {
        Some(_) => None,
        None => Some(Server::start(&db.url, true)?),
    };
    let base = args
        .target
        .clone()
        .or_else(|| server.as_ref().map(|s| s.base.clone()))
        .unwrap_or_default();
    let floor = crypto_floor_us(&shop.key, &shop.platform);
    let (creates, queries) = signed_bodies(&shop, args, create_share).await;
    // The database's counters are read with none of the run's connections open (bar the
    // server's, idle until the load starts).
    store.close().await;
    let mut costs = writes::Costs::start(&db.url, server.as_ref().map(Server::pid)).await;
    let mut reports = Vec::new();
    let phases: Vec<(String, usize)> = if scenario == "preloaded" {
        vec![
            ("preloaded-create".into(), 100),
            ("preloaded-query".into(), 0),
        ]
    } else {
        vec![(scenario.to_string(), create_share)]
    };
    for (name, share) in phases {
        let bodies = (creates.clone(), queries.clone());
        let measured = measure(server.as_ref().map(Server::pid), &base, args, bodies, share).await;
        reports.push(report(
            &name, &db, args, measured.0, measured.1, measured.2, floor,
        ));
    }
    costs.run_ended();
    drop(server);
    // One phase: the database's work per request of it (the preloaded scenario's two phases
    // share a server, so theirs cannot be told apart).
    if let [only] = reports.as_mut_slice()
        && args.target.is_none()
    {
        let requests = only.fields["requests"].as_u64().unwrap_or(0) as usize;
        writes::attach(&mut only.fields, costs.per_request(&db.url, requests).await);
    }
    db.drop_schema().await;
    Ok(reports)
}

/// One measured run against `base`: what the load saw, and the server's CPU seconds and peak
/// RSS when the bench started it (process `pid`). A run with queries first asks for each
/// queried order once, unmeasured (see [`warm_replies`]).
async fn measure(
    pid: Option<u32>,
    base: &str,
    args: &BenchArgs,
    (creates, queries): (Arc<Vec<String>>, Arc<Vec<String>>),
    create_share: usize,
) -> (Measured, Option<f64>, Option<f64>) {
    if create_share < 100 {
        warm_replies(base, &queries).await;
    }
    let cpu_before = pid.and_then(cpu_seconds);
    let ticks_before = machine_ticks();
    let duration = Duration::from_secs(args.duration);
    let connections = args.connections;
    let mut run = drive(
        base,
        connections,
        duration,
        args.rate,
        creates,
        queries,
        create_share,
    )
    .await;
    let cpu = cpu_before
        .zip(pid.and_then(cpu_seconds))
        .map(|(b, a)| a - b);
    run.machine_idle_pct = machine_idle_since(ticks_before);
    (run, cpu, pid.and_then(peak_rss_mb))
}

/// Queries each order of `queries` once, one after another, before a measured run: the
/// first query of an order's state signs its reply and later ones reuse it, so without this
/// a short run would count its [`QUERY_ORDERS`] first signatures (some 5 % of a 5-second
/// run's CPU) against a steady state that has none — the null gateway signs its query reply
/// once at start for the same reason. Failures show in the measured run, not here.
async fn warm_replies(base: &str, queries: &[String]) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let url = format!("{base}{QUERY_PATH}");
    for body in queries {
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            let _ = response.bytes().await;
        }
    }
}

/// The metrics-cost scenario: the same create and query runs against a server with metrics on
/// and one with metrics off, in rounds that alternate which goes first (A B, B A, …) so that
/// the machine's drift falls on both; each figure is the median over the rounds.
async fn metrics_cost_run(
    args: &BenchArgs,
    base_url: Option<&str>,
) -> Result<Vec<Report>, Failure> {
    if args.target.is_some() {
        let why = "--scenario metrics-cost starts its own two servers; drop --target";
        return Err(Failure(why.into()));
    }
    let (db, store, shop) = preloaded_shop(base_url, QUERY_ORDERS).await?;
    let floor = crypto_floor_us(&shop.key, &shop.platform);
    // (phase, metrics on?) → reports of every round.
    let mut runs: Vec<((&str, bool), Vec<Report>)> = Vec::new();
    for round in 0..args.rounds.max(1) {
        // Fresh processes each round, started and measured in alternating order: two servers
        // measured A/A differ by up to ~14 % in CPU per query by process alone, which would
        // otherwise fall on one setting.
        let settings = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let servers = [
            Server::start(&db.url, settings[0])?,
            Server::start(&db.url, settings[1])?,
        ];
        for (phase, share) in [("create", 100), ("query", 0)] {
            for (server, on) in servers.iter().zip(settings) {
                let bodies = signed_bodies(&shop, args, share).await;
                let (run, cpu, rss) =
                    measure(Some(server.pid()), &server.base, args, bodies, share).await;
                let name = format!("{phase}-metrics-{}", if on { "on" } else { "off" });
                let report = report(&name, &db, args, run, cpu, rss, floor);
                add_run(&mut runs, (phase, on), report);
            }
        }
    }
    store.close().await;
    db.drop_schema().await;
    Ok(metrics_cost_medians(runs))
}

/// The median run of each (phase, setting), and on each "on" line its ratios to "off".
fn metrics_cost_medians(runs: Vec<((&str, bool), Vec<Report>)>) -> Vec<Report> {
    let median = |reports: &[Report], field: &str| middle(&values(reports, field));
    let mut out = Vec::new();
    for ((phase, on), reports) in &runs {
        let Some(rps) = median(reports, "requests_per_second") else {
            continue;
        };
        let cpu = median(reports, "server_cpu_us_per_request");
        let index = reports
            .iter()
            .position(|r| r.fields["requests_per_second"].as_f64() == Some(rps))
            .unwrap_or(0);
        let mut line = reports[index].clone();
        line.fields["server_cpu_us_per_request"] = json!(cpu);
        line.fields["rounds"] = json!(reports.len());
        if *on && let Some((_, off)) = runs.iter().find(|(key, _)| *key == (*phase, false)) {
            let ratio = |a: Option<f64>, b: Option<f64>| {
                a.zip(b).map(|(a, b)| (a / b * 1000.0).round() / 1000.0)
            };
            line.fields["rps_on_to_off"] =
                json!(ratio(Some(rps), median(off, "requests_per_second")));
            line.fields["cpu_on_to_off"] =
                json!(ratio(cpu, median(off, "server_cpu_us_per_request")));
        }
        out.push(line);
    }
    out
}

/// Files a round's report under its (phase, side), for [`alternated_medians`] and the like.
fn add_run<'a, S: PartialEq>(
    runs: &mut Vec<((&'a str, S), Vec<Report>)>,
    key: (&'a str, S),
    report: Report,
) {
    match runs.iter_mut().find(|(filed, _)| *filed == key) {
        Some((_, reports)) => reports.push(report),
        None => runs.push((key, vec![report])),
    }
}

/// The median of `values` (of an even count, the upper middle one); none of none.
fn median_of(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    middle(&values)
}

/// The median of values already sorted, as [`median_of`] takes it.
fn middle(sorted: &[f64]) -> Option<f64> {
    sorted.get(sorted.len() / 2).copied()
}

/// The sorted values of a field over the rounds.
fn values(reports: &[Report], field: &str) -> Vec<f64> {
    let mut values: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.fields[field].as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

/// A field's value in each round, in the rounds' order (`None` where a round lacks it).
fn in_rounds(reports: &[Report], field: &str) -> Vec<Option<f64>> {
    reports.iter().map(|r| r.fields[field].as_f64()).collect()
}

/// Each round's ratio of `measured` to `baseline` (the two runs of one round, next to each
/// other in time), as its median with min and max: drift between rounds cancels in each
/// ratio, where a ratio of medians can pair one side's quiet round with the other's busy one.
fn ratios_by_round(measured: &[Option<f64>], baseline: &[Option<f64>]) -> Value {
    let mut ratios: Vec<f64> = measured
        .iter()
        .zip(baseline)
        .filter_map(|(m, b)| Some(m.as_ref()? / b.filter(|b| *b > 0.0)?))
        .collect();
    if ratios.is_empty() {
        return Value::Null;
    }
    ratios.sort_by(f64::total_cmp);
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let (median, min, max) = (
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
    json!({"median": round(median), "min": round(min), "max": round(max)})
}

/// A [`ratios_by_round`] as the table prints it: `0.64 (0.58–0.71)`.
fn by_round_text(by_round: &Value) -> String {
    match (
        by_round["median"].as_f64(),
        by_round["min"].as_f64(),
        by_round["max"].as_f64(),
    ) {
        (Some(median), Some(min), Some(max)) => format!("{median} ({min}–{max})"),
        _ => "-".into(),
    }
}

/// For runs measured in alternating rounds, each (phase, side)'s median run with min and max;
/// on the lines of `measured` (the first of `sides`), its ratios to the `sides.1` medians of the
/// same phase, named by `ratio_names` (throughput, CPU per request).
fn alternated_medians<S: Copy + PartialEq>(
    runs: &[((&str, S), Vec<Report>)],
    (measured, baseline): (S, S),
    (rps_ratio, cpu_ratio): (&str, &str),
) -> Vec<Report> {
    let ratio =
        |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a / b * 1000.0).round() / 1000.0);
    let mut out = Vec::new();
    for ((phase, side), reports) in runs {
        let rps = values(reports, "requests_per_second");
        let cpu = values(reports, "server_cpu_us_per_request");
        let Some(median_rps) = middle(&rps) else {
            continue;
        };
        let index = reports
            .iter()
            .position(|r| r.fields["requests_per_second"].as_f64() == Some(median_rps))
            .unwrap_or(0);
        let mut line = reports[index].clone();
        line.fields["server_cpu_us_per_request"] = json!(middle(&cpu));
        line.fields["requests_per_second_min_max"] = json!([rps.first(), rps.last()]);
        line.fields["server_cpu_us_min_max"] = json!([cpu.first(), cpu.last()]);
        line.fields["rounds"] = json!(reports.len());
        line.fields["machine_idle_pct"] = json!(middle(&values(reports, "machine_idle_pct")));
        if *side == measured
            && let Some((_, base)) = runs.iter().find(|(key, _)| *key == (*phase, baseline))
        {
            let base_rps = middle(&values(base, "requests_per_second"));
            let base_cpu = middle(&values(base, "server_cpu_us_per_request"));
            line.fields[rps_ratio] = json!(ratio(Some(median_rps), base_rps));
            line.fields[cpu_ratio] = json!(ratio(middle(&cpu), base_cpu));
            for (name, field) in [
                (rps_ratio, "requests_per_second"),
                (cpu_ratio, "server_cpu_us_per_request"),
            ] {
                let by_round = ratios_by_round(&in_rounds(reports, field), &in_rounds(base, field));
                line.fields[format!("{name}_by_round")] = by_round;
            }
            let base_idle = middle(&values(base, "machine_idle_pct"));
            line.fields["baseline_machine_idle_pct"] = json!(base_idle);
        }
        out.push(line);
    }
    out
}

/// The callbacks scenario: in each of `--rounds` rounds, a backlog of due callbacks drained by
/// a fresh server, then the same bodies posted by a plain client to the same receiver; medians
/// of both with min and max, and kassa's ratio to the plain client.
async fn callbacks_run(args: &BenchArgs, base_url: Option<&str>) -> Result<Report, Failure> {
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = received.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { "success" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}/notify", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut rounds, mut plain, mut in_process) = (Vec::new(), Vec::new(), Vec::new());
    let (mut kassa_client, mut cpu) = (Vec::new(), ClientsCpu::default());
    let mut plain_idle = Vec::new();
    let count = args.backlog as usize;
    for _ in 0..args.rounds.max(1) {
        received.store(0, std::sync::atomic::Ordering::Relaxed);
        rounds.push(callbacks_drain(args, base_url, &receiver, &received).await?);
        // This process serves the receiver while the client posts in its own.
        let receiving = own_cpu_seconds();
        let reqwest = client_in_own_process(&receiver, count, plain_client::Client::Reqwest);
        let posted = reqwest.await?;
        cpu.receiver
            .extend(cpu_us_per(receiving, own_cpu_seconds(), count));
        cpu.plain.extend(posted.cpu_us_per_post);
        plain_idle.extend(posted.machine_idle_pct);
        plain.push(posted.per_second);
        let kassa = plain_client::Client::Kassa;
        let posted = client_in_own_process(&receiver, count, kassa).await?;
        cpu.kassa.extend(posted.cpu_us_per_post);
        kassa_client.push(posted.per_second);
        in_process.push(
            plain_client::posts_per_second(&receiver, count)
                .await?
                .per_second,
        );
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.iter().map(|v| v.round()).collect::<Vec<f64>>()
    };
    let plain_in_rounds: Vec<Option<f64>> = plain.iter().copied().map(Some).collect();
    let by_round = ratios_by_round(&in_rounds(&rounds, "requests_per_second"), &plain_in_rounds);
    let (plain, in_process) = (sorted(plain), sorted(in_process));
    let kassa = values(&rounds, "requests_per_second");
    let drains_idle = middle(&values(&rounds, "machine_idle_pct"));
    // Every list holds a figure per round, and there is at least one round.
    let median = |sorted: &[f64]| middle(sorted).unwrap_or(0.0);
    let index = rounds
        .iter()
        .position(|r| r.fields["requests_per_second"].as_f64() == Some(median(&kassa)))
        .unwrap_or(0);
    let mut report = rounds.swap_remove(index);
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    report.fields["rounds"] = json!(args.rounds.max(1));
    report.fields["requests_per_second_min_max"] = json!([kassa.first(), kassa.last()]);
    report.fields["plain_client_per_second"] = json!(round(median(&plain)));
    report.fields["plain_client_min_max"] = json!([plain.first(), plain.last()]);
    report.fields["to_plain_client"] = json!(round(median(&kassa) / median(&plain).max(1.0)));
    report.fields["to_plain_client_by_round"] = by_round;
    let kassa_client = sorted(kassa_client);
    report.fields["kassa_client_per_second"] = json!(round(median(&kassa_client)));
    report.fields["kassa_client_min_max"] = json!([kassa_client.first(), kassa_client.last()]);
    let to_kassa_client = median(&kassa) / median(&kassa_client).max(1.0);
    report.fields["to_kassa_client"] = json!(round(to_kassa_client));
    // How idle the cores were: with the concurrency fixed, what each side's exchanges wait for.
    report.fields["machine_idle_pct"] = json!(drains_idle);
    report.fields["plain_client_machine_idle_pct"] = json!(median_of(plain_idle));
    report.fields["plain_client_in_process_per_second"] = json!(round(median(&in_process)));
    report.fields["plain_client_in_process_min_max"] =
        json!([in_process.first(), in_process.last()]);
    cpu.attach(&mut report.fields);
    let store = callback_records::measure(args, base_url).await?;
    report.fields["store_claim_cpu_us_per_callback"] = json!(round(store.claim_us));
    report.fields["store_record_cpu_us_per_callback"] = json!(round(store.record_us));
    Ok(report)
}

/// The callbacks' references' CPU per post, each round's: the plain client's and kassa's own
/// client's (each in its process), and the receiver's (this process) while the plain client
/// posts. Beside kassa's server CPU per delivery and the receiver's during kassa's drain, they
/// say where each side's CPU goes, not only how fast it went.
#[derive(Default)]
struct ClientsCpu {
    plain: Vec<f64>,
    kassa: Vec<f64>,
    receiver: Vec<f64>,
}

impl ClientsCpu {
    /// The medians as report fields (absent where no round could read them).
    fn attach(self, fields: &mut Value) {
        let named = [
            ("plain_client_cpu_us_per_post", self.plain),
            ("kassa_client_cpu_us_per_post", self.kassa),
            ("receiver_cpu_us_per_plain_post", self.receiver),
        ];
        for (name, values) in named {
            if let Some(median) = median_of(values) {
                fields[name] = json!(median);
            }
        }
    }
}

/// Posts per second of `client` in a process of its own, posting `count` bodies to `receiver`,
/// and its CPU per post; the child is waited for off the runtime, which serves the receiver
/// meanwhile.
async fn client_in_own_process(
    receiver: &str,
    count: usize,
    client: plain_client::Client,
) -> Result<plain_client::Posted, Failure> {
    let to = receiver.to_string();
    let own = tokio::task::spawn_blocking(move || plain_client::in_own_process(&to, count, client));
    own.await.map_err(|e| Failure(e.to_string()))?
}

/// One round's drain: a fresh database with `--backlog` due callbacks to `receiver`, a fresh
/// server delivering them; timed until every callback is recorded delivered. The receiver's
/// count is read often (it costs nothing), the database's only once the receiver has them all
/// (see [`recorded_delivered`]).
async fn callbacks_drain(
    args: &BenchArgs,
    base_url: Option<&str>,
    receiver: &str,
    received: &std::sync::atomic::AtomicUsize,
) -> Result<Report, Failure> {
    let db = BenchDatabase::fresh(base_url).await?;
    let store = SqlStore::connect(&db.url).await?;
    store.migrate().await?;
    let shop = set_up_shop(&store).await?;
    store
        .bench_queue_callbacks(shop.app_id, receiver, args.backlog, now_ms())
        .await?;
    let floor = crypto_floor_us(&shop.key, &shop.platform);
    // The drain begins as the server starts: PostgreSQL's counters are read first.
    let costs = writes::Costs::before_server(&db.url).await;
    let server = Server::start(&db.url, true)?;
    let mut costs = costs.with_writer(&db.url, Some(server.pid()));
    let start = Instant::now();
    let cpu_before = cpu_seconds(server.pid());
    // This process only receives until every post has come (its reads of the store after
    // that are not the receiver's): its CPU until then is the receiver's, and the machine's
    // idle share until then the drain's.
    let receiver_before = own_cpu_seconds();
    let ticks_before = machine_ticks();
    // Both read once, when the last post has come.
    let mut at_last_post: Option<(Option<f64>, Option<f64>)> = None;
    let limit = Duration::from_secs(600);
    let (mut max_rss, mut delivered) = (0.0_f64, 0);
    let mut rss_read_at = Instant::now();
    while delivered < args.backlog && start.elapsed() < limit {
        let posts = received.load(std::sync::atomic::Ordering::Relaxed) as i64;
        if posts < args.backlog {
            tokio::time::sleep(Duration::from_millis(5)).await;
        } else {
            at_last_post.get_or_insert_with(|| {
                let posts = args.backlog as usize;
                let receiver_cpu_us = cpu_us_per(receiver_before, own_cpu_seconds(), posts);
                (receiver_cpu_us, machine_idle_since(ticks_before))
            });
            match recorded_delivered(&store).await? {
                // None pending, some not delivered: given up, counted as errors below.
                Some(recorded) if recorded < args.backlog => {
                    delivered = recorded;
                    break;
                }
                Some(recorded) => delivered = recorded,
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        if rss_read_at.elapsed() > Duration::from_millis(200) {
            max_rss = max_rss.max(peak_rss_mb(server.pid()).unwrap_or(0.0));
            rss_read_at = Instant::now();
        }
    }
    let elapsed = start.elapsed();
    let (receiver_cpu_us, machine_idle_pct) = at_last_post.unwrap_or_default();
    costs.run_ended();
    max_rss = max_rss.max(peak_rss_mb(server.pid()).unwrap_or(0.0));
    let cpu = cpu_before
        .zip(cpu_seconds(server.pid()))
        .map(|(b, a)| a - b);
    let run = Measured {
        requests: delivered as usize,
        errors: (args.backlog - delivered) as usize,
        elapsed,
        latencies_us: Vec::new(),
        machine_idle_pct,
    };
    let mut report = report("callbacks", &db, args, run, cpu, Some(max_rss), floor);
    report.fields["drain_s"] = json!((elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
    report.fields["backlog"] = json!(args.backlog);
    if let Some(per_delivery) = receiver_cpu_us {
        report.fields["receiver_cpu_us_per_delivery"] = json!(per_delivery);
    }
    drop(server);
    let delivered = delivered as usize;
    writes::attach(
        &mut report.fields,
        costs.per_request(&db.url, delivered).await,
    );
    store.close().await;
    db.drop_schema().await;
    Ok(report)
}

/// Read once every post has come: how many callbacks are recorded delivered once none is
/// pending any more, `None` while some still are. The pending ones are counted by the store's
/// backlog (through the due index; few by then, so cheap enough to ask every 2 ms), and a
/// drain's time ends when its last records commit, not at the bench's next look.
async fn recorded_delivered(store: &SqlStore) -> Result<Option<i64>, Failure> {
    // Every pending callback is due by the end of time: the backlog then counts them all.
    if store.backlog(i64::MAX).await?.callbacks_due > 0 {
        return Ok(None);
    }
    let counts = store.callback_counts().await?;
    let state = counts.iter().find(|(s, _)| *s == CallbackState::Delivered);
    Ok(Some(state.map_or(0, |(_, n)| *n)))
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<17} {:<8} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>7} {:>7} {:>6}",
        "scenario",
        "db",
        "conns",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "max ms",
        "errors",
        "cpu µs",
        "rss MB",
        "floor",
        "ratio"
    );
    for r in reports {
        let f = &r.fields;
        let num = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.1}"));
        println!(
            "{:<17} {:<8} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>7} {:>7} {:>6}",
            r.scenario,
            r.database,
            r.connections,
            num(&f["requests_per_second"]),
            num(&f["latency_ms"]["p50"]),
            num(&f["latency_ms"]["p90"]),
            num(&f["latency_ms"]["p99"]),
            num(&f["latency_ms"]["p999"]),
            num(&f["latency_ms"]["max"]),
            f["errors"],
            num(&f["server_cpu_us_per_request"]),
            num(&f["server_peak_rss_mb"]),
            num(&f["crypto_floor_us"]),
            f["cpu_to_floor_ratio"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.2}")),
        );
        if let Some(rps) = f.get("rps_to_null") {
            println!(
                "{:<17} to the null gateway: req/s {rps}, cpu µs {} (medians of {} rounds; req/s min–max {}, cpu min–max {})",
                "",
                f["cpu_to_null"],
                f["rounds"],
                f["requests_per_second_min_max"],
                f["server_cpu_us_min_max"]
            );
            println!(
                "{:<17} each round's own ratio: req/s {}, cpu µs {} (median, min–max)",
                "",
                by_round_text(&f["rps_to_null_by_round"]),
                by_round_text(&f["cpu_to_null_by_round"]),
            );
            if let (Some(idle), Some(base_idle)) = (
                f["machine_idle_pct"].as_f64(),
                f["baseline_machine_idle_pct"].as_f64(),
            ) {
                println!(
                    "{:<17} the cores idle {idle} % of kassa's runs, {base_idle} % of the null gateway's (medians)",
                    ""
                );
            }
        }
        if let Some(rps) = f.get("rps_on_to_off") {
            let cpu = &f["cpu_on_to_off"];
            println!(
                "{:<17} metrics on/off: req/s {rps}, cpu µs {cpu} (medians of {} rounds)",
                "", f["rounds"]
            );
        }
        if let Some(rps) = f.get("rps_with_to_without_books") {
            let cpu = &f["cpu_with_to_without_books"];
            println!(
                "{:<17} with/without books: orders/s {rps}, cpu µs {cpu} (medians of {} rounds)",
                "", f["rounds"]
            );
            if let Some(share) = f.get("books_cpu_share_of_create_and_pay") {
                println!(
                    "{:<17} the books' CPU per order is {share} of a create-and-pay's over HTTP",
                    ""
                );
            }
        }
        if let Some(seconds) = f.get("report_seconds") {
            println!(
                "{:<17} {} orders reported in {seconds} s, {} bytes, peak {} MB",
                "", f["requests"], f["report_bytes"], f["server_peak_rss_mb"]
            );
        }
        if let Some(drain) = f.get("drain_s") {
            println!(
                "{:<17} drained {} callbacks in {drain} s; a plain client in a process of its own \
                 posting the same bodies to the same receiver: {}/s (min, max {}), kassa {} × of \
                 it (medians of {} rounds; each round's own ratio {}; kassa min, max {}); \
                 kassa's delivery client alone, the same way: {}/s (min, max {}), kassa {} × of \
                 it; the plain client in the receiver's process: {}/s (min, max {})",
                "",
                f["backlog"],
                f["plain_client_per_second"],
                f["plain_client_min_max"],
                f["to_plain_client"],
                f["rounds"],
                by_round_text(&f["to_plain_client_by_round"]),
                f["requests_per_second_min_max"],
                f["kassa_client_per_second"],
                f["kassa_client_min_max"],
                f["to_kassa_client"],
                f["plain_client_in_process_per_second"],
                f["plain_client_in_process_min_max"],
            );
            if let (Some(idle), Some(plain_idle)) = (
                f["machine_idle_pct"].as_f64(),
                f["plain_client_machine_idle_pct"].as_f64(),
            ) {
                println!(
                    "{:<17} the cores idle {idle} % of kassa's drains, {plain_idle} % of the plain client's posts (medians)",
                    ""
                );
            }
        }
        if let Some(cpu) = f.get("writer_cpu_us_per_request") {
            println!(
                "{:<17} SQLite's writer thread per request: {cpu} µs CPU, {} write calls, {} bytes written",
                "", f["writer_write_calls_per_request"], f["writer_bytes_written_per_request"],
            );
        }
        if let Some(transactions) = f.get("database_transactions_per_request") {
            println!(
                "{:<17} the database per request: {transactions} transactions, {} rows written, {} WAL bytes, {} µs CPU{}",
                "",
                f["rows_written_per_request"],
                f["wal_bytes_per_request"],
                f["database_cpu_us_per_request"],
                f.get("callbacks_per_order")
                    .map_or(String::new(), |c| format!(", {c} callbacks per order"))
            );
        }
    }
}

pub async fn run(args: BenchArgs, database_url: Option<&str>) -> Outcome {
    if args.target.is_none() {
        // The databases the bench makes are sealed with a KEK of its own, given to its servers.
        crate::kek::bench_kek();
    }
    if args.target.is_some() && database_url.is_none() {
        return Err(Failure(
            "--target needs --database-url of that server's database".into(),
        ));
    }
    if args.connections == 0 || args.duration == 0 {
        return Err(Failure(
            "--connections and --duration must be above zero".into(),
        ));
    }
    let scenarios: Vec<Scenario> = match args.scenario {
        Scenario::All => vec![
            Scenario::Create,
            Scenario::Query,
            Scenario::Mixed,
            Scenario::Callbacks,
            Scenario::Preloaded,
        ],
        one => vec![one],
    };
    let mut reports = Vec::new();
    for scenario in scenarios {
        let produced = match scenario {
            Scenario::Create => http_run("create", 100, 0, &args, database_url).await?,
            Scenario::Query => http_run("query", 0, 0, &args, database_url).await?,
            Scenario::Mixed => http_run("mixed", 20, 0, &args, database_url).await?,
            Scenario::Preloaded => preloaded::run(&args, database_url).await?,
            Scenario::Callbacks => vec![callbacks_run(&args, database_url).await?],
            Scenario::MetricsCost => metrics_cost_run(&args, database_url).await?,
            Scenario::Upstream => upstream::run(&args, database_url).await?,
            Scenario::Pay => books::pay(&args, database_url).await?,
            Scenario::Report => books::settlement_report(&args, database_url).await?,
            Scenario::Backoffice => backoffice::orders_list(&args, database_url).await?,
            Scenario::Limit => limit::run(&args, database_url).await?,
            Scenario::Prune => prune::run(&args, database_url).await?,
            Scenario::All => unreachable!("expanded above"),
        };
        for report in produced {
            if args.json {
                println!("{}", report.fields);
            }
            reports.push(report);
        }
    }
    if !args.json {
        print_table(&reports);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that stops on SIGTERM is ended by it, not killed after the grace; one that
    /// ends by itself is waited for; neither is left unreaped.
    #[cfg(unix)]
    #[test]
    fn children_end_as_asked_within_the_grace() {
        let mut sleeping = Command::new("sleep").arg("30").spawn().unwrap();
        let started = Instant::now();
        end_child(&mut sleeping, Ending::Terminate);
        assert!(started.elapsed() < CHILD_EXIT_GRACE, "ended by SIGTERM");
        let status = sleeping.try_wait().unwrap().expect("reaped");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        let mut done = Command::new("true").spawn().unwrap();
        end_child(&mut done, Ending::Await);
        assert!(done.try_wait().unwrap().expect("reaped").success());
        let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
        end_child(&mut killed, Ending::Kill);
        let status = killed.try_wait().unwrap().expect("reaped");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn the_median_is_the_middle_value_whatever_the_order() {
        assert_eq!(median_of(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_of(vec![4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median_of(Vec::new()), None);
    }

    #[test]
    fn cpu_per_item_needs_both_readings_and_an_item() {
        assert_eq!(cpu_us_per(Some(1.0), Some(1.5), 20_000), Some(25.0));
        assert_eq!(cpu_us_per(Some(2.0), Some(2.01), 3), Some(3333.33));
        assert_eq!(cpu_us_per(None, Some(1.5), 10), None);
        assert_eq!(cpu_us_per(Some(1.0), None, 10), None);
        assert_eq!(cpu_us_per(Some(1.0), Some(1.5), 0), None);
    }

    #[test]
    fn the_plain_clients_answer_holds_its_rate_its_cpu_and_the_idle_share() {
        let posted = plain_client::answer_figures("45674.0 22.33 7.5").unwrap();
        assert_eq!(
            (
                posted.per_second,
                posted.cpu_us_per_post,
                posted.machine_idle_pct
            ),
            (45674.0, Some(22.33), Some(7.5))
        );
        let unread = plain_client::answer_figures("45674.0 -1.00 -1.0").unwrap();
        assert_eq!(
            (unread.cpu_us_per_post, unread.machine_idle_pct),
            (None, None),
            "what it could not read is absent"
        );
        assert!(plain_client::answer_figures("45674.0 22.33").is_none());
        assert!(plain_client::answer_figures("45674.0 22.33 7.5 1").is_none());
        assert!(plain_client::answer_figures("fast 1.0").is_none());
    }

    #[test]
    fn the_machine_idle_share_is_read_from_the_summary_line() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let before = machine_ticks_in("cpu  100 0 50 800 50 0 0 0 30 0").unwrap();
        assert_eq!(before, (850, 1000), "guest time is already in user");
        let after = machine_ticks_in("cpu  250 0 100 1000 60 0 0 0 90 0").unwrap();
        assert_eq!(idle_pct(before, after), Some(51.2), "210 idle of 410");
        assert_eq!(idle_pct(after, after), None, "no time passed");
        assert_eq!(idle_pct(after, before), None, "the counters never go back");
        assert_eq!(
            machine_ticks_in("cpu0 1 2 3 4 5 6 7 8"),
            None,
            "one core's line"
        );
        assert_eq!(machine_ticks_in("cpu 1 2 3"), None, "too short");
        let now = machine_ticks().expect("/proc/stat on Linux");
        assert!(now.0 <= now.1);
    }

    #[test]
    fn each_round_is_compared_with_its_own_baseline() {
        // The machine quickens from round to round. Two of the three rounds read 0.5, and so
        // does their median; the ratio of the sides' medians (200 to 300) would read 0.667.
        let kassa = [Some(100.0), Some(200.0), Some(400.0)];
        let null = [Some(200.0), Some(300.0), Some(800.0)];
        let by_round = ratios_by_round(&kassa, &null);
        assert_eq!(by_round, json!({"median": 0.5, "min": 0.5, "max": 0.667}));
        assert_eq!(by_round_text(&by_round), "0.5 (0.5–0.667)");
        // A round missing a figure, or with nothing to divide by, is left out, not read as 0.
        let gaps = ratios_by_round(
            &[Some(1.0), None, Some(3.0)],
            &[Some(0.0), Some(2.0), Some(4.0)],
        );
        assert_eq!(gaps, json!({"median": 0.75, "min": 0.75, "max": 0.75}));
        assert_eq!(ratios_by_round(&[None], &[Some(1.0)]), Value::Null);
        assert_eq!(by_round_text(&Value::Null), "-");
    }
}
