//! SQLite's native path for the hottest statements: look-ups of one order or app here, the group
//! commit of new orders, status changes and callback deliveries in [`super::writer`]. They run
//! through rusqlite on connections kassa owns, each keeping its statements prepared, instead of
//! through sqlx's `Any` driver, which hands every statement to a worker thread of its own (two
//! thread switches a statement) and converts every value twice. A look-up runs on the calling
//! task's thread: a point read from SQLite's page cache takes microseconds, less than the
//! hand-off it replaces, and beside a read transaction kept open for it ([`super::read_anchor`])
//! it seldom makes a system call (docs/performance.md). Everything else on SQLite still goes
//! through sqlx. At debug level a look-up is logged as sqlx logs its statements (the statement,
//! never its values), inside the span of the request that made it.

use super::Columns;
use super::Value;
use super::read_anchor::ReadAnchor;
use crate::{StoreError, StoreResult};
use rusqlite::types::ToSqlOutput;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Idle read connections kept; a server's look-ups use about one per runtime thread.
const IDLE_READERS: usize = 8;
/// Statements each connection keeps prepared (the writer's hot statements are about twenty).
const PREPARED_PER_CONNECTION: usize = 32;

/// A slot of an idle read connection, on a cache line of its own: each thread takes and gives
/// back at its own slot, and a lock word shared with another thread's slot would bounce between
/// the cores all the same.
#[repr(align(64))]
#[derive(Default)]
struct IdleSlot(Mutex<Option<rusqlite::Connection>>);

/// The slot this thread looks at first: threads are numbered as they first look up.
fn home_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed) % IDLE_READERS;
    }
    HOME.with(|home| *home)
}

/// Opens a connection to the SQLite file with the settings every connection of kassa's has.
pub(super) fn open(path: &Path) -> StoreResult<rusqlite::Connection> {
    configured(rusqlite::Connection::open(path)?)
}

/// [`open`] for the writer: its write-ahead log's frames are written once per commit (see
/// [`super::wal_vfs`]), which is as durable as SQLite's own writes only with full syncs.
///
/// Its temporary store is memory: each job of a batch runs in a savepoint, whose sub-journal
/// (the pages it would roll back) SQLite otherwise moves into a file it creates and unlinks
/// once the journal passes 64 KiB — a delivery batch's record did, every few commits. The
/// journal is bounded by the job (every writer job is a bounded batch) and needed only to
/// roll a job back, never after a crash.
pub(super) fn open_writer(path: &Path) -> StoreResult<rusqlite::Connection> {
    super::wal_vfs::register()?;
    let flags = rusqlite::OpenFlags::default();
    let connection =
        rusqlite::Connection::open_with_flags_and_vfs(path, flags, super::wal_vfs::NAME)?;
    let connection = configured(connection)?;
    connection.execute_batch("PRAGMA temp_store = MEMORY")?;
    let synchronous: i64 = connection.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    const FULL: i64 = 2;
    if synchronous < FULL {
        let why = format!("the writer needs synchronous = FULL, not {synchronous}");
        return Err(StoreError::Failed(why));
    }
    Ok(connection)
}

fn configured(connection: rusqlite::Connection) -> StoreResult<rusqlite::Connection> {
    connection.execute_batch(&super::sqlite_pragmas_sql())?;
    connection.set_prepared_statement_cache_capacity(PREPARED_PER_CONNECTION);
    Ok(connection)
}

/// Binds `values` to `$1…$n` by position: SQLite numbers `$N` parameters by their first
/// appearance, and kassa's statements name them in order, which debug builds check.
pub(super) fn bind_in_order<T: rusqlite::ToSql>(
    statement: &mut rusqlite::Statement<'_>,
    values: impl IntoIterator<Item = T>,
) -> StoreResult<()> {
    let mut bound = 0;
    for (index, value) in (1..).zip(values) {
        debug_assert_eq!(
            statement.parameter_name(index),
            Some(format!("${index}").as_str())
        );
        statement.raw_bind_parameter(index, value)?;
        bound = index;
    }
    if bound != statement.parameter_count() {
        return Err(StoreError::Failed(format!(
            "{bound} values for {} parameters",
            statement.parameter_count()
        )));
    }
    Ok(())
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Value::Int(value) => value.to_sql(),
            Value::Text(value) => value.to_sql(),
            Value::Made(value) => value.to_sql(),
        }
    }
}

