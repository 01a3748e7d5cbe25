//! The upstream rails (`collect-upstream`, `pix-upstream`): an order is opened at one of the
//! rail's channels, with failover. A `collect` order is opened when the payer starts paying (the
//! method is known then) and the payer is sent to the upstream's page; a PIX order is opened
//! when the merchant creates it, since its BR Code is part of the reply.
//!
//! Failover never leaves two live upstream orders for one kassa order: before a channel is
//! called its row is written (so a crash mid-call is reconciled), a create whose outcome is
//! unknown is repeated once on the same channel (the derived order id makes it a replay there),
//! and if that too goes unanswered a query decides — the order is there (routing stops; the
//! rail reports it pending and reconciliation follows it) or it is not (the next channel is
//! tried). Every attempt is recorded with the order.

use super::book::{ChannelBook, Entry};
use super::connector::{Opened, ReturnUrls};
use super::upstream::UpstreamError;
use super::{Rail, RailError, RailStart};
use crate::now_ms;
use async_trait::async_trait;
use kassa_core::{ChannelKind, Order, PaymentMethod};
use kassa_store::{RoutingAttempt, Store, UpstreamOrder};
use std::sync::Arc;

/// Longest detail kept with a routing attempt.
const MAX_DETAIL_CHARS: usize = 300;

/// What the upstream rails share: the channels, the store and kassa's public URL.
pub struct UpstreamContext {
    pub book: Arc<ChannelBook>,
    pub store: Arc<dyn Store>,
    pub public_url: String,
    /// How long after an order is opened reconciliation first asks the upstream about it.
    pub reconcile_after_ms: i64,
}

impl UpstreamContext {
    pub fn return_urls(&self, order: &Order, channel_id: &str) -> ReturnUrls {
        ReturnUrls {
            // `done=1`: once the outcome is known, kassa's page sends the payer on to the shop.
            payer: format!("{}/pay/{}?done=1", self.public_url, order.cashier_token),
            notify: format!("{}/rails/{channel_id}/callback", self.public_url),
        }
    }

    /// The row written before a channel is called, and again with the upstream's number.
    fn row(&self, order: &Order, channel_id: &str, opened: Option<&Opened>) -> UpstreamOrder {
        let now = now_ms();
        UpstreamOrder {
            order_no: order.order_no.clone(),
            channel_id: channel_id.to_string(),
            upstream_order_no: opened.map(|o| o.upstream_order_no.clone()),
            next_check_at_ms: now + self.reconcile_after_ms,
            checks: 0,
            created_at_ms: now,
            updated_at_ms: now,
        }
    }
}

pub struct UpstreamRail {
    kind: ChannelKind,
    context: Arc<UpstreamContext>,
}

impl UpstreamRail {
    pub fn new(kind: ChannelKind, context: Arc<UpstreamContext>) -> UpstreamRail {
        assert!(
            kind.is_upstream(),
            "{} is not an upstream kind",
            kind.code()
        );
        UpstreamRail { kind, context }
    }

    /// The channels of this rail to try, the order's own (chosen at creation) first.
    fn failover_list(&self, order: &Order, method: &PaymentMethod) -> Vec<Entry> {
        let roll = crate::ids::routing_roll();
        let mut list: Vec<Entry> = (self.context.book)
            .candidates(order, method, now_ms(), roll)
            .into_iter()
            .filter(|e| e.channel.kind == self.kind && e.connector.is_some())
            .collect();
        if let Some(own) = list
            .iter()
            .position(|e| e.channel.channel_id == order.channel)
        {
            let own = list.remove(own);
            list.insert(0, own);
        }
        list
    }

    /// Opens `order` at the first channel that takes it. `stored`: the order is in the store
    /// already (and may have attempts from before); a PIX order being created is not.
    async fn place(
        &self,
        order: &Order,
        method: &PaymentMethod,
        stored: bool,
    ) -> Result<Opened, RailError> {
        let store = &self.context.store;
        let mut attempt_no = match stored {
            true => (store.routing_attempts(&order.order_no).await).map_or(0, |a| a.len()) as i64,
            false => 0,
        };
        let mut refusals = Vec::new();
        for entry in self.failover_list(order, method) {
            attempt_no += 1;
            let channel_id = entry.channel.channel_id.clone();
            let started = std::time::Instant::now();
            let result = if self.context.book.admit(&channel_id, now_ms()) {
                self.try_channel(&entry, order, method).await
            } else {
                Err(Step::Skipped)
            };
            let (outcome, detail) = match &result {
                Ok(opened) => (
                    "created",
                    format!("upstream order {}", opened.upstream_order_no),
                ),
                Err(step) => (step.label(), step.to_string()),
            };
            let attempt = attempt(attempt_no, &channel_id, (outcome, &detail), started);
            tracing::info!(order_no = %order.order_no, channel = %channel_id, outcome, detail = %attempt.detail, "routing attempt");
            match result {
                // The upstream's number and the attempt, in one transaction.
                Ok(opened) => {
                    let row = self.context.row(order, &channel_id, Some(&opened));
                    return match store
                        .save_upstream(&row, self.kind.code(), Some(&attempt))
                        .await
                    {
                        Ok(()) => Ok(opened),
                        Err(e) => Err(RailError::Pending(format!(
                            "opened at {channel_id}, but not stored: {e}"
                        ))),
                    };
                }
                Err(step) => {
                    if let Err(e) = store.add_routing_attempt(&order.order_no, &attempt).await {
                        tracing::warn!(order_no = %order.order_no, error = %e, "cannot record a routing attempt");
                    }
                    if let Step::Unknown(e) = step {
                        return Err(RailError::Pending(e.to_string()));
                    }
                    refusals.push(format!("{channel_id}: {detail}"));
                }
            }
        }
        if refusals.is_empty() {
            refusals.push(format!("no {} channel serves the order", self.kind.code()));
        }
        Err(RailError::Unavailable(refusals.join("; ")))
    }

