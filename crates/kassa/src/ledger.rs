//! `kassa balance` and `kassa ledger check`: what the books say each merchant is owed, and
//! whether the books hold their invariants (the command fails when one is broken, for scripts
//! and monitoring).

use crate::operator::print_json;
use crate::{Failure, Outcome};
use clap::Subcommand;
use kassa_core::AmountMinor;
use kassa_core::AppId;
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
    /// One app's settlement report for one day of the operator's time zone: every order that
    /// succeeded that day (gross, fee, net), then the totals and the count by method. Streamed:
    /// a day of a million orders takes bounded memory.
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

/// Orders read per page of a report.
const REPORT_PAGE: i64 = 1_000;

/// Totals of a report: count, gross, fee per method (and all).
#[derive(Default)]
struct Totals {
    count: i64,
    gross_minor: i64,
    fee_minor: i64,
}

impl Totals {
    fn add(&mut self, order: &kassa_core::Order) {
        self.count += 1;
        self.gross_minor += order.actual_amount_minor.0;
        self.fee_minor += order.fee_minor.0;
    }

    /// `LABEL,N orders,,CURRENCY,gross,fee,net,`
    fn csv(&self, label: &str, currency: &str) -> String {
        let (gross, fee) = (AmountMinor(self.gross_minor), AmountMinor(self.fee_minor));
        let net = AmountMinor(self.gross_minor - self.fee_minor);
        format!(
            "{label},{} orders,,{currency},{gross},{fee},{net},",
            self.count
        )
    }

    fn json(&self) -> Value {
        json!({
            "orders": self.count,
            "gross": AmountMinor(self.gross_minor).to_decimal_string(),
            "fee": AmountMinor(self.fee_minor).to_decimal_string(),
            "net": AmountMinor(self.gross_minor - self.fee_minor).to_decimal_string(),
        })
    }
}

pub async fn report(command: ReportCommand, store: &SqlStore) -> Outcome {
    let ReportCommand::Settlement { app, date, format } = command;
    let app_id = AppId(app);
    let found = store.app(app_id).await?;
    let app_row = found.ok_or_else(|| Failure(format!("no app has id {app}")))?;
    let zone = kassa_server::notary::operator_timezone(store).await?;
    let (from_ms, to_ms) = day_bounds(&date, &zone)?;
    if from_ms > kassa_server::now_ms() {
        return Err(Failure(format!("{date} has not begun yet")));
    }
    if to_ms <= app_row.created_at_ms {
        return Err(Failure(format!("app {app} did not exist on {date}")));
    }
    let stdout = std::io::stdout().lock();
    let mut report = Report::new(format, app_row.currency.code(), stdout);
    report.begin(app, &date)?;
    let mut after = None;
    loop {
        let between = (from_ms, to_ms);
        let page =
            (store.orders_paid_between(app_id, between, after.as_ref(), REPORT_PAGE)).await?;
        for order in &page {
            report.order(order)?;
        }
        match page.last() {
            Some(last) if page.len() as i64 == REPORT_PAGE => after = Some(last.order_no.clone()),
            _ => break,
        }
    }
    report.end()
}

/// A settlement report being written: its format, and the totals so far.
struct Report<W: std::io::Write> {
    format: ReportFormat,
    currency: &'static str,
    out: std::io::BufWriter<W>,
    all: Totals,
    by_method: BTreeMap<&'static str, Totals>,
}

impl<W: std::io::Write> Report<W> {
    fn new(format: ReportFormat, currency: &'static str, out: W) -> Report<W> {
        Report {
            format,
            currency,
            out: std::io::BufWriter::new(out),
            all: Totals::default(),
            by_method: BTreeMap::new(),
        }
    }

    fn begin(&mut self, app: i64, date: &str) -> std::io::Result<()> {
        let currency = self.currency;
        match self.format {
            ReportFormat::Csv => writeln!(
                self.out,
                "orderNo,orderId,method,currency,gross,fee,net,paidAtMs"
            ),
            ReportFormat::Json => write!(
                self.out,
                "{{\"appId\":{app},\"date\":{},\"currency\":\"{currency}\",\"orders\":[",
                json!(date)
            ),
        }
    }

