//! A day's settlement report, the same in both dialects (`…/collect/report`,
//! `/proxyCollectQuery/report`).

use crate::{Error, wire};
use kassa_core::AmountMinor;
use serde::Deserialize;

/// One page of a day's settlement report. The totals come on the first page only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementReport {
    pub app_id: i64,
    pub date: String,
    pub currency: String,
    /// The operator's zone, in which the day and every time are counted.
    pub time_zone: String,
    /// Orders that succeeded that day (first page only).
    pub orders: Option<u64>,
    pub gross: Option<AmountMinor>,
    pub fee: Option<AmountMinor>,
    pub net: Option<AmountMinor>,
    /// CSV: the totals by method (first page only).
    pub methods: Option<String>,
    /// CSV: this page's order lines.
    pub lines: String,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReportWire {
    app_id: i64,
    date: String,
    currency: String,
    time_zone: String,
    orders: Option<u64>,
    gross: Option<String>,
    fee: Option<String>,
    net: Option<String>,
    methods: Option<String>,
    lines: String,
    next: Option<String>,
}

impl TryFrom<ReportWire> for SettlementReport {
    type Error = Error;

    fn try_from(wire: ReportWire) -> Result<SettlementReport, Error> {
        Ok(SettlementReport {
            gross: wire::optional_amount("gross", wire.gross.as_deref())?,
            fee: wire::optional_amount("fee", wire.fee.as_deref())?,
            net: wire::optional_amount("net", wire.net.as_deref())?,
            app_id: wire.app_id,
            date: wire.date,
            currency: wire.currency,
            time_zone: wire.time_zone,
            orders: wire.orders,
            methods: wire.methods,
            lines: wire.lines,
            next: wire.next,
        })
    }
}
