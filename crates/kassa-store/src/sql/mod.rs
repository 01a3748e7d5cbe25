//! The SQL implementation of the store for SQLite and PostgreSQL, through sqlx's `Any` driver.
//!
//! Both databases run the same statements (`$N` placeholders work on both). SQLite is opened
//! in WAL mode with `synchronous=FULL`, so an acknowledged write survives power loss. Each
//! aggregate has its module, with its statements, bindings and row mapping together:
//! [`settings`], [`merchants`] (and apps and fees), [`orders`], [`callbacks`]; [`writer`] is
//! SQLite's group commit of new orders, status changes and callback deliveries and [`native`]
//! its look-ups of one order, both through rusqlite rather than sqlx; [`schema`] holds the
//! migrations.

mod batched_inserts;
mod c_heap;
mod callbacks;
mod channels;
mod kept;
mod ledger;
mod merchants;
mod native;
mod orders;
pub mod page_cache;
mod read_anchor;
mod retention;
mod schema;
mod settings;
mod upstreams;
mod users;
mod wal_vfs;
mod write_transaction;
mod writer;

pub use writer::{
    WRITER_THREAD as SQLITE_WRITER_THREAD, writer_thread_dir as sqlite_writer_thread_dir,
};

use crate::{Backlog, PoolStatus, Store, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection as _, Row};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use write_transaction::WriteTransaction;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Whether the store's calls do I/O on the async runtime that made its connections (a
    /// PostgreSQL connection belongs to the runtime that opened it), so that callers on another
    /// runtime must not open them; SQLite's calls go to its writer thread and its files.
    pub fn calls_bound_to_runtime(self) -> bool {
        self == Backend::Postgres
    }

    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Whether one of the pool's connections is PostgreSQL's (sqlx's name for its driver), for
/// code that holds a connection and not the store.
pub(crate) fn on_postgres(connection: &sqlx::AnyConnection) -> bool {
    connection.backend_name() == "PostgreSQL"
}

/// Upper bound on the pool. SQLite has one writer anyway and readers share WAL snapshots, so a
/// few connections serve it; PostgreSQL gets more, to overlap round trips.
const MAX_CONNECTIONS_POSTGRES: u32 = 16;
const MAX_CONNECTIONS_SQLITE: u32 = 8;
/// SQLite's page cache per connection (KiB, as `PRAGMA cache_size` takes it negative): the
/// index of a million orders stays in memory; 8 connections bound it to 64 MiB.
const SQLITE_CACHE_KIB: u32 = 8 * 1024;
/// How long a statement waits for SQLite's write lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// How long PostgreSQL keeps a transaction of kassa's open while kassa says nothing (kassa's
/// own transactions take milliseconds). A node cut off from the database mid-transaction would
/// otherwise hold that transaction's row locks until the server's TCP keepalive ends its session
/// (hours by default): every other node's payment of the same order, or claim of the same
/// callbacks, would wait that long.
const POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 10_000;
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled connection idle this long is asked whether it still works before it is handed
/// out: a database restarted or a proxy that closed idle sessions leaves dead ones in the pool.
/// One used moments ago is not asked — on PostgreSQL each ask is a round trip that would
/// double a statement's (sqlx asks every connection by default).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// Serialises migrations across PostgreSQL nodes (an arbitrary, fixed lock id).
const MIGRATION_LOCK_ID: i64 = 0x006b_6173_7361; // "kassa" in ASCII

pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's group commit of new orders and status changes.
    writer: Option<writer::SqliteWriter>,
    /// PostgreSQL's group insert of new orders.
    batched: Option<batched_inserts::BatchedInserts>,
    /// SQLite's native look-ups of one order (a file's database; not in memory).
    native: Option<native::NativeReads>,
    /// Connections kept between the frequent statements (look-ups, PostgreSQL's batched
    /// inserts, status changes, the dispatcher's writes) without sqlx's test at each return.
    kept: Arc<kept::KeptConnections>,
}

/// A statement of the `Any` driver with its bound values.
pub(crate) type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// A value bound to a statement, borrowed from what is written or looked up where it can be,
/// owned where a statement is built at run time (`Value<'static>`: filters); both drivers bind
/// it (sqlx here, rusqlite in sql/native.rs). No `Debug`: it carries payers' personal data.
pub(crate) enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    /// A text made for the statement (an account's key, encoded headers).
    Made(String),
}