/// A row of a `SELECT` of known columns (`names`, as the statement lists them), read by
/// position rather than by asking SQLite each column's name. The search starts after the column
/// read last, so reading in the order of the columns (as `order_from_row` does) finds each at once.
pub(super) struct NamedRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: &'static [&'static str],
    next: std::cell::Cell<usize>,
}

impl<'r, 's> NamedRow<'r, 's> {
    pub(super) fn new(row: &'r rusqlite::Row<'s>, names: &'static [&'static str]) -> Self {
        NamedRow {
            row,
            names,
            next: std::cell::Cell::new(0),
        }
    }

    fn position(&self, column: &str) -> StoreResult<usize> {
        let found = column_position(self.names, column, self.next.get())?;
        self.next.set(found + 1);
        Ok(found)
    }
}

/// Where `column` is among `names`, searched from `start` on and then from the first.
fn column_position(names: &[&str], column: &str, start: usize) -> StoreResult<usize> {
    let start = start.min(names.len());
    (start..names.len())
        .chain(0..start)
        .find(|&i| names[i] == column)
        .ok_or_else(|| StoreError::Failed(format!("{column} is not a column of the statement")))
}

impl Columns for NamedRow<'_, '_> {
    fn int(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.row.get(self.position(column)?)?)
    }

    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.row.get(self.position(column)?)?)
    }
}

/// Read connections of the native path, lent to one look-up at a time. A thread finds the
/// connection it gave back last in its own slot, so a connection's statements, page cache and
/// allocations stay warm in one core's caches, and the threads take no lock in common.
pub(super) struct NativeReads {
    path: PathBuf,
    idle: [IdleSlot; IDLE_READERS],
    anchor: ReadAnchor,
}

impl NativeReads {
    /// `anchor`: the file's read anchor, shared with the writer.
    pub(super) fn new(path: &Path, anchor: ReadAnchor) -> NativeReads {
        NativeReads {
            path: path.to_path_buf(),
            idle: Default::default(),
            anchor,
        }
    }

    /// The one row `sql` (a `SELECT` of `columns`, in their order) finds with `args`, if any,
    /// read by `read`.
    pub(super) fn one_row<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        columns: &'static [&'static str],
        read: fn(&dyn Columns) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        // Timed only when the line would be written: a disabled event costs one load.
        let started = tracing::enabled!(tracing::Level::DEBUG).then(std::time::Instant::now);
        self.anchor.renew();
        let connection = self.lend()?;
        let found = one_row_on(&connection, sql, args, columns, read);
        self.give_back(connection);
        if let Some(started) = started {
            let rows_returned = matches!(found, Ok(Some(_))) as u8;
            let elapsed_us = started.elapsed().as_micros() as u64;
            tracing::debug!(statement = sql, rows_returned, elapsed_us, "native look-up");
        }
        found
    }

    /// The connection in this thread's slot, else a new one. Never another thread's: two
    /// threads would then pass one connection between them at every look-up. The slot's lock
    /// is waited for, not tried: another thread holds it only for a moment (its `give_back`
    /// looking for room), and a failed try would open a connection needlessly.
    fn lend(&self) -> StoreResult<rusqlite::Connection> {
        let home = &self.idle[home_slot()];
        let found = home.0.lock().ok().and_then(|mut idle| idle.take());
        match found {
            Some(connection) => Ok(connection),
            None => open(&self.path),
        }
    }

    /// Into this thread's slot, else the next empty one; with every slot taken it is closed.
    fn give_back(&self, connection: rusqlite::Connection) {
        let home = home_slot();
        let mut connection = Some(connection);
        for slot in self.idle[home..].iter().chain(&self.idle[..home]) {
            if let Ok(mut idle) = slot.0.lock()
                && idle.is_none()
            {
                *idle = connection.take();
                return;
            }
        }
    }
}

