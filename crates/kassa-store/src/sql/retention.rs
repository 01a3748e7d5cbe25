//! Retention: final orders past the operator's retention move from `orders` to
//! `orders_archive` (partitioned by month on PostgreSQL), and delivered or given-up callbacks are
//! deleted with their attempts. Each batch is one short transaction over the rows it moves,
//! found by an index from the oldest; the hot tables are never locked as a whole.

use super::orders::ORDER_COLUMNS;
use super::{Backend, SqlStore};
use crate::{RetentionStore, StoreError, StoreResult};
use async_trait::async_trait;
use kassa_core::OrderStatus;
use sqlx::Row;

/// Serialises the creation of archive partitions across PostgreSQL nodes (fixed, arbitrary).
const PARTITION_LOCK_ID: i64 = 0x006b_6173_7362;

type Transaction = super::WriteTransaction;

/// The final states, as the store writes them (the core's one rule).
fn final_statuses() -> String {
    super::status_literals(OrderStatus::ALL.iter().filter(|s| s.is_final()))
}

/// Runs `sql` (with `{in}` standing for the batch's placeholders) with every key bound.
async fn for_keys(tx: &mut Transaction, sql: &str, keys: &[String]) -> StoreResult<u64> {
    let query = super::with_keys(sql, keys.iter().map(String::as_str));
    Ok(query.execute(&mut **tx).await?.rows_affected())
}

async fn table_exists(tx: &mut Transaction, name: &str) -> StoreResult<bool> {
    let row = sqlx::query("SELECT to_regclass($1) IS NOT NULL AS present")
        .bind(name)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("present")?)
}

impl SqlStore {
    /// On PostgreSQL, a row lock on what a batch takes, so that two nodes take different rows
    /// and a concurrent change waits for the batch instead of racing it.
    fn lock_clause(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// PostgreSQL: the archive's partitions for every month from `first_ms` to `last_ms`.
    async fn archive_partitions(
        &self,
        tx: &mut Transaction,
        (first_ms, last_ms): (i64, i64),
    ) -> StoreResult<()> {
        let mut month = kassa_core::time::utc_month(first_ms);
        while month.start_ms <= last_ms {
            let name = format!("orders_archive_y{:04}m{:02}", month.year, month.month);
            if !table_exists(tx, &name).await? {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PARTITION_LOCK_ID)
                    .execute(&mut **tx)
                    .await?;
                // Another node may have made it while this one waited for the lock.
                if !table_exists(tx, &name).await? {
                    let create = format!(
                        "CREATE TABLE {name} PARTITION OF orders_archive \
                         FOR VALUES FROM ({}) TO ({})",
                        month.start_ms, month.end_ms
                    );
                    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                        .execute(&mut **tx)
                        .await?;
                }
            }
            month = kassa_core::time::utc_month(month.end_ms);
        }
        Ok(())
    }
}

#[async_trait]
impl RetentionStore for SqlStore {
    async fn archive_orders(&self, before_ms: i64, limit: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // From the oldest, by the creation-time index; an order whose callback is still to be
        // delivered waits for it.
        let select = format!(
            "SELECT order_no, created_at_ms FROM orders o WHERE created_at_ms < $1 \
             AND status IN ({}) AND NOT EXISTS (SELECT 1 FROM callbacks c \
             WHERE c.order_no = o.order_no AND c.state = 'pending') \
             ORDER BY created_at_ms LIMIT $2{}",
            final_statuses(),
            self.lock_clause()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(before_ms)
            .bind(limit.max(0))
            .fetch_all(&mut *tx)
            .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(0);
        };
        if self.backend() == Backend::Postgres {
            let span = (
                first.try_get("created_at_ms")?,
                last.try_get("created_at_ms")?,
            );
            self.archive_partitions(&mut tx, span).await?;
        }
        let keys: Vec<String> = rows
            .iter()
            .map(|row| row.try_get("order_no"))
            .collect::<Result<_, _>>()?;
        let copied = for_keys(
            &mut tx,
            &format!(
                "INSERT INTO orders_archive ({ORDER_COLUMNS}) \
                 SELECT {ORDER_COLUMNS} FROM orders WHERE order_no IN ({{in}})"
            ),
            &keys,
        )
        .await?;
        for delete in [
            "DELETE FROM callback_attempts WHERE callback_id IN \
             (SELECT callback_id FROM callbacks WHERE order_no IN ({in}))",
            // A callback made pending again meanwhile stays, and its order's delete below
            // fails on the foreign key: the batch is undone and tried again later.
            "DELETE FROM callbacks WHERE order_no IN ({in}) AND state <> 'pending'",
            "DELETE FROM order_events WHERE order_no IN ({in})",
            "DELETE FROM routing_attempts WHERE order_no IN ({in})",
        ] {
            for_keys(&mut tx, delete, &keys).await?;
        }
        let deleted = for_keys(
            &mut tx,
            &format!(
                "DELETE FROM orders WHERE order_no IN ({{in}}) AND status IN ({})",
                final_statuses()
            ),
            &keys,
        )
        .await?;
        if deleted != copied || copied != keys.len() as u64 {
            // Dropping the transaction undoes the batch.
            return Err(StoreError::Conflict(format!(
                "archive: {} orders taken, {copied} copied, {deleted} deleted",
                keys.len()
            )));
        }
        tx.commit().await?;
        Ok(copied)
    }

    async fn delete_callbacks(&self, before_ms: i64, limit: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // By the index of due callbacks: a final callback's next_attempt_at_ms is the time it
        // was delivered or given up.
        let select = format!(
            "SELECT callback_id FROM callbacks WHERE state = $1 AND next_attempt_at_ms < $2 \
             ORDER BY next_attempt_at_ms LIMIT $3{}",
            self.lock_clause()
        );
        let mut keys: Vec<String> = Vec::new();
        for state in ["delivered", "dead"] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                .bind(state)
                .bind(before_ms)
                .bind(limit.max(0) - keys.len() as i64)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                keys.push(row.try_get("callback_id")?);
            }
        }
        if keys.is_empty() {
            return Ok(0);
        }
        let delete_attempts = "DELETE FROM callback_attempts WHERE callback_id IN ({in})";
        for_keys(&mut tx, delete_attempts, &keys).await?;
        let delete = "DELETE FROM callbacks WHERE callback_id IN ({in}) AND state <> 'pending'";
        let deleted = for_keys(&mut tx, delete, &keys).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