impl Value<'_> {
    /// The same value, borrowed: values bound more than once (a look-up asked again of the
    /// archive) are lent to each statement.
    pub(crate) fn lent(&self) -> Value<'_> {
        match self {
            Value::Int(v) => Value::Int(*v),
            Value::Text(v) => Value::Text(*v),
            Value::Made(v) => Value::Text(Some(v)),
        }
    }
}

/// A row of either driver (sqlx's, or the native SQLite path's), read by column name.
pub(crate) trait Columns {
    fn int(&self, column: &str) -> StoreResult<Option<i64>>;
    fn text(&self, column: &str) -> StoreResult<Option<String>>;

    fn need_int(&self, column: &str) -> StoreResult<i64> {
        self.int(column)?
            .ok_or_else(|| crate::error::corrupt(format!("{column} is null")))
    }

    fn need_text(&self, column: &str) -> StoreResult<String> {
        self.text(column)?
            .ok_or_else(|| crate::error::corrupt(format!("{column} is null")))
    }
}

impl Columns for sqlx::any::AnyRow {
    fn int(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(column)?)
    }
}

/// The column names of a `SELECT`, one by one, made once: rows are read by position.
type ColumnNames = std::sync::LazyLock<Vec<&'static str>>;

/// `columns` (as a statement lists them, comma-separated) one by one.
fn names_of(columns: &'static str) -> Vec<&'static str> {
    columns.split(',').map(str::trim).collect()
}

impl SqlStore {
    /// The one row `sql` (a `SELECT` of `columns`, in their order) finds with `args`, read by
    /// `read`: on SQLite's native path where the store has one, else through sqlx.
    async fn one_row<T>(
        &self,
        sql: &'static str,
        args: &[Value<'_>],
        columns: &'static [&'static str],
        read: fn(&dyn Columns) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        if let Some(native) = &self.native {
            return native.one_row(sql, args, columns, read);
        }
        // Lent: a look-up that misses is asked again of the archive with the same values.
        let query = bound(sql, args.iter().map(Value::lent));
        let mut connection = self.kept.take().await?;
        let row = query.fetch_optional(&mut *connection).await?;
        connection.give_back();
        row.as_ref().map(|row| read(row)).transpose()
    }
}

/// `sql` with `values` bound to `$1…`, for sqlx.
pub(crate) fn bound<'q>(sql: &'q str, values: impl IntoIterator<Item = Value<'q>>) -> Query<'q> {
    values.into_iter().fold(
        sqlx::query(sqlx::AssertSqlSafe(sql)),
        |query, value| match value {
            Value::Int(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Made(v) => query.bind(v),
        },
    )
}

/// One statement of a sequence both drivers run: its text and its values.
pub(crate) struct Step<'a> {
    pub sql: std::borrow::Cow<'static, str>,
    pub values: Vec<Value<'a>>,
}

/// Most writes waiting for SQLite's writer or PostgreSQL's batched insert; a full queue makes
/// callers wait (back-pressure).
const WRITE_QUEUE: usize = 1_024;
/// Most writes in one commit (one statement, for PostgreSQL's batched insert).
const MAX_WRITE_BATCH: usize = 128;

/// A batch of waiting writes: those taken already (`batch`, the first at least) and whatever
/// else `queue` holds now, up to [`MAX_WRITE_BATCH`] (it never waits for more: a lone write
/// goes at once).
fn batch_of<T>(mut batch: Vec<T>, queue: &mut tokio::sync::mpsc::Receiver<T>) -> Vec<T> {
    while batch.len() < MAX_WRITE_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    crate::telemetry::write_batch(batch.len(), queue.len());
    batch
}

/// Rows as a JSON array of objects keyed by `names`, written straight into one buffer (not
/// through `serde_json::Value` maps: an allocation per column per row). PostgreSQL turns it
/// into rows with `json_populate_recordset` or `json_to_recordset`, so a statement carrying
/// many rows has one shape whatever their number (parsed and planned once per connection).
pub(crate) fn json_rows<'a, R: IntoIterator<Item = Value<'a>>>(
    names: &[&str],
    rows: impl ExactSizeIterator<Item = R>,
    row_bytes: usize,
) -> String {
    let mut json = Vec::with_capacity(rows.len() * row_bytes + 2);
    json.push(b'[');
    for (row, values) in rows.enumerate() {
        if row > 0 {
            json.push(b',');
        }
        json.push(b'{');
        for (column, (name, value)) in names.iter().zip(values).enumerate() {
            if column > 0 {
                json.push(b',');
            }
            json_str(&mut json, name);
            json.push(b':');
            match value {
                Value::Int(Some(v)) => json_int(&mut json, v),
                Value::Int(None) | Value::Text(None) => json.extend_from_slice(b"null"),
                Value::Text(Some(v)) => json_str(&mut json, v),
                Value::Made(v) => json_str(&mut json, &v),
            }
        }
        json.push(b'}');
    }
    json.push(b']');
    String::from_utf8(json).expect("JSON written from strings is UTF-8")
}

/// `text` as a JSON string, escaped by serde_json.
fn json_str(json: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *json, text).expect("writing to a Vec cannot fail");
}

