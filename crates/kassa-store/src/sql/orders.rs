//! Orders: their columns, the insert of a new order, look-ups, and the status change that
//! writes its callback in the same transaction (the outbox).

use super::merchants::currency_of;
use super::{Columns, SqlStore, Step, Value, statement};
use crate::error::corrupt;
use crate::{
    InsertOutcome, MethodTotals, NewCallback, OrderEventRecord, OrderFilter, OrderStats,
    OrderStore, StoreError, StoreResult,
};
use async_trait::async_trait;
use kassa_core::{
    AmountMinor, AppId, Order, OrderNo, OrderStatus, OrderVersion, Payer, PaymentMethod, Personal,
};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Every column of an order, in the order [`insert_statement`] binds them.
pub(super) const ORDER_COLUMNS: &str = "order_no, app_id, merchant_order_id, currency, amount_minor, method, \
    country, payer_name, payer_phone, payer_email, partner_user_id, subject, body, callback_url, \
    callback_fail_url, notify_url, status, actual_amount_minor, fee_minor, paid_at_ms, error_msg, \
    request_fingerprint, create_reply, cashier_token, created_at_ms, updated_at_ms, expires_at_ms, \
    chosen_method, pix_code, dialect, rail, channel, language";

/// [`ORDER_COLUMNS`] one by one.
pub(super) static ORDER_COLUMN_NAMES: super::ColumnNames =
    super::ColumnNames::new(|| super::names_of(ORDER_COLUMNS));

/// The uniqueness rules of a new order's drawn ids (order number, page token), as PostgreSQL
/// names its constraints and SQLite its columns. A violation of one means: draw again.
const DRAWN_ID_RULES: &[&str] = &[
    "orders_pkey",
    "orders.order_no",
    "orders_cashier_token_key",
    "orders.cashier_token",
];

/// The uniqueness rule a merchant order id its app already has breaks (PostgreSQL's name).
pub(super) const MERCHANT_ORDER_ID_RULE: &str = "orders_app_id_merchant_order_id_key";

/// `select`, written over `{orders}`, read from the live orders and from the archive
/// (sql/retention.rs), each half by its own index. With `order_and_limit` each half is ordered
/// and limited before the halves are merged and limited again, so that a page of a report reads
/// a page from each table instead of sorting the rest of a day.
pub(super) fn live_and_archived(select: &str, order_and_limit: &str) -> String {
    let half = |table: &str| {
        format!(
            "SELECT * FROM ({} {order_and_limit}) AS {table}_half",
            select.replace("{orders}", table)
        )
    };
    format!(
        "{} UNION ALL {} {order_and_limit}",
        half("orders"),
        half("orders_archive")
    )
}

statement!(
    pub(super) INSERT_ORDER,
    "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({}) ON CONFLICT (app_id, merchant_order_id) DO NOTHING",
    // One placeholder per column, so the list and the statement cannot drift apart.
    super::placeholders(1, ORDER_COLUMNS.split(',').count())
);
statement!(
    SELECT_ORDER_BY_MERCHANT_ID,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND merchant_order_id = $2"
);
statement!(
    SELECT_ORDER_BY_NO,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE order_no = $1"
);
// An order moved to the archive is still found by its number and by the merchant's id (the
// newest of that id: once archived, an id may be used again).
statement!(
    SELECT_ARCHIVED_BY_MERCHANT_ID,
    "SELECT {ORDER_COLUMNS} FROM orders_archive WHERE app_id = $1 AND merchant_order_id = $2 \
     ORDER BY created_at_ms DESC LIMIT 1"
);
statement!(
    SELECT_ARCHIVED_BY_NO,
    "SELECT {ORDER_COLUMNS} FROM orders_archive WHERE order_no = $1 LIMIT 1"
);

/// The columns of an [`OrderVersion`], in the order [`version_from_row`] reads them.
const VERSION_COLUMNS: &str =
    "order_no, app_id, merchant_order_id, status, updated_at_ms, actual_amount_minor, fee_minor";

/// [`VERSION_COLUMNS`] one by one.
static VERSION_COLUMN_NAMES: super::ColumnNames =
    super::ColumnNames::new(|| super::names_of(VERSION_COLUMNS));

