//! Pooled connections kept between statements, for the frequent ones that go through sqlx:
//! PostgreSQL's look-ups, its batched inserts, status changes and the dispatcher's claims,
//! records and releases (SQLite's run natively instead).
//!
//! sqlx tests every connection given back to its pool with a round trip (`ping`), in a task of
//! its own, before another caller may have it. On PostgreSQL that doubled the round trips of a
//! look-up: a wake-up of the server's backend and of one of kassa's threads each, on two shared
//! cores. A connection whose statement went well is kept here instead, and the next statement
//! takes it without asking. Anything else goes back to sqlx and its test as before:
//! - a connection whose statement failed, or whose caller gave up mid-statement (dropped), so
//!   a connection in an unknown state is never reused untested; on PostgreSQL it must first
//!   show it is outside any transaction, or it is closed;
//! - one kept here longer than [`PING_AFTER_IDLE`], which the pool asks again before it is
//!   handed out (a restarted database or a proxy may have closed it meanwhile);
//! - those beyond half the pool, so kept connections never take the pool from its other users;
//!   and every second those kept too long go back, used or not (a task of their own).

use super::PING_AFTER_IDLE;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub(super) struct KeptConnections {
    pool: AnyPool,
    /// Newest last; each with when it was given back.
    idle: Mutex<Vec<(PoolConnection<Any>, Instant)>>,
    /// Kept at most: half the pool.
    max_kept: usize,
}

impl KeptConnections {
    /// Starts the task that gives connections kept too long back to the pool; it ends with the
    /// last reference.
    pub(super) fn new(pool: AnyPool) -> Arc<KeptConnections> {
        let max_kept = pool.options().get_max_connections() as usize / 2;
        let kept = Arc::new(KeptConnections {
            pool,
            idle: Mutex::new(Vec::with_capacity(max_kept)),
            max_kept,
        });
        let weak = Arc::downgrade(&kept);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PING_AFTER_IDLE);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match weak.upgrade() {
                    Some(kept) => kept.give_back_stale(),
                    None => return,
                }
            }
        });
        kept
    }

    /// The connection given back last, if it was given back within [`PING_AFTER_IDLE`]; else
    /// one from the pool. The ones kept too long go back to the pool (which tests them).
    pub(super) async fn take(&self) -> Result<Kept<'_>, sqlx::Error> {
        self.give_back_stale();
        let fresh = self.lock().pop();
        let connection = match fresh {
            Some((connection, _)) => connection,
            None => self.pool.acquire().await?,
        };
        Ok(Kept {
            owner: self,
            connection: Some(connection),
        })
    }

    /// Gives the connections kept longer than [`PING_AFTER_IDLE`] back to the pool.
    fn give_back_stale(&self) {
        let stale: Vec<_> = {
            let mut idle = self.lock();
            let stale = idle
                .iter()
                .position(|(_, since)| since.elapsed() < PING_AFTER_IDLE)
                .unwrap_or(idle.len());
            idle.drain(..stale).collect()
        };
        // Dropped outside the lock: each spawns its return to the pool.
        drop(stale);
    }

    /// Gives every kept connection back to the pool (before the pool closes: it waits for
    /// connections out of it).
    pub(super) fn release_all(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    fn keep(&self, connection: PoolConnection<Any>) {
        // A closing pool waits for every connection out of it: this one goes back.
        if self.pool.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_kept {
            idle.push((connection, Instant::now()));
        }
    }

    /// How many are kept now.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The pool they come from.
    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PoolConnection<Any>, Instant)>> {
        // A panic while the list was held leaves it whole: its entries are plain values.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A connection taken; [`Kept::give_back`] after a statement that went well, else dropped
/// (back to the pool, which tests it, once outside any transaction; see its `Drop`).
pub(super) struct Kept<'a> {
    owner: &'a KeptConnections,
    connection: Option<PoolConnection<Any>>,
}

impl Kept<'_> {
    pub(super) fn give_back(mut self) {
        if let Some(connection) = self.connection.take() {
            self.owner.keep(connection);
        }
    }
}

