//! Group commit for SQLite: one writer thread takes whatever writes are waiting (new orders,
//! status changes, callback claims and attempts) and commits them in one transaction, so
//! concurrent creates, payments and deliveries share one fsync instead of paying one each.
//! Every caller gets its answer only after the commit that holds its rows is durable. The
//! thread owns its connection and keeps its statements prepared (the native path,
//! sql/native.rs): a batch costs one hand-off to the thread, not one or more per statement.

use super::orders::{INSERT_ORDER, OwnedStatusChange, StatusChange, insert_result, order_values};
use super::read_anchor::ReadAnchor;
use super::{Step, native};
use crate::{StoreError, StoreResult};
use kassa_core::Order;
use rusqlite::ffi;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::path::Path;
use std::time::{Duration, Instant};

/// A write waiting for the writer: it runs inside the batch's transaction, and its caller hears
/// the outcome once the commit is durable (or the batch failed).
trait Job: Send {
    /// Until when a batch holding this job may wait for company (see [`Company`]): its own
    /// wait, counted from when it was queued.
    fn gather_until(&self) -> Instant;
    fn write(self: Box<Self>, tx: &mut rusqlite::Transaction<'_>) -> Box<dyn Answer>;
    /// The batch's transaction could not begin: the job is not run.
    fn refuse(self: Box<Self>, error: &StoreError);
}

/// A written job's result, held until its batch is committed.
trait Answer: Send {
    /// `failed`: why the batch, this job's writes with it, was not stored.
    fn send(self: Box<Self>, failed: Option<&StoreError>);
}

/// Work of any kind on the writer's transaction, with where its result goes.
struct Work<F, T> {
    work: F,
    gather_until: Instant,
    done: tokio::sync::oneshot::Sender<StoreResult<T>>,
}

struct Written<T> {
    result: StoreResult<T>,
    done: tokio::sync::oneshot::Sender<StoreResult<T>>,
}

impl<F, T> Job for Work<F, T>
where
    F: FnOnce(&mut rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    fn gather_until(&self) -> Instant {
        self.gather_until
    }

    fn write(self: Box<Self>, tx: &mut rusqlite::Transaction<'_>) -> Box<dyn Answer> {
        let Work { work, done, .. } = *self;
        let result = work(tx);
        Box::new(Written { result, done })
    }

    fn refuse(self: Box<Self>, error: &StoreError) {
        let _ = self.done.send(Err(error.clone()));
    }
}

impl<T: Send> Answer for Written<T> {
    fn send(self: Box<Self>, failed: Option<&StoreError>) {
        let result = match failed {
            Some(error) => Err(error.clone()),
            None => self.result,
        };
        let _ = self.done.send(result);
    }
}

/// How long a write may wait for more writes before its commit while writes arrive together,
/// counted from when it was queued (time spent behind the previous commit counts: waiting
/// again after it only left the cores idle while creates awaited their commit). A commit costs
/// the same few pages of every index's tail and one `fdatasync` whether it holds one order or
/// ten, and creates reach the writer one by one (each request's signing spaces them out) even
/// when many are in flight: without the wait three commits in four held a single write
/// (docs/performance.md, "Group commit that waits for company"). This is the wait of the
/// dispatcher's claims, which its loop awaits: 1 ms slowed callback deliveries by a sixth.
const GATHER: Duration = Duration::from_micros(250);
/// The wait of a batch opened by callbacks' attempts, which no delivery awaits, where writes
/// have lately arrived together (see [`Company`]): a claim of the dispatcher's that comes
/// meanwhile commits with them and ends the wait sooner (docs/performance.md, "Records that
/// wait for the next claim"). A drain's records and claims seldom reach the writer together, so
/// most commit apart; records that always waited for the next claim made a third fewer commits
/// and cost the writer no less per delivery, since a commit's cost follows the pages written
/// ("A slow-RSA machine again: where the callbacks' and the query's gaps are").
const GATHER_FOR_RECORDS: Duration = Duration::from_millis(1);
/// The wait of a new order or a status change: their requests' replies are signed while they
/// wait (a millisecond is half of a loaded create's median), and 1 ms gathered more of them
/// than 250 or 500 µs for less of the writer's CPU per create; 2 ms cost throughput (counted
/// from the writer's start of the batch; counted from the queue, 0.6, 1 and 1.5 ms read the
/// same).
const GATHER_FOR_REQUESTS: Duration = Duration::from_millis(1);
/// How long the sign of concurrent writers lasts: a batch of more than one, or writes queued
/// behind a commit.
const COMPANY_LASTS: Duration = Duration::from_millis(100);

/// Whether writes have lately arrived together, so that waiting for company will likely
/// gather some. A lone client, whose next write waits for this one's answer, never shows the
/// sign, so its writes are never delayed.
#[derive(Default)]
struct Company {
    until: Option<Instant>,
}

impl Company {
    fn expected(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// After a commit: `together` if its batch held more than one write or more wait behind it.
    fn saw(&mut self, together: bool, now: Instant) {
        if together {
            self.until = Some(now + COMPANY_LASTS);
        }
    }
}

/// The log's size in frames at which the writer checkpoints after a commit: SQLite's own
/// default (`wal_autocheckpoint`).
const CHECKPOINT_AT_FRAMES: c_int = 1_000;

thread_local! {
    /// The writer's log size in frames after its last commit, written by SQLite's WAL hook,
    /// which runs on the committing thread: the writer's own, the only one using its connection.
    static LOG_FRAMES: Cell<c_int> = const { Cell::new(0) };
}

unsafe extern "C" fn note_log_frames(
    _: *mut c_void,
    _: *mut ffi::sqlite3,
    _: *const c_char,
    frames: c_int,
) -> c_int {
    LOG_FRAMES.set(frames);
    ffi::SQLITE_OK
}

/// The writer's checkpoints run after its batch's callers have their answers, not inside the
/// commit: SQLite's automatic checkpoint runs in the commit's own step, so the batch that
/// fills the log waited for a copy of a thousand pages and a sync of the database file, while
/// its requests' replies were signed and ready (docs/performance.md, "Checkpoints after the
/// answers"). The hook replaces the automatic checkpoint and only notes the log's size.
fn checkpoint_after_answers(connection: &rusqlite::Connection) {
    // SAFETY: the handle is the open connection's; the hook has no client data and writes a
    // thread-local only.
    unsafe {
        ffi::sqlite3_wal_hook(
            connection.handle(),
            Some(note_log_frames),
            std::ptr::null_mut(),
        );
    }
}

/// The checkpoint the last commit made due, as SQLite's automatic one would have run it
/// (passive: it copies what no reader still needs and never waits). `failing`: whether the
/// last one failed, so that a lasting failure (a full disk) is logged when it starts and when
/// it ends, not after every commit.
fn checkpoint_if_due(connection: &rusqlite::Connection, failing: &mut bool) {
    if LOG_FRAMES.replace(0) < CHECKPOINT_AT_FRAMES {
        return;
    }
    // A checkpoint another process runs meanwhile is no error: the pragma's row says busy.
    let checkpoint = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    match &checkpoint {
        Err(e) if !*failing => {
            tracing::warn!(error = %e, "the writer's checkpoint failed; each commit tries again");
        }
        Ok(()) if *failing => tracing::info!("the writer's checkpoints succeed again"),
        _ => {}
    }
    *failing = checkpoint.is_err();
}

/// The writer thread's name (the kernel shows its first 15 bytes); `kassa bench` reads the
/// thread's own CPU and writes by it.
pub const WRITER_THREAD: &str = "kassa-sqlite-writer";

/// The `/proc` directory of process `pid`'s SQLite writer thread, if it has one.
pub fn writer_thread_dir(pid: u32) -> Option<std::path::PathBuf> {
    crate::scheduling::thread_dir(pid, WRITER_THREAD)
}

/// Waits for company for the batch begun in `gathered`, until the earliest end of its writes'
/// own waits: a write that waits less (a claim), arriving while a longer wait runs (records'),
/// ends it sooner, and wakes the writer to say so. Ends at once when the batch is full.
fn gather(
    gathered: &mut Vec<Box<dyn Job>>,
    queue: &mut tokio::sync::mpsc::Receiver<Box<dyn Job>>,
    gathering: &Gathering,
) {
    let mut until = gathered[0].gather_until();
    loop {
        // Published before the queue is read: a write queued after this read finds an end no
        // earlier than the real one, so one that would end it sooner always wakes the writer.
        gathering.publish(Some(until));
        while gathered.len() < super::MAX_WRITE_BATCH {
            let Ok(job) = queue.try_recv() else { break };
            until = until.min(job.gather_until());
            gathered.push(job);
        }
        let now = Instant::now();
        if now >= until || gathered.len() >= super::MAX_WRITE_BATCH {
            break;
        }
        std::thread::park_timeout(until - now);
    }
    gathering.publish(None);
}

pub(super) struct SqliteWriter {
    jobs: tokio::sync::mpsc::Sender<Box<dyn Job>>,
    gathering: std::sync::Arc<Gathering>,
}

/// When the writer's wait for company ends, published so that a write whose own wait would end
/// sooner wakes the writer (see [`gather`]).
struct Gathering {
    epoch: Instant,
    /// Nanoseconds after `epoch` at which the current gather ends; 0 while not gathering.
    until_ns: std::sync::atomic::AtomicU64,
    writer: std::sync::OnceLock<std::thread::Thread>,
}

impl Gathering {
    fn new() -> Gathering {
        Gathering {
            epoch: Instant::now(),
            until_ns: Default::default(),
            writer: Default::default(),
        }
    }

    fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn publish(&self, until: Option<Instant>) {
        let ns = until.map_or(0, |until| self.ns(until).max(1));
        self.until_ns
            .store(ns, std::sync::atomic::Ordering::Release);
    }

    /// After a job that waits for company until `gather_until` is queued: wakes the writer if
    /// its current wait ends later than this job's.
    fn queued(&self, gather_until: Instant) {
        let until = self.until_ns.load(std::sync::atomic::Ordering::Acquire);
        let sooner = until != 0 && self.ns(gather_until) < until;
        if let Some(writer) = self.writer.get().filter(|_| sooner) {
            writer.unpark();
        }
    }
}

/// Asks for the writer's priority ([`crate::scheduling::WRITER_PRIORITY_BOOST`]) and says once
/// which it runs at: a refusal costs throughput, not correctness, so it is no error.
fn run_ahead_of_the_workers() {
    use crate::scheduling::{WRITER_PRIORITY_BOOST, ask_for_higher_priority};
    match ask_for_higher_priority(WRITER_PRIORITY_BOOST) {
        Ok(nice) => tracing::debug!(nice, "the SQLite writer runs ahead of the request workers"),
        Err(error) => tracing::info!(
            %error,
            "the SQLite writer runs at the request workers' priority; granting the process \
             CAP_SYS_NICE or a nice limit of 30 lets its commits run sooner (docs/operations.md)"
        ),
    }
}

impl SqliteWriter {
    /// Opens the writer's connection and starts its thread; the thread ends when the store
    /// (the queue's sender) is dropped.
    pub(super) fn start(path: &Path, anchor: ReadAnchor) -> StoreResult<SqliteWriter> {
        let connection = native::open_writer(path)?;
        // The writer's statements keep their plans whatever values are bound: with the
        // statistics SQLite keeps, a range on a bound value (the callback claim's
        // `next_attempt_at_ms <= $3`) would be planned again at every new binding.
        let stable_plans = rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG;
        connection.set_db_config(stable_plans, true)?;
        checkpoint_after_answers(&connection);
        let (jobs, queue) = tokio::sync::mpsc::channel::<Box<dyn Job>>(super::WRITE_QUEUE);
        let gathering = std::sync::Arc::new(Gathering::new());
        let published = gathering.clone();
        let thread = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || Self::run(connection, queue, &anchor, &published))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        let _ = gathering.writer.set(thread.thread().clone());
        Ok(SqliteWriter { jobs, gathering })
    }