// The look-ups above, for the version alone: each the same `WHERE` and so the same index.
statement!(
    SELECT_VERSION_BY_MERCHANT_ID,
    "{}",
    SELECT_ORDER_BY_MERCHANT_ID.replacen(ORDER_COLUMNS, VERSION_COLUMNS, 1)
);
statement!(
    SELECT_VERSION_BY_NO,
    "{}",
    SELECT_ORDER_BY_NO.replacen(ORDER_COLUMNS, VERSION_COLUMNS, 1)
);
statement!(
    SELECT_ARCHIVED_VERSION_BY_MERCHANT_ID,
    "{}",
    SELECT_ARCHIVED_BY_MERCHANT_ID.replacen(ORDER_COLUMNS, VERSION_COLUMNS, 1)
);
statement!(
    SELECT_ARCHIVED_VERSION_BY_NO,
    "{}",
    SELECT_ARCHIVED_BY_NO.replacen(ORDER_COLUMNS, VERSION_COLUMNS, 1)
);
statement!(
    SELECT_ORDERS_OF_APP,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND order_no > $2 \
     ORDER BY order_no LIMIT $3"
);
// A day's succeeded orders of an app, page by page in order-number order (settlement reports).
statement!(
    SELECT_PAID_BETWEEN,
    "{}",
    live_and_archived(
        &format!(
            "SELECT {ORDER_COLUMNS} FROM {{orders}} WHERE app_id = $1 AND status = 'succeeded' \
             AND paid_at_ms >= $2 AND paid_at_ms < $3 \
             AND (paid_at_ms > $4 OR (paid_at_ms = $4 AND order_no > $5))"
        ),
        "ORDER BY paid_at_ms, order_no LIMIT $6"
    )
);
// The fee as the books take it: never above what was paid (Order::booked_fee_minor).
statement!(
    SELECT_PAID_TOTALS,
    "SELECT paid_method, CAST(SUM(orders) AS BIGINT) AS orders, \
     CAST(SUM(gross_minor) AS BIGINT) AS gross_minor, CAST(SUM(fee_minor) AS BIGINT) AS fee_minor \
     FROM ({}) AS halves GROUP BY paid_method ORDER BY paid_method",
    live_and_archived(
        "SELECT COALESCE(chosen_method, method) AS paid_method, COUNT(*) AS orders, \
         SUM(actual_amount_minor) AS gross_minor, \
         SUM(CASE WHEN fee_minor < actual_amount_minor THEN fee_minor ELSE actual_amount_minor END) \
         AS fee_minor FROM {orders} WHERE app_id = $1 AND status = 'succeeded' \
         AND paid_at_ms >= $2 AND paid_at_ms < $3 GROUP BY COALESCE(chosen_method, method)",
        ""
    )
);
statement!(
    SELECT_ORDER_BY_TOKEN,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE cashier_token = $1"
);
// The states that can expire come from the core's one list. Orders opened at an upstream are
// left to reconciliation: the upstream, not kassa's clock, says whether they were paid.
statement!(
    SELECT_EXPIRED,
    "SELECT order_no FROM orders WHERE status IN ({}) AND expires_at_ms <= $1 \
     AND NOT EXISTS (SELECT 1 FROM upstream_orders u WHERE u.order_no = orders.order_no) \
     ORDER BY expires_at_ms LIMIT $2",
    super::status_literals(&OrderStatus::EXPIRABLE)
);

fn method_of(code: &str) -> StoreResult<&'static PaymentMethod> {
    PaymentMethod::by_code(code).ok_or_else(|| corrupt(format!("unknown method {code}")))
}

pub(crate) fn order_no_of(text: &str) -> StoreResult<OrderNo> {
    OrderNo::parse(text).ok_or_else(|| corrupt(format!("order no {text}")))
}

/// How to read one kind of order row: its columns in order (the native SQLite row finds each
/// by its position), the function that reads them from either driver's row, and the look-ups
/// that select them.
pub(super) struct RowReader<T> {
    pub(super) columns: &'static super::ColumnNames,
    pub(super) read: fn(&dyn Columns) -> StoreResult<T>,
    /// The look-ups of these columns by merchant id and by number: live, then archived.
    by_merchant_order_id: (&'static Statement, &'static Statement),
    by_order_no: (&'static Statement, &'static Statement),
}

