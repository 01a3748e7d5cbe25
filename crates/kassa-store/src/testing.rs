//! Fresh, isolated databases for tests: a temporary SQLite file, or a new schema in the
//! PostgreSQL database named by `KASSA_TEST_POSTGRES_URL`.
//!
//! Without that variable PostgreSQL tests are skipped with a printed reason; CI sets it, so
//! there they run for real, and an unreachable server fails the run instead of skipping.

use crate::{Backend, SqlStore, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub const POSTGRES_ENV: &str = "KASSA_TEST_POSTGRES_URL";

/// A database that lives as long as this value (SQLite files are deleted on drop; PostgreSQL
/// schemas are left for inspection and are cheap).
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
        TestDatabase {
            url,
            backend: Backend::Sqlite,
            _dir: Some(dir),
        }
    }

    /// `None` (after printing why) when PostgreSQL tests are not configured.
    pub async fn postgres(test_name: &str) -> Option<TestDatabase> {
        let Ok(base) = std::env::var(POSTGRES_ENV) else {
            eprintln!("skipped {test_name} on PostgreSQL: {POSTGRES_ENV} is not set");
            return None;
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!(
            "kassa_test_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={base} is set but unreachable: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create test schema");
        admin.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Some(TestDatabase {
            url,
            backend: Backend::Postgres,
            _dir: None,
        })
    }

    /// A connected, migrated store on this database.
    pub async fn store(&self) -> SqlStore {
        let store = SqlStore::connect(&self.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

/// Generates one test per listed async function and database: `sqlite::NAME` and
/// `postgres::NAME`. Each test builds a fresh database, passes it through `$setup` (an async
/// function from [`TestDatabase`]), and hands the result to the function under test.
#[macro_export]
macro_rules! on_both_databases {
    ($setup:path; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let db = $crate::testing::TestDatabase::sqlite().await;
                super::$name($setup(db).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(db) = $crate::testing::TestDatabase::postgres(stringify!($name)).await {
                    super::$name($setup(db).await).await;
                }
            })*
        }
    };
}

/// The identity setup for [`on_both_databases!`]: the test takes the database itself.
pub async fn database(db: TestDatabase) -> TestDatabase {
    db
}

/// `db`'s URL through a [`cuttable_proxy`] to its server (PostgreSQL), and the proxy's switch.
pub async fn through_cuttable_proxy(db: &TestDatabase) -> (String, watch::Sender<bool>) {
    let mut through = url::Url::parse(&db.url).expect("a database URL");
    let host = through.host_str().expect("a host in the URL");
    let target = format!("{host}:{}", through.port().unwrap_or(5432));
    let (port, open) = cuttable_proxy(target).await;
    through.set_port(Some(port)).expect("a URL with a port");
    (through.to_string(), open)
}

/// A loopback TCP proxy to `target` (`host:port`) that a test can cut, as a network that drops
/// packets would: while `open` holds `false` it forwards no byte (holding what it read, and
/// delivering it once open again, as TCP's retransmissions would) and connects nothing new.
/// Returns its port and the switch.
pub async fn cuttable_proxy(target: String) -> (u16, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let port = listener.local_addr().expect("the proxy's address").port();
    let (open, watching) = watch::channel(true);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let (target, mut open) = (target.clone(), watching.clone());
            tokio::spawn(async move {
                if open.wait_for(|open| *open).await.is_err() {
                    return;
                }
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    return;
                };
                let (from_client, to_client) = inbound.into_split();
                let (from_target, to_target) = outbound.into_split();
                tokio::spawn(pump(from_client, to_target, open.clone()));
                tokio::spawn(pump(from_target, to_client, open));
            });
        }
    });
    (port, open)
}

/// Copies one direction; bytes read while the proxy is cut wait until it is open again.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut open: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if open.wait_for(|open| *open).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Whether this kernel keeps custom time slices (Linux 6.12 and later); why not, if not.
pub fn custom_slices_kept() -> Result<(), String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut version = release
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().ok());
    let (major, minor) = (version.next().flatten(), version.next().flatten());
    match major.zip(minor) {
        Some(version) if version >= (6, 12) => Ok(()),
        _ => Err(format!(
            "kernel {:?} has no custom time slices (Linux 6.12)",
            release.trim()
        )),
    }
}

/// The time slice of the thread whose `/proc` directory is `task` (`se.slice` in its scheduler
/// statistics), in nanoseconds; `None` where the kernel does not show it.
pub fn thread_slice_ns(task: &std::path::Path) -> Option<u64> {
    let sched = std::fs::read_to_string(task.join("sched")).ok()?;
    let line = sched.lines().find(|line| line.starts_with("se.slice"))?;
    line.split(':').nth(1)?.trim().parse().ok()
}

/// The nice value of the thread whose `/proc` directory is `task` (field 19 of its `stat`).
pub fn thread_nice_of(task: &std::path::Path) -> Option<i32> {
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    crate::scheduling::stat_field(&stat, 19)?.parse().ok()
}

/// Whether this process may raise a thread's priority to nice `level`: `CAP_SYS_NICE` among its
/// effective capabilities (a container's root may lack it), or a nice limit (`RLIMIT_NICE`,
/// whose value `v` allows nice `20 - v`) that reaches `level`.
pub fn may_raise_priority_to(level: i32) -> bool {
    const CAP_SYS_NICE: u32 = 23;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let capable = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0);
    // SAFETY: all-zero is a valid `rlimit` (two integers).
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` lives through the call, which only writes it.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut limit) } == 0;
    let limited = read
        && (limit.rlim_cur == libc::RLIM_INFINITY || 20 - limit.rlim_cur.min(40) as i32 <= level);
    capable || limited
}
