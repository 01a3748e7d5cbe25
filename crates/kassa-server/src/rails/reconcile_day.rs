//! Reconciliation of a channel's day (`kassa reconcile`): kassa's orders at an upstream
//! channel on one day against what the upstream says of them, and every difference — missing on
//! one side, amount or status differing — stored for the metrics and the back office.
//!
//! An upstream that serves a day report (another kassa does) is read a page at a time; the
//! orders kassa counts as paid that the report leaves out (a payment near midnight may fall in
//! the upstream's other day) are then asked about one by one. An upstream without a report is
//! asked order by order. The rule that compares the two sides is the core's
//! ([`kassa_core::reconciliation::difference`]); a run that cannot finish stores nothing.

use super::connector::{Connector, currency_of};
use super::upstream::{UpstreamError, order_no_of, upstream_order_id};
use crate::report::Day;
use kassa_core::reconciliation::{KassaState, UpstreamState, difference};
use kassa_core::{Channel, Currency, Order, OrderNo, RailOutcome};
use kassa_store::{ReconciliationDifference, ReconciliationRun, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Orders read per page of kassa's side.
const PAGE: i64 = 1_000;
/// Queries to the upstream at once.
const QUERIES_AT_ONCE: usize = 8;
/// Pages of an upstream's report read at most (1,000 lines each): a bound on a run.
const MAX_REPORT_PAGES: usize = 10_000;
/// kassa's orders of one channel and day a run holds at most (each a number and a state,
/// about 100 bytes): a bound on its memory.
pub const MAX_DAY_ORDERS: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileDayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("asking the upstream: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("the channel has more than {MAX_DAY_ORDERS} orders that day, more than one run holds")]
    TooManyOrders,
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct DayReconciliation {
    pub run: ReconciliationRun,
    pub differences: Vec<ReconciliationDifference>,
}

/// Reconciles `channel`'s `day` (its text `date` as the upstream is asked for it) and stores
/// the result, replacing the last run of that channel and day.
pub async fn reconcile_day(
    store: &dyn Store,
    channel: &Channel,
    connector: &Arc<Connector>,
    day: &Day,
    now_ms: i64,
) -> Result<DayReconciliation, ReconcileDayError> {
    let kassa = kassa_side(store, &channel.channel_id, day).await?;
    let date = day.date.to_string();
    let (mode, mut differences) = match by_report(store, channel, connector, &date, &kassa).await {
        Ok(differences) => ("report", differences),
        // No report there (an upstream that is not a kassa): order by order.
        Err(ReconcileDayError::Upstream(
            UpstreamError::Refused { .. } | UpstreamError::NotFound,
        )) => {
            let all: Vec<&OrderNo> = kassa.keys().collect();
            ("query", by_query(channel, connector, &kassa, &all).await?)
        }
        Err(e) => return Err(e),
    };
    differences.sort_by(|a, b| a.upstream_order_id.cmp(&b.upstream_order_id));
    let run = ReconciliationRun {
        channel_id: channel.channel_id.clone(),
        day: date,
        mode: mode.into(),
        orders_compared: kassa.len() as i64,
        ran_at_ms: now_ms,
    };
    store.save_reconciliation(&run, &differences).await?;
    Ok(DayReconciliation { run, differences })
}

/// kassa's orders at the channel that day: what each holds (no more, so that a day of many
/// orders stays small in memory).
async fn kassa_side(
    store: &dyn Store,
    channel_id: &str,
    day: &Day,
) -> Result<BTreeMap<OrderNo, KassaState>, ReconcileDayError> {
    let mut kassa = BTreeMap::new();
    let mut after: Option<OrderNo> = None;
    loop {
        let page = store
            .channel_orders_between(channel_id, day.bounds(), after.as_ref(), PAGE)
            .await?;
        for order in &page {
            kassa.insert(order.order_no.clone(), state_of(order));
        }
        if kassa.len() > MAX_DAY_ORDERS {
            return Err(ReconcileDayError::TooManyOrders);
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = Some(last.order_no.clone()),
            _ => return Ok(kassa),
        }
    }
}

fn state_of(order: &Order) -> KassaState {
    KassaState {
        status: order.status,
        actual_amount_minor: order.actual_amount_minor,
    }
}

/// Compares the upstream's report of the day with kassa's side; kassa's paid orders the report
/// leaves out are asked about one by one.
async fn by_report(
    store: &dyn Store,
    channel: &Channel,
    connector: &Arc<Connector>,
    date: &str,
    kassa: &BTreeMap<OrderNo, KassaState>,
) -> Result<Vec<ReconciliationDifference>, ReconcileDayError> {
    let mut differences = Vec::new();
    let mut reported: Vec<OrderNo> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_REPORT_PAGES {
        let page = connector
            .report_page(channel, date, after.as_deref())
            .await?;
        for line in &page.lines {
            let upstream = UpstreamState::Succeeded {
                amount_minor: line.gross,
            };
            let order_no = order_no_of(&line.upstream_order_id);
            let ours = match &order_no {
                Some(no) => match kassa.get(no) {
                    Some(state) => Some(*state),
                    // Not of kassa's day at this channel: paid across midnight, routed to
                    // another channel of the same account (its own run compares it), or none.
                    None => match store.order_by_no(no).await? {
                        Some(o) if o.channel != channel.channel_id => continue,
                        found => found.map(|o| state_of(&o)),
                    },
                },
                None => None,
            };
            if let Some(no) = order_no {
                reported.push(no);
            }
            differences.extend(found(&line.upstream_order_id, ours, upstream));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => {
                reported.sort();
                let unreported: Vec<&OrderNo> = kassa
                    .iter()
                    .filter(|(no, state)| {
                        state.status == kassa_core::OrderStatus::Succeeded
                            && reported.binary_search(no).is_err()
                    })
                    .map(|(no, _)| no)
                    .collect();
                differences.extend(by_query(channel, connector, kassa, &unreported).await?);
                return Ok(differences);
            }
        }
    }
    Err(UpstreamError::Malformed(format!("a report of over {MAX_REPORT_PAGES} pages")).into())
}

/// Asks the upstream about each of `orders`, a few at a time.
async fn by_query(
    channel: &Channel,
    connector: &Arc<Connector>,
    kassa: &BTreeMap<OrderNo, KassaState>,
    orders: &[&OrderNo],
) -> Result<Vec<ReconciliationDifference>, ReconcileDayError> {
    let currency = currency_of(channel);
    let mut differences = Vec::new();
    for batch in orders.chunks(QUERIES_AT_ONCE) {
        let mut asked = tokio::task::JoinSet::new();
        for (i, no) in batch.iter().enumerate() {
            let (connector, id) = (connector.clone(), upstream_order_id(no));
            asked.spawn(async move { (i, upstream_state(&connector, currency, &id).await) });
        }
        let mut answers = asked.join_all().await;
        answers.sort_by_key(|(i, _)| *i);
        for (no, (_, state)) in batch.iter().zip(answers) {
            let id = upstream_order_id(no);
            differences.extend(found(&id, kassa.get(*no).copied(), state?));
        }
    }
    Ok(differences)
}

/// What the upstream says of one of kassa's orders.
async fn upstream_state(
    connector: &Connector,
    currency: Currency,
    id: &str,
) -> Result<UpstreamState, UpstreamError> {
    match connector.query_id(currency, id).await {
        Ok(report) => Ok(match report.outcome {
            Some(RailOutcome::Paid { received }) => UpstreamState::Succeeded {
                amount_minor: received,
            },
            Some(RailOutcome::Failed { .. } | RailOutcome::Cancelled | RailOutcome::Expired) => {
                UpstreamState::Failed
            }
            Some(RailOutcome::Exception { .. }) | None => UpstreamState::Open,
        }),
        Err(UpstreamError::NotFound) => Ok(UpstreamState::Missing),
        Err(e) => Err(e),
    }
}

/// The difference of one order, if the two sides disagree.
fn found(
    upstream_order_id: &str,
    kassa: Option<KassaState>,
    upstream: UpstreamState,
) -> Option<ReconciliationDifference> {
    let kind = difference(kassa, upstream)?;
    Some(ReconciliationDifference {
        upstream_order_id: upstream_order_id.to_string(),
        order_no: order_no_of(upstream_order_id),
        kind,
        kassa: kassa.map_or_else(|| "no such order".into(), |k| k.describe()),
        upstream: upstream.describe(),
    })
}