/// A statement written once, at first use.
type Statement = std::sync::LazyLock<String>;

impl<T> Clone for RowReader<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RowReader<T> {}

static ORDERS: RowReader<Order> = RowReader {
    columns: &ORDER_COLUMN_NAMES,
    read: |row| order_from_row(row),
    by_merchant_order_id: (
        &SELECT_ORDER_BY_MERCHANT_ID,
        &SELECT_ARCHIVED_BY_MERCHANT_ID,
    ),
    by_order_no: (&SELECT_ORDER_BY_NO, &SELECT_ARCHIVED_BY_NO),
};
static VERSIONS: RowReader<OrderVersion> = RowReader {
    columns: &VERSION_COLUMN_NAMES,
    read: |row| version_from_row(row),
    by_merchant_order_id: (
        &SELECT_VERSION_BY_MERCHANT_ID,
        &SELECT_ARCHIVED_VERSION_BY_MERCHANT_ID,
    ),
    by_order_no: (&SELECT_VERSION_BY_NO, &SELECT_ARCHIVED_VERSION_BY_NO),
};

fn payer_from_row(row: &(impl Columns + ?Sized)) -> StoreResult<Option<Payer>> {
    let Some(name) = row.text("payer_name")? else {
        return Ok(None);
    };
    let text = |column: &str| -> StoreResult<String> { Ok(row.text(column)?.unwrap_or_default()) };
    Ok(Some(Payer {
        name: Personal::new(name),
        phone: Personal::new(text("payer_phone")?),
        email: Personal::new(text("payer_email")?),
        partner_user_id: text("partner_user_id")?,
    }))
}

/// An order from its row, each column read in the order of [`ORDER_COLUMNS`] (the native
/// SQLite row then finds each column without a search).
pub(super) fn order_from_row(row: &(impl Columns + ?Sized)) -> StoreResult<Order> {
    Ok(Order {
        order_no: order_no_of(&row.need_text("order_no")?)?,
        app_id: AppId(row.need_int("app_id")?),
        merchant_order_id: row.need_text("merchant_order_id")?,
        currency: currency_of(&row.need_text("currency")?)?,
        amount_minor: AmountMinor(row.need_int("amount_minor")?),
        method: method_of(&row.need_text("method")?)?,
        country: row.text("country")?,
        payer: payer_from_row(row)?,
        subject: row.text("subject")?,
        body: row.text("body")?,
        callback_url: row.text("callback_url")?,
        callback_fail_url: row.text("callback_fail_url")?,
        notify_url: row.text("notify_url")?,
        status: status_of(row.need_text("status")?)?,
        actual_amount_minor: AmountMinor(row.need_int("actual_amount_minor")?),
        fee_minor: AmountMinor(row.need_int("fee_minor")?),
        paid_at_ms: row.int("paid_at_ms")?,
        error_msg: row.text("error_msg")?,
        request_fingerprint: row.need_text("request_fingerprint")?,
        create_reply: row.need_text("create_reply")?,
        cashier_token: row.need_text("cashier_token")?,
        created_at_ms: row.need_int("created_at_ms")?,
        updated_at_ms: row.need_int("updated_at_ms")?,
        expires_at_ms: row.need_int("expires_at_ms")?,
        chosen_method: match row.text("chosen_method")? {
            None => None,
            Some(code) => Some(method_of(&code)?),
        },
        pix_code: row.text("pix_code")?,
        dialect: row.need_text("dialect")?,
        rail: row.need_text("rail")?,
        channel: row.need_text("channel")?,
        // A tag kassa no longer speaks reads as none: the pages fall back.
        language: row
            .text("language")?
            .and_then(|tag| kassa_core::Locale::from_tag(&tag)),
    })
}

fn status_of(text: String) -> StoreResult<OrderStatus> {
    OrderStatus::parse(&text).ok_or_else(|| corrupt(format!("unknown status {text}")))
}

/// An order's version from a row of [`VERSION_COLUMNS`], read in their order.
fn version_from_row(row: &(impl Columns + ?Sized)) -> StoreResult<OrderVersion> {
    Ok(OrderVersion {
        order_no: order_no_of(&row.need_text("order_no")?)?,
        app_id: AppId(row.need_int("app_id")?),
        merchant_order_id: row.need_text("merchant_order_id")?,
        status: status_of(row.need_text("status")?)?,
        updated_at_ms: row.need_int("updated_at_ms")?,
        actual_amount_minor: AmountMinor(row.need_int("actual_amount_minor")?),
        fee_minor: AmountMinor(row.need_int("fee_minor")?),
    })
}