/// Not given back: its caller failed or was cut off, perhaps while a `BEGIN` was being
/// answered, which leaves the session inside a transaction sqlx does not know of. It goes back
/// to the pool only once shown outside any transaction, and is closed otherwise.
impl Drop for Kept<'_> {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        if !super::on_postgres(&connection) {
            return;
        }
        // Outside a runtime (one shutting down) nothing can ask: the connection is closed.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            connection.close_on_drop();
            return;
        };
        runtime.spawn(async move {
            let asked = super::outside_any_transaction(&mut connection);
            let answer = tokio::time::timeout(CHECK_TIMEOUT, asked).await;
            if !matches!(answer, Ok(Ok(true))) {
                connection.close_on_drop();
            }
        });
    }
}

/// How long a dropped connection may take to show it is outside any transaction before it is
/// closed instead: one short statement, so a connection slower than this (a network cut off,
/// a database gone) would otherwise hold its place in the pool until TCP gives up.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Deref for Kept<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.connection.as_ref().expect("a taken connection")
    }
}

impl DerefMut for Kept<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.connection.as_mut().expect("a taken connection")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use sqlx::Row;

    async fn backend_pid(connection: &mut AnyConnection) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT CAST(pg_backend_pid() AS BIGINT)")
            .fetch_one(connection)
            .await?;
        row.try_get(0)
    }

    /// A fresh database's store, kept connections over its pool, and the backend of the one
    /// connection kept (its statement done and given back); `None` without PostgreSQL.
    async fn one_kept(
        name: &str,
    ) -> Option<(
        TestDatabase,
        crate::sql::SqlStore,
        Arc<KeptConnections>,
        i64,
    )> {
        let db = TestDatabase::postgres(name).await?;
        let store = db.store().await;
        let kept = KeptConnections::new(store.pool().clone());
        let mut first = kept.take().await.unwrap();
        let pid = backend_pid(&mut first).await.unwrap();
        first.give_back();
        Some((db, store, kept, pid))
    }

    /// Ends a session from a connection outside the pool, as a restarted database or a proxy
    /// would.
    async fn end_session(db: &TestDatabase, pid: i64) {
        use sqlx::Connection as _;
        let mut outside = AnyConnection::connect(&db.url).await.expect("connect");
        sqlx::query("SELECT pg_terminate_backend(CAST($1 AS INTEGER))")
            .bind(pid)
            .execute(&mut outside)
            .await
            .expect("terminate");
        // Its end reaches the session's socket a moment later.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    /// A connection given back after its statement serves the next one; one dropped without
    /// being given back (its caller failed or gave up mid-statement) is not kept, nor one
    /// given back while the pool closes (the close would wait for it).
    #[tokio::test]
    async fn only_connections_given_back_are_kept() {
        let name = "only_connections_given_back_are_kept";
        let Some((_db, store, kept, pid)) = one_kept(name).await else {
            return;
        };
        assert_eq!(kept.len(), 1);
        let mut again = kept.take().await.unwrap();
        assert_eq!(kept.len(), 0, "taken out while in use");
        assert_eq!(
            backend_pid(&mut again).await.unwrap(),
            pid,
            "the same session"
        );
        drop(again);
        assert_eq!(
            kept.len(),
            0,
            "a connection not given back goes back to the pool"
        );
        // One in use while the pool closes is not kept: the close waits for it.
        let in_use = kept.take().await.unwrap();
        let closing = store.pool().close();
        in_use.give_back();
        let closed = tokio::time::timeout(std::time::Duration::from_millis(500), closing);
        closed
            .await
            .expect("the pool closes without waiting for the kept list");
        assert_eq!(kept.len(), 0);
    }

    /// A connection dropped inside a transaction sqlx does not know of (its caller cut off
    /// while `BEGIN` was being answered) is closed, not handed out again: the next caller's
    /// insert would run inside that transaction and never be committed.
    #[tokio::test]
    async fn a_connection_left_inside_a_transaction_is_not_reused() {
        let name = "a_connection_left_inside_a_transaction_is_not_reused";
        let Some(db) = TestDatabase::postgres(name).await else {
            return;
        };
        let store = db.store().await;
        let kept = KeptConnections::new(store.pool().clone());
        let mut left = kept.take().await.unwrap();
        let left_pid = backend_pid(&mut left).await.unwrap();
        // A plain statement: the session is inside a transaction, sqlx's count is not.
        sqlx::raw_sql("BEGIN").execute(&mut *left).await.unwrap();
        drop(left);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut next = store.pool().acquire().await.unwrap();
        assert_ne!(backend_pid(&mut next).await.unwrap(), left_pid);
        drop(next);
        let mut connection = kept.take().await.unwrap();
        let pid = backend_pid(&mut connection).await.unwrap();
        assert_ne!(pid, left_pid);
    }

    /// A connection dropped while the network to the database is cut cannot show it is outside
    /// any transaction: it is closed after [`CHECK_TIMEOUT`] and its place in the pool freed,
    /// not held until TCP gives up.
    #[tokio::test]
    async fn a_dropped_connection_that_cannot_answer_is_closed() {
        let name = "a_dropped_connection_that_cannot_answer_is_closed";
        let Some(db) = TestDatabase::postgres(name).await else {
            return;
        };
        db.store().await.close().await;
        let (through, open) = crate::testing::through_cuttable_proxy(&db).await;
        let store = crate::sql::SqlStore::connect(&through).await.unwrap();
        let kept = KeptConnections::new(store.pool().clone());
        let mut connection = kept.take().await.unwrap();
        backend_pid(&mut connection).await.unwrap();
        let open_before = store.pool().size();
        open.send_replace(false);
        drop(connection);
        tokio::time::sleep(CHECK_TIMEOUT + std::time::Duration::from_millis(500)).await;
        assert_eq!(
            store.pool().size(),
            open_before - 1,
            "closed, its place freed"
        );
        open.send_replace(true);
    }

    /// Connections kept too long go back to the pool by themselves, used or not: kept ones
    /// never hold the pool from its other users for long.
    #[tokio::test]
    async fn connections_kept_too_long_go_back_by_themselves() {
        let name = "connections_kept_too_long_go_back_by_themselves";
        let Some(db) = TestDatabase::postgres(name).await else {
            return;
        };
        let store = db.store().await;
        let kept = KeptConnections::new(store.pool().clone());
        let mut taken = Vec::new();
        for _ in 0..kept.max_kept + 2 {
            taken.push(kept.take().await.unwrap());
        }
        for connection in taken {
            connection.give_back();
        }
        assert_eq!(kept.len(), kept.max_kept, "no more than half the pool");
        tokio::time::sleep(2 * PING_AFTER_IDLE + std::time::Duration::from_millis(200)).await;
        assert_eq!(kept.len(), 0, "given back to the pool without a take");
    }

    /// A kept connection whose session ended fails its next statement once, and is not kept:
    /// the statement after it gets a working one.
    #[tokio::test]
    async fn a_kept_connection_that_fails_is_not_kept() {
        let name = "a_kept_connection_that_fails_is_not_kept";
        let Some((db, _store, kept, pid)) = one_kept(name).await else {
            return;
        };
        end_session(&db, pid).await;
        let mut broken = kept.take().await.unwrap();
        assert!(backend_pid(&mut broken).await.is_err(), "its session ended");
        drop(broken);
        assert_eq!(kept.len(), 0);
        let mut next = kept.take().await.unwrap();
        assert_ne!(backend_pid(&mut next).await.unwrap(), pid);
    }

    /// Connections idle past [`PING_AFTER_IDLE`] — kept here or idle in the pool — are asked
    /// whether they still work before a statement has them: a session ended meanwhile (a
    /// restarted database, a proxy's idle timeout) costs no caller an error.
    #[tokio::test]
    async fn connections_idle_past_the_bound_are_asked_first() {
        let name = "connections_idle_past_the_bound_are_asked_first";
        let Some((db, store, kept, kept_pid)) = one_kept(name).await else {
            return;
        };
        let mut pooled = store.pool().acquire().await.unwrap();
        let pooled_pid = backend_pid(&mut pooled).await.unwrap();
        drop(pooled);
        end_session(&db, kept_pid).await;
        end_session(&db, pooled_pid).await;
        tokio::time::sleep(PING_AFTER_IDLE + std::time::Duration::from_millis(100)).await;
        let mut next = kept.take().await.unwrap();
        let pid = backend_pid(&mut next).await.expect("a working connection");
        assert!(pid != kept_pid && pid != pooled_pid);
        let mut from_pool = store.pool().acquire().await.unwrap();
        backend_pid(&mut from_pool)
            .await
            .expect("a working connection");
    }
}
