//! `kassa balance` and `kassa ledger check`: what the books say each merchant is owed, and
//! whether the books hold their invariants (the command fails when one is broken, for scripts
//! and monitoring).

use crate::operator::print_json;
use crate::{Failure, Outcome};
use clap::Subcommand;
use kassa_core::AmountMinor;
use kassa_core::AppId;
use kassa_server::report::{self, Day, Format};
use kassa_store::SqlStore;
use kassa_store::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Verify the books: every currency and journal balances, success journals only for
    /// succeeded orders, each app's balances equal to its succeeded orders less their fees.
    /// Exits non-zero on any break.
    Check,
    /// Settle every success whose day has come now (`kassa serve` does this by itself).
    Settle,
}

/// `kassa balance APP_ID`: pending, available and the fees it paid, per currency (from the
/// app's own accounts: no scan of the whole ledger).
pub async fn balance(app_id: i64, store: &SqlStore) -> Outcome {
    let app = AppId(app_id);
    if store.app(app).await?.is_none() {
        return Err(Failure(format!("no app has id {app_id}")));
    }
    let mut owed: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (account, currency, sum_minor) in store.balances(Some(app)).await? {
        let entry = owed.entry(currency).or_default();
        // What kassa owes sits on the credit side: the negative of the sum.
        match account.rsplit(':').next() {
            Some("pending") => entry.0 -= sum_minor,
            Some("available") => entry.1 -= sum_minor,
            _ => {}
        }
    }
    let shown: Vec<Value> = owed
        .into_iter()
        .map(|(currency, (pending, available))| {
            json!({
                "currency": currency,
                "pending": AmountMinor(pending).to_decimal_string(),
                "available": AmountMinor(available).to_decimal_string(),
            })
        })
        .collect();
    let fees = fees_of(store, app).await?;
    print_json(&json!({"appId": app_id, "balances": shown, "feesPaid": fees}));
    Ok(())
}

/// The fees an app's orders paid the platform, per currency.
async fn fees_of(store: &SqlStore, app: AppId) -> Result<Value, Failure> {
    let mut fees = serde_json::Map::new();
    for (currency, fee_minor) in store.fees_of_app(app).await? {
        fees.insert(currency, AmountMinor(fee_minor).to_decimal_string().into());
    }
    Ok(Value::Object(fees))
}

pub async fn ledger(command: LedgerCommand, store: &SqlStore) -> Outcome {
    if let LedgerCommand::Settle = command {
        let settled = kassa_server::settlement::settle_due(store, kassa_server::now_ms()).await?;
        print_json(&json!({ "settled": settled }));
        return Ok(());
    }
    let check = store.ledger_check().await?;
    let disagreeing: Vec<Value> = check
        .apps
        .iter()
        .filter(|b| !b.agrees())
        .map(|b| {
            json!({
                "appId": b.app_id.0, "currency": b.currency,
                "booksOwed": AmountMinor(b.pending_minor + b.available_minor).to_decimal_string(),
                "ordersOwed": AmountMinor(b.expected_owed_minor).to_decimal_string(),
            })
        })
        .collect();
    print_json(&json!({
        "holds": check.holds(),
        "apps": check.apps.len(),
        "currenciesUnbalanced": check.currencies_unbalanced,
        "journalsUnbalanced": check.journals_unbalanced,
        "journalsWithoutSuccess": check.journals_without_success,
        "appsDisagreeing": disagreeing,
    }));
    if check.holds() {
        Ok(())
    } else {
        Err(Failure("the books do not hold: see above".into()))
    }
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// One app's settlement report for one day of the operator's time zone: the totals by
    /// method and for all, every order that succeeded that day (gross, fee, net) and every
    /// journal posted that day. Streamed: a day of a million orders takes bounded memory.
    Settlement {
        #[arg(long)]
        app: i64,
        /// The day, YYYY-MM-DD, in the operator's time zone.
        #[arg(long)]
        date: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ReportFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Csv,
    Json,
}

pub async fn report(command: ReportCommand, store: &SqlStore) -> Outcome {
    let ReportCommand::Settlement { app, date, format } = command;
    let found = store.app(AppId(app)).await?;
    let app_row = found.ok_or_else(|| Failure(format!("no app has id {app}")))?;
    let zone = kassa_server::notary::operator_timezone(store).await?;
    let day = Day::of_app(&date, &zone, &app_row, kassa_server::now_ms())
        .map_err(|e| Failure(e.to_string()))?;
    let format = match format {
        ReportFormat::Csv => Format::Csv,
        ReportFormat::Json => Format::Json,
    };
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let emit = |text: String| std::future::ready(stdout.write_all(text.as_bytes()));
    report::write_day(store, &app_row, &day, &zone, format, emit)
        .await
        .map_err(|e| Failure(e.to_string()))?;
    stdout.flush().map_err(|e| Failure(e.to_string()))
}
