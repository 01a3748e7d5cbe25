//! What a run cost the database. On PostgreSQL: transactions (reads included), rows written
//! (inserted, updated, deleted), WAL bytes and — when the database runs on this machine — its
//! processes' CPU, per request. docs/scaling.md's capacity model is built on them. PostgreSQL
//! publishes a backend's counters when it goes idle or ends (within a second or so), so its
//! counters are read with none of the run's connections busy: before the load, and after the
//! server stopped; its CPU is read before the server's connections close, since an ended
//! backend's CPU leaves `/proc` with it. On SQLite, whose hot writes all go through one thread
//! of the server: that thread's CPU, write calls and bytes written, per request.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database's counters at one moment.
struct Snapshot {
    commits: i64,
    rows_written: i64,
    wal_bytes: i64,
    cpu_s: Option<f64>,
}

/// SQLite's writer thread at one moment: its CPU, and the write calls and bytes it made (the
/// log's frames, two calls each, and the checkpoints' pages).
#[derive(Clone, Copy)]
struct WriterSnapshot {
    cpu_s: f64,
    write_calls: i64,
    bytes_written: i64,
}

/// A run's costs to the database, from its start to its end.
pub struct Costs {
    before: Option<Snapshot>,
    cpu_at_end_s: Option<f64>,
    /// On SQLite: the server's writer thread (its `/proc` directory) and its counters then.
    writer: Option<(PathBuf, WriterSnapshot)>,
    writer_at_end: Option<WriterSnapshot>,
}

impl Costs {
    /// Reads the counters before the load: PostgreSQL's, or the writer thread's of the SQLite
    /// server `server_pid` (none for a server the bench did not start).
    pub async fn start(url: &str, server_pid: Option<u32>) -> Costs {
        Costs::before_server(url).await.with_writer(url, server_pid)
    }

    /// PostgreSQL's counters, read before the server starts: for a load that begins as the
    /// server does (a callbacks drain), which would run during the wait for settled counters.
    /// [`Costs::with_writer`] adds the SQLite writer's once the server runs.
    pub async fn before_server(url: &str) -> Costs {
        Costs {
            before: snapshot(url).await,
            cpu_at_end_s: None,
            writer: None,
            writer_at_end: None,
        }
    }

    /// The counters of SQLite server `server_pid`'s writer thread, from now.
    pub fn with_writer(mut self, url: &str, server_pid: Option<u32>) -> Costs {
        self.writer = server_pid
            .filter(|_| !is_postgres(url))
            .and_then(kassa_store::sqlite_writer_thread_dir)
            .and_then(|thread| Some((thread.clone(), writer_snapshot(&thread)?)));
        self
    }

    /// The load is over: the database's CPU now, while the server's connections are open (on
    /// SQLite, the writer thread's counters, while the server runs).
    pub fn run_ended(&mut self) {
        if self.before.is_some() {
            self.cpu_at_end_s = database_cpu_s();
        }
        self.writer_at_end = self
            .writer
            .as_ref()
            .and_then(|(thread, _)| writer_snapshot(thread));
    }

    /// The costs per request as report fields, read once the server has stopped (empty when
    /// the counters could not be read).
    pub async fn per_request(self, url: &str, requests: usize) -> Value {
        let requests = requests.max(1) as f64;
        let per = |from: i64, to: i64| ((to - from) as f64 / requests * 100.0).round() / 100.0;
        if let Some(((_, from), to)) = self.writer.zip(self.writer_at_end) {
            return json!({
                "writer_cpu_us_per_request": ((to.cpu_s - from.cpu_s) * 1e6 / requests) as i64,
                "writer_write_calls_per_request": per(from.write_calls, to.write_calls),
                "writer_bytes_written_per_request": per(from.bytes_written, to.bytes_written) as i64,
            });
        }
        let Some(before) = self.before else {
            return json!({});
        };
        let Some(after) = snapshot(url).await else {
            return json!({});
        };
        let cpu_us = before
            .cpu_s
            .zip(self.cpu_at_end_s)
            .map(|(from, to)| ((to - from) * 1e6 / requests).round());
        json!({
            "database_transactions_per_request": per(before.commits, after.commits),
            "rows_written_per_request": per(before.rows_written, after.rows_written),
            "wal_bytes_per_request": per(before.wal_bytes, after.wal_bytes),
            "database_cpu_us_per_request": cpu_us,
        })
    }
}

/// Adds a [`Costs::per_request`] to a report's fields.
pub fn attach(fields: &mut Value, costs: Value) {
    if let (Some(fields), Value::Object(costs)) = (fields.as_object_mut(), costs) {
        fields.extend(costs);
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres")
}

/// The writer thread's counters now, from its `stat` and `io` files.
fn writer_snapshot(thread: &Path) -> Option<WriterSnapshot> {
    let io = std::fs::read_to_string(thread.join("io")).ok()?;
    let counter = |key: &str| {
        io.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|value| value.trim().parse::<i64>().ok())
    };
    Some(WriterSnapshot {
        cpu_s: super::cpu_seconds_in(thread.join("stat"))?,
        write_calls: counter("syscw:")?,
        bytes_written: counter("wchar:")?,
    })
}

/// The counters of `url`'s database now; `None` on SQLite or when they cannot be read.
async fn snapshot(url: &str) -> Option<Snapshot> {
    if !is_postgres(url) {
        return None;
    }
    // Counters of backends that just went idle or ended land a moment later.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let pool = sqlx::PgPool::connect(url).await.ok()?;
    let row: Result<(i64, i64, i64), _> = sqlx::query_as(
        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, \
         (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint \
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&pool)
    .await;
    pool.close().await;
    let (commits, rows_written, wal_bytes) = row.ok()?;
    Some(Snapshot {
        commits,
        rows_written,
        wal_bytes,
        cpu_s: database_cpu_s(),
    })
}

/// CPU seconds of every PostgreSQL process on this machine (its backends, WAL writer,
/// checkpointer …); `None` when there are none (a database elsewhere).
fn database_cpu_s() -> Option<f64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() == "postgres"
            && let Some(cpu) = super::cpu_seconds(pid)
        {
            total = Some(total.unwrap_or(0.0) + cpu);
        }
    }
    total
}