fn json_int(json: &mut Vec<u8>, value: i64) {
    use std::io::Write;
    write!(json, "{value}").expect("writing to a Vec cannot fail");
}

/// `$first, …` — `count` numbered placeholders, as both databases take them.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sql` with `{in}` made a list of placeholders, one per key, each key bound to its own: only
/// numbers are formatted into the text.
pub(crate) fn with_keys<'q>(sql: &str, keys: impl IntoIterator<Item = &'q str>) -> Query<'q> {
    let keys: Vec<&str> = keys.into_iter().collect();
    let sql = sql.replace("{in}", &placeholders(1, keys.len()));
    keys.into_iter()
        .fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |query, key| {
            query.bind(key)
        })
}

/// Statuses as SQL literals, from the core's own lists (never from input).
pub(crate) fn status_literals<'a>(
    statuses: impl IntoIterator<Item = &'a kassa_core::OrderStatus>,
) -> String {
    statuses
        .into_iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Statements built from column lists, once per process.
macro_rules! statement {
    ($(#[$doc:meta])* $vis:vis $name:ident, $($format:tt)+) => {
        $(#[$doc])*
        $vis static $name: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!($($format)+));
    };
}
pub(crate) use statement;

/// For a `sqlite://PATH[?…]` URL, the file's path (`None` for in-memory databases).
pub fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// Creates the SQLite file (and its folder) readable by its owner only: it holds the
/// platform's private key and payers' personal data.
fn prepare_sqlite_file(path: &Path) -> StoreResult<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::File(e.to_string()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::File(format!("{}: {e}", path.display())))
}

/// Every SQLite connection, sqlx's and the native path's: WAL, durable commits, foreign keys,
/// a busy timeout, a page cache.
fn sqlite_pragmas_sql() -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
         PRAGMA cache_size = -{SQLITE_CACHE_KIB};"
    )
}

async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite_pragmas_sql()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether a connection is outside any transaction (PostgreSQL). sqlx counts a transaction only
/// once its `BEGIN` is answered, so a caller cut off while waiting for that answer (a request's
/// timeout) leaves the session inside a transaction it does not know of; the next user's
/// statements would then run inside it, their inserts answered and never committed. In a
/// statement of its own, `now()` (when the transaction began) equals `statement_timestamp()`;
/// inside an older transaction it does not.
pub(super) async fn outside_any_transaction(
    conn: &mut sqlx::AnyConnection,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT now() = statement_timestamp()")
        .fetch_one(conn)
        .await?;
    row.try_get::<bool, _>(0)
}