    /// `anchor`: the look-ups' read anchor, ended for each batch (see [`super::read_anchor`]).
    fn run(
        mut connection: rusqlite::Connection,
        mut queue: tokio::sync::mpsc::Receiver<Box<dyn Job>>,
        anchor: &ReadAnchor,
        gathering: &Gathering,
    ) {
        crate::scheduling::ask_for_short_slices(crate::scheduling::SHORT_SLICE);
        run_ahead_of_the_workers();
        let mut company = Company::default();
        let mut checkpoint_failing = false;
        while let Some(first) = queue.blocking_recv() {
            let mut gathered = vec![first];
            if company.expected(Instant::now()) {
                gather(&mut gathered, &mut queue, gathering);
            }
            let batch = super::batch_of(gathered, &mut queue);
            let together = batch.len() > 1;
            anchor.writer_begins();
            Self::commit(&mut connection, batch);
            checkpoint_if_due(&connection, &mut checkpoint_failing);
            anchor.writer_done();
            company.saw(together || !queue.is_empty(), Instant::now());
        }
    }

    /// One transaction for the whole batch; every caller hears the outcome after the commit.
    fn commit(connection: &mut rusqlite::Connection, batch: Vec<Box<dyn Job>>) {
        let immediate = rusqlite::TransactionBehavior::Immediate;
        let mut tx = match connection.transaction_with_behavior(immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let error = StoreError::from(e);
                batch.into_iter().for_each(|job| job.refuse(&error));
                return;
            }
        };
        let answers: Vec<Box<dyn Answer>> =
            batch.into_iter().map(|job| job.write(&mut tx)).collect();
        // Nothing of the batch is stored unless the commit is; every caller hears why, once
        // what the rolled-back batch left gathered is gone.
        let failed = tx.commit().err().map(StoreError::from);
        let dropped_bytes = super::wal_vfs::discard_uncommitted(connection);
        if dropped_bytes > 0 {
            tracing::debug!(dropped_bytes, "log frames of a rolled-back batch dropped");
        }
        for answer in answers {
            answer.send(failed.as_ref());
        }
    }

