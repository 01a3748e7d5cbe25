//! Group inserts of new orders on PostgreSQL: one task takes whatever creates are waiting and
//! writes them with one statement and one commit, on a connection kept between batches
//! (sql/kept.rs: no test of it by sqlx at each return). The statement's shape does not depend
//! on how many orders it carries — they travel as one JSON array, which `json_populate_recordset`
//! turns into rows of the orders' own types — so PostgreSQL parses and plans it once per
//! connection. The plain insert is tried first; a batch it refuses for a repeated merchant
//! order id goes in with the statement that skips repeats (which the batches of the next
//! second then take from the start); a batch refused otherwise (a drawn order number taken,
//! …) is inserted again one order at a time, so that each caller gets its own answer.

use super::kept::KeptConnections;
use super::orders::{
    MERCHANT_ORDER_ID_RULE, ORDER_COLUMN_NAMES, ORDER_COLUMNS, insert_result, insert_statement,
    order_values,
};
use super::statement;
use crate::{StoreError, StoreResult};
use kassa_core::Order;
use sqlx::Row;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

statement!(
    INSERT_ORDERS,
    "INSERT INTO orders ({ORDER_COLUMNS}) SELECT {ORDER_COLUMNS} \
     FROM json_populate_recordset(NULL::orders, $1::json)"
);
statement!(
    INSERT_ORDERS_SKIPPING_REPEATS,
    "{} ON CONFLICT (app_id, merchant_order_id) DO NOTHING RETURNING order_no",
    *INSERT_ORDERS
);

/// How long batches skip repeated order ids after one met a repeat. The plain insert costs the
/// database less than the one that skips repeats (no speculative insertion per row, about 5 µs
/// of a row's 27), but a repeat makes it fail as a whole; so a merchant repeating its order
/// ids costs one refused statement per this span, not one per batch.
const SKIP_REPEATS_FOR: Duration = Duration::from_secs(1);

struct Job {
    /// A copy: the caller's order cannot be lent to the task for the time of a commit.
    order: Box<Order>,
    done: tokio::sync::oneshot::Sender<StoreResult<u64>>,
}

pub(super) struct BatchedInserts {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl BatchedInserts {
    /// Starts the batching task; it ends when the store (the queue's sender) is dropped.
    pub(super) fn start(connections: Arc<KeptConnections>) -> BatchedInserts {
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(super::WRITE_QUEUE);
        tokio::spawn(async move {
            let mut repeat_seen_at = None;
            while let Some(first) = queue.recv().await {
                let batch = super::batch_of(vec![first], &mut queue);
                write(&connections, batch, &mut repeat_seen_at).await;
            }
        });
        BatchedInserts { jobs }
    }

    pub(super) async fn insert(&self, order: Order) -> StoreResult<u64> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Unavailable("the insert batcher stopped".into());
        let job = Job {
            order: Box::new(order),
            done,
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// One batch: alone, the insert of one order; together, one statement (see [`insert_together`]),
/// and on its refusal each order again on its own.
async fn write(
    connections: &KeptConnections,
    batch: Vec<Job>,
    repeat_seen_at: &mut Option<Instant>,
) {
    if batch.len() > 1 {
        let orders = batch.iter().map(|job| &*job.order);
        if let Ok(inserted) = insert_together(connections, orders, repeat_seen_at).await {
            for job in batch {
                let rows = u64::from(inserted.contains(job.order.order_no.as_str()));
                let _ = job.done.send(Ok(rows));
            }
            return;
        }
    }
    for job in batch {
        let done = insert_statement(&job.order)
            .execute(connections.pool())
            .await;
        let _ = job.done.send(insert_result(
            done.map(|d| d.rows_affected()).map_err(StoreError::from),
        ));
    }
}

/// Which orders of a batch went in.
enum Inserted {
    All,
    /// Their numbers: the others' merchant order ids their apps already had.
    Only(HashSet<String>),
}

impl Inserted {
    fn contains(&self, order_no: &str) -> bool {
        match self {
            Inserted::All => true,
            Inserted::Only(numbers) => numbers.contains(order_no),
        }
    }
}

/// `orders` in one statement: the plain insert, unless a batch met a repeated order id within
/// [`SKIP_REPEATS_FOR`] (then, and when the plain insert is refused for a repeat, the one
/// that skips repeats).
async fn insert_together<'a>(
    connections: &KeptConnections,
    orders: impl ExactSizeIterator<Item = &'a Order> + Clone,
    repeat_seen_at: &mut Option<Instant>,
) -> StoreResult<Inserted> {
    let skipping = repeat_seen_at.is_some_and(|seen| seen.elapsed() < SKIP_REPEATS_FOR);
    if !skipping {
        let mut connection = connections.take().await?;
        match sqlx::query(INSERT_ORDERS.as_str())
            .bind(rows_as_json(orders.clone()))
            .execute(&mut *connection)
            .await
            .map_err(StoreError::from)
        {
            Ok(_) => {
                connection.give_back();
                return Ok(Inserted::All);
            }
            // A statement refused is answered in full: the connection is fine to keep. Any
            // other refusal (a drawn number taken) the skipping statement would meet too.
            Err(StoreError::Conflict(rule)) if rule == MERCHANT_ORDER_ID_RULE => {
                connection.give_back();
                *repeat_seen_at = Some(Instant::now());
            }
            Err(other) => return Err(other),
        }
    }
    insert_skipping_repeats(connections, orders)
        .await
        .map(Inserted::Only)
}

/// `orders` in one statement that skips those whose merchant order id their app already has;
/// the numbers of those that went in.
async fn insert_skipping_repeats<'a>(
    connections: &KeptConnections,
    orders: impl ExactSizeIterator<Item = &'a Order>,
) -> StoreResult<HashSet<String>> {
    let mut connection = connections.take().await?;
    let returned = sqlx::query(INSERT_ORDERS_SKIPPING_REPEATS.as_str())
        .bind(rows_as_json(orders))
        .fetch_all(&mut *connection)
        .await?;
    connection.give_back();
    Ok(returned
        .iter()
        .filter_map(|row| row.try_get::<String, _>(0).ok())
        .collect())
}

/// The batch's orders as a JSON array of objects keyed by column name.
fn rows_as_json<'a>(orders: impl ExactSizeIterator<Item = &'a Order>) -> String {
    super::json_rows(
        &ORDER_COLUMN_NAMES,
        orders.map(order_values),
        ROW_JSON_BYTES,
    )
}