/// Every PostgreSQL connection: a bound on a transaction left open (see
/// [`POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS`]).
async fn postgres_settings(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    let set = format!(
        "SET idle_in_transaction_session_timeout = {POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(set))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One direct connection before the pool: a pool retries a failing connection until its
/// acquire timeout and then says only that it timed out; this says why, at once (connection
/// refused, authentication, a folder SQLite cannot write its journal in).
async fn probe(url: &str, backend: Backend) -> StoreResult<()> {
    use sqlx::Connection;
    let cause = |e: sqlx::Error| StoreError::Unavailable(format!("cannot connect: {e}"));
    let mut conn = sqlx::AnyConnection::connect(url).await.map_err(cause)?;
    if backend == Backend::Sqlite {
        sqlite_pragmas(&mut conn).await.map_err(cause)?;
    }
    conn.close().await.map_err(cause)
}

impl SqlStore {
    /// Connects to `sqlite://PATH` (file created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> StoreResult<SqlStore> {
        let backend =
            Backend::of_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_string()))?;
        sqlx::any::install_default_drivers();
        let max_connections = match backend {
            Backend::Sqlite => MAX_CONNECTIONS_SQLITE,
            Backend::Postgres => MAX_CONNECTIONS_POSTGRES,
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            });
        if backend == Backend::Sqlite {
            c_heap::grow_in_large_steps();
            if !page_cache::install() {
                tracing::debug!(
                    "SQLite was initialised before its page cache layer: left as it is"
                );
            }
            if let Some(path) = sqlite_path(url) {
                prepare_sqlite_file(path)?;
            }
            options = options.after_connect(|conn, _| Box::pin(sqlite_pragmas(conn)));
        } else {
            options = options.after_connect(|conn, _| Box::pin(postgres_settings(conn)));
        }
        probe(url, backend).await?;
        let pool = options.connect(url).await?;
        // An in-memory database is each connection's own: it keeps to the pool's statements.
        let native_path = sqlite_path(url).filter(|_| backend == Backend::Sqlite);
        let (writer, native) = match native_path {
            Some(path) => {
                let anchor = read_anchor::ReadAnchor::new(path);
                let writer = writer::SqliteWriter::start(path, anchor.clone())?;
                let native = native::NativeReads::new(path, anchor);
                (Some(writer), Some(native))
            }
            None => (None, None),
        };
        let kept = kept::KeptConnections::new(pool.clone());
        let batched = (backend == Backend::Postgres)
            .then(|| batched_inserts::BatchedInserts::start(kept.clone()));
        Ok(SqlStore {
            pool,
            backend,
            writer,
            batched,
            native,
            kept,
        })
    }

    /// Which database this is, for logs and operator output.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every pooled connection (waits for those in use).
    pub async fn close(&self) {
        self.kept.release_all();
        self.pool.close().await;
    }

    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction on a connection of the pool. SQLite takes its write lock up
    /// front (`IMMEDIATE`), so two writers never deadlock upgrading read locks. A caller cut
    /// off before PostgreSQL answers the `BEGIN` leaves no session inside a transaction (see
    /// [`WriteTransaction`]).
    async fn begin_write(&self) -> StoreResult<WriteTransaction> {
        let statement = match self.backend {
            Backend::Sqlite => Some("BEGIN IMMEDIATE"),
            Backend::Postgres => None,
        };
        WriteTransaction::begin(&self.pool, statement).await
    }

    /// [`Self::begin_write`] on a kept connection, for the frequent transactions (status
    /// changes, the dispatcher's records and releases): give `connection` back after the
    /// commit. A transaction dropped unfinished rolls back when its connection, not given
    /// back, returns to the pool — after it has shown it is outside any transaction
    /// (`Kept`'s `Drop`), or is closed.
    async fn begin_write_on<'c>(
        &self,
        connection: &'c mut sqlx::AnyConnection,
    ) -> StoreResult<sqlx::Transaction<'c, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => connection.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => connection.begin().await?,
        })
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK_ID)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS kassa_migrations (\
             version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM kassa_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        for (version, sql) in schema::migrations(self.backend) {
            if applied.contains(&version) {
                continue;
            }
            tracing::info!(version, backend = self.backend.name(), "applying migration");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO kassa_migrations (version, applied_at_ms) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn backlog(&self, now_ms: i64) -> StoreResult<Backlog> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM callbacks WHERE state = 'pending' AND next_attempt_at_ms <= $1), \
             (SELECT COUNT(*) FROM callbacks WHERE state = 'dead'), \
             (SELECT MIN(created_at_ms) FROM callbacks WHERE state = 'pending'), \
             (SELECT COUNT(*) FROM orders WHERE status = 'exception')",
        )
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(Backlog {
            callbacks_due: row.try_get(0)?,
            callbacks_dead: row.try_get(1)?,
            oldest_pending_callback_ms: row.try_get(2)?,
            orders_in_exception: row.try_get(3)?,
        })
    }

    fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            open: self.pool.size(),
            // Kept connections wait for a statement as the pool's idle ones do.
            idle: (self.pool.num_idle() + self.kept.len()) as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn pending_migrations(&self) -> StoreResult<usize> {
        let applied = self.applied_migrations().await?;
        Ok(schema::migrations(self.backend)
            .filter(|(version, _)| !applied.contains(version))
            .count())
    }
}