    /// Runs `work` on the writer's thread inside the next batch's transaction; its result once
    /// that transaction is committed. A failing `work` undoes its own writes (see
    /// [`in_savepoint`]); the rest of the batch is committed.
    pub(super) async fn run_in_batch<F, T>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&mut rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_gathered(work, GATHER).await
    }

    /// [`Self::run_in_batch`] for the records of callbacks' attempts, whose batch waits
    /// [`GATHER_FOR_RECORDS`] for company.
    pub(super) async fn record_in_batch<F, T>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(&mut rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_gathered(work, GATHER_FOR_RECORDS).await
    }

    /// [`Self::run_in_batch`], the batch it opens waiting `gather` for company.
    async fn run_gathered<F, T>(&self, work: F, gather: Duration) -> StoreResult<T>
    where
        F: FnOnce(&mut rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel();
        let gather_until = Instant::now() + gather;
        let job: Box<dyn Job> = Box::new(Work {
            work,
            gather_until,
            done,
        });
        self.jobs.send(job).await.map_err(|_| stopped())?;
        self.gathering.queued(gather_until);
        answer.await.map_err(|_| stopped())?
    }

    /// Inserts the order (moved to the writer: the caller's cannot be lent to another thread).
    pub(super) async fn insert(&self, order: Order) -> StoreResult<u64> {
        self.run_gathered(move |tx| insert(tx, &order), GATHER_FOR_REQUESTS)
            .await
    }

    pub(super) async fn change_status(&self, change: OwnedStatusChange) -> StoreResult<bool> {
        let work = move |tx: &mut rusqlite::Transaction<'_>| {
            in_savepoint(
                tx,
                |changed| matches!(changed, Ok(true)),
                |savepoint| change_status(savepoint, change.borrowed()),
            )
        };
        self.run_gathered(work, GATHER_FOR_REQUESTS).await
    }
}