/// How many columns an order has (checked against [`ORDER_COLUMNS`] by a test).
pub(super) const ORDER_COLUMN_COUNT: usize = 33;

/// An order's values in the order of [`ORDER_COLUMNS`]: the one list both drivers bind.
pub(super) fn order_values(order: &Order) -> [Value<'_>; ORDER_COLUMN_COUNT] {
    debug_assert!(
        !order.rail.is_empty(),
        "an order is routed before it is stored"
    );
    let payer = order.payer.as_ref();
    let int = |v: i64| Value::Int(Some(v));
    fn text(v: &str) -> Value<'_> {
        Value::Text(Some(v))
    }
    [
        text(order.order_no.as_str()),
        int(order.app_id.0),
        text(&order.merchant_order_id),
        text(order.currency.code()),
        int(order.amount_minor.0),
        text(order.method.code),
        Value::Text(order.country.as_deref()),
        Value::Text(payer.map(|p| p.name.expose())),
        Value::Text(payer.map(|p| p.phone.expose())),
        Value::Text(payer.map(|p| p.email.expose())),
        Value::Text(payer.map(|p| p.partner_user_id.as_str())),
        Value::Text(order.subject.as_deref()),
        Value::Text(order.body.as_deref()),
        Value::Text(order.callback_url.as_deref()),
        Value::Text(order.callback_fail_url.as_deref()),
        Value::Text(order.notify_url.as_deref()),
        text(order.status.as_str()),
        int(order.actual_amount_minor.0),
        int(order.fee_minor.0),
        Value::Int(order.paid_at_ms),
        Value::Text(order.error_msg.as_deref()),
        text(&order.request_fingerprint),
        text(&order.create_reply),
        text(&order.cashier_token),
        int(order.created_at_ms),
        int(order.updated_at_ms),
        int(order.expires_at_ms),
        Value::Text(order.chosen_method.map(|m| m.code)),
        Value::Text(order.pix_code.as_deref()),
        text(&order.dialect),
        text(&order.rail),
        text(&order.channel),
        Value::Text(order.language.map(|l| l.tag())),
    ]
}

/// The insert of a new order (`ON CONFLICT (app_id, merchant_order_id) DO NOTHING`).
pub(super) fn insert_statement(order: &Order) -> super::Query<'_> {
    super::bound(INSERT_ORDER.as_str(), order_values(order))
}

/// The result of one insert: rows written, or which rule refused it. A taken order number
/// or page token means "draw again"; any other rule is a conflict to report.
pub(super) fn insert_result(done: StoreResult<u64>) -> StoreResult<u64> {
    match done {
        Err(StoreError::Conflict(rule)) if DRAWN_ID_RULES.contains(&rule.as_str()) => {
            Err(StoreError::OrderNoTaken)
        }
        other => other,
    }
}

/// A status change of an order and what is written with it, in one transaction: the
/// change's event, the merchant's callback (the outbox), the success journal, an audit entry.
#[derive(Clone, Copy)]
pub(super) struct StatusChange<'a> {
    pub order: &'a Order,
    pub from: OrderStatus,
    pub callback: Option<&'a NewCallback>,
    pub journal: Option<&'a kassa_core::ledger::Journal>,
    pub audit: Option<&'a crate::AuditEntry>,
}

/// A [`StatusChange`] that owns its parts, to be handed to SQLite's writer thread.
pub(super) struct OwnedStatusChange {
    order: Order,
    from: OrderStatus,
    callback: Option<NewCallback>,
    journal: Option<kassa_core::ledger::Journal>,
    audit: Option<crate::AuditEntry>,
}

