//! Orders at upstream channels and the routing record of every order.

use super::orders::order_no_of;
use super::{SqlStore, statement};
use crate::{
    ReconciliationDifference, ReconciliationRun, RoutingAttempt, StoreResult, UpstreamOrder,
    UpstreamStore,
};
use async_trait::async_trait;
use kassa_core::{Order, OrderNo, OrderStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

const UPSTREAM_COLUMNS: &str = "order_no, channel_id, upstream_order_no, next_check_at_ms, \
    checks, created_at_ms, updated_at_ms";

/// The statuses reconciliation follows: those the payer has not finished (an exception is the
/// operator's to resolve).
fn open_statuses() -> String {
    super::status_literals(&OrderStatus::EXPIRABLE)
}

statement!(
    UPSERT_UPSTREAM,
    "INSERT INTO upstream_orders ({UPSTREAM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (order_no) DO UPDATE SET channel_id = excluded.channel_id, \
     upstream_order_no = excluded.upstream_order_no, \
     next_check_at_ms = excluded.next_check_at_ms, checks = excluded.checks, \
     updated_at_ms = excluded.updated_at_ms"
);
statement!(
    SELECT_UPSTREAM,
    "SELECT {UPSTREAM_COLUMNS} FROM upstream_orders WHERE order_no = $1"
);
statement!(
    SELECT_DUE,
    "SELECT {} FROM upstream_orders u JOIN orders o ON o.order_no = u.order_no \
     WHERE u.next_check_at_ms <= $1 AND o.status IN ({}) \
     ORDER BY u.next_check_at_ms LIMIT $2",
    UPSTREAM_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", "),
    open_statuses()
);
statement!(
    COUNT_OPEN,
    "SELECT COUNT(*) FROM upstream_orders u JOIN orders o ON o.order_no = u.order_no \
     WHERE o.status IN ({})",
    open_statuses()
);

