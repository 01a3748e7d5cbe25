//! Moving an order through its life: apply an event with the core's rules, let the order's
//! dialect render the callback the change causes, and store both in one transaction.
//!
//! Everything that changes an order's status goes through [`apply_event`]: the payer's pages,
//! the sandbox rail, the expiry sweep and the operator.

use crate::{collect, ids};
use kassa_core::{IllegalTransition, Order, OrderEvent, OrderNo};
use kassa_signature::SigningKey;
use kassa_store::{NewCallback, Store, StoreError};

/// Attempts before giving up when other writers keep changing the same order.
const MAX_RACES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no order has number {0}")]
    NotFound(OrderNo),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("order {0} kept changing under us; try again")]
    Contended(OrderNo),
}

/// The callback an order in its new state causes, rendered by the order's dialect.
pub fn render_callback(
    order: &Order,
    platform_key: &SigningKey,
    now_ms: i64,
) -> Option<NewCallback> {
    let url = order.notify_url.clone()?;
    // Only the collect dialect exists so far; pix plugs in its own body here.
    if !collect::notifies(order.status) {
        return None;
    }
    Some(NewCallback {
        callback_id: ids::new_callback_id(),
        order_no: order.order_no.clone(),
        app_id: order.app_id,
        url,
        body: collect::callback_body(platform_key, order),
        headers: vec![("Content-Type".into(), "application/json".into())],
        created_at_ms: now_ms,
    })
}

/// Applies `event` to the order and stores the result with its callback, if any. Safe against
/// concurrent writers: the change is stored only if nobody moved the order in between;
/// otherwise the event is tried again on the fresh state (where it may be refused).
pub async fn apply_event(
    store: &dyn Store,
    platform_key: &SigningKey,
    order_no: &OrderNo,
    event: &OrderEvent,
    now_ms: i64,
) -> Result<Order, LifecycleError> {
    for _ in 0..MAX_RACES {
        let current = store
            .order_by_no(order_no)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(order_no.clone()))?;
        let mut next = current.clone();
        next.apply(event, now_ms)?;
        let callback = render_callback(&next, platform_key, now_ms);
        if store
            .transition_order(&next, current.status, callback.as_ref())
            .await?
        {
            tracing::info!(
                order_no = %order_no,
                from = current.status.as_str(),
                to = next.status.as_str(),
                event = event.name(),
                callback = callback.is_some(),
                "order changed"
            );
            return Ok(next);
        }
    }
    Err(LifecycleError::Contended(order_no.clone()))
}
