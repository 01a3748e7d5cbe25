//! The books: journals written with the order changes they record (inside the same
//! transaction), balances, and the invariants `kassa ledger check` verifies.

use super::merchants::currency_of;
use super::{SqlStore, Step, Value, statement};
use crate::{
    AppBooks, DueSettlement, LedgerCheck, LedgerStore, StoreError, StoreResult, SuccessTerms,
};
use async_trait::async_trait;
use kassa_core::ledger::{Account, Entry, Journal, JournalKind};
use kassa_core::{AppId, OrderNo};
use sqlx::Row;
use std::collections::BTreeMap;

/// Writes a journal (checked by the core first) into `tx`: its entries, all in one statement,
/// then the journal itself, which the database's own rules check against them (migration 9).
pub(super) async fn post(tx: &mut super::WriteTransaction, journal: &Journal) -> StoreResult<()> {
    for step in journal_steps(journal)? {
        super::bound(&step.sql, step.values)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The statements that post `journal`, once the core has checked it: its entries in one
/// statement, then the journal. The entries name a journal not yet written: their foreign key
/// is declared deferred to the commit (migrations 9 and 22).
pub(super) fn journal_steps(journal: &Journal) -> StoreResult<[Step<'_>; 2]> {
    journal
        .check()
        .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
    let rows: Vec<String> = (0..journal.entries.len())
        .map(|i| format!("({})", super::placeholders(i * 5 + 1, 5)))
        .collect();
    let entries_sql = format!(
        "INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor) \
         VALUES {}",
        rows.join(", ")
    );
    let entry_values = (1..)
        .zip(&journal.entries)
        .flat_map(|(entry_no, entry)| {
            [
                Value::Text(Some(&journal.journal_id)),
                Value::Int(Some(entry_no)),
                Value::Made(entry.account.key()),
                Value::Text(Some(entry.currency.code())),
                Value::Int(Some(entry.amount_minor)),
            ]
        })
        .collect();
    let journal_values = vec![
        Value::Text(Some(&journal.journal_id)),
        Value::Text(Some(journal.kind.as_str())),
        Value::Text(journal.order_no.as_ref().map(|n| n.as_str())),
        Value::Int(Some(journal.app_id.0)),
        Value::Text(Some(journal.currency.code())),
        Value::Int(Some(journal.posted_at_ms)),
        Value::Int(journal.settles_at_ms),
    ];
    Ok([
        Step {
            sql: entries_sql.into(),
            values: entry_values,
        },
        Step {
            sql: INSERT_JOURNAL.into(),
            values: journal_values,
        },
    ])
}

const INSERT_JOURNAL: &str = "INSERT INTO ledger_journals (journal_id, kind, order_no, app_id, \
    currency, posted_at_ms, settles_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)";

// What each app's merchant is owed by its succeeded orders: the gross less the fees (a fee
// never above the gross), per currency.
// Archived orders count as much as live ones.
statement!(
    SELECT_EXPECTED,
    "SELECT app_id, currency, CAST(SUM(owed_minor) AS BIGINT) AS owed_minor, \
     CAST(SUM(orders) AS BIGINT) AS orders FROM ({}) AS halves GROUP BY app_id, currency",
    super::orders::live_and_archived(
        "SELECT app_id, currency, SUM(actual_amount_minor - \
         CASE WHEN fee_minor < actual_amount_minor THEN fee_minor ELSE actual_amount_minor END) \
         AS owed_minor, COUNT(*) AS orders FROM {orders} \
         WHERE status = 'succeeded' AND actual_amount_minor > 0 GROUP BY app_id, currency",
        ""
    )
);

// Success journals due and not settled: what each left owed on its app's pending account.
statement!(
    SELECT_DUE_SETTLEMENTS,
    "SELECT j.journal_id, j.app_id, j.currency, CAST(-SUM(e.amount_minor) AS BIGINT) AS net_minor \
     FROM ledger_journals j JOIN ledger_entries e ON e.journal_id = j.journal_id \
     WHERE j.kind = 'success' AND j.settles_at_ms <= $1 \
     AND e.account = 'app:' || CAST(j.app_id AS TEXT) || ':pending' \
     AND NOT EXISTS (SELECT 1 FROM ledger_journals s WHERE s.journal_id = 'settle:' || j.journal_id) \
     GROUP BY j.journal_id, j.app_id, j.currency, j.settles_at_ms \
     HAVING SUM(e.amount_minor) < 0 ORDER BY j.settles_at_ms LIMIT $2"
);

// A page of an app's journals (by time and id) with their entries, in order.
statement!(
    SELECT_JOURNALS_BETWEEN,
    "SELECT j.journal_id, j.kind, j.order_no, j.app_id, j.currency, j.posted_at_ms, \
     j.settles_at_ms, e.account, e.currency AS entry_currency, e.amount_minor FROM \
     (SELECT * FROM ledger_journals WHERE app_id = $1 AND posted_at_ms >= $2 AND posted_at_ms < $3 \
     AND (posted_at_ms > $4 OR (posted_at_ms = $4 AND journal_id > $5)) \
     ORDER BY posted_at_ms, journal_id LIMIT $6) j \
     JOIN ledger_entries e ON e.journal_id = j.journal_id \
     ORDER BY j.posted_at_ms, j.journal_id, e.entry_no"
);

/// Journals with their entries from rows of [`SELECT_JOURNALS_BETWEEN`]'s shape: a journal's
/// rows follow one another, one per entry.
fn journals_of_rows(rows: &[sqlx::any::AnyRow]) -> StoreResult<Vec<Journal>> {
    let mut journals: Vec<Journal> = Vec::new();
    for row in rows {
        let journal_id: String = row.try_get("journal_id")?;
        if journals.last().is_none_or(|j| j.journal_id != journal_id) {
            journals.push(journal_of_row(row, journal_id)?);
        }
        let account: String = row.try_get("account")?;
        let entry = Entry {
            account: Account::parse(&account)
                .ok_or_else(|| StoreError::Corrupt(format!("ledger account {account:?}")))?,
            currency: currency_of(&row.try_get::<String, _>("entry_currency")?)?,
            amount_minor: row.try_get("amount_minor")?,
        };
        if let Some(journal) = journals.last_mut() {
            journal.entries.push(entry);
        }
    }
    Ok(journals)
}

/// A journal's own fields from a row of [`SELECT_JOURNALS_BETWEEN`]; entries are added after.
fn journal_of_row(row: &sqlx::any::AnyRow, journal_id: String) -> StoreResult<Journal> {
    let kind: String = row.try_get("kind")?;
    let order_no: Option<String> = row.try_get("order_no")?;
    Ok(Journal {
        kind: JournalKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("journal kind {kind:?}")))?,
        order_no: match order_no {
            Some(text) => Some(
                OrderNo::parse(&text)
                    .ok_or_else(|| StoreError::Corrupt(format!("journal order {text:?}")))?,
            ),
            None => None,
        },
        app_id: AppId(row.try_get("app_id")?),
        currency: currency_of(&row.try_get::<String, _>("currency")?)?,
        posted_at_ms: row.try_get("posted_at_ms")?,
        settles_at_ms: row.try_get("settles_at_ms")?,
        entries: Vec::new(),
        journal_id,
    })
}