    /// One channel: its row first (so that a crash mid-call is reconciled), then the create
    /// (repeated once if unanswered, then a query).
    async fn try_channel(
        &self,
        entry: &Entry,
        order: &Order,
        method: &PaymentMethod,
    ) -> Result<Opened, Step> {
        let (channel, connector) = (
            &entry.channel,
            entry.connector.as_ref().ok_or(Step::Skipped)?,
        );
        let context = &self.context;
        let kind = self.kind.code();
        context
            .store
            .save_upstream(&context.row(order, &channel.channel_id, None), kind, None)
            .await
            .map_err(|e| Step::Store(e.to_string()))?;
        let urls = context.return_urls(order, &channel.channel_id);
        let timed = |started: std::time::Instant, ok: bool| {
            crate::telemetry::rail_call(
                kind,
                &channel.channel_id,
                "create",
                ok,
                started.elapsed().as_secs_f64(),
            )
        };
        let mut result = Err(UpstreamError::Unreachable(String::new()));
        for _ in 0..2 {
            let started = std::time::Instant::now();
            result = connector.create(channel, order, method, &urls).await;
            timed(started, result.is_ok());
            if !matches!(&result, Err(e) if e.outcome_unknown()) {
                break;
            }
        }
        let alive = matches!(result, Ok(_) | Err(UpstreamError::Refused { .. }));
        context.book.record(&channel.channel_id, alive, now_ms());
        match result {
            Ok(opened) => Ok(opened),
            Err(e) if e.outcome_unknown() => match connector.query(order).await {
                Err(UpstreamError::NotFound) => Err(Step::Failed(e)),
                _ => Err(Step::Unknown(e)),
            },
            Err(e) => Err(Step::Failed(e)),
        }
    }
}

/// One routing attempt as it is recorded.
fn attempt(
    attempt_no: i64,
    channel_id: &str,
    (outcome, detail): (&str, &str),
    started: std::time::Instant,
) -> RoutingAttempt {
    RoutingAttempt {
        attempt_no,
        channel_id: channel_id.to_string(),
        outcome: outcome.to_string(),
        detail: detail.chars().take(MAX_DETAIL_CHARS).collect(),
        latency_ms: started.elapsed().as_millis() as i64,
        at_ms: now_ms(),
    }
}

/// How trying one channel ended, when it did not open the order.
#[derive(Debug, thiserror::Error)]
enum Step {
    #[error("circuit open: the channel failed repeatedly; it is probed again after a cool-down")]
    Skipped,
    /// The upstream did not take the order (or never heard of it): the next channel may.
    #[error("{0}")]
    Failed(UpstreamError),
    /// The upstream may hold the order: routing stops, reconciliation follows it.
    #[error("outcome unknown, left to reconciliation: {0}")]
    Unknown(UpstreamError),
    #[error("cannot write the routing record: {0}")]
    Store(String),
}

impl Step {
    fn label(&self) -> &'static str {
        match self {
            Step::Skipped => "skipped",
            Step::Failed(e) => e.label(),
            Step::Unknown(_) => "unknown",
            Step::Store(_) => "store_error",
        }
    }
}

#[async_trait]
impl Rail for UpstreamRail {
    fn name(&self) -> &'static str {
        self.kind.code()
    }

    fn reports_outcomes(&self) -> bool {
        true
    }

    /// Orders come to upstream rails through the channel book only.
    fn channel_for(&self, _order: &Order) -> Option<String> {
        None
    }

    /// A PIX order is opened upstream before it is stored: its BR Code is the upstream's.
    async fn open(&self, order: &mut Order) -> Result<bool, RailError> {
        if self.kind != ChannelKind::PixUpstream {
            return Ok(false);
        }
        // A retried create replays the stored order: nothing is opened for it.
        let existing = (self.context.store)
            .order_by_merchant_order_id(order.app_id, &order.merchant_order_id)
            .await
            .map_err(|e| RailError::Unavailable(e.to_string()))?;
        if existing.is_some() {
            return Ok(false);
        }
        let opened = self.place(order, order.method, false).await?;
        order.pix_code = opened.qr_code;
        Ok(true)
    }

    async fn start(
        &self,
        order: &Order,
        method: &'static PaymentMethod,
    ) -> Result<RailStart, RailError> {
        if self.kind == ChannelKind::PixUpstream {
            return Ok(RailStart::OwnPage);
        }
        let opened = self.place(order, method, true).await?;
        Ok(match opened.pay_url {
            Some(url) => RailStart::Redirect(url),
            None => RailStart::OwnPage,
        })
    }
}
