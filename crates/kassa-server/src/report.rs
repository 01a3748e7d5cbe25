//! Settlement reports: one app's day in the operator's time zone — every order that succeeded
//! that day (what was paid, the fee the books took, the net), the totals by payment method and
//! the day's journals. `kassa report settlement` writes a whole day as CSV or JSON, reading
//! and writing a page at a time so that a day of any size takes bounded memory; the dialects'
//! report endpoints serve the same lines a page at a time, signed ([`page_reply`]).

use crate::dialect::{self, ApiError, Dialect, ErrorKind, Incoming};
use crate::notary::Signed;
use crate::wire::Fields;
use crate::{Gateway, now_ms};
use jiff::tz::TimeZone;
use kassa_core::ledger::{Entry, Journal};
use kassa_core::validate::FieldError;
use kassa_core::{AmountMinor, App, Order, OrderNo, OrderStatus};
use kassa_store::prelude::*;
use kassa_store::{MethodTotals, StoreError};
use serde_json::{Map, Value, json};
use std::fmt::Write;

/// Orders (or journals) read per page; also the lines of one page of a report endpoint.
pub const PAGE: i64 = 1_000;

/// Every line of a CSV report has these columns; `record` says which are filled: `order`
/// (one succeeded order), `total` (a method's orders, or all when `method` is empty) and
/// `entry` (one entry of one of the day's journals; debits positive, credits negative).
pub const CSV_HEADER: &str =
    "record,orderNo,orderId,method,currency,orders,gross,fee,net,at,journalId,account,amount";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("date {0:?} is not a date such as 2026-11-21")]
    NotADate(String),
    #[error("date {0} has not begun yet")]
    NotBegun(String),
    #[error("date {date} is before app {app} existed")]
    BeforeApp { app: i64, date: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> ApiError {
        match error {
            ReportError::Store(e) => e.into(),
            other => ApiError::new(ErrorKind::InvalidField, other.to_string()),
        }
    }
}

/// One day of the operator's zone: from its first millisecond to the next day's (23 or 25
/// hours apart across a change of summer time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Day {
    pub date: jiff::civil::Date,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Day {
    pub fn parse(text: &str, zone: &TimeZone) -> Result<Day, ReportError> {
        let not_a_date = || ReportError::NotADate(text.chars().take(32).collect());
        let date: jiff::civil::Date = text.parse().map_err(|_| not_a_date())?;
        let start = |d: jiff::civil::Date| {
            let zoned = d.to_zoned(zone.clone()).map_err(|_| not_a_date())?;
            Ok::<i64, ReportError>(zoned.timestamp().as_millisecond())
        };
        let next = date.tomorrow().map_err(|_| not_a_date())?;
        Ok(Day {
            date,
            from_ms: start(date)?,
            to_ms: start(next)?,
        })
    }

    /// The day, if `app` can have a report of it at `now_ms`: begun, and not before the app.
    pub fn of_app(text: &str, zone: &TimeZone, app: &App, now_ms: i64) -> Result<Day, ReportError> {
        let day = Day::parse(text, zone)?;
        if day.from_ms > now_ms {
            return Err(ReportError::NotBegun(day.date.to_string()));
        }
        if day.to_ms <= app.created_at_ms {
            return Err(ReportError::BeforeApp {
                app: app.app_id.0,
                date: day.date.to_string(),
            });
        }
        Ok(day)
    }

    pub fn bounds(&self) -> (i64, i64) {
        (self.from_ms, self.to_ms)
    }
}