#[async_trait]
impl LedgerStore for SqlStore {
    async fn balances(&self, app_id: Option<AppId>) -> StoreResult<Vec<(String, String, i64)>> {
        let pattern = app_id.map_or_else(|| "%".to_string(), |app| format!("app:{}:%", app.0));
        let rows = sqlx::query(
            "SELECT account, currency, CAST(SUM(amount_minor) AS BIGINT) AS sum_minor FROM ledger_entries \
             WHERE account LIKE $1 GROUP BY account, currency ORDER BY account, currency",
        )
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("account")?,
                    row.try_get("currency")?,
                    row.try_get("sum_minor")?,
                ))
            })
            .collect()
    }

    async fn ledger_check(&self) -> StoreResult<LedgerCheck> {
        let mut check = LedgerCheck::default();
        let totals = sqlx::query(
            "SELECT currency, CAST(SUM(amount_minor) AS BIGINT) AS sum_minor FROM ledger_entries \
             GROUP BY currency HAVING SUM(amount_minor) <> 0",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &totals {
            check
                .currencies_unbalanced
                .push((row.try_get("currency")?, row.try_get("sum_minor")?));
        }
        let journals = sqlx::query(
            "SELECT journal_id FROM ledger_entries GROUP BY journal_id, currency \
             HAVING SUM(amount_minor) <> 0 ORDER BY journal_id LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &journals {
            check.journals_unbalanced.push(row.try_get("journal_id")?);
        }
        let strays = sqlx::query(
            "SELECT j.journal_id FROM ledger_journals j WHERE j.kind = 'success' \
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_no = j.order_no \
             AND o.status = 'succeeded') \
             AND NOT EXISTS (SELECT 1 FROM orders_archive a WHERE a.order_no = j.order_no \
             AND a.status = 'succeeded') \
             ORDER BY j.journal_id LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &strays {
            check
                .journals_without_success
                .push(row.try_get("journal_id")?);
        }
        check.apps = self.app_books().await?;
        Ok(check)
    }

    async fn success_terms(&self, app_id: AppId) -> StoreResult<SuccessTerms> {
        let rows = sqlx::query(
            "SELECT a.settlement_delay_days, f.method, f.basis_points, f.fixed_minor FROM apps a \
             LEFT JOIN app_fees f ON f.app_id = a.app_id WHERE a.app_id = $1 ORDER BY f.method",
        )
        .bind(app_id.0)
        .fetch_all(&self.pool)
        .await?;
        let mut terms = SuccessTerms {
            fee_rules: Vec::new(),
            settlement_delay_days: 1,
        };
        for row in &rows {
            terms.settlement_delay_days = row.try_get("settlement_delay_days")?;
            if row.try_get::<Option<String>, _>("method")?.is_some() {
                terms.fee_rules.push(super::merchants::fee_from_row(row)?);
            }
        }
        Ok(terms)
    }

    async fn set_settlement_delay_days(
        &self,
        app_id: AppId,
        days: i64,
        audit: Option<&crate::AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query("UPDATE apps SET settlement_delay_days = $2 WHERE app_id = $1")
            .bind(app_id.0)
            .bind(days)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        super::users::audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn settlements_due(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<DueSettlement>> {
        let rows = sqlx::query(SELECT_DUE_SETTLEMENTS.as_str())
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DueSettlement {
                    journal_id: row.try_get("journal_id")?,
                    app_id: AppId(row.try_get("app_id")?),
                    currency: currency_of(&row.try_get::<String, _>("currency")?)?,
                    net_minor: row.try_get("net_minor")?,
                })
            })
            .collect()
    }

    async fn post_journal(&self, journal: &Journal) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        match post(&mut tx, journal).await {
            Ok(()) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn journals_of_order(&self, order_no: &OrderNo) -> StoreResult<Vec<Journal>> {
        let rows = sqlx::query(
            "SELECT j.journal_id, j.kind, j.order_no, j.app_id, j.currency, j.posted_at_ms, \
             j.settles_at_ms, e.account, e.currency AS entry_currency, e.amount_minor \
             FROM ledger_journals j JOIN ledger_entries e ON e.journal_id = j.journal_id \
             WHERE j.order_no = $1 ORDER BY j.posted_at_ms, j.journal_id, e.entry_no",
        )
        .bind(order_no.as_str())
        .fetch_all(&self.pool)
        .await?;
        journals_of_rows(&rows)
    }

    async fn journals_between(
        &self,
        app_id: AppId,
        (from_ms, to_ms): (i64, i64),
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<Journal>> {
        // As for orders: the page is read from the last one's time on.
        let from_ms = after.map_or(from_ms, |(posted_at_ms, _)| posted_at_ms.max(from_ms));
        let rows = sqlx::query(SELECT_JOURNALS_BETWEEN.as_str())
            .bind(app_id.0)
            .bind(from_ms)
            .bind(to_ms)
            .bind(after.map_or(i64::MIN, |(posted_at_ms, _)| posted_at_ms))
            .bind(after.map_or("", |(_, id)| id))
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        journals_of_rows(&rows)
    }

    async fn fees_of_app(&self, app_id: AppId) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT j.currency, CAST(-SUM(e.amount_minor) AS BIGINT) AS fees_minor FROM ledger_entries e \
             JOIN ledger_journals j ON j.journal_id = e.journal_id \
             WHERE j.app_id = $1 AND e.account = 'platform:fees' \
             GROUP BY j.currency ORDER BY j.currency",
        )
        .bind(app_id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("currency")?, row.try_get("fees_minor")?)))
            .collect()
    }
}