fn one_row_on<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    args: &[Value<'_>],
    columns: &'static [&'static str],
    read: fn(&dyn Columns) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    bind_in_order(&mut statement, args)?;
    let mut rows = statement.raw_query();
    match rows.next()? {
        Some(row) => Ok(Some(read(&NamedRow::new(row, columns))?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::orders::ORDER_COLUMN_NAMES;
    use super::*;

    /// A thread gets back the connection it gave back, and a thread whose slot is empty opens
    /// one of its own rather than take another thread's.
    #[test]
    fn each_thread_looks_up_on_the_connection_it_used_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reads.db");
        let reads = NativeReads::new(&path, ReadAnchor::new(&path));
        let handle = |connection: &rusqlite::Connection| unsafe { connection.handle() } as usize;
        let lend_and_give_back = || {
            let connection = reads.lend().unwrap();
            let used = handle(&connection);
            reads.give_back(connection);
            used
        };
        // One thread after the other, so that the test holds whatever slots they have.
        let on_a_thread = || {
            std::thread::scope(|scope| {
                let looks = || (home_slot(), (0..5).map(|_| lend_and_give_back()).collect());
                scope.spawn(looks).join().unwrap()
            })
        };
        let (first_home, first): (usize, Vec<usize>) = on_a_thread();
        let (second_home, second): (usize, Vec<usize>) = on_a_thread();
        assert!(first.iter().all(|&h| h == first[0]), "{first:?}");
        assert!(second.iter().all(|&h| h == second[0]), "{second:?}");
        if first_home != second_home {
            assert_ne!(first[0], second[0]);
            let connection = reads.lend().unwrap();
            if home_slot() != first_home && home_slot() != second_home {
                assert!(![first[0], second[0]].contains(&handle(&connection)));
            }
            reads.give_back(connection);
        }
    }

    /// What `.cargo/config.toml` asks of the bundled SQLite's build: a page cache of each
    /// connection's own, not one behind a process-wide mutex, and no memory statistics.
    #[test]
    fn sqlite_is_built_without_shared_memory_management() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let mut statement = connection.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let has = |option: &str| options.iter().any(|o| o == option);
        assert!(has("THREADSAFE=1"), "{options:?}");
        assert!(!has("ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(has("DEFAULT_MEMSTATUS=0"), "{options:?}");
    }

    /// A savepoint that changes many pages on the writer's connection keeps its sub-journal
    /// in memory, where one on a connection of SQLite's defaults (the control) spills into a
    /// temporary file — seen as an open descriptor of a deleted `etilqs_` file.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writers_savepoints_keep_their_journal_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.db");
        open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t (v BLOB); \
                 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99) \
                 INSERT INTO t SELECT zeroblob(3000) FROM n",
            )
            .unwrap();
        let spills = |mut connection: rusqlite::Connection| {
            let mut tx = connection.transaction().unwrap();
            let savepoint = tx.savepoint().unwrap();
            // A hundred pages that existed before the savepoint: 400 KiB of sub-journal.
            savepoint
                .execute_batch("UPDATE t SET v = zeroblob(3001)")
                .unwrap();
            let open_files = std::fs::read_dir("/proc/self/fd").unwrap();
            open_files.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.to_string_lossy().contains("etilqs_"))
            })
        };
        assert!(spills(open(&path).unwrap()), "the control spills");
        assert!(!spills(open_writer(&path).unwrap()));
    }

    #[test]
    fn every_order_column_has_a_position() {
        assert_eq!(
            ORDER_COLUMN_NAMES.len(),
            super::super::orders::ORDER_COLUMN_COUNT
        );
        for start in 0..=ORDER_COLUMN_NAMES.len() + 1 {
            for (position, name) in ORDER_COLUMN_NAMES.iter().enumerate() {
                assert_eq!(
                    column_position(&ORDER_COLUMN_NAMES, name, start).unwrap(),
                    position
                );
            }
            assert!(column_position(&ORDER_COLUMN_NAMES, "nope", start).is_err());
        }
        assert_eq!(
            column_position(&ORDER_COLUMN_NAMES, "language", 0).unwrap(),
            32
        );
    }
}