impl StatusChange<'_> {
    pub(super) fn to_owned(self) -> OwnedStatusChange {
        OwnedStatusChange {
            order: self.order.clone(),
            from: self.from,
            callback: self.callback.cloned(),
            journal: self.journal.cloned(),
            audit: self.audit.cloned(),
        }
    }

    /// The conditional update that makes the change: it changes one row, or the order had
    /// moved on and nothing of the change may be written.
    pub(super) fn update(&self) -> Step<'_> {
        let order = self.order;
        Step {
            sql: "UPDATE orders SET status = $1, actual_amount_minor = $2, fee_minor = $3, \
                  paid_at_ms = $4, error_msg = $5, updated_at_ms = $6, chosen_method = $7 \
                  WHERE order_no = $8 AND status = $9"
                .into(),
            values: vec![
                Value::Text(Some(order.status.as_str())),
                Value::Int(Some(order.actual_amount_minor.0)),
                Value::Int(Some(order.fee_minor.0)),
                Value::Int(order.paid_at_ms),
                Value::Text(order.error_msg.as_deref()),
                Value::Int(Some(order.updated_at_ms)),
                Value::Text(order.chosen_method.map(|m| m.code)),
                Value::Text(Some(order.order_no.as_str())),
                Value::Text(Some(self.from.as_str())),
            ],
        }
    }

    /// What is written once the update changed the order.
    pub(super) fn writes(&self) -> StoreResult<Vec<Step<'_>>> {
        let order = self.order;
        let detail = match order.status {
            OrderStatus::Failed | OrderStatus::Exception => order.error_msg.as_deref(),
            _ => None,
        };
        let mut steps = vec![Step {
            sql: "INSERT INTO order_events (order_no, at_ms, from_status, to_status, detail) \
                  VALUES ($1, $2, $3, $4, $5)"
                .into(),
            values: vec![
                Value::Text(Some(order.order_no.as_str())),
                Value::Int(Some(order.updated_at_ms)),
                Value::Text(Some(self.from.as_str())),
                Value::Text(Some(order.status.as_str())),
                Value::Text(detail),
            ],
        }];
        steps.extend(self.callback.map(super::callbacks::insert_step));
        if let Some(journal) = self.journal {
            steps.extend(super::ledger::journal_steps(journal)?);
        }
        steps.extend(self.audit.map(super::users::audit_step));
        Ok(steps)
    }
}

impl OwnedStatusChange {
    pub(super) fn borrowed(&self) -> StatusChange<'_> {
        StatusChange {
            order: &self.order,
            from: self.from,
            callback: self.callback.as_ref(),
            journal: self.journal.as_ref(),
            audit: self.audit.as_ref(),
        }
    }
}

/// The conditions of a statement built at run time: fixed text with `?` marks, numbered
/// `$1`, `$2`… as they are added; every value is bound, none enters the text.
#[derive(Default)]
pub(super) struct Conditions {
    clauses: Vec<String>,
    values: Vec<Value<'static>>,
}

impl Conditions {
    pub(super) fn push(&mut self, clause: &str, bound: Vec<Value<'static>>) {
        let mut clause = clause.to_string();
        for value in bound {
            self.values.push(value);
            clause = clause.replacen('?', &format!("${}", self.values.len()), 1);
        }
        self.clauses.push(clause);
    }

    /// `app_id IN (…)`, unless every app is meant (`None`); nothing matches `Some(empty)`.
    pub(super) fn apps(&mut self, app_ids: Option<&[AppId]>) {
        match app_ids {
            None => {}
            Some([]) => self.push("1 = 0", vec![]),
            Some(ids) => {
                let marks = vec!["?"; ids.len()].join(", ");
                let bound = ids.iter().map(|a| Value::Int(Some(a.0))).collect();
                self.push(&format!("app_id IN ({marks})"), bound);
            }
        }
    }

    /// The `WHERE` text and the values to bind, in order.
    pub(super) fn finish(self) -> (String, Vec<Value<'static>>) {
        let clause = if self.clauses.is_empty() {
            "1 = 1".to_string()
        } else {
            self.clauses.join(" AND ")
        };
        (clause, self.values)
    }
}