/// A time as the report writes it: RFC 3339 in the operator's zone, with its offset (the
/// hour repeated when summer time ends stays unambiguous).
pub fn local_time(ms: i64, zone: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// The `order` line of a succeeded order.
pub fn csv_order(order: &Order, zone: &TimeZone) -> String {
    let (gross, fee) = (order.actual_amount_minor, order.booked_fee_minor());
    format!(
        "order,{},{},{},{},1,{gross},{fee},{},{},,,",
        order.order_no,
        csv_text(&order.merchant_order_id),
        order.paying_method().code,
        order.currency,
        AmountMinor(gross.0 - fee.0),
        order
            .paid_at_ms
            .map_or_else(String::new, |ms| local_time(ms, zone)),
    )
}

/// The `total` line of one method's orders (of all, with an empty method).
pub fn csv_total(totals: &MethodTotals, currency: &str) -> String {
    let (gross, fee) = (totals.gross_minor, totals.fee_minor);
    format!(
        "total,,,{},{currency},{},{},{},{},,,,",
        totals.method,
        totals.orders,
        AmountMinor(gross),
        AmountMinor(fee),
        AmountMinor(gross - fee)
    )
}

/// The `entry` line of one entry of a journal.
fn csv_entry(journal: &Journal, entry: &Entry, zone: &TimeZone) -> String {
    format!(
        "entry,{},,,{},,,,,{},{},{},{}",
        journal.order_no.as_ref().map_or("", |n| n.as_str()),
        entry.currency,
        local_time(journal.posted_at_ms, zone),
        journal.journal_id,
        entry.account.key(),
        AmountMinor(entry.amount_minor)
    )
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (order ids are printable
/// ASCII, but the report must stay a table whatever they hold).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A CSV field of free text (an id a merchant chose, a payer's data): as [`csv_field`], and a
/// text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, a tab or a carriage return
/// first) is kept text with a leading `'`.
pub fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_field(&format!("'{text}"))
    } else {
        csv_field(text)
    }
}

/// All of the day's orders together.
fn sum(by_method: &[MethodTotals]) -> MethodTotals {
    by_method
        .iter()
        .fold(MethodTotals::default(), |all, m| MethodTotals {
            method: String::new(),
            orders: all.orders + m.orders,
            gross_minor: all.gross_minor + m.gross_minor,
            fee_minor: all.fee_minor + m.fee_minor,
        })
}

fn totals_json(totals: &MethodTotals) -> Value {
    let (gross, fee) = (totals.gross_minor, totals.fee_minor);
    json!({
        "orders": totals.orders,
        "gross": AmountMinor(gross).to_decimal_string(),
        "fee": AmountMinor(fee).to_decimal_string(),
        "net": AmountMinor(gross - fee).to_decimal_string(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// Writes `app`'s report of `day` through `emit`: totals first (one query), then the orders
/// and the journals page by page. Each piece of text is handed to `emit` as it is made and
/// awaited, so a slow reader holds back the reading and memory stays one page.
pub async fn write_day<S, E, F>(
    store: &S,
    app: &App,
    day: &Day,
    zone: &TimeZone,
    format: Format,
    mut emit: E,
) -> Result<(), ReportError>
where
    S: OrderStore + LedgerStore + ?Sized,
    E: FnMut(String) -> F,
    F: Future<Output = std::io::Result<()>>,
{
    let by_method = store.paid_totals_between(app.app_id, day.bounds()).await?;
    let mut text = String::new();
    let currency = app.currency.code();
    match format {
        Format::Csv => {
            let _ = writeln!(text, "{CSV_HEADER}");
            for totals in by_method.iter().chain([&sum(&by_method)]) {
                let _ = writeln!(text, "{}", csv_total(totals, currency));
            }
        }
        Format::Json => {
            let methods: Map<String, Value> = by_method
                .iter()
                .map(|m| (m.method.clone(), totals_json(m)))
                .collect();
            let head = json!({
                "appId": app.app_id.0, "date": day.date.to_string(), "currency": currency,
                "timeZone": zone.iana_name().unwrap_or("UTC"),
                "total": totals_json(&sum(&by_method)), "byMethod": methods,
            })
            .to_string();
            // The head's fields, then the two arrays written as they are read.
            let _ = write!(text, "{},\"orders\":[", &head[..head.len() - 1]);
        }
    }
    emit(text).await?;
    write_orders(store, app, day, zone, format, &mut emit).await?;
    if format == Format::Json {
        emit("],\"journals\":[".into()).await?;
    }
    write_journals(store, app, day, zone, format, &mut emit).await?;
    if format == Format::Json {
        emit("]}\n".into()).await?;
    }
    Ok(())
}

async fn write_orders<S, E, F>(
    store: &S,
    app: &App,
    day: &Day,
    zone: &TimeZone,
    format: Format,
    emit: &mut E,
) -> Result<(), ReportError>
where
    S: OrderStore + ?Sized,
    E: FnMut(String) -> F,
    F: Future<Output = std::io::Result<()>>,
{
    let (mut after, mut first) = (None, true);
    loop {
        let after_key = after.as_ref().map(|(ms, no): &(i64, OrderNo)| (*ms, no));
        let page = store
            .orders_paid_between(app.app_id, day.bounds(), after_key, PAGE)
            .await?;
        let mut text = String::new();
        for order in &page {
            let csv = || vec![csv_order(order, zone)];
            write_record(&mut text, format, &mut first, csv, || {
                order_json(order, zone)
            });
        }
        emit(text).await?;
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => {
                after = Some((last.paid_at_ms.unwrap_or_default(), last.order_no.clone()));
            }
            _ => return Ok(()),
        }
    }
}

/// One record of a report: its CSV lines, or its JSON object (after a comma unless first).
fn write_record(
    out: &mut String,
    format: Format,
    first: &mut bool,
    csv: impl FnOnce() -> Vec<String>,
    json: impl FnOnce() -> Value,
) {
    match format {
        Format::Csv => csv().iter().for_each(|line| {
            let _ = writeln!(out, "{line}");
        }),
        Format::Json => {
            let _ = write!(out, "{}{}", if *first { "" } else { "," }, json());
        }
    }
    *first = false;
}

fn order_json(order: &Order, zone: &TimeZone) -> Value {
    let (gross, fee) = (order.actual_amount_minor, order.booked_fee_minor());
    json!({
        "orderNo": order.order_no.as_str(), "orderId": order.merchant_order_id,
        "method": order.paying_method().code, "gross": gross.to_decimal_string(),
        "fee": fee.to_decimal_string(), "net": AmountMinor(gross.0 - fee.0).to_decimal_string(),
        "paidAt": order.paid_at_ms.map(|ms| local_time(ms, zone)),
    })
}

async fn write_journals<S, E, F>(
    store: &S,
    app: &App,
    day: &Day,
    zone: &TimeZone,
    format: Format,
    emit: &mut E,
) -> Result<(), ReportError>
where
    S: LedgerStore + ?Sized,
    E: FnMut(String) -> F,
    F: Future<Output = std::io::Result<()>>,
{
    let (mut after, mut first): (Option<(i64, String)>, bool) = (None, true);
    loop {
        let after_key = after.as_ref().map(|(ms, id)| (*ms, id.as_str()));
        let page = store
            .journals_between(app.app_id, day.bounds(), after_key, PAGE)
            .await?;
        let mut text = String::new();
        for journal in &page {
            let entries = journal.entries.iter();
            let csv = || entries.map(|e| csv_entry(journal, e, zone)).collect();
            write_record(&mut text, format, &mut first, csv, || {
                journal_json(journal, zone)
            });
        }
        emit(text).await?;
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => {
                after = Some((last.posted_at_ms, last.journal_id.clone()));
            }
            _ => return Ok(()),
        }
    }
}

fn journal_json(journal: &Journal, zone: &TimeZone) -> Value {
    let entries: Vec<Value> = journal
        .entries
        .iter()
        .map(|e| json!({"account": e.account.key(), "amount": AmountMinor(e.amount_minor).to_decimal_string()}))
        .collect();
    json!({
        "journalId": journal.journal_id, "kind": journal.kind.as_str(),
        "orderNo": journal.order_no.as_ref().map(|n| n.as_str()),
        "postedAt": local_time(journal.posted_at_ms, zone), "entries": entries,
    })
}

/// A report endpoint's answer: one page of the day's order lines and, on the first page, the
/// day's totals (read once, not again for every page of a large day), signed like every reply
/// of the dialect. The request names `date` and, for the pages after the first, `after` — the
/// `next` of the page before.
pub async fn page_reply(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    incoming: &Incoming,
) -> Result<Signed, ApiError> {
    let auth = dialect::authenticate(dialect, gateway, incoming).await?;
    let fields = Fields::new(&auth.object.fields);
    let app = &auth.app;
    let zone = gateway.notary.timezone();
    let day = Day::of_app(&fields.required("date", 10)?, zone, app, now_ms())?;
    let after = match fields.optional("after", OrderNo::LEN)? {
        None => None,
        Some(text) => Some(page_start(gateway, app, &day, &text).await?),
    };
    let store = gateway.store.as_ref();
    let after_key = after.as_ref().map(|(ms, no)| (*ms, no));
    let mut page = store
        .orders_paid_between(app.app_id, day.bounds(), after_key, PAGE + 1)
        .await?;
    // One order more than a page was read: if it came, there is a next page after this one.
    let more = page.len() as i64 > PAGE;
    page.truncate(PAGE as usize);
    let currency = app.currency.code();
    let mut lines = format!("{CSV_HEADER}\n");
    for order in &page {
        lines.push_str(&(csv_order(order, zone) + "\n"));
    }
    let mut data = Map::new();
    data.insert("appId".into(), app.app_id.0.into());
    data.insert("date".into(), day.date.to_string().into());
    data.insert("currency".into(), currency.into());
    data.insert("timeZone".into(), zone.iana_name().unwrap_or("UTC").into());
    if after.is_none() {
        let by_method = store.paid_totals_between(app.app_id, day.bounds()).await?;
        insert_totals(&mut data, &by_method, currency);
    }
    data.insert("lines".into(), lines.into());
    if let Some(next) = page.last().filter(|_| more) {
        data.insert("next".into(), next.order_no.to_string().into());
    }
    Ok(gateway.notary.sign_as(dialect.signature(), data))
}

/// The day's totals as a report page carries them: `orders`, `gross`, `fee`, `net`, and
/// `methods` (CSV of the totals by method).
fn insert_totals(data: &mut Map<String, Value>, by_method: &[MethodTotals], currency: &str) {
    let all = sum(by_method);
    let mut methods = format!("{CSV_HEADER}\n");
    for totals in by_method {
        methods.push_str(&(csv_total(totals, currency) + "\n"));
    }
    let amount = |minor: i64| Value::from(AmountMinor(minor).to_decimal_string());
    data.insert("orders".into(), all.orders.into());
    data.insert("gross".into(), amount(all.gross_minor));
    data.insert("fee".into(), amount(all.fee_minor));
    data.insert("net".into(), amount(all.gross_minor - all.fee_minor));
    data.insert("methods".into(), methods.into());
}

/// Where the page after `after` starts: that order must be one of this report's.
async fn page_start(
    gateway: &Gateway,
    app: &App,
    day: &Day,
    text: &str,
) -> Result<(i64, OrderNo), ApiError> {
    let not_ours = || {
        ApiError::from(FieldError::invalid(
            "after",
            "must be the next value of an earlier page of this report",
        ))
    };
    let order_no = OrderNo::parse(text).ok_or_else(not_ours)?;
    let order = gateway.store.order_by_no(&order_no).await?;
    match order {
        Some(order)
            if order.app_id == app.app_id
                && order.status == OrderStatus::Succeeded
                && order
                    .paid_at_ms
                    .is_some_and(|ms| ms >= day.from_ms && ms < day.to_ms) =>
        {
            Ok((order.paid_at_ms.unwrap_or_default(), order_no))
        }
        _ => Err(not_ours()),
    }
}

/// The wire shapes the report endpoints share (described, never deserialised into).
pub mod openapi {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// One day's settlement report, a page of its lines at a time; the dialect's platform
    /// signature covers this object.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ReportData {
        /// The app the data belongs to: check it is yours before trusting the rest.
        #[schema(example = 1001)]
        pub app_id: i64,
        /// The day, in the operator's time zone.
        #[schema(example = "2026-11-21")]
        pub date: String,
        #[schema(example = "EUR")]
        pub currency: String,
        /// The operator's time zone (IANA name), in which the day and every time are written.
        #[schema(example = "Europe/Amsterdam")]
        pub time_zone: String,
        /// Orders that succeeded that day (all pages); on the first page only, as are the
        /// other totals.
        #[schema(nullable = false)]
        pub orders: Option<i64>,
        /// What they paid.
        #[schema(nullable = false, example = "1250.00")]
        pub gross: Option<String>,
        /// The fees taken (never more than an order paid).
        #[schema(nullable = false, example = "21.75")]
        pub fee: Option<String>,
        /// Gross less fees: what the day adds to the merchant's balance.
        #[schema(nullable = false, example = "1228.25")]
        pub net: Option<String>,
        /// CSV: the header line, then one `total` line per payment method.
        #[schema(nullable = false)]
        pub methods: Option<String>,
        /// CSV: the header line, then one `order` line per order of this page (at most
        /// 1,000), by payment time.
        pub lines: String,
        /// Send it as `after` for the next page; absent on the last page.
        #[schema(nullable = false, pattern = "^[0-9]{16}$")]
        pub next: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_days_follow_the_operators_zone_across_summer_time() {
        let amsterdam = TimeZone::get("Europe/Amsterdam").unwrap();
        let hours = |date: &str| {
            let day = Day::parse(date, &amsterdam).unwrap();
            (day.to_ms - day.from_ms) / 3_600_000
        };
        assert_eq!(hours("2026-10-25"), 25, "summer time ends");
        assert_eq!(hours("2026-03-29"), 23, "summer time begins");
        assert_eq!(hours("2026-11-21"), 24);
        // 2026-11-21 starts at 23:00 UTC the day before.
        let day = Day::parse("2026-11-21", &amsterdam).unwrap();
        assert_eq!(day.from_ms, 1_795_215_600_000);
        assert!(Day::parse("21-11-2026", &amsterdam).is_err());
        assert!(Day::parse("2026-02-30", &amsterdam).is_err());
    }

    #[test]
    fn times_carry_their_offset() {
        let amsterdam = TimeZone::get("Europe/Amsterdam").unwrap();
        // The hour 02:00–03:00 of 2026-10-25 happens twice: the offset tells which.
        assert_eq!(
            local_time(1_792_888_200_000, &amsterdam),
            "2026-10-25T02:30:00+02:00"
        );
        assert_eq!(
            local_time(1_792_891_800_000, &amsterdam),
            "2026-10-25T02:30:00+01:00"
        );
    }

    #[test]
    fn csv_fields_stay_one_column() {
        assert_eq!(csv_field("M-1"), "M-1");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(csv_text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_text("M-1"), "M-1");
        let columns = CSV_HEADER.split(',').count();
        let totals = MethodTotals {
            method: "IDEAL".into(),
            orders: 2,
            gross_minor: 2_000,
            fee_minor: 90,
        };
        assert_eq!(csv_total(&totals, "EUR").split(',').count(), columns);
        assert_eq!(
            csv_total(&totals, "EUR"),
            "total,,,IDEAL,EUR,2,20.00,0.90,19.10,,,,"
        );
    }
}
