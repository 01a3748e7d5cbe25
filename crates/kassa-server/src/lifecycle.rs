//! Moving an order through its life: change it with the core's rules, charge the fee and post
//! its journal when it succeeds, let the order's dialect render the callback the change causes,
//! and store all of it in one transaction.
//!
//! Everything that changes an order goes through [`Lifecycle::change`]: the payer's pages, the
//! rails, the expiry sweep and the operator's commands.

use crate::dialect::Dialects;
use crate::ids;
use crate::notary::Notary;
use kassa_core::{
    IllegalTransition, Order, OrderError, OrderEvent, OrderNo, OrderStatus, RailOutcome,
};
use kassa_store::{AuditEntry, NewCallback, Store, StoreError};

/// Attempts before giving up when other writers keep changing the same order.
const MAX_RACES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no order has number {0}")]
    NotFound(OrderNo),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error(transparent)]
    Refused(#[from] OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("order {0} kept changing under us; try again")]
    Contended(OrderNo),
    /// The order's time had run out: it was expired now, and the change asked for was not made.
    #[error("order {0} had expired; it was failed as expired and nothing else was done")]
    Expired(OrderNo),
    /// The order came through a dialect this node does not speak: its callback could not be
    /// written, so the change is refused rather than made without it.
    #[error("order {order_no} belongs to dialect {dialect:?}, which this node does not speak")]
    UnknownDialect { order_no: OrderNo, dialect: String },
}

/// What changing an order needs: the store, the notary that signs callbacks, the dialects that
/// render them.
pub struct Lifecycle<'a> {
    pub store: &'a dyn Store,
    pub notary: &'a Notary,
    pub dialects: &'a Dialects,
}

