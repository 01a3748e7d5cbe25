//! Group commit for SQLite: one writer thread takes whatever new orders and status changes are
//! waiting and commits them in one transaction, so concurrent creates and payments share one
//! fsync instead of paying one each. Every caller gets its answer only after the commit that
//! holds its rows is durable. The thread owns its connection and keeps its statements prepared
//! (the native path, sql/native.rs): a batch costs one hand-off to the thread, not one or more
//! per statement.

use super::orders::{INSERT_ORDER, OwnedStatusChange, StatusChange, insert_result, order_values};
use super::{Step, native};
use crate::{StoreError, StoreResult};
use kassa_core::Order;
use std::path::Path;

/// A write waiting for the writer, with where its answer goes.
enum Job {
    /// A copy of the order: the caller's cannot be lent to another thread for a commit.
    Insert {
        order: Box<Order>,
        done: tokio::sync::oneshot::Sender<StoreResult<u64>>,
    },
    Change {
        change: Box<OwnedStatusChange>,
        done: tokio::sync::oneshot::Sender<StoreResult<bool>>,
    },
}

/// A job's answer, held until its batch is committed.
enum Answer {
    Inserted(StoreResult<u64>),
    Changed(StoreResult<bool>),
}

pub(super) struct SqliteWriter {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Opens the writer's connection and starts its thread; the thread ends when the store
    /// (the queue's sender) is dropped.
    pub(super) fn start(path: &Path) -> StoreResult<SqliteWriter> {
        let connection = native::open(path)?;
        let (jobs, queue) = tokio::sync::mpsc::channel::<Job>(super::WRITE_QUEUE);
        std::thread::Builder::new()
            .name("kassa-sqlite-writer".into())
            .spawn(move || Self::run(connection, queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(SqliteWriter { jobs })
    }

    fn run(mut connection: rusqlite::Connection, mut queue: tokio::sync::mpsc::Receiver<Job>) {
        while let Some(first) = queue.blocking_recv() {
            let batch = super::batch_of(first, &mut queue);
            Self::commit(&mut connection, batch);
        }
    }

    fn commit(connection: &mut rusqlite::Connection, batch: Vec<Job>) {
        let written = (|| {
            let mut tx =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let answers: Vec<Answer> = batch.iter().map(|job| write(&mut tx, job)).collect();
            tx.commit()?;
            Ok::<_, rusqlite::Error>(answers)
        })();
        match written {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    match (job, answer) {
                        (Job::Insert { done, .. }, Answer::Inserted(result)) => {
                            let _ = done.send(result);
                        }
                        (Job::Change { done, .. }, Answer::Changed(result)) => {
                            let _ = done.send(result);
                        }
                        _ => unreachable!("each job is answered in its kind"),
                    }
                }
            }
            // Nothing of the batch was stored; every caller hears why.
            Err(e) => {
                let error = StoreError::from(e);
                for job in batch {
                    let _ = match job {
                        Job::Insert { done, .. } => done.send(Err(error.clone())).is_ok(),
                        Job::Change { done, .. } => done.send(Err(error.clone())).is_ok(),
                    };
                }
            }
        }
    }

    pub(super) async fn insert(&self, order: Order) -> StoreResult<u64> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let order = Box::new(order);
        self.submit(Job::Insert { order, done }).await?;
        answer.await.map_err(|_| stopped())?
    }

    pub(super) async fn change_status(&self, change: OwnedStatusChange) -> StoreResult<bool> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let change = Box::new(change);
        self.submit(Job::Change { change, done }).await?;
        answer.await.map_err(|_| stopped())?
    }

    async fn submit(&self, job: Job) -> StoreResult<()> {
        self.jobs.send(job).await.map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer stopped".into())
}

/// One job inside the batch's transaction. An insert that fails (a taken order number) is
/// undone alone by SQLite; a status change is all or nothing within a savepoint of its own.
fn write(tx: &mut rusqlite::Transaction<'_>, job: &Job) -> Answer {
    match job {
        Job::Insert { order, .. } => Answer::Inserted(insert(tx, order)),
        Job::Change { change, .. } => Answer::Changed(change_in_savepoint(tx, change)),
    }
}

fn change_in_savepoint(
    tx: &mut rusqlite::Transaction<'_>,
    change: &OwnedStatusChange,
) -> StoreResult<bool> {
    let savepoint = tx.savepoint()?;
    let changed = change_status(&savepoint, change.borrowed());
    if let Ok(true) = changed {
        savepoint.commit()?;
        return changed;
    }
    // Dropped uncommitted, the savepoint is rolled back, the journal's deferred keys with it.
    drop(savepoint);
    changed
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