    fn order(&mut self, order: &kassa_core::Order) -> std::io::Result<()> {
        let method = order.paying_method().code;
        let (gross, fee) = (order.actual_amount_minor, order.fee_minor);
        let net = AmountMinor(gross.0 - fee.0);
        match self.format {
            ReportFormat::Csv => writeln!(
                self.out,
                "{},{},{method},{},{gross},{fee},{net},{}",
                order.order_no,
                csv_field(&order.merchant_order_id),
                self.currency,
                order.paid_at_ms.unwrap_or_default()
            )?,
            ReportFormat::Json => write!(
                self.out,
                "{}{}",
                if self.all.count > 0 { "," } else { "" },
                json!({
                    "orderNo": order.order_no.as_str(), "orderId": order.merchant_order_id,
                    "method": method, "gross": gross.to_decimal_string(),
                    "fee": fee.to_decimal_string(), "net": net.to_decimal_string(),
                    "paidAtMs": order.paid_at_ms,
                })
            )?,
        }
        self.all.add(order);
        self.by_method.entry(method).or_default().add(order);
        Ok(())
    }

    /// The totals, by method and for all, and the end of the document.
    fn end(mut self) -> Outcome {
        match self.format {
            ReportFormat::Csv => {
                for (method, totals) in &self.by_method {
                    writeln!(
                        self.out,
                        "{}",
                        totals.csv(&format!("total:{method}"), self.currency)
                    )?;
                }
                writeln!(self.out, "{}", self.all.csv("total", self.currency))?;
            }
            ReportFormat::Json => {
                let methods: serde_json::Map<String, Value> = self
                    .by_method
                    .iter()
                    .map(|(m, t)| (m.to_string(), t.json()))
                    .collect();
                let end = json!({"total": self.all.json(), "byMethod": methods});
                let end = end.to_string();
                // The closing object's fields, after the orders' array.
                writeln!(self.out, "],{}", &end[1..])?;
            }
        }
        std::io::Write::flush(&mut self.out)?;
        Ok(())
    }
}

/// The first and the next day's first millisecond of `date` in `zone` (23 or 25 hours apart
/// across a change of summer time).
fn day_bounds(date: &str, zone: &jiff::tz::TimeZone) -> Result<(i64, i64), Failure> {
    let day: jiff::civil::Date = date
        .parse()
        .map_err(|_| Failure(format!("--date {date:?} is not a date such as 2026-11-21")))?;
    let start = |d: jiff::civil::Date| -> Result<i64, Failure> {
        let zoned = d
            .to_zoned(zone.clone())
            .map_err(|e| Failure(e.to_string()))?;
        Ok(zoned.timestamp().as_millisecond())
    };
    let next = day.tomorrow().map_err(|e| Failure(e.to_string()))?;
    Ok((start(day)?, start(next)?))
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (order ids are printable
/// ASCII, but the report must stay a table whatever they hold).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_days_follow_the_operators_zone_across_summer_time() {
        let amsterdam = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
        let hours = |date: &str| {
            let (from, to) = day_bounds(date, &amsterdam).unwrap();
            (to - from) / 3_600_000
        };
        assert_eq!(hours("2026-10-25"), 25, "summer time ends");
        assert_eq!(hours("2026-03-29"), 23, "summer time begins");
        assert_eq!(hours("2026-11-21"), 24);
        // 2026-11-21 starts at 23:00 UTC the day before.
        assert_eq!(
            day_bounds("2026-11-21", &amsterdam).unwrap().0,
            1_795_215_600_000
        );
        assert!(day_bounds("21-11-2026", &amsterdam).is_err());
    }

    #[test]
    fn csv_fields_stay_one_column() {
        assert_eq!(csv_field("M-1"), "M-1");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
