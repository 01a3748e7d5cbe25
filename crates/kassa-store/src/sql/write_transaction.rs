//! The write transactions that run on a connection of the pool (the back office, the books,
//! users, channels, migrations): sqlx's `Transaction`, with one gap closed. sqlx counts a
//! transaction only once PostgreSQL has answered its `BEGIN`, so a caller cut off while that
//! answer is on its way (a request's timeout, a network that holds it up) leaves the session
//! inside a transaction sqlx does not know of; back in the pool, the next user's statements
//! would run in it, be answered, and never be committed. Here a connection dropped before its
//! `BEGIN` was answered is closed instead, and PostgreSQL rolls back what it began. (sqlx's
//! SQLite driver rolls such a `BEGIN` back itself; the frequent transactions on kept
//! connections are checked when dropped, sql/kept.rs.)

use crate::StoreResult;
use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Database};
use sqlx_core::transaction::TransactionManager;
use std::ops::{Deref, DerefMut};

/// Where a transaction is: what dropping it must do to its connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `BEGIN` sent, its answer not read: on PostgreSQL the session's state is unknown.
    Beginning,
    /// Begun and counted by sqlx: dropping it queues a rollback, as sqlx's own does.
    Open,
    /// Committed or rolled back.
    Ended,
}

/// A write transaction owning its pooled connection; use it as the connection (`&mut *tx`).
pub(crate) struct WriteTransaction {
    connection: PoolConnection<Any>,
    phase: Phase,
}

type Manager = <Any as Database>::TransactionManager;

impl WriteTransaction {
    /// Takes a connection from `pool` and begins with `statement` (`BEGIN` if `None`).
    pub(crate) async fn begin(
        pool: &AnyPool,
        statement: Option<&'static str>,
    ) -> StoreResult<WriteTransaction> {
        let mut tx = WriteTransaction {
            connection: pool.acquire().await?,
            phase: Phase::Beginning,
        };
        let statement = statement.map(sqlx::SqlStr::from_static);
        Manager::begin(&mut tx.connection, statement).await?;
        tx.phase = Phase::Open;
        Ok(tx)
    }

    pub(crate) async fn commit(mut self) -> StoreResult<()> {
        Manager::commit(&mut self.connection).await?;
        self.phase = Phase::Ended;
        Ok(())
    }
}

impl Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.connection
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.connection
    }
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        match self.phase {
            // PostgreSQL only: sqlx's SQLite worker rolls back a `BEGIN` whose caller is gone,
            // and an in-memory SQLite database lives in its one connection.
            Phase::Beginning if super::on_postgres(&self.connection) => {
                self.connection.close_on_drop()
            }
            Phase::Beginning | Phase::Ended => {}
            Phase::Open => Manager::start_rollback(&mut self.connection),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestDatabase, through_cuttable_proxy};
    use std::time::Duration;

    /// A write cut off while PostgreSQL's answer to its `BEGIN` is held up (a partition, a
    /// request's timeout) leaves no session inside a transaction: every pooled connection's
    /// next statement is committed. sqlx's own transaction would hand the session on still
    /// inside it, and a statement there would be answered and never committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_cut_off_during_its_begin_leaves_no_transaction_open() {
        let name = "a_write_cut_off_during_its_begin_leaves_no_transaction_open";
        let Some(db) = TestDatabase::postgres(name).await else {
            return;
        };
        db.store().await.close().await;
        let (through, open) = through_cuttable_proxy(&db).await;
        let store = crate::sql::SqlStore::connect(&through).await.unwrap();
        sqlx::raw_sql("CREATE TABLE committed (n BIGINT)")
            .execute(store.pool())
            .await
            .unwrap();
        // The connection back in the pool (its return is a task of its own), idle: the cut
        // holds up the `BEGIN`'s answer, not a new connection.
        all_idle(&store, 1).await;
        open.send_replace(false);
        let cut_off = tokio::time::timeout(Duration::from_millis(300), store.begin_write()).await;
        assert!(cut_off.is_err(), "the BEGIN's answer was held up");
        open.send_replace(true);
        // Every connection back (or closed: then none may be left) and taken at once, so the
        // one that carried the `BEGIN` is among them if it went back to the pool.
        let idle = all_idle(&store, 0).await;
        let mut connections = Vec::new();
        for _ in 0..idle.max(1) {
            connections.push(store.pool().acquire().await.unwrap());
        }
        for connection in &mut connections {
            sqlx::query("INSERT INTO committed (n) VALUES (1)")
                .execute(&mut **connection)
                .await
                .unwrap();
        }
        let inserts = connections.len() as i64;
        drop(connections);
        let outside = crate::sql::SqlStore::connect(&db.url).await.unwrap();
        let committed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM committed")
            .fetch_one(outside.pool())
            .await
            .unwrap();
        assert_eq!(committed, inserts, "every insert committed");
    }

    /// Waits (at most 5 s) until every open connection of the pool is idle, and at least
    /// `at_least` are open; how many. (A connection on its way back to the pool or being
    /// closed counts as open, not idle.)
    async fn all_idle(store: &crate::sql::SqlStore, at_least: u32) -> usize {
        let pool = store.pool();
        for _ in 0..500 {
            if pool.size() >= at_least && pool.num_idle() == pool.size() as usize {
                return pool.num_idle();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{} of {} connections idle after 5 s",
            pool.num_idle(),
            pool.size()
        );
    }
}