/// The `WHERE` of the back office's order list and what it binds.
fn filter_clause(
    filter: &OrderFilter,
    before: Option<(i64, &OrderNo)>,
) -> (String, Vec<Value<'static>>) {
    let mut conditions = Conditions::default();
    conditions.apps(filter.app_ids.as_deref());
    let text = |value: &str| Value::Made(value.to_string());
    if let Some(status) = filter.status {
        // Written into the text (one of a fixed set, never the caller's words): PostgreSQL then
        // plans each status by its own frequency — a generic plan reads a rare status the
        // way it reads a common one, through the whole table.
        conditions.push(&format!("status = '{}'", status.as_str()), vec![]);
    }
    if let Some(method) = &filter.method {
        let clause = "(method = ? OR chosen_method = ?)";
        conditions.push(clause, vec![text(method), text(method)]);
    }
    if let Some(currency) = &filter.currency {
        conditions.push("currency = ?", vec![text(currency)]);
    }
    let bounds = [
        ("created_at_ms >= ?", filter.created_from_ms),
        ("created_at_ms < ?", filter.created_to_ms),
        ("amount_minor >= ?", filter.amount_min_minor),
        ("amount_minor <= ?", filter.amount_max_minor),
    ];
    for (clause, value) in bounds {
        if let Some(value) = value {
            conditions.push(clause, vec![Value::Int(Some(value))]);
        }
    }
    if let Some(search) = &filter.search {
        let clause = "(order_no = ? OR merchant_order_id = ? OR payer_email = ?)";
        conditions.push(clause, vec![text(search), text(search), text(search)]);
    }
    if let Some((created_at_ms, order_no)) = before {
        // The plain bound first lets the index be read from there, not from the newest order.
        let clause =
            "created_at_ms <= ? AND (created_at_ms < ? OR (created_at_ms = ? AND order_no < ?))";
        let at = || Value::Int(Some(created_at_ms));
        conditions.push(clause, vec![at(), at(), at(), text(order_no.as_str())]);
    }
    conditions.finish()
}