impl SqlStore {
    /// Every app's books against its orders, per currency.
    async fn app_books(&self) -> StoreResult<Vec<AppBooks>> {
        let mut books: BTreeMap<(i64, String), AppBooks> = BTreeMap::new();
        for row in sqlx::query(SELECT_EXPECTED.as_str())
            .fetch_all(&self.pool)
            .await?
        {
            let key = (
                row.try_get::<i64, _>("app_id")?,
                row.try_get::<String, _>("currency")?,
            );
            let entry = books
                .entry(key.clone())
                .or_insert_with(|| AppBooks::new(key.0, &key.1));
            entry.expected_owed_minor = row.try_get("owed_minor")?;
            entry.succeeded_orders = row.try_get("orders")?;
        }
        let owed = sqlx::query(
            "SELECT account, currency, CAST(SUM(amount_minor) AS BIGINT) AS sum_minor FROM ledger_entries \
             WHERE account LIKE 'app:%' GROUP BY account, currency",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &owed {
            let account: String = row.try_get("account")?;
            let currency: String = row.try_get("currency")?;
            let Some(app) = account
                .split(':')
                .nth(1)
                .and_then(|id| id.parse::<i64>().ok())
            else {
                continue;
            };
            currency_of(&currency)?;
            let entry = books
                .entry((app, currency.clone()))
                .or_insert_with(|| AppBooks::new(app, &currency));
            let credit = -row.try_get::<i64, _>("sum_minor")?;
            if account.ends_with(":pending") {
                entry.pending_minor += credit;
            } else {
                entry.available_minor += credit;
            }
        }
        Ok(books.into_values().collect())
    }
}
