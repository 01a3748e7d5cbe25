//! Callbacks (the outbox) and their delivery attempts: inserting one with its status change,
//! leasing due ones to a node, recording attempts, resending, and the operator's history.

use super::Columns;
use super::orders::{Conditions, order_no_of};
use super::{Backend, SqlStore, statement};
use crate::error::corrupt;
use crate::{
    AfterAttempt, Attempt, Callback, CallbackHistory, CallbackState, CallbackStore,
    FinishedAttempt, NewCallback, StoreError, StoreResult,
};
use async_trait::async_trait;
use kassa_core::{AppId, OrderNo};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

const CALLBACK_COLUMNS: &str = "callback_id, order_no, app_id, url, body, headers, state, \
    attempts, created_at_ms, first_due_at_ms, next_attempt_at_ms, delivered_at_ms, dead_at_ms";
const ATTEMPT_COLUMNS: &str = "callback_id, attempt_no, started_at_ms, latency_ms, http_status, \
    error, response_excerpt, acknowledged, node";

statement!(
    SELECT_CALLBACKS_OF_ORDER,
    "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE order_no = $1 ORDER BY created_at_ms, callback_id"
);
statement!(
    SELECT_ATTEMPTS_OF_ORDER,
    "SELECT {ATTEMPT_COLUMNS} FROM callback_attempts WHERE callback_id IN \
     (SELECT callback_id FROM callbacks WHERE order_no = $1) ORDER BY callback_id, attempt_no"
);
/// The `columns` of the due, unleased callbacks at `now`, oldest first, `limit` at most
/// (`now` and `limit` are placeholders).
fn due_callbacks(columns: &str, now: &str, limit: &str) -> String {
    format!(
        "SELECT {columns} FROM callbacks WHERE state = 'pending' AND next_attempt_at_ms <= {now} \
         AND (lease_until_ms IS NULL OR lease_until_ms <= {now}) \
         ORDER BY next_attempt_at_ms LIMIT {limit}"
    )
}
// PostgreSQL skips rows another node is claiming right now; SQLite has one writer, so the
// statement alone is enough.
statement!(
    CLAIM_CALLBACKS_SQLITE,
    "UPDATE callbacks SET lease_owner = $1, lease_until_ms = $2 \
     WHERE callback_id IN ({}) RETURNING {CALLBACK_COLUMNS}",
    due_callbacks("callback_id", "$3", "$4")
);
statement!(
    CLAIM_CALLBACKS_POSTGRES,
    "UPDATE callbacks SET lease_owner = $1, lease_until_ms = $2 \
     WHERE callback_id IN ({} FOR UPDATE SKIP LOCKED) RETURNING {CALLBACK_COLUMNS}",
    due_callbacks("callback_id", "$3", "$4")
);

/// Headers are stored one `name: value` per line (names and values never hold line breaks).
fn encode_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\n"))
        .collect()
}

fn decode_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The columns of [`CALLBACK_COLUMNS`] in their order, for reading a row by position.
static CALLBACK_COLUMN_NAMES: super::ColumnNames =
    super::ColumnNames::new(|| super::names_of(CALLBACK_COLUMNS));