impl Lifecycle<'_> {
    /// The callback an order in its new state causes, rendered by the order's dialect: `None`
    /// when the order has no `notifyUrl` or its dialect does not notify this state.
    pub fn render_callback(
        &self,
        order: &Order,
        now_ms: i64,
    ) -> Result<Option<NewCallback>, LifecycleError> {
        let Some(url) = order.notify_url.clone() else {
            return Ok(None);
        };
        let dialect = self.dialects.by_name(&order.dialect).ok_or_else(|| {
            LifecycleError::UnknownDialect {
                order_no: order.order_no.clone(),
                dialect: order.dialect.clone(),
            }
        })?;
        if !dialect.notifies(order.status) {
            return Ok(None);
        }
        let (body, mut headers) = dialect.callback(self.notary, order);
        // The merchant (and the attempt log) can tie the callback to the request that caused it.
        if let Some(request_id) = crate::request_id::current() {
            headers.push((crate::request_id::HEADER.to_string(), request_id));
        }
        Ok(Some(NewCallback {
            callback_id: ids::new_callback_id(now_ms),
            order_no: order.order_no.clone(),
            app_id: order.app_id,
            url,
            body,
            headers,
            created_at_ms: now_ms,
        }))
    }

    /// Changes an order with `edit` and stores the result with its callback, if the status
    /// moved to one that notifies. Safe against concurrent writers: the change is stored only if
    /// nobody changed the order's status in between; otherwise `edit` runs again on the fresh
    /// order (where the core may refuse it).
    ///
    /// An order whose time ran out takes nothing but its expiry, whether or not the sweep has
    /// come by: it is expired now, and the change asked for is refused ([`LifecycleError::Expired`]).
    pub async fn change<F>(
        &self,
        order_no: &OrderNo,
        now_ms: i64,
        edit: F,
    ) -> Result<Order, LifecycleError>
    where
        F: Fn(&mut Order) -> Result<(), LifecycleError>,
    {
        self.change_with(order_no, now_ms, (true, None), edit).await
    }

    /// Applies one event of the state machine (see [`Lifecycle::change`]).
    pub async fn apply_event(
        &self,
        order_no: &OrderNo,
        event: &OrderEvent,
        now_ms: i64,
    ) -> Result<Order, LifecycleError> {
        self.apply_event_audited(order_no, event, now_ms, None)
            .await
    }

    /// Applies a person's event (an operator's resolution) with its audit entry, written in the
    /// transaction of the change (see [`Lifecycle::change`]).
    pub async fn apply_event_audited(
        &self,
        order_no: &OrderNo,
        event: &OrderEvent,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<Order, LifecycleError> {
        // The expiry itself is the one change an overdue order takes.
        let expire_first = *event != OrderEvent::Expired;
        let changed = self
            .change_with(order_no, now_ms, (expire_first, audit), |order| {
                Ok(order.apply(event, now_ms)?)
            })
            .await?;
        if !expire_first {
            crate::telemetry::order_expired(&changed.dialect);
        }
        Ok(changed)
    }

    /// Applies what a rail reported of an order. The rail's word holds even past the order's
    /// expiry: an upstream that took the payment in time may tell kassa late.
    pub async fn apply_rail_outcome(
        &self,
        order_no: &OrderNo,
        outcome: &RailOutcome,
        now_ms: i64,
    ) -> Result<Order, LifecycleError> {
        self.change_with(order_no, now_ms, (false, None), |order| {
            Ok(order.apply(&outcome.event(order.amount_minor), now_ms)?)
        })
        .await
    }

    /// `expire_first`: an overdue order is expired instead; `audit`: the entry to write with
    /// the change asked for (not with an expiry).
    async fn change_with<F>(
        &self,
        order_no: &OrderNo,
        now_ms: i64,
        (expire_first, audit): (bool, Option<&AuditEntry>),
        edit: F,
    ) -> Result<Order, LifecycleError>
    where
        F: Fn(&mut Order) -> Result<(), LifecycleError>,
    {
        for _ in 0..MAX_RACES {
            let current = self
                .store
                .order_by_no(order_no)
                .await?
                .ok_or_else(|| LifecycleError::NotFound(order_no.clone()))?;
            if expire_first && current.is_overdue(now_ms) {
                let mut expired = current.clone();
                expired.apply(&OrderEvent::Expired, now_ms)?;
                if self
                    .store_change(&current, &mut expired, now_ms, None)
                    .await?
                {
                    crate::telemetry::order_expired(&current.dialect);
                    return Err(LifecycleError::Expired(order_no.clone()));
                }
                continue;
            }
            let mut next = current.clone();
            edit(&mut next)?;
            if self
                .store_change(&current, &mut next, now_ms, audit)
                .await?
            {
                return Ok(next);
            }
        }
        Err(LifecycleError::Contended(order_no.clone()))
    }

    /// Stores `next` (charged its fee on success) with the callback its new status causes, if
    /// the order is still as `current` was read; false if someone changed it meanwhile.
    async fn store_change(
        &self,
        current: &Order,
        next: &mut Order,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> Result<bool, LifecycleError> {
        // Only success carries a fee (no rule is read for any other change) and posts to the
        // books, in the same transaction as the change.
        let mut journal = None;
        if OrderStatus::charges_fee(current.status, next.status) {
            let terms = self.store.success_terms(next.app_id).await?;
            let method = next.paying_method().code;
            next.charge_fee(kassa_core::FeeRule::select(&terms.fee_rules, method));
            let delay_days = terms.settlement_delay_days;
            let settles_at_ms = kassa_core::ledger::settles_at_ms(now_ms, delay_days, |ms| {
                self.notary.offset_seconds_at(ms)
            });
            journal = kassa_core::ledger::Journal::of_success(next, now_ms, settles_at_ms);
        }
        let callback = if next.status != current.status {
            self.render_callback(next, now_ms)?
        } else {
            None
        };
        let stored = self
            .store
            .transition_order(
                next,
                current.status,
                callback.as_ref(),
                journal.as_ref(),
                audit,
            )
            .await?;
        if stored {
            crate::telemetry::order_changed(
                current.status,
                next.status,
                next.currency,
                next.actual_amount_minor.0,
            );
            tracing::info!(
                order_no = %next.order_no,
                from = current.status.as_str(),
                to = next.status.as_str(),
                callback = callback.is_some(),
                "order changed"
            );
        }
        Ok(stored)
    }
}