/// Runs `work` in a savepoint of its own, kept when `keep` says so of its result and rolled
/// back otherwise (what it wrote goes, the rest of the batch stays).
pub(super) fn in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    keep: impl FnOnce(&StoreResult<T>) -> bool,
    work: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let savepoint = tx.savepoint()?;
    let result = work(&savepoint);
    if keep(&result) {
        savepoint.commit()?;
    }
    // Dropped uncommitted, the savepoint is rolled back (a journal's deferred keys with it).
    result
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer stopped".into())
}

/// The change's update, then, if it changed the order, what is written with it.
fn change_status(connection: &rusqlite::Connection, change: StatusChange<'_>) -> StoreResult<bool> {
    if execute(connection, change.update())? != 1 {
        return Ok(false);
    }
    for step in change.writes()? {
        execute(connection, step)?;
    }
    Ok(true)
}

fn execute(connection: &rusqlite::Connection, step: Step<'_>) -> StoreResult<usize> {
    let mut statement = connection.prepare_cached(&step.sql)?;
    native::bind_in_order(&mut statement, step.values)?;
    Ok(statement.raw_execute()?)
}

/// One order's insert inside the batch's transaction, with the statement the connection keeps.
fn insert(connection: &rusqlite::Connection, order: &Order) -> StoreResult<u64> {
    let inserted = (|| {
        let mut statement = connection.prepare_cached(INSERT_ORDER.as_str())?;
        native::bind_in_order(&mut statement, order_values(order))?;
        Ok(statement.raw_execute()? as u64)
    })();
    insert_result(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer runs with its short slices where the kernel keeps custom slices (Linux 6.12
    /// and later show them as `se.slice` in a thread's scheduler statistics); elsewhere there
    /// is nothing to see, and the test says so.
    #[tokio::test]
    async fn the_writer_runs_with_short_slices() {
        if let Err(why) = crate::testing::custom_slices_kept() {
            eprintln!("skipped: {why}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let _writer = SqliteWriter::start(&path, ReadAnchor::new(&path)).unwrap();
        let mut seen = None;
        // The thread asks on its first step: wait for it, a second at most.
        for _ in 0..100 {
            seen = writer_slice_ns();
            if seen == Some(crate::scheduling::SHORT_SLICE.as_nanos() as u64) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match seen {
            None => eprintln!("skipped: this kernel shows no time slices (se.slice)"),
            Some(other) => panic!("the writer runs with slices of {other} ns"),
        }
    }

    /// The writer runs ten nice levels ahead of the thread that started it where this process
    /// may raise a priority that far, and at that thread's priority where it may not.
    #[tokio::test]
    async fn the_writer_runs_ahead_of_the_workers_where_it_may() {
        use crate::scheduling::{WRITER_PRIORITY_BOOST, thread_nice};
        let starter = thread_nice().expect("this thread's nice value");
        let ahead = (starter - WRITER_PRIORITY_BOOST).max(-20);
        let expected = if crate::testing::may_raise_priority_to(ahead) {
            ahead
        } else {
            starter
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let _writer = SqliteWriter::start(&path, ReadAnchor::new(&path)).unwrap();
        let mut seen = None;
        // The thread asks on its first step: wait for it, a second at most.
        for _ in 0..100 {
            seen = writer_thread_dir(std::process::id())
                .and_then(|task| crate::testing::thread_nice_of(&task));
            if seen == Some(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the writer runs at nice {seen:?}, not {expected} (this thread's is {starter})");
    }

    /// `se.slice` of this process's writer thread, in nanoseconds.
    fn writer_slice_ns() -> Option<u64> {
        crate::testing::thread_slice_ns(&writer_thread_dir(std::process::id())?)
    }

    /// A job for [`gather`] that writes nothing and waits `gather` for company.
    fn waiting(gather: Duration) -> Box<dyn Job> {
        let (done, _) = tokio::sync::oneshot::channel::<StoreResult<()>>();
        let work = |_: &mut rusqlite::Transaction<'_>| Ok(());
        let gather_until = Instant::now() + gather;
        Box::new(Work {
            work,
            gather_until,
            done,
        })
    }

    /// Runs [`gather`] on a thread of its own for a batch begun by `first`, once the writer's
    /// wait is published queues `then`; how many it gathered, and how long since `first` was
    /// queued.
    fn gathered_with(first: Duration, then: Duration) -> (usize, Duration) {
        let (jobs, mut queue) = tokio::sync::mpsc::channel(8);
        let gathering = std::sync::Arc::new(Gathering::new());
        let writer = gathering.clone();
        let (first, queued) = (waiting(first), Instant::now());
        let thread = std::thread::spawn(move || {
            let _ = writer.writer.set(std::thread::current());
            let mut gathered = vec![first];
            gather(&mut gathered, &mut queue, &writer);
            (gathered.len(), queued.elapsed())
        });
        let published = std::sync::atomic::Ordering::Acquire;
        for _ in 0..5_000 {
            if gathering.until_ns.load(published) != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let then = waiting(then);
        let gather_until = then.gather_until();
        jobs.blocking_send(then).unwrap();
        gathering.queued(gather_until);
        thread.join().unwrap()
    }

    /// A write's wait is counted from when it was queued: one that waited behind a commit as
    /// long as its wait commits with the next batch at once, not after a wait of its own.
    #[test]
    fn a_write_queued_behind_a_commit_has_waited_already() {
        let (jobs, mut queue) = tokio::sync::mpsc::channel(8);
        let first = waiting(Duration::from_millis(500));
        jobs.blocking_send(waiting(Duration::from_secs(10)))
            .unwrap();
        // The previous batch's commit, longer than the first write's wait.
        std::thread::sleep(Duration::from_millis(550));
        let (mut gathered, started) = (vec![first], Instant::now());
        gather(&mut gathered, &mut queue, &Gathering::new());
        let waited = started.elapsed();
        assert_eq!(gathered.len(), 2, "what was queued joins");
        // Waiting from now, it would wait 500 ms more.
        assert!(
            waited < Duration::from_millis(400),
            "waited {waited:?} more"
        );
    }

    /// A claim arriving while records wait for company ends the wait (it is awaited; they
    /// are not): the batch commits without waiting out the records' wait.
    #[test]
    fn a_write_that_waits_less_ends_the_gather_sooner() {
        let (gathered, waited) = gathered_with(Duration::from_secs(10), Duration::ZERO);
        assert_eq!(gathered, 2);
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    /// A write that would wait longer does not lengthen the wait, nor end it.
    #[test]
    fn a_write_that_waits_longer_joins_the_gather() {
        let (gathered, waited) = gathered_with(Duration::from_millis(50), Duration::from_secs(10));
        assert_eq!(gathered, 2);
        assert!(waited >= Duration::from_millis(50), "waited {waited:?}");
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    /// A database file in a folder of its own, made by `sql`.
    fn database_with(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        native::open(&path).unwrap().execute_batch(sql).unwrap();
        (dir, path)
    }

    /// The writer checkpoints after its answers as SQLite's automatic checkpoint would have in
    /// the commit: the log starts over rather than growing with every commit.
    #[tokio::test]
    async fn the_writer_checkpoints_its_log() {
        let (_dir, path) = database_with("CREATE TABLE t (v TEXT)");
        let writer = SqliteWriter::start(&path, ReadAnchor::new(&path)).unwrap();
        // Each commit writes at least its row's page: 3,000 commits, 3,000 frames or more.
        for n in 0..3_000 {
            let row = format!("{n:0>2000}");
            writer
                .run_in_batch(move |tx| Ok(tx.execute("INSERT INTO t VALUES (?1)", [row])?))
                .await
                .unwrap();
        }
        let wal_bytes = std::fs::metadata(path.with_extension("db-wal"))
            .unwrap()
            .len();
        let frame_bytes = 4_096 + 24;
        let bound_bytes = 2 * CHECKPOINT_AT_FRAMES as u64 * frame_bytes;
        assert!(wal_bytes < bound_bytes, "a log of {wal_bytes} bytes");
    }

    /// A failing checkpoint is remembered (so that it is logged once, not after every commit)
    /// and forgotten at the first that succeeds; below the log's threshold none runs.
    #[test]
    fn a_failing_checkpoint_is_noted_until_one_succeeds() {
        let (_dir, path) = database_with("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x')");
        let connection = native::open(&path).unwrap();
        let mut failing = false;
        {
            // A checkpoint cannot run while another statement of its connection is reading.
            let mut reading = connection.prepare("SELECT v FROM t").unwrap();
            let mut rows = reading.query([]).unwrap();
            rows.next().unwrap();
            LOG_FRAMES.set(CHECKPOINT_AT_FRAMES - 1);
            checkpoint_if_due(&connection, &mut failing);
            assert!(!failing, "no checkpoint below the threshold");
            for _ in 0..2 {
                LOG_FRAMES.set(CHECKPOINT_AT_FRAMES);
                checkpoint_if_due(&connection, &mut failing);
                assert!(failing, "the checkpoint failed");
            }
        }
        LOG_FRAMES.set(CHECKPOINT_AT_FRAMES);
        checkpoint_if_due(&connection, &mut failing);
        assert!(!failing, "the checkpoint succeeded");
    }

    #[test]
    fn the_writer_waits_for_company_only_after_writes_came_together() {
        let start = Instant::now();
        let mut company = Company::default();
        assert!(!company.expected(start), "a new writer commits at once");
        company.saw(false, start);
        assert!(!company.expected(start), "a lone write is no sign");
        company.saw(true, start);
        assert!(company.expected(start + COMPANY_LASTS / 2));
        assert!(!company.expected(start + COMPANY_LASTS), "the sign fades");
        company.saw(false, start + COMPANY_LASTS / 2);
        assert!(
            company.expected(start + COMPANY_LASTS / 2),
            "a lone write does not erase a recent sign"
        );
    }

    /// A batch whose commit fails after SQLite spilled its pages into the log leaves those
    /// frames gathered in the log's VFS; the writer drops them, so that they are never written
    /// over what another connection commits next, and later commits land whole.
    #[tokio::test]
    async fn a_rolled_back_batch_leaves_no_frames_behind() {
        let (_dir, path) = database_with(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (id INTEGER PRIMARY KEY, \
                 parent INTEGER REFERENCES parent (id), v TEXT); \
             INSERT INTO parent VALUES (1);",
        );
        let writer = SqliteWriter::start(&path, ReadAnchor::new(&path)).unwrap();
        let spilled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = spilled.clone();
        let failed = writer
            .run_in_batch(move |tx| {
                // A cache of a few pages spills the batch into the log before its commit; the
                // deferred orphan then fails that commit, and the batch is rolled back.
                tx.execute_batch("PRAGMA cache_size = 4; PRAGMA defer_foreign_keys = ON")?;
                for row in 0..2_000 {
                    let text = format!("doomed {row} {}", "y".repeat(500));
                    tx.execute("INSERT INTO child (parent, v) VALUES (1, ?1)", [text])?;
                }
                tx.execute("INSERT INTO child (parent, v) VALUES (999, 'orphan')", [])?;
                let gathered = super::super::wal_vfs::gathered_bytes(tx);
                seen.store(gathered, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            })
            .await;
        assert!(failed.is_err(), "the orphan fails the commit");
        let gathered = spilled.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            gathered > 0,
            "the batch spilled frames that stayed gathered"
        );
        // Another connection commits where those frames were; then the writer goes on.
        let other = native::open(&path).unwrap();
        for row in 0..3 {
            let text = format!("other {row}");
            other
                .execute("INSERT INTO child (parent, v) VALUES (1, ?1)", [text])
                .unwrap();
        }
        for batch in 0..20 {
            writer
                .run_in_batch(move |tx| {
                    tx.execute_batch("PRAGMA cache_size = -2000")?;
                    let text = format!("kept {batch}");
                    tx.execute("INSERT INTO child (parent, v) VALUES (1, ?1)", [text])?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        drop(writer);
        let reader = native::open(&path).unwrap();
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let count = |sql: &str| -> i64 { reader.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM child WHERE v LIKE 'kept %'"),
            20
        );
        assert_eq!(
            count("SELECT count(*) FROM child WHERE v LIKE 'other %'"),
            3
        );
        assert_eq!(
            count("SELECT count(*) FROM child"),
            23,
            "nothing of the failed batch"
        );
    }
}