impl SqlStore {
    /// A status change in a transaction of its own, through sqlx.
    async fn change_status(&self, change: &StatusChange<'_>) -> StoreResult<bool> {
        let mut connection = self.kept.take().await?;
        let mut tx = self.begin_write_on(&mut connection).await?;
        let update = change.update();
        let changed = super::bound(&update.sql, update.values)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let changed = changed == 1;
        if changed {
            for step in change.writes()? {
                super::bound(&step.sql, step.values)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        connection.give_back();
        Ok(changed)
    }

    /// The row `live` finds, else the one `archived` finds with the same arguments.
    async fn live_or_archived<T>(
        &self,
        (live, archived): (&'static str, &'static str),
        args: &[Value<'_>],
        read: RowReader<T>,
    ) -> StoreResult<Option<T>> {
        match self.one_row(live, args, read.columns, read.read).await? {
            Some(found) => Ok(Some(found)),
            None => self.one_row(archived, args, read.columns, read.read).await,
        }
    }

    /// The app's order with this merchant id (the newest archived one when none is live), read
    /// by `read`.
    async fn by_merchant_order_id<T>(
        &self,
        app_id: AppId,
        merchant_order_id: &str,
        read: RowReader<T>,
    ) -> StoreResult<Option<T>> {
        let (live, archived) = read.by_merchant_order_id;
        let args = [
            Value::Int(Some(app_id.0)),
            Value::Text(Some(merchant_order_id)),
        ];
        self.live_or_archived((live.as_str(), archived.as_str()), &args, read)
            .await
    }

    /// The order with this number, live or archived, read by `read`.
    async fn by_order_no<T>(
        &self,
        order_no: &OrderNo,
        read: RowReader<T>,
    ) -> StoreResult<Option<T>> {
        let (live, archived) = read.by_order_no;
        let args = [Value::Text(Some(order_no.as_str()))];
        self.live_or_archived((live.as_str(), archived.as_str()), &args, read)
            .await
    }
}

#[async_trait]
impl OrderStore for SqlStore {
    async fn insert_order(&self, order: &Order) -> StoreResult<InsertOutcome> {
        crate::telemetry::timed("insert_order", async move {
            let inserted = match (&self.writer, &self.batched) {
                (Some(writer), _) => writer.insert(order.clone()).await,
                (None, Some(batched)) => batched.insert(order.clone()).await,
                (None, None) => {
                    let done = insert_statement(order).execute(&self.pool).await;
                    insert_result(done.map(|d| d.rows_affected()).map_err(StoreError::from))
                }
            };
            if inserted? == 1 {
                return Ok(InsertOutcome::Inserted);
            }
            let existing = self
                .order_by_merchant_order_id(order.app_id, &order.merchant_order_id)
                .await?
                .ok_or_else(|| corrupt("conflicting order vanished"))?;
            Ok(InsertOutcome::Existing(Box::new(existing)))
        })
        .await
    }

    async fn order_by_merchant_order_id(
        &self,
        app_id: AppId,
        merchant_order_id: &str,
    ) -> StoreResult<Option<Order>> {
        let found = self.by_merchant_order_id(app_id, merchant_order_id, ORDERS);
        crate::telemetry::timed("order_by_merchant_order_id", found).await
    }

    async fn order_by_no(&self, order_no: &OrderNo) -> StoreResult<Option<Order>> {
        crate::telemetry::timed("order_by_no", self.by_order_no(order_no, ORDERS)).await
    }

    async fn order_version_by_merchant_order_id(
        &self,
        app_id: AppId,
        merchant_order_id: &str,
    ) -> StoreResult<Option<OrderVersion>> {
        let found = self.by_merchant_order_id(app_id, merchant_order_id, VERSIONS);
        crate::telemetry::timed("order_version_by_merchant_order_id", found).await
    }

    async fn order_version_by_no(&self, order_no: &OrderNo) -> StoreResult<Option<OrderVersion>> {
        let found = self.by_order_no(order_no, VERSIONS);
        crate::telemetry::timed("order_version_by_no", found).await
    }

    async fn order_statuses(
        &self,
        order_nos: &[OrderNo],
    ) -> StoreResult<Vec<(OrderNo, OrderStatus)>> {
        assert!(order_nos.len() <= crate::MAX_STATUSES_AT_ONCE);
        if order_nos.is_empty() {
            return Ok(Vec::new());
        }
        crate::telemetry::timed("order_statuses", async move {
            let rows = super::with_keys(
                "SELECT order_no, status FROM orders WHERE order_no IN ({in})",
                order_nos.iter().map(OrderNo::as_str),
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let number: String = row.try_get("order_no")?;
                    let status: String = row.try_get("status")?;
                    let order_no = OrderNo::parse(&number)
                        .ok_or_else(|| corrupt(format!("order number {number}")))?;
                    let status = OrderStatus::parse(&status)
                        .ok_or_else(|| corrupt(format!("order status {status}")))?;
                    Ok((order_no, status))
                })
                .collect()
        })
        .await
    }

    async fn order_by_cashier_token(&self, token: &str) -> StoreResult<Option<Order>> {
        crate::telemetry::timed("order_by_cashier_token", async move {
            let args = [Value::Text(Some(token))];
            let (columns, read) = (ORDERS.columns, ORDERS.read);
            self.one_row(SELECT_ORDER_BY_TOKEN.as_str(), &args, columns, read)
                .await
        })
        .await
    }

    async fn orders_of_app(
        &self,
        app_id: AppId,
        after: Option<&OrderNo>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        // Order numbers are 16 digits, so "" sorts before every one of them.
        let rows = sqlx::query(SELECT_ORDERS_OF_APP.as_str())
            .bind(app_id.0)
            .bind(after.map_or("", |n| n.as_str()))
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    async fn orders_paid_between(
        &self,
        app_id: AppId,
        (from_ms, to_ms): (i64, i64),
        after: Option<(i64, &OrderNo)>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        // The page starts at the last one's payment time: the index is read from there, not
        // from the start of the day each time.
        let from_ms = after.map_or(from_ms, |(paid_at_ms, _)| paid_at_ms.max(from_ms));
        let rows = sqlx::query(SELECT_PAID_BETWEEN.as_str())
            .bind(app_id.0)
            .bind(from_ms)
            .bind(to_ms)
            .bind(after.map_or(i64::MIN, |(paid_at_ms, _)| paid_at_ms))
            .bind(after.map_or("", |(_, n)| n.as_str()))
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    async fn paid_totals_between(
        &self,
        app_id: AppId,
        (from_ms, to_ms): (i64, i64),
    ) -> StoreResult<Vec<MethodTotals>> {
        let rows = sqlx::query(SELECT_PAID_TOTALS.as_str())
            .bind(app_id.0)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MethodTotals {
                    method: row.try_get("paid_method")?,
                    orders: row.try_get("orders")?,
                    gross_minor: row.try_get("gross_minor")?,
                    fee_minor: row.try_get("fee_minor")?,
                })
            })
            .collect()
    }

    async fn transition_order(
        &self,
        order: &Order,
        from: OrderStatus,
        callback: Option<&NewCallback>,
        journal: Option<&kassa_core::ledger::Journal>,
        audit: Option<&crate::AuditEntry>,
    ) -> StoreResult<bool> {
        let change = StatusChange {
            order,
            from,
            callback,
            journal,
            audit,
        };
        crate::telemetry::timed("transition_order", async move {
            match &self.writer {
                Some(writer) => writer.change_status(change.to_owned()).await,
                None => self.change_status(&change).await,
            }
        })
        .await
    }

    async fn search_orders(
        &self,
        filter: &OrderFilter,
        before: Option<(i64, &OrderNo)>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        crate::telemetry::timed("search_orders", async move {
            let (clause, values) = filter_clause(filter, before);
            let sql = format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE {clause} \
                 ORDER BY created_at_ms DESC, order_no DESC LIMIT {}",
                limit.clamp(0, 1_000)
            );
            let rows = super::bound(&sql, values).fetch_all(&self.pool).await?;
            rows.iter().map(order_from_row).collect()
        })
        .await
    }