/// A row of `SELECT {CALLBACK_COLUMNS}`, read in the columns' order (both drivers).
fn callback_from_row(row: &impl Columns) -> StoreResult<Callback> {
    let callback_id = row.need_text("callback_id")?;
    let order_no = order_no_of(&row.need_text("order_no")?)?;
    let app_id = AppId(row.need_int("app_id")?);
    let url = row.need_text("url")?;
    let body = row.need_text("body")?;
    let headers = decode_headers(&row.need_text("headers")?);
    let state = row.need_text("state")?;
    let state =
        CallbackState::parse(&state).ok_or_else(|| corrupt(format!("callback state {state}")))?;
    Ok(Callback {
        callback_id,
        order_no,
        app_id,
        url,
        body,
        headers,
        state,
        attempts: row.need_int("attempts")?,
        created_at_ms: row.need_int("created_at_ms")?,
        first_due_at_ms: row.need_int("first_due_at_ms")?,
        next_attempt_at_ms: row.need_int("next_attempt_at_ms")?,
        delivered_at_ms: row.int("delivered_at_ms")?,
        dead_at_ms: row.int("dead_at_ms")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        attempt_no: row.try_get("attempt_no")?,
        started_at_ms: row.try_get("started_at_ms")?,
        latency_ms: row.try_get("latency_ms")?,
        http_status: row.try_get("http_status")?,
        error: row.try_get("error")?,
        response_excerpt: row.try_get("response_excerpt")?,
        acknowledged: row.try_get::<i64, _>("acknowledged")? != 0,
        node: row.try_get("node")?,
    })
}

/// The statement that queues a callback, due at once, inside the transaction of the status
/// change that causes it.
pub(super) fn insert_step(callback: &NewCallback) -> super::Step<'_> {
    use super::Value::{Int, Made, Text};
    super::Step {
        sql: "INSERT INTO callbacks (callback_id, order_no, app_id, url, body, headers, state, \
              attempts, created_at_ms, first_due_at_ms, next_attempt_at_ms) \
              VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)"
            .into(),
        values: vec![
            Text(Some(&callback.callback_id)),
            Text(Some(callback.order_no.as_str())),
            Int(Some(callback.app_id.0)),
            Text(Some(&callback.url)),
            Text(Some(&callback.body)),
            Made(encode_headers(&callback.headers)),
            Int(Some(callback.created_at_ms)),
        ],
    }
}

/// Attempts recorded per statement: sqlx finds each SQLite parameter by its name, a cost that
/// grows with the square of a statement's parameters (9 per attempt).
const ATTEMPTS_PER_STATEMENT: usize = 32;

/// `(callback_id, state, next_attempt_at_ms, delivered_at_ms, dead_at_ms)` after an attempt.
fn after_columns(
    finished: &FinishedAttempt,
) -> (&str, &'static str, i64, Option<i64>, Option<i64>) {
    let (state, next_at, delivered_at, dead_at) = match finished.after {
        AfterAttempt::Delivered { at_ms } => (CallbackState::Delivered, at_ms, Some(at_ms), None),
        AfterAttempt::RetryAt { at_ms } => (CallbackState::Pending, at_ms, None, None),
        AfterAttempt::Dead { at_ms } => (CallbackState::Dead, at_ms, None, Some(at_ms)),
    };
    (
        &finished.callback_id,
        state.as_str(),
        next_at,
        delivered_at,
        dead_at,
    )
}

