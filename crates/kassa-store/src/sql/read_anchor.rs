//! A read transaction SQLite's native look-ups keep open beside them, so that theirs do not
//! each make two `fcntl` calls. A read transaction in WAL mode takes a shared lock on one of
//! the shared-memory index's read marks when it begins and drops it when it ends; SQLite's unix
//! VFS counts such locks per process and calls the kernel only for the first one taken and the
//! last one dropped, under one mutex per file for the whole process. A point look-up is a few
//! microseconds of work, so those two calls, and the runtime threads queueing on the mutex
//! while one of them is in the kernel, were much of what a query cost beyond the null gateway
//! (docs/performance.md). The anchor holds the newest read mark, so the look-ups that begin on
//! the same snapshot take it in-process.
//!
//! What a look-up sees does not change: each still begins its own transaction on the newest
//! commit, whoever made it (another process included); the anchor only holds a lock. What it
//! costs is what any reader costs: a checkpoint copies no frame past the anchor's snapshot, and
//! the log starts again from its beginning only when a write transaction begins with every
//! frame copied and no reader in the log. So the writer ends the anchor's read before each batch
//! and keeps it ended until the batch's commit (and the checkpoint that follows it) is done
//! ([`ReadAnchor::writer_begins`]); a look-up begins it again on the newest snapshot, and again
//! once [`REFRESH`] has passed (for commits of other processes or of sqlx's connections); it
//! ends after [`IDLE`] without look-ups.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How old the anchor's snapshot may be at a look-up: it moves on to commits of another process
/// or of sqlx's connections, which the writer does not announce, within this.
const REFRESH: Duration = Duration::from_millis(10);
/// How long the anchor reads without a look-up before it ends (checked this often too).
const IDLE: Duration = Duration::from_millis(100);

/// Begins the read transaction (any read of the file does, after `BEGIN`).
const FIRST_READ: &str = "SELECT count(*) FROM (SELECT 1 FROM sqlite_schema LIMIT 1)";

/// Runs `sql` with the connection's cached statement: the anchor begins and ends often (every
/// [`REFRESH`] under load, at each look-up when they are slow), and each is then a step rather
/// than a parse and plan of its statements.
fn run(connection: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.query([])?.next()?;
    Ok(())
}

/// Begins the read transaction.
fn begin_read(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    run(connection, "BEGIN")?;
    run(connection, FIRST_READ)
}

/// Shared by the look-ups and the writer thread (clones are one anchor).
#[derive(Clone)]
pub(super) struct ReadAnchor {
    state: Arc<Mutex<State>>,
}

struct State {
    path: PathBuf,
    connection: Option<rusqlite::Connection>,
    /// When a read transaction last began, or last failed to: either way the next attempt waits
    /// [`REFRESH`] (a failing anchor is not retried at every look-up).
    renewed_at: Option<Instant>,
    /// A read transaction is open.
    reading: bool,
    /// The writer is in a batch: the anchor stays ended until it is done.
    writing: bool,
}

impl ReadAnchor {
    /// The anchor of the file at `path`; within a runtime, a task ends it when idle (the task
    /// stops once every clone is dropped).
    pub(super) fn new(path: &Path) -> ReadAnchor {
        let state = Arc::new(Mutex::new(State {
            path: path.to_path_buf(),
            connection: None,
            renewed_at: None,
            reading: false,
            writing: false,
        }));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(end_when_idle(Arc::downgrade(&state)));
        }
        ReadAnchor { state }
    }

    /// Before a look-up: makes sure the anchor reads a recent snapshot, unless the writer is
    /// in a batch. Never waits: a look-up that finds another one renewing it goes on without.
    pub(super) fn renew(&self) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        let now = Instant::now();
        let fresh = state
            .renewed_at
            .is_some_and(|at| now.duration_since(at) < REFRESH);
        if !fresh && !state.writing {
            state.end();
            state.begin(now);
        }
    }

    /// The writer's batch begins: the anchor ends its read, so that the checkpoint after the
    /// commit can copy every frame and the next batch can start the log again.
    pub(super) fn writer_begins(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.writing = true;
            state.end();
        }
    }

    /// The writer's batch is committed (or failed): the next look-up begins the anchor again.
    pub(super) fn writer_done(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.writing = false;
        }
    }

    /// Whether the anchor is reading now (for tests).
    #[cfg(test)]
    fn is_reading(&self) -> bool {
        self.state.lock().is_ok_and(|state| state.reading)
    }
}

impl State {
    fn begin(&mut self, now: Instant) {
        self.renewed_at = Some(now);
        if self.connection.is_none() {
            self.connection = super::native::open(&self.path).ok();
        }
        let Some(connection) = &self.connection else {
            return;
        };
        match begin_read(connection) {
            Ok(()) => self.reading = true,
            // An anchor is only ever an optimisation: one that cannot read is closed and
            // opened again at a later look-up.
            Err(e) => {
                tracing::debug!(error = %e, "SQLite's read anchor could not begin");
                self.connection = None;
            }
        }
    }

    /// Ends the read transaction, if one is open; the next look-up may then begin one at once
    /// (a failed attempt still waits its [`REFRESH`]).
    fn end(&mut self) {
        if !std::mem::take(&mut self.reading) {
            return;
        }
        self.renewed_at = None;
        if let Some(connection) = &self.connection
            && let Err(e) = run(connection, "COMMIT")
        {
            tracing::debug!(error = %e, "SQLite's read anchor could not end");
            self.connection = None;
        }
    }
}

