//! Bulk loading for benchmarks: a million orders, or a backlog of due callbacks, written in
//! one statement each instead of one request at a time. The rows are well-formed but
//! synthetic (their replies are placeholders); nothing else in kassa writes this way.

use crate::StoreResult;
use crate::sql::{Backend, SqlStore};
use kassa_core::AppId;

/// The body of the backlog's callback `i`: a Collect callback's fields and size (the order's
/// signed state as the backlog's orders hold it, the app id a fixed number, `sign` as long as
/// an RSA-2048 signature in base64), so that deliveries store, read and send as many bytes as
/// real ones. Not signed: the bench's receiver only answers. The plain client posts the same
/// bodies.
pub fn bench_callback_body(i: i64) -> String {
    use std::fmt::Write;
    // The plain client makes one for each post: one allocation, no search of the template.
    let [head, middle, tail] = &*BODY_PARTS;
    let mut body = String::with_capacity(head.len() + middle.len() + tail.len() + 40);
    let _ = write!(body, "{head}{i}{middle}8{i:015}{tail}");
    body
}

/// [`backlog_body_template`] split at its two placeholders, once.
static BODY_PARTS: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
    let template = backlog_body_template();
    let (head, rest) = template.split_once("{i}").expect("the id's placeholder");
    let (middle, tail) = rest
        .split_once("{order_no}")
        .expect("the number's placeholder");
    [head.into(), middle.into(), tail.into()]
});

/// [`bench_callback_body`] with `{i}` and `{order_no}` left to fill, in Rust or in SQL.
fn backlog_body_template() -> String {
    let sign = format!("{}==", "K".repeat(342));
    format!(
        r#"{{"appId":1001,"orderId":"backlog-{{i}}","orderNo":"{{order_no}}","amount":"10.00","actualAmount":"10.00","fee":"0.00","status":2,"payTime":"2026-12-08 12:00:00","sign":"{sign}"}}"#
    )
}

impl SqlStore {
    /// One count the bench reads between its runs.
    pub async fn bench_count(&self, sql: &'static str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(self.pool()).await?)
    }