impl SqlStore {
    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query("SELECT version FROM kassa_migrations")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDatabase;
    use crate::{LedgerStore, Store};

    /// Migration 22 rebuilds SQLite's ledger entries: on a database that holds entries, they
    /// are all kept, and the rules on them hold again after it.
    #[tokio::test]
    async fn sqlite_entries_survive_their_rebuild() {
        let db = TestDatabase::sqlite().await;
        let store = db.store().await;
        let ledger = |journal: &str| {
            format!(
                "INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor) \
                 VALUES ('{journal}', 1, 'platform:fees', 'EUR', 5), \
                 ('{journal}', 2, 'app:1001:pending', 'EUR', -5); \
                 INSERT INTO ledger_journals (journal_id, kind, app_id, currency, posted_at_ms) \
                 VALUES ('{journal}', 'success', 1001, 'EUR', 1);"
            )
        };
        // One connection throughout: a failed COMMIT leaves its transaction open on it.
        let connection = tokio::sync::Mutex::new(store.pool().acquire().await.unwrap());
        let run = |sql: String| async {
            let mut connection = connection.lock().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut **connection)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        for journal in ["a", "b"] {
            run(format!("BEGIN; {} COMMIT;", ledger(journal)))
                .await
                .unwrap();
        }
        let (_, rebuild) = super::schema::migrations(super::Backend::Sqlite)
            .find(|(version, _)| *version == 22)
            .unwrap();
        run(format!("BEGIN; {rebuild} COMMIT;")).await.unwrap();
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries")
            .fetch_one(&mut **connection.lock().await)
            .await
            .unwrap();
        assert_eq!(entries, 4);
        let refused = [
            "INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor) \
             VALUES ('a', 3, 'platform:fees', 'EUR', 1)",
            "DELETE FROM ledger_entries WHERE journal_id = 'a'",
            "UPDATE ledger_entries SET amount_minor = 6 WHERE journal_id = 'b'",
        ];
        for statement in refused {
            let error = run(statement.to_string()).await.expect_err(statement);
            assert!(error.contains("ledger"), "{statement}: {error}");
        }
        // Entries without their journal are refused at the commit, with no pragma.
        let error = run(
            "BEGIN; INSERT INTO ledger_entries (journal_id, entry_no, account, currency, \
             amount_minor) VALUES ('c', 1, 'platform:fees', 'EUR', 5); COMMIT;"
                .to_string(),
        )
        .await
        .expect_err("an entry without its journal");
        assert!(error.contains("FOREIGN KEY"), "{error}");
        run("ROLLBACK".to_string()).await.ok();
        assert!(
            store
                .ledger_check()
                .await
                .unwrap()
                .currencies_unbalanced
                .is_empty()
        );
        assert_eq!(store.pending_migrations().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn postgres_callbacks_pages_keep_room_for_claims() {
        let Some(db) =
            TestDatabase::postgres("postgres_callbacks_pages_keep_room_for_claims").await
        else {
            return;
        };
        let store = super::SqlStore::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let options: Option<String> = sqlx::query_scalar(
            "SELECT array_to_string(reloptions, ',') FROM pg_class \
             WHERE oid = to_regclass('callbacks')",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(options.as_deref(), Some("fillfactor=50"));
    }

    #[tokio::test]
    async fn postgres_sessions_end_a_transaction_left_open() {
        let Some(db) =
            TestDatabase::postgres("postgres_sessions_end_a_transaction_left_open").await
        else {
            return;
        };
        let store = super::SqlStore::connect(&db.url).await.unwrap();
        let timeout: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(timeout, "10s");
    }
}