/// Ends the anchor's read transaction once it has lasted [`IDLE`] (no look-up renewed it), so
/// that an anchor never holds back checkpoints while nothing reads.
async fn end_when_idle(state: Weak<Mutex<State>>) {
    let mut every = tokio::time::interval(IDLE);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        // A look-up renewing it now makes it young anyway; this task never blocks its thread.
        let mut state = match state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::WouldBlock) => continue,
            Err(std::sync::TryLockError::Poisoned(_)) => return,
        };
        let idle = state.renewed_at.is_some_and(|at| at.elapsed() >= IDLE);
        if state.reading && idle {
            state.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.db");
        let connection = super::super::native::open(&path).unwrap();
        connection
            .execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)")
            .unwrap();
        (dir, path)
    }

    /// `(busy, log frames, frames checkpointed)` of a checkpoint in `mode` on its own
    /// connection.
    fn checkpoint(path: &Path, mode: &str) -> (i64, i64, i64) {
        let connection = super::super::native::open(path).unwrap();
        let sql = format!("PRAGMA wal_checkpoint({mode})");
        connection
            .query_row(&sql, [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
    }

    fn read(path: &Path) -> i64 {
        let connection = super::super::native::open(path).unwrap();
        connection
            .query_row("SELECT v FROM t", [], |row| row.get(0))
            .unwrap()
    }

    /// A reader beside the anchor sees another connection's commit at once, with the anchor
    /// still on its older snapshot; the anchor does hold that snapshot (a checkpoint cannot
    /// copy past it) and lets go of it for the writer's batch. No runtime: no idle task.
    #[test]
    fn readers_see_new_commits_and_the_anchor_lets_the_writer_through() {
        let (_dir, path) = file();
        let writer = super::super::native::open(&path).unwrap();
        let anchor = ReadAnchor::new(&path);
        anchor.renew();
        assert!(anchor.is_reading());

        writer.execute_batch("UPDATE t SET v = 2").unwrap();
        assert_eq!(read(&path), 2, "a look-up reads the newest commit");
        let (_, frames, copied) = checkpoint(&path, "PASSIVE");
        assert!(
            copied < frames,
            "the anchor's older snapshot holds the checkpoint back"
        );

        anchor.writer_begins();
        assert!(!anchor.is_reading());
        anchor.renew();
        assert!(
            !anchor.is_reading(),
            "no anchor while the writer's batch runs"
        );
        writer.execute_batch("UPDATE t SET v = 3").unwrap();
        let (_, frames, copied) = checkpoint(&path, "PASSIVE");
        assert_eq!(copied, frames, "nothing holds the checkpoint back");
        anchor.writer_done();
        anchor.renew();
        assert!(anchor.is_reading());
        assert_eq!(read(&path), 3);
    }

    /// Look-ups between the writer's batches do not keep the log from starting again: it stays
    /// near its checkpoint size however many batches are written.
    #[test]
    fn the_log_restarts_under_writes_and_look_ups() {
        let (_dir, path) = file();
        let writer = super::super::native::open(&path).unwrap();
        const CHECKPOINT_PAGES: u64 = 50;
        writer
            .execute_batch(&format!("PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}"))
            .unwrap();
        let anchor = ReadAnchor::new(&path);
        for v in 0..600 {
            anchor.writer_begins();
            writer.execute("UPDATE t SET v = ?1", [v]).unwrap();
            anchor.writer_done();
            anchor.renew();
        }
        let wal = path.with_extension("db-wal");
        let wal_bytes = std::fs::metadata(wal).unwrap().len();
        // Each batch writes a frame or two: without restarts the log would hold 600 or more.
        let bound_bytes = 4 * CHECKPOINT_PAGES * 4_200;
        assert!(wal_bytes < bound_bytes, "log of {wal_bytes} bytes");
    }

    /// An anchor that cannot begin (here: no such folder) is tried again only after
    /// [`REFRESH`], not at every look-up.
    #[test]
    fn a_failing_anchor_is_not_retried_at_every_look_up() {
        let dir = tempfile::tempdir().unwrap();
        let anchor = ReadAnchor::new(&dir.path().join("missing").join("anchor.db"));
        anchor.renew();
        let tried_at = anchor.state.lock().unwrap().renewed_at.unwrap();
        anchor.renew();
        let state = anchor.state.lock().unwrap();
        assert!(!state.reading);
        // A machine slower than REFRESH between the two look-ups may rightly try again.
        let retried_early = state.renewed_at != Some(tried_at) && tried_at.elapsed() < REFRESH;
        assert!(!retried_early, "no second attempt within REFRESH");
    }

    /// Without look-ups the anchor ends its read, and the log can restart.
    #[tokio::test]
    async fn an_idle_anchor_ends_its_read() {
        let (_dir, path) = file();
        let writer = super::super::native::open(&path).unwrap();
        let anchor = ReadAnchor::new(&path);
        anchor.renew();
        writer.execute_batch("UPDATE t SET v = 2").unwrap();
        tokio::time::sleep(IDLE * 3).await;
        assert!(!anchor.is_reading());
        assert_eq!(checkpoint(&path, "TRUNCATE"), (0, 0, 0), "nothing reads");
        assert_eq!(read(&path), 2);
    }
}