    /// Inserts `count` created EUR orders for `app_id`, numbered `9…` and far from expiry.
    pub async fn bench_preload_orders(
        &self,
        app_id: AppId,
        count: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        let columns = "order_no, app_id, merchant_order_id, currency, amount_minor, method, \
            status, actual_amount_minor, fee_minor, request_fingerprint, create_reply, cashier_token, \
            created_at_ms, updated_at_ms, expires_at_ms";
        let values = "'EUR', 1000, 'IDEAL_EUR', 'created', 0, 0, 'bench', '{}'";
        let sql = match self.backend() {
            Backend::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO orders ({columns}) SELECT printf('9%015d', i), $1, 'preload-' || i, \
                 {values}, 'preload-' || i, $3, $3, $3 + 31536000000 FROM n"
            ),
            Backend::Postgres => format!(
                "INSERT INTO orders ({columns}) SELECT '9' || lpad(i::text, 15, '0'), $1, \
                 'preload-' || i, {values}, 'preload-' || i, $3, $3, $3 + 31536000000 \
                 FROM generate_series(0, $2 - 1) AS i"
            ),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id.0)
            .bind(count)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Inserts `count` succeeded orders for `app_id`, numbered `8…`, each with a callback to
    /// `url` that is due now, its body [`bench_callback_body`]'s.
    pub async fn bench_queue_callbacks(
        &self,
        app_id: AppId,
        url: &str,
        count: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        let (orders, callbacks) = match self.backend() {
            Backend::Sqlite => (
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO orders (order_no, app_id, merchant_order_id, currency, amount_minor, \
                 method, status, actual_amount_minor, fee_minor, request_fingerprint, create_reply, \
                 cashier_token, created_at_ms, updated_at_ms, expires_at_ms) \
                 SELECT printf('8%015d', i), $1, 'backlog-' || i, 'EUR', 1000, 'IDEAL_EUR', \
                 'succeeded', 1000, 0, 'bench', '{}', 'backlog-' || i, $3, $3, $3 FROM n",
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO callbacks (callback_id, order_no, app_id, url, body, headers, state, \
                 attempts, created_at_ms, first_due_at_ms, next_attempt_at_ms) \
                 SELECT 'msg_backlog_' || i, printf('8%015d', i), $1, $4, \
                 replace(replace($5, '{i}', i), '{order_no}', printf('8%015d', i)), \
                 'Content-Type: application/json\n', 'pending', 0, $3, $3, $3 FROM n",
            ),
            Backend::Postgres => (
                "INSERT INTO orders (order_no, app_id, merchant_order_id, currency, amount_minor, \
                 method, status, actual_amount_minor, fee_minor, request_fingerprint, create_reply, \
                 cashier_token, created_at_ms, updated_at_ms, expires_at_ms) \
                 SELECT '8' || lpad(i::text, 15, '0'), $1, 'backlog-' || i, 'EUR', 1000, \
                 'IDEAL_EUR', 'succeeded', 1000, 0, 'bench', '{}', 'backlog-' || i, $3, $3, $3 \
                 FROM generate_series(0, $2 - 1) AS i",
                "INSERT INTO callbacks (callback_id, order_no, app_id, url, body, headers, state, \
                 attempts, created_at_ms, first_due_at_ms, next_attempt_at_ms) \
                 SELECT 'msg_backlog_' || i, '8' || lpad(i::text, 15, '0'), $1, $4, \
                 replace(replace($5, '{i}', i::text), '{order_no}', '8' || lpad(i::text, 15, '0')), \
                 E'Content-Type: application/json\\n', 'pending', 0, $3, $3, $3 \
                 FROM generate_series(0, $2 - 1) AS i",
            ),
        };
        // Each statement is given the parameters it numbers, no more: $1–$3 both, the callbacks'
        // also the URL and the body's template.
        sqlx::query(orders)
            .bind(app_id.0)
            .bind(count)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(callbacks)
            .bind(app_id.0)
            .bind(count)
            .bind(now_ms)
            .bind(url)
            .bind(backlog_body_template())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts `count` EUR orders for `app_id`, numbered `7…`, that succeeded (10.00 paid, 0.45
    /// fee), each created and paid at a time spread evenly over `[from_ms, to_ms)`: a day for
    /// the report and the back office to read.
    pub async fn bench_preload_paid_orders(
        &self,
        app_id: AppId,
        count: i64,
        (from_ms, to_ms): (i64, i64),
    ) -> StoreResult<()> {
        let columns = "order_no, app_id, merchant_order_id, currency, amount_minor, method, \
            status, actual_amount_minor, fee_minor, paid_at_ms, request_fingerprint, create_reply, \
            cashier_token, created_at_ms, updated_at_ms, expires_at_ms";
        let paid_at = "$3 + i * ($4 - $3) / $2";
        let values = "'EUR', 1000, 'IDEAL_EUR', 'succeeded', 1000, 45";
        let sql = match self.backend() {
            Backend::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
                 INSERT INTO orders ({columns}) SELECT printf('7%015d', i), $1, 'paid-' || i, \
                 {values}, {paid_at}, 'bench', '{{}}', 'paid-' || i, {paid_at}, {paid_at}, $4 FROM n"
            ),
            Backend::Postgres => format!(
                "INSERT INTO orders ({columns}) SELECT '7' || lpad(i::text, 15, '0'), $1, \
                 'paid-' || i, {values}, {paid_at}, 'bench', '{{}}', 'paid-' || i, {paid_at}, \
                 {paid_at}, $4 \
                 FROM generate_series(0, $2 - 1) AS i"
            ),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id.0)
            .bind(count)
            .bind(from_ms)
            .bind(to_ms)
            .execute(self.pool())
            .await?;
        // As a database that grew to this size would have: statistics for the planner.
        sqlx::query("ANALYZE").execute(self.pool()).await?;
        Ok(())
    }
}