/// `($1, …), ($width+1, …), …`: `rows` rows of `width` numbered placeholders.
fn value_rows(width: usize, rows: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", super::placeholders(1 + row * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// PostgreSQL: locks a batch's callbacks in one order for every node (by id), so two batches
/// never deadlock; `$1` is a JSON array of their ids (one shape whatever their number).
const LOCK_CALLBACKS_POSTGRES: &str = "SELECT callback_id FROM callbacks WHERE callback_id IN \
    (SELECT value FROM json_array_elements_text($1::json)) ORDER BY callback_id FOR UPDATE";

statement!(
    /// PostgreSQL: attempts of distinct callbacks (`$2`, one JSON array: one statement, one
    /// round trip, one shape whatever their number) numbered through their callbacks' rows,
    /// stored, and each callback's next state written where `$1` still holds its lease — the
    /// lease as it was before the statement, which every part of it sees.
    RECORD_ATTEMPTS_POSTGRES,
    "WITH batch AS (SELECT * FROM json_to_recordset($2::json) AS b(callback_id TEXT, \
       started_at_ms BIGINT, latency_ms BIGINT, http_status BIGINT, error TEXT, \
       response_excerpt TEXT, acknowledged BIGINT, node TEXT, state TEXT, next_at BIGINT, \
       delivered_at BIGINT, dead_at BIGINT)), \
     leases AS (SELECT b.*, COALESCE(c.lease_owner = $1, FALSE) AS held FROM batch AS b \
       JOIN callbacks AS c ON c.callback_id = b.callback_id), \
     numbered AS (UPDATE callbacks AS c SET attempts = c.attempts + 1, \
       state = CASE WHEN l.held THEN l.state ELSE c.state END, \
       next_attempt_at_ms = CASE WHEN l.held THEN l.next_at ELSE c.next_attempt_at_ms END, \
       delivered_at_ms = CASE WHEN l.held THEN l.delivered_at ELSE c.delivered_at_ms END, \
       dead_at_ms = CASE WHEN l.held THEN l.dead_at ELSE c.dead_at_ms END, \
       lease_owner = CASE WHEN l.held THEN NULL ELSE c.lease_owner END, \
       lease_until_ms = CASE WHEN l.held THEN NULL ELSE c.lease_until_ms END \
       FROM leases AS l WHERE c.callback_id = l.callback_id \
       RETURNING c.callback_id, c.attempts, l.held), \
     recorded AS (INSERT INTO callback_attempts ({ATTEMPT_COLUMNS}) \
       SELECT n.callback_id, n.attempts, b.started_at_ms, b.latency_ms, b.http_status, b.error, \
       b.response_excerpt, b.acknowledged, b.node \
       FROM numbered AS n JOIN batch AS b ON b.callback_id = n.callback_id) \
     SELECT callback_id, held FROM numbered"
);

/// The JSON fields of [`RECORD_ATTEMPTS_POSTGRES`]'s batch, in the order [`attempt_row`] gives.
const ATTEMPT_ROW_FIELDS: [&str; 12] = [
    "callback_id",
    "started_at_ms",
    "latency_ms",
    "http_status",
    "error",
    "response_excerpt",
    "acknowledged",
    "node",
    "state",
    "next_at",
    "delivered_at",
    "dead_at",
];

fn attempt_row(finished: &FinishedAttempt) -> [super::Value<'_>; 12] {
    use super::Value::{Int, Text};
    let attempt = &finished.attempt;
    let (id, state, next_at, delivered_at, dead_at) = after_columns(finished);
    [
        Text(Some(id)),
        Int(Some(attempt.started_at_ms)),
        Int(Some(attempt.latency_ms)),
        Int(attempt.http_status),
        Text(attempt.error.as_deref()),
        Text(attempt.response_excerpt.as_deref()),
        Int(Some(i64::from(attempt.acknowledged))),
        Text(Some(&attempt.node)),
        Text(Some(state)),
        Int(Some(next_at)),
        Int(delivered_at),
        Int(dead_at),
    ]
}

/// About what one attempt takes as JSON (its excerpt is at most 1 KiB), to size the buffer.
const ATTEMPT_JSON_BYTES: usize = 384;

/// [`RECORD_ATTEMPTS_POSTGRES`] for a round of distinct callbacks: whether each lease was held.
async fn record_attempts_postgres(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    owner: &str,
    batch: &[&FinishedAttempt],
) -> StoreResult<Vec<bool>> {
    let rows = super::json_rows(
        &ATTEMPT_ROW_FIELDS,
        batch.iter().map(|finished| attempt_row(finished)),
        ATTEMPT_JSON_BYTES,
    );
    let returned = sqlx::query(RECORD_ATTEMPTS_POSTGRES.as_str())
        .bind(owner)
        .bind(rows)
        .fetch_all(&mut **tx)
        .await?;
    let mut held: HashMap<String, bool> = HashMap::with_capacity(returned.len());
    for row in &returned {
        held.insert(row.try_get("callback_id")?, row.try_get("held")?);
    }
    batch
        .iter()
        .map(|finished| {
            held.get(&finished.callback_id)
                .copied()
                .ok_or_else(|| StoreError::NotFound(format!("callback {}", finished.callback_id)))
        })
        .collect()
}

/// SQLite through sqlx (a database in memory; a file's takes the native path, `on_writer`):
/// records attempts of distinct callbacks inside a transaction, a few statements for the whole
/// batch (see [`CallbackStore::finish_attempts`]): each callback's attempt number, the attempts,
/// then each callback's state where `owner` still holds its lease. Whether each lease was held.
async fn record_attempts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    owner: &str,
    batch: &[&FinishedAttempt],
) -> StoreResult<Vec<bool>> {
    // Numbering through the rows themselves serialises concurrent finishers of one callback.
    let numbering = super::with_keys(
        "UPDATE callbacks SET attempts = attempts + 1 WHERE callback_id IN ({in}) \
         RETURNING callback_id, attempts",
        batch.iter().map(|finished| finished.callback_id.as_str()),
    );
    let mut numbers: HashMap<String, i64> = HashMap::new();
    for row in numbering.fetch_all(&mut **tx).await? {
        numbers.insert(row.try_get("callback_id")?, row.try_get("attempts")?);
    }
    let insert = format!(
        "INSERT INTO callback_attempts ({ATTEMPT_COLUMNS}) VALUES {}",
        value_rows(9, batch.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert));
    for finished in batch {
        let attempt_no = numbers
            .get(&finished.callback_id)
            .copied()
            .ok_or_else(|| StoreError::NotFound(format!("callback {}", finished.callback_id)))?;
        let attempt = &finished.attempt;
        query = query
            .bind(finished.callback_id.as_str())
            .bind(attempt_no)
            .bind(attempt.started_at_ms)
            .bind(attempt.latency_ms)
            .bind(attempt.http_status)
            .bind(attempt.error.as_deref())
            .bind(attempt.response_excerpt.as_deref())
            .bind(i64::from(attempt.acknowledged))
            .bind(attempt.node.as_str());
    }
    query.execute(&mut **tx).await?;
    // Each callback's new state from a table of the batch's values (UPDATE … FROM: one
    // statement on both databases).
    let values = (0..batch.len())
        .map(|row| {
            let i = 2 + row * 5;
            format!(
                "SELECT ${i} AS id, ${} AS state, ${} AS next_at, ${} AS delivered_at, ${} AS dead_at",
                i + 1,
                i + 2,
                i + 3,
                i + 4
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let update = format!(
        "UPDATE callbacks SET state = v.state, next_attempt_at_ms = v.next_at, \
         delivered_at_ms = v.delivered_at, dead_at_ms = v.dead_at, lease_owner = NULL, \
         lease_until_ms = NULL FROM ({values}) AS v \
         WHERE callbacks.callback_id = v.id AND callbacks.lease_owner = $1 \
         RETURNING callbacks.callback_id"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(update)).bind(owner);
    for finished in batch {
        let (id, state, next_at, delivered_at, dead_at) = after_columns(finished);
        query = query
            .bind(id)
            .bind(state)
            .bind(next_at)
            .bind(delivered_at)
            .bind(dead_at);
    }
    let mut kept: Vec<String> = Vec::new();
    for row in query.fetch_all(&mut **tx).await? {
        kept.push(row.try_get("callback_id")?);
    }
    Ok(batch
        .iter()
        .map(|finished| kept.contains(&finished.callback_id))
        .collect())
}

/// Gives a lease back without an attempt: `$1` when the callback is due again.
const RELEASE_CALLBACK: &str = "UPDATE callbacks SET next_attempt_at_ms = $1, lease_owner = NULL, \
    lease_until_ms = NULL WHERE callback_id = $2 AND lease_owner = $3";

/// SQLite's native path of delivery: claims, records and releases run on the writer's thread
/// (sql/writer.rs), inside its group commit, with statements the thread keeps prepared. There a
/// statement of one row costs microseconds, so an attempt is recorded with three of them (a read
/// and two writes); sqlx needs few statements of many rows instead (its cost is per statement
/// and per parameter).
mod on_writer {
    use super::super::native::{NamedRow, bind_in_order};
    use super::super::{Value, writer::in_savepoint};
    use super::*;

    statement!(
        /// The due callbacks with where each row is: the writer reads them and then leases
        /// each by its row id, which costs SQLite less than one `UPDATE … IN (…) RETURNING`
        /// (that buffers the claimed rows in a table of their own). Its transaction is
        /// immediate, so no other writer comes between the read and the leases.
        DUE_CALLBACKS_WITH_ROWIDS,
        "{}",
        due_callbacks(&format!("{CALLBACK_COLUMNS}, rowid"), "$1", "$2")
    );
    const LEASE: &str =
        "UPDATE callbacks SET lease_owner = $1, lease_until_ms = $2 WHERE rowid = $3";

    /// A callback's attempts so far, whether `$1` holds its lease, and where its row is. The
    /// writer's transaction is immediate, so nothing changes the row between this read and the
    /// writes after it, which find it by that row id instead of looking its id up again.
    const ATTEMPTS_AND_LEASE: &str =
        "SELECT attempts, lease_owner IS $1, rowid FROM callbacks WHERE callback_id = $2";
    statement!(
        INSERT_ATTEMPT,
        "INSERT INTO callback_attempts ({ATTEMPT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    );
    /// A callback's count of attempts and its state after the last, where this node still held
    /// its lease.
    const NUMBER_AND_SETTLE: &str = "UPDATE callbacks SET attempts = $1, state = $2, \
        next_attempt_at_ms = $3, delivered_at_ms = $4, dead_at_ms = $5, lease_owner = NULL, \
        lease_until_ms = NULL WHERE rowid = $6";
    /// A callback's count of attempts alone, where another node holds its lease now.
    const NUMBER: &str = "UPDATE callbacks SET attempts = $1 WHERE rowid = $2";

    pub(super) fn claim(
        tx: &mut rusqlite::Transaction<'_>,
        (now_ms, limit, lease_until_ms): (i64, i64, i64),
        owner: &str,
    ) -> StoreResult<Vec<Callback>> {
        in_savepoint(tx, Result::is_ok, |connection| {
            let mut due = connection.prepare_cached(DUE_CALLBACKS_WITH_ROWIDS.as_str())?;
            bind_in_order(&mut due, [now_ms, limit])?;
            // Read first, leased after: no row changes under the open read.
            let mut found = Vec::new();
            let mut rows = due.raw_query();
            while let Some(row) = rows.next()? {
                let callback = callback_from_row(&NamedRow::new(row, &CALLBACK_COLUMN_NAMES))?;
                let rowid: i64 = row.get(CALLBACK_COLUMN_NAMES.len())?;
                found.push((callback, rowid));
            }
            drop(rows);
            let mut lease = connection.prepare_cached(LEASE)?;
            let mut claimed = Vec::with_capacity(found.len());
            for (callback, rowid) in found {
                let values = [
                    Value::Text(Some(owner)),
                    Value::Int(Some(lease_until_ms)),
                    Value::Int(Some(rowid)),
                ];
                bind_in_order(&mut lease, values)?;
                lease.raw_execute()?;
                claimed.push(callback);
            }
            Ok(claimed)
        })
    }

    /// Each attempt numbered, stored, and its callback's state written where the lease is
    /// still `owner`'s, one after the other (a callback twice in the batch gets two numbers).
    /// The number is read, not returned by the update: SQLite's `RETURNING` buffers its rows in
    /// a table of their own, and the row is then written once, not twice.
    pub(super) fn finish(
        tx: &mut rusqlite::Transaction<'_>,
        owner: &str,
        finished: &[FinishedAttempt],
    ) -> StoreResult<Vec<bool>> {
        in_savepoint(tx, Result::is_ok, |connection| {
            let mut read = connection.prepare_cached(ATTEMPTS_AND_LEASE)?;
            let mut insert = connection.prepare_cached(INSERT_ATTEMPT.as_str())?;
            let mut settle = connection.prepare_cached(NUMBER_AND_SETTLE)?;
            let mut number = connection.prepare_cached(NUMBER)?;
            let mut kept = Vec::with_capacity(finished.len());
            for one in finished {
                let (attempts, holds, rowid) =
                    attempts_and_lease(&mut read, owner, &one.callback_id)?;
                let attempt_no = attempts + 1;
                let attempt = &one.attempt;
                let values = [
                    Value::Text(Some(&one.callback_id)),
                    Value::Int(Some(attempt_no)),
                    Value::Int(Some(attempt.started_at_ms)),
                    Value::Int(Some(attempt.latency_ms)),
                    Value::Int(attempt.http_status),
                    Value::Text(attempt.error.as_deref()),
                    Value::Text(attempt.response_excerpt.as_deref()),
                    Value::Int(Some(i64::from(attempt.acknowledged))),
                    Value::Text(Some(&attempt.node)),
                ];
                bind_in_order(&mut insert, values)?;
                insert.raw_execute()?;
                if holds {
                    let (_, state, next_at, delivered_at, dead_at) = after_columns(one);
                    let values = [
                        Value::Int(Some(attempt_no)),
                        Value::Text(Some(state)),
                        Value::Int(Some(next_at)),
                        Value::Int(delivered_at),
                        Value::Int(dead_at),
                        Value::Int(Some(rowid)),
                    ];
                    bind_in_order(&mut settle, values)?;
                    settle.raw_execute()?;
                } else {
                    let values = [Value::Int(Some(attempt_no)), Value::Int(Some(rowid))];
                    bind_in_order(&mut number, values)?;
                    number.raw_execute()?;
                }
                kept.push(holds);
            }
            Ok(kept)
        })
    }

    /// A callback's count of attempts, whether `owner` holds its lease, and its row id; an
    /// unknown callback fails its batch.
    fn attempts_and_lease(
        read: &mut rusqlite::Statement<'_>,
        owner: &str,
        callback_id: &str,
    ) -> StoreResult<(i64, bool, i64)> {
        bind_in_order(read, [owner, callback_id])?;
        let mut rows = read.raw_query();
        match rows.next()? {
            Some(row) => Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            None => Err(StoreError::NotFound(format!("callback {callback_id}"))),
        }
    }

    pub(super) fn release(
        tx: &mut rusqlite::Transaction<'_>,
        owner: &str,
        released: &[(String, i64)],
    ) -> StoreResult<()> {
        in_savepoint(tx, Result::is_ok, |connection| {
            let mut statement = connection.prepare_cached(RELEASE_CALLBACK)?;
            for (callback_id, next_attempt_at_ms) in released {
                let values = [
                    Value::Int(Some(*next_attempt_at_ms)),
                    Value::Text(Some(callback_id)),
                    Value::Text(Some(owner)),
                ];
                bind_in_order(&mut statement, values)?;
                statement.raw_execute()?;
            }
            Ok(())
        })
    }
}

/// The callbacks that need a look: given up, or still tried after a failure.
fn troubled(app_ids: Option<&[AppId]>) -> (String, Vec<super::Value<'static>>) {
    let mut conditions = Conditions::default();
    conditions.push(
        "(state = 'dead' OR (state = 'pending' AND attempts > 0))",
        vec![],
    );
    conditions.apps(app_ids);
    conditions.finish()
}

#[async_trait]
impl CallbackStore for SqlStore {
    async fn claim_due_callbacks(
        &self,
        now_ms: i64,
        limit: i64,
        owner: &str,
        lease_until_ms: i64,
    ) -> StoreResult<Vec<Callback>> {
        crate::telemetry::timed("claim_due_callbacks", async move {
            if let Some(writer) = &self.writer {
                let owner = owner.to_string();
                let due = (now_ms, limit, lease_until_ms);
                let mut claimed = writer
                    .run_in_batch(move |tx| on_writer::claim(tx, due, &owner))
                    .await?;
                claimed.sort_by_key(|c| c.next_attempt_at_ms);
                return Ok(claimed);
            }
            let sql = match self.backend {
                Backend::Sqlite => CLAIM_CALLBACKS_SQLITE.as_str(),
                Backend::Postgres => CLAIM_CALLBACKS_POSTGRES.as_str(),
            };
            let mut connection = self.kept.take().await?;
            let rows = sqlx::query(sql)
                .bind(owner)
                .bind(lease_until_ms)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *connection)
                .await?;
            connection.give_back();
            let mut claimed: Vec<Callback> = rows
                .iter()
                .map(callback_from_row)
                .collect::<Result<_, _>>()?;
            claimed.sort_by_key(|c| c.next_attempt_at_ms);
            Ok(claimed)
        })
        .await
    }

    async fn finish_attempts(
        &self,
        owner: &str,
        finished: &[FinishedAttempt],
    ) -> StoreResult<Vec<bool>> {
        crate::telemetry::timed("finish_attempts", async move {
            let mut kept = vec![false; finished.len()];
            if finished.is_empty() {
                return Ok(kept);
            }
            if let Some(writer) = &self.writer {
                // A copy for the writer's thread; the caller keeps its batch.
                let (owner, finished) = (owner.to_string(), finished.to_vec());
                return writer
                    .record_in_batch(move |tx| on_writer::finish(tx, &owner, &finished))
                    .await;
            }
            let mut connection = self.kept.take().await?;
            let mut tx = self.begin_write_on(&mut connection).await?;
            // One lock order for every node, so two batches never deadlock on PostgreSQL: the
            // rows are locked by id first (SQLite's one write lock is taken already).
            if self.backend == Backend::Postgres {
                let ids: Vec<&str> = finished
                    .iter()
                    .map(|one| one.callback_id.as_str())
                    .collect();
                let ids =
                    serde_json::to_string(&ids).map_err(|e| StoreError::Failed(e.to_string()))?;
                sqlx::query(LOCK_CALLBACKS_POSTGRES)
                    .bind(ids)
                    .fetch_all(&mut *tx)
                    .await?;
            }
            // Rounds of distinct callbacks: a callback twice in one batch (a lease lost and
            // taken again) gets its attempts numbered one after the other.
            let mut left: Vec<usize> = (0..finished.len()).collect();
            while !left.is_empty() {
                let mut seen = std::collections::HashSet::new();
                let (round, rest): (Vec<usize>, Vec<usize>) = left
                    .iter()
                    .partition(|&&i| seen.insert(finished[i].callback_id.as_str()));
                let per_statement = match self.backend {
                    Backend::Postgres => round.len(),
                    Backend::Sqlite => ATTEMPTS_PER_STATEMENT,
                };
                for chunk in round.chunks(per_statement.max(1)) {
                    let batch: Vec<&FinishedAttempt> =
                        chunk.iter().map(|&i| &finished[i]).collect();
                    let held = match self.backend {
                        Backend::Postgres => {
                            record_attempts_postgres(&mut tx, owner, &batch).await?
                        }
                        Backend::Sqlite => record_attempts(&mut tx, owner, &batch).await?,
                    };
                    for (&i, held) in chunk.iter().zip(held) {
                        kept[i] = held;
                    }
                }
                left = rest;
            }
            tx.commit().await?;
            connection.give_back();
            Ok(kept)
        })
        .await
    }

    async fn release_callbacks(&self, owner: &str, released: &[(String, i64)]) -> StoreResult<()> {
        crate::telemetry::timed("release_callbacks", async move {
            if released.is_empty() {
                return Ok(());
            }
            if let Some(writer) = &self.writer {
                let (owner, released) = (owner.to_string(), released.to_vec());
                return writer
                    .run_in_batch(move |tx| on_writer::release(tx, &owner, &released))
                    .await;
            }
            // One lock order for every node, as in `finish_attempts`.
            let mut sorted: Vec<&(String, i64)> = released.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut connection = self.kept.take().await?;
            let mut tx = self.begin_write_on(&mut connection).await?;
            for (callback_id, next_attempt_at_ms) in sorted {
                sqlx::query(RELEASE_CALLBACK)
                    .bind(*next_attempt_at_ms)
                    .bind(callback_id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            connection.give_back();
            Ok(())
        })
        .await
    }

    async fn callbacks_of_order(&self, order_no: &OrderNo) -> StoreResult<Vec<CallbackHistory>> {
        // Two queries whatever the number of callbacks: the callbacks, then all their attempts.
        let callbacks = sqlx::query(SELECT_CALLBACKS_OF_ORDER.as_str())
            .bind(order_no.as_str())
            .fetch_all(&self.pool)
            .await?;
        let attempt_rows = sqlx::query(SELECT_ATTEMPTS_OF_ORDER.as_str())
            .bind(order_no.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut attempts: HashMap<String, Vec<Attempt>> = HashMap::new();
        for row in &attempt_rows {
            let callback_id: String = row.try_get("callback_id")?;
            attempts
                .entry(callback_id)
                .or_default()
                .push(attempt_from_row(row)?);
        }
        callbacks
            .iter()
            .map(|row| {
                let callback = callback_from_row(row)?;
                let attempts = attempts.remove(&callback.callback_id).unwrap_or_default();
                Ok(CallbackHistory { callback, attempts })
            })
            .collect()
    }

    async fn troubled_callbacks(
        &self,
        app_ids: Option<&[AppId]>,
        limit: i64,
    ) -> StoreResult<Vec<Callback>> {
        let (clause, values) = troubled(app_ids);
        let sql = format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE {clause} \
             ORDER BY created_at_ms DESC, callback_id DESC LIMIT {}",
            limit.clamp(0, 1_000)
        );
        let rows = super::bound(&sql, values).fetch_all(&self.pool).await?;
        rows.iter().map(callback_from_row).collect()
    }

    async fn count_troubled_callbacks(
        &self,
        app_ids: Option<&[AppId]>,
        at_most: i64,
    ) -> StoreResult<(i64, i64)> {
        let (clause, values) = troubled(app_ids);
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(CASE WHEN state = 'dead' THEN 0 ELSE 1 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM (SELECT state FROM callbacks WHERE {clause} LIMIT {}) AS troubled",
            at_most.clamp(0, 100_000)
        );
        let row = super::bound(&sql, values).fetch_one(&self.pool).await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn resend_latest_callback(
        &self,
        order_no: &OrderNo,
        now_ms: i64,
        audit: Option<&crate::AuditEntry>,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE callbacks SET state = 'pending', first_due_at_ms = $1, next_attempt_at_ms = $1, \
             delivered_at_ms = NULL, dead_at_ms = NULL, lease_owner = NULL, lease_until_ms = NULL \
             WHERE callback_id = (SELECT callback_id FROM callbacks WHERE order_no = $2 \
             ORDER BY created_at_ms DESC, callback_id DESC LIMIT 1) RETURNING callback_id",
        )
        .bind(now_ms)
        .bind(order_no.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(callback_id) = row.map(|r| r.try_get::<String, _>(0)).transpose()? else {
            return Ok(None);
        };
        if let Some(entry) = audit {
            let entry = crate::AuditEntry {
                after: Some(format!("callback {callback_id} queued")),
                ..entry.clone()
            };
            super::users::audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(Some(callback_id))
    }

    async fn callback_counts(&self) -> StoreResult<Vec<(CallbackState, i64)>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM callbacks GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get(0)?;
                let count: i64 = row.try_get(1)?;
                let state = CallbackState::parse(&state)
                    .ok_or_else(|| corrupt(format!("callback state {state}")))?;
                Ok((state, count))
            })
            .collect()
    }
}
