//! Group commit for SQLite: one writer task takes whatever new orders are waiting and commits
//! them in one transaction, so concurrent creates share one fsync instead of paying one each.
//! Every caller gets its answer only after the commit that holds its row is durable.

use super::orders::{insert_result, insert_statement};
use crate::{StoreError, StoreResult};
use kassa_core::Order;
use sqlx::AnyPool;

/// Most inserts waiting for the writer; a full queue makes callers wait (back-pressure).
const INSERT_QUEUE: usize = 1_024;
/// Most inserts in one commit.
const MAX_BATCH: usize = 128;

struct InsertJob {
    order: Order,
    done: tokio::sync::oneshot::Sender<StoreResult<u64>>,
}

pub(super) struct InsertWriter {
    jobs: tokio::sync::mpsc::Sender<InsertJob>,
}

impl InsertWriter {
    pub(super) fn start(pool: AnyPool) -> InsertWriter {
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<InsertJob>(INSERT_QUEUE);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                crate::telemetry::write_batch(batch.len(), queue.len());
                Self::commit(&pool, batch).await;
            }
        });
        InsertWriter { jobs }
    }

    async fn commit(pool: &AnyPool, batch: Vec<InsertJob>) {
        let written = async {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let mut results = Vec::with_capacity(batch.len());
            for job in &batch {
                // A failing statement (a taken order number) is undone alone; the rest commit.
                results.push(insert_result(
                    insert_statement(&job.order).execute(&mut *tx).await,
                ));
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(results)
        }
        .await;
        match written {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.done.send(result);
                }
            }
            // Nothing of the batch was stored; every caller hears why.
            Err(e) => {
                let error = StoreError::from(e);
                for job in batch {
                    let _ = job.done.send(Err(error.clone()));
                }
            }
        }
    }

    pub(super) async fn insert(&self, order: Order) -> StoreResult<u64> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let closed = || StoreError::Unavailable("the SQLite writer stopped".into());
        self.jobs
            .send(InsertJob { order, done })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}