/// About what one order's row takes as JSON, to size the buffer once.
const ROW_JSON_BYTES: usize = 1_024;

#[cfg(test)]
mod tests {
    use super::super::Value;
    use super::*;
    use crate::testing::TestDatabase;
    use crate::{MerchantStore, NewApp, OrderStore};
    use kassa_core::{Currency, Secret};

    /// The one statement writes every value of every order as given — NULLs, escapes, text
    /// beyond ASCII — and tells which went in: an order id its app already has does not. (The
    /// store's own tests cannot tell it from the one-by-one inserts it falls back to.)
    #[tokio::test]
    async fn orders_inserted_together_read_back_as_given() {
        let name = "orders_inserted_together_read_back_as_given";
        let Some(db) = TestDatabase::postgres(name).await else {
            return;
        };
        let store = db.store().await;
        let app = NewApp {
            currency: Currency::Eur,
            webhook_secret: Secret::new(String::from("whsec")),
        };
        let merchant = store.create_merchant("Shop", &[app], None, 1, None).await;
        let app_id = merchant.unwrap().apps[0].app_id;
        let order = |merchant_order_id: &str, seed: u64| {
            let mut order = kassa_core::fixtures::order(merchant_order_id, 1_234, seed, 60_000);
            order.app_id = app_id;
            order.cashier_token = format!("page-{seed}");
            order
        };
        let mut first = order("quote\"back\\slash\nnew", 1);
        first.subject = Some("caf\u{e9} \u{1f600} '; --".into());
        (first.paid_at_ms, first.payer) = (None, None);
        let mut second = order("second", 2);
        (second.paid_at_ms, second.country) = (Some(-1), None);
        let both = [&first, &second];
        let connections = KeptConnections::new(store.pool().clone());
        let mut repeat_seen_at = None;
        let inserted = insert_together(&connections, both.into_iter(), &mut repeat_seen_at);
        assert!(matches!(inserted.await.unwrap(), Inserted::All));
        assert!(repeat_seen_at.is_none());
        for order in both {
            let read = store.order_by_no(&order.order_no).await.unwrap();
            assert_eq!(read.as_ref(), Some(order));
        }
        // A repeat refuses the plain insert; the batch goes in skipping it, and the batches
        // after it skip repeats from the start for a while.
        let (again, third) = (order("second", 3), order("third", 4));
        let inserted = insert_together(
            &connections,
            [&again, &third].into_iter(),
            &mut repeat_seen_at,
        );
        let third_only = HashSet::from([third.order_no.as_str().to_string()]);
        assert!(matches!(inserted.await.unwrap(), Inserted::Only(n) if n == third_only));
        assert!(repeat_seen_at.is_some(), "the repeat's rule recognised");
        assert_eq!(store.order_by_no(&again.order_no).await.unwrap(), None);
        let (fourth, fifth) = (order("fourth", 5), order("fifth", 6));
        let inserted = insert_together(
            &connections,
            [&fourth, &fifth].into_iter(),
            &mut repeat_seen_at,
        );
        assert!(matches!(inserted.await.unwrap(), Inserted::Only(n) if n.len() == 2));
        repeat_seen_at = repeat_seen_at.map(|seen| seen - SKIP_REPEATS_FOR);
        let sixth = order("sixth", 7);
        let inserted = insert_together(&connections, [&sixth].into_iter(), &mut repeat_seen_at);
        assert!(
            matches!(inserted.await.unwrap(), Inserted::All),
            "plain again after a while"
        );
    }

    /// The written JSON is what `serde_json` reads back: every column, escapes included.
    #[test]
    fn rows_read_back_column_by_column() {
        let mut first = kassa_core::fixtures::order("quote\"back\\slash\nnew", 1_234, 1, 60_000);
        first.subject = Some("caf\u{e9} \u{1f600} \u{1}".into());
        first.paid_at_ms = None;
        let mut second = kassa_core::fixtures::order("second", 50_000, 2, 60_000);
        second.paid_at_ms = Some(-1);
        let json = rows_as_json([&first, &second].into_iter());
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&json).unwrap();
        assert_eq!(rows.len(), 2);
        for (row, order) in rows.iter().zip([&first, &second]) {
            assert_eq!(row.len(), ORDER_COLUMN_NAMES.len());
            for (name, value) in ORDER_COLUMN_NAMES.iter().zip(order_values(order)) {
                let expected = match value {
                    Value::Int(v) => v.map_or(serde_json::Value::Null, Into::into),
                    Value::Text(v) => v.map_or(serde_json::Value::Null, Into::into),
                    Value::Made(v) => v.into(),
                };
                assert_eq!(row[*name], expected, "{name}");
            }
        }
        assert_eq!(rows[0]["merchant_order_id"], "quote\"back\\slash\nnew");
        assert_eq!(rows[0]["subject"], "caf\u{e9} \u{1f600} \u{1}");
        assert_eq!(rows_as_json(std::iter::empty()), "[]");
    }
}
