//! Moving an order through its life: change it with the core's rules, charge the fee when it
//! succeeds, let the order's dialect render the callback the change causes, and store both in
//! one transaction.
//!
//! Everything that changes an order goes through [`change`]: the payer's pages, the sandbox
//! rail, the expiry sweep and the operator.

use crate::notary::Notary;
use crate::{collect, ids, pix};
use kassa_core::{IllegalTransition, Order, OrderError, OrderEvent, OrderNo, OrderStatus, PayType};
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
    Refused(#[from] OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("order {0} kept changing under us; try again")]
    Contended(OrderNo),
}

/// The callback an order in its new state causes, rendered by the order's dialect.
pub fn render_callback(order: &Order, notary: &Notary, now_ms: i64) -> Option<NewCallback> {
    let url = order.notify_url.clone()?;
    // The order's dialect decides when the merchant hears, and what the callback carries.
    let (body, headers) = if order.method.pay_type == PayType::Pix {
        if !pix::notifies(order.status) {
            return None;
        }
        pix::callback(notary, order)
    } else {
        if !collect::notifies(order.status) {
            return None;
        }
        let headers = vec![("Content-Type".into(), "application/json".into())];
        (collect::callback_body(notary, order), headers)
    };
    Some(NewCallback {
        callback_id: ids::new_callback_id(),
        order_no: order.order_no.clone(),
        app_id: order.app_id,
        url,
        body,
        headers,
        created_at_ms: now_ms,
    })
}

/// Changes an order with `edit` and stores the result with its callback, if the status moved
/// to one that notifies. Safe against concurrent writers: the change is stored only if nobody
/// changed the order's status in between; otherwise `edit` runs again on the fresh order
/// (where the core may refuse it).
pub async fn change<F>(
    store: &dyn Store,
    notary: &Notary,
    order_no: &OrderNo,
    now_ms: i64,
    edit: F,
) -> Result<Order, LifecycleError>
where
    F: Fn(&mut Order) -> Result<(), LifecycleError>,
{
    for _ in 0..MAX_RACES {
        let current = store
            .order_by_no(order_no)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(order_no.clone()))?;
        let mut next = current.clone();
        edit(&mut next)?;
        // Only success carries a fee: no rule is read for any other change.
        if next.status == OrderStatus::Succeeded && current.status != OrderStatus::Succeeded {
            let method = next.paying_method().code;
            next.charge_fee(store.fee_rule_for(next.app_id, method).await?);
        }
        let callback = (next.status != current.status)
            .then(|| render_callback(&next, notary, now_ms))
            .flatten();
        if store
            .transition_order(&next, current.status, callback.as_ref())
            .await?
        {
            tracing::info!(
                order_no = %order_no,
                from = current.status.as_str(),
                to = next.status.as_str(),
                callback = callback.is_some(),
                "order changed"
            );
            return Ok(next);
        }
    }
    Err(LifecycleError::Contended(order_no.clone()))
}

/// Applies one event of the state machine (see [`change`]).
pub async fn apply_event(
    store: &dyn Store,
    notary: &Notary,
    order_no: &OrderNo,
    event: &OrderEvent,
    now_ms: i64,
) -> Result<Order, LifecycleError> {
    change(store, notary, order_no, now_ms, |order| {
        Ok(order.apply(event, now_ms)?)
    })
    .await
}
