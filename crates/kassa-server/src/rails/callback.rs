//! `POST /rails/{channel_id}/callback`: where upstream PSPs tell kassa how its orders went.
//!
//! Nothing in a callback is believed before the channel's connector has verified it (the
//! upstream's signature, kassa's own account there). The order it names must be kassa's and be
//! routed to this channel. The outcome is applied through the lifecycle, and `success` is
//! answered only once the change (with the merchant's callback) is stored — so an upstream that
//! hears anything else sends again. Forged, unknown and misdirected callbacks are refused,
//! logged and counted, and change nothing.

use super::upstream::{UpstreamError, order_no_of};
use crate::lifecycle::LifecycleError;
use crate::{Gateway, telemetry};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub fn routes() -> axum::Router<Arc<Gateway>> {
    axum::Router::new().route("/rails/{channel_id}/callback", axum::routing::post(receive))
}

/// Why a callback was not taken: its answer and its label in metrics.
struct Refusal {
    status: StatusCode,
    label: &'static str,
    why: String,
}

impl Refusal {
    fn new(status: StatusCode, label: &'static str, why: impl Into<String>) -> Refusal {
        Refusal {
            status,
            label,
            why: why.into(),
        }
    }
}

async fn receive(
    State(gateway): State<Arc<Gateway>>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match take(&gateway, &channel_id, &headers, &body).await {
        Ok(label) => {
            telemetry::rail_callback(label);
            (StatusCode::OK, "success").into_response()
        }
        Err(refusal) => {
            telemetry::rail_callback(refusal.label);
            let channel: String = channel_id.chars().take(40).collect();
            tracing::warn!(channel = %channel, result = refusal.label, why = %refusal.why, "upstream callback refused");
            (refusal.status, refusal.why).into_response()
        }
    }
}

/// Verifies and applies one callback; the label of what came of it.
async fn take(
    gateway: &Gateway,
    channel_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'static str, Refusal> {
    let entry = gateway
        .rails
        .book()
        .and_then(|book| book.entry(channel_id))
        .filter(|entry| entry.connector.is_some())
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "unknown_channel", "no such channel"))?;
    let connector = entry.connector.as_ref().expect("filtered above");
    let body = std::str::from_utf8(body).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the body is not UTF-8",
        )
    })?;
    let x_sign = headers.get("x-sign").and_then(|v| v.to_str().ok());
    let report = connector
        .verify_callback(body, x_sign)
        .map_err(|e| match e {
            UpstreamError::BadSignature => {
                Refusal::new(StatusCode::UNAUTHORIZED, "forged", e.to_string())
            }
            other => Refusal::new(StatusCode::BAD_REQUEST, "malformed", other.to_string()),
        })?;
    let unknown = || {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "unknown_order",
            "no order of this channel has this id",
        )
    };
    let order_no = order_no_of(&report.upstream_order_id).ok_or_else(unknown)?;
    let order = gateway
        .store
        .order_by_no(&order_no)
        .await
        .map_err(unavailable)?
        .filter(|order| order.channel == channel_id)
        .ok_or_else(unknown)?;
    let Some(outcome) = report.outcome else {
        return Ok("in_progress");
    };
    match gateway.settle_from_rail(&order.order_no, &outcome).await {
        Ok(_) => Ok("applied"),
        // Told twice, or settled meanwhile: the answer the upstream needs is the same.
        Err(LifecycleError::Illegal(_) | LifecycleError::Refused(_)) => {
            let current = (gateway.store.order_by_no(&order_no).await)
                .map_err(unavailable)?
                .ok_or_else(unknown)?;
            if agrees(&current, &outcome) {
                return Ok("duplicate");
            }
            tracing::error!(order_no = %order_no, status = current.status.as_str(), outcome = ?outcome,
                "the upstream reports an outcome that differs from the order's final state");
            Ok("conflict")
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// Whether an order already stands where the upstream's outcome would have taken it.
fn agrees(order: &kassa_core::Order, outcome: &kassa_core::RailOutcome) -> bool {
    let event = outcome.event(order.amount_minor);
    kassa_core::OrderStatus::InProgress.apply(&event) == Ok(order.status)
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_error",
        format!("cannot store the change now; send again: {e}"),
    )
}