// Orders opened at a channel on a day, and those opened the day before that were paid on it.
// Orders past the retention are read from the archive: an old day still reconciles.
statement!(
    SELECT_CHANNEL_DAY,
    "{}",
    super::orders::live_and_archived(
        &format!(
            "SELECT {} FROM upstream_orders u JOIN {{orders}} o ON o.order_no = u.order_no \
             WHERE u.channel_id = $1 AND u.created_at_ms >= $2 - 86400000 AND u.created_at_ms < $3 \
             AND (u.created_at_ms >= $2 OR (o.status = 'succeeded' AND o.paid_at_ms >= $2 \
             AND o.paid_at_ms < $3)) AND o.order_no > $4",
            super::orders::ORDER_COLUMNS
                .split(", ")
                .map(|c| format!("o.{0} AS {0}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        // By the name the select gives it: u.order_no is in scope too.
        "ORDER BY order_no LIMIT $5"
    )
);

use super::Query;

fn bind_upstream<'q>(query: Query<'q>, upstream: &'q UpstreamOrder) -> Query<'q> {
    query
        .bind(upstream.order_no.as_str())
        .bind(&upstream.channel_id)
        .bind(upstream.upstream_order_no.as_deref())
        .bind(upstream.next_check_at_ms)
        .bind(upstream.checks)
        .bind(upstream.created_at_ms)
        .bind(upstream.updated_at_ms)
}

fn insert_attempt<'q>(order_no: &'q OrderNo, attempt: &'q RoutingAttempt) -> Query<'q> {
    sqlx::query(
        "INSERT INTO routing_attempts (order_no, attempt_no, channel_id, outcome, detail, \
         latency_ms, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (order_no, attempt_no) DO NOTHING",
    )
    .bind(order_no.as_str())
    .bind(attempt.attempt_no)
    .bind(&attempt.channel_id)
    .bind(&attempt.outcome)
    .bind(&attempt.detail)
    .bind(attempt.latency_ms)
    .bind(attempt.at_ms)
}

fn upstream_from_row(row: &AnyRow) -> StoreResult<UpstreamOrder> {
    Ok(UpstreamOrder {
        order_no: order_no_of(&row.try_get::<String, _>("order_no")?)?,
        channel_id: row.try_get("channel_id")?,
        upstream_order_no: row.try_get("upstream_order_no")?,
        next_check_at_ms: row.try_get("next_check_at_ms")?,
        checks: row.try_get("checks")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

#[async_trait]
impl UpstreamStore for SqlStore {
    async fn save_upstream(
        &self,
        upstream: &UpstreamOrder,
        rail: &str,
        attempt: Option<&RoutingAttempt>,
    ) -> StoreResult<()> {
        crate::telemetry::timed("save_upstream", async move {
            let mut tx = self.begin_write().await?;
            bind_upstream(sqlx::query(UPSERT_UPSTREAM.as_str()), upstream)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE orders SET rail = $2, channel = $3 WHERE order_no = $1")
                .bind(upstream.order_no.as_str())
                .bind(rail)
                .bind(&upstream.channel_id)
                .execute(&mut *tx)
                .await?;
            if let Some(attempt) = attempt {
                insert_attempt(&upstream.order_no, attempt)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn upstream_order(&self, order_no: &OrderNo) -> StoreResult<Option<UpstreamOrder>> {
        let row = sqlx::query(SELECT_UPSTREAM.as_str())
            .bind(order_no.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(upstream_from_row).transpose()
    }

    async fn upstream_orders_due(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<UpstreamOrder>> {
        crate::telemetry::timed("upstream_orders_due", async move {
            let rows = sqlx::query(SELECT_DUE.as_str())
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(upstream_from_row).collect()
        })
        .await
    }

    async fn reschedule_upstream(
        &self,
        order_no: &OrderNo,
        next_check_at_ms: i64,
        checks: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE upstream_orders SET next_check_at_ms = $2, checks = $3, updated_at_ms = $4 \
             WHERE order_no = $1",
        )
        .bind(order_no.as_str())
        .bind(next_check_at_ms)
        .bind(checks)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_routing_attempt(
        &self,
        order_no: &OrderNo,
        attempt: &RoutingAttempt,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_attempt(order_no, attempt).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn routing_attempts(&self, order_no: &OrderNo) -> StoreResult<Vec<RoutingAttempt>> {
        let rows = sqlx::query(
            "SELECT attempt_no, channel_id, outcome, detail, latency_ms, at_ms \
             FROM routing_attempts WHERE order_no = $1 ORDER BY attempt_no",
        )
        .bind(order_no.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RoutingAttempt {
                    attempt_no: row.try_get("attempt_no")?,
                    channel_id: row.try_get("channel_id")?,
                    outcome: row.try_get("outcome")?,
                    detail: row.try_get("detail")?,
                    latency_ms: row.try_get("latency_ms")?,
                    at_ms: row.try_get("at_ms")?,
                })
            })
            .collect()
    }

    async fn upstream_orders_open(&self) -> StoreResult<i64> {
        let row = sqlx::query(COUNT_OPEN.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn channel_orders_between(
        &self,
        channel_id: &str,
        (from_ms, to_ms): (i64, i64),
        after: Option<&OrderNo>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        let rows = sqlx::query(SELECT_CHANNEL_DAY.as_str())
            .bind(channel_id)
            .bind(from_ms)
            .bind(to_ms)
            .bind(after.map_or("", |n| n.as_str()))
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(super::orders::order_from_row).collect()
    }

    async fn save_reconciliation(
        &self,
        run: &ReconciliationRun,
        differences: &[ReconciliationDifference],
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for table in ["reconciliation_runs", "reconciliation_differences"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE channel_id = $1 AND day = $2"
            )))
            .bind(&run.channel_id)
            .bind(&run.day)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO reconciliation_runs (channel_id, day, mode, orders_compared, \
             differences, ran_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&run.channel_id)
        .bind(&run.day)
        .bind(&run.mode)
        .bind(run.orders_compared)
        .bind(differences.len() as i64)
        .bind(run.ran_at_ms)
        .execute(&mut *tx)
        .await?;
        for difference in differences {
            sqlx::query(
                "INSERT INTO reconciliation_differences (channel_id, day, upstream_order_id, \
                 order_no, kind, kassa, upstream) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&run.channel_id)
            .bind(&run.day)
            .bind(&difference.upstream_order_id)
            .bind(difference.order_no.as_ref().map(|n| n.as_str()))
            .bind(difference.kind.as_str())
            .bind(&difference.kassa)
            .bind(&difference.upstream)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reconciliation_differences(&self) -> StoreResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT channel_id, kind, COUNT(*) AS n FROM reconciliation_differences \
             GROUP BY channel_id, kind ORDER BY channel_id, kind",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }
}