    async fn count_orders(&self, filter: &OrderFilter, at_most: i64) -> StoreResult<i64> {
        let (clause, values) = filter_clause(filter, None);
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 AS one FROM orders WHERE {clause} LIMIT {}) AS found",
            at_most.clamp(0, 100_000)
        );
        let row = super::bound(&sql, values).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    async fn order_events(&self, order_no: &OrderNo) -> StoreResult<Vec<OrderEventRecord>> {
        let rows = sqlx::query(
            "SELECT at_ms, from_status, to_status, detail FROM order_events \
             WHERE order_no = $1 ORDER BY at_ms",
        )
        .bind(order_no.as_str())
        .fetch_all(&self.pool)
        .await?;
        let status = |row: &AnyRow, column: &str| -> StoreResult<OrderStatus> {
            let text: String = row.try_get(column)?;
            OrderStatus::parse(&text).ok_or_else(|| corrupt(format!("order event status {text}")))
        };
        rows.iter()
            .map(|row| {
                Ok(OrderEventRecord {
                    at_ms: row.try_get("at_ms")?,
                    from: status(row, "from_status")?,
                    to: status(row, "to_status")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn order_stats(
        &self,
        app_ids: Option<&[AppId]>,
        (from_ms, to_ms): (i64, i64),
    ) -> StoreResult<Vec<OrderStats>> {
        let filter = OrderFilter {
            app_ids: app_ids.map(<[AppId]>::to_vec),
            created_from_ms: Some(from_ms),
            created_to_ms: Some(to_ms),
            ..OrderFilter::default()
        };
        let (clause, values) = filter_clause(&filter, None);
        let sql = format!(
            "SELECT dialect, COALESCE(chosen_method, method) AS paid_method, currency, status, \
             COUNT(*) AS orders, CAST(SUM(amount_minor) AS BIGINT) AS amount_minor, \
             CAST(SUM(actual_amount_minor) AS BIGINT) AS paid_minor FROM orders WHERE {clause} \
             GROUP BY dialect, COALESCE(chosen_method, method), currency, status \
             ORDER BY dialect, paid_method, currency, status"
        );
        let rows = super::bound(&sql, values).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                Ok(OrderStats {
                    dialect: row.try_get("dialect")?,
                    method: row.try_get("paid_method")?,
                    currency: row.try_get("currency")?,
                    status: OrderStatus::parse(&status)
                        .ok_or_else(|| corrupt(format!("unknown status {status}")))?,
                    orders: row.try_get("orders")?,
                    amount_minor: row.try_get("amount_minor")?,
                    paid_minor: row.try_get("paid_minor")?,
                })
            })
            .collect()
    }

    async fn expired_orders(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OrderNo>> {
        crate::telemetry::timed("expired_orders", async move {
            let rows = sqlx::query(SELECT_EXPIRED.as_str())
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| order_no_of(&row.try_get::<String, _>(0)?))
                .collect()
        })
        .await
    }
}
