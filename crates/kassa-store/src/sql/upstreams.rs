//! Orders at upstream channels and the routing record of every order.

use super::orders::order_no_of;
use super::{SqlStore, statement};
use crate::{RoutingAttempt, StoreResult, UpstreamOrder, UpstreamStore};
use async_trait::async_trait;
use kassa_core::{OrderNo, OrderStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

const UPSTREAM_COLUMNS: &str = "order_no, channel_id, upstream_order_no, next_check_at_ms, \
    checks, created_at_ms, updated_at_ms";

/// The statuses reconciliation follows: those the payer has not finished (an exception is the
/// operator's to resolve).
fn open_statuses() -> String {
    OrderStatus::EXPIRABLE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
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

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

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
}
