//! Dynamic PIX codes: where the payer's bank fetches the charge behind a code.
//!
//! A dynamic BR Code carries no amount and no key, only a location (field 26/25), which the
//! payer's bank reads over HTTPS as the BCB's API Pix describes for `cob`: a JWS (`PS256`,
//! signed with the platform key) whose payload holds the amount, the key, the txid, the
//! deadline and whether the charge can still be paid. The header's `jku` names the key set
//! served beside it. The location's last part is the order number and a tag (an HMAC under a
//! key every node shares), so locations cannot be guessed and need no table of their own.

use crate::{Gateway, ServerConfig, now_ms};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kassa_core::pix::MAX_LOCATION_CHARS;
use kassa_core::{Order, OrderNo, OrderStatus};
use serde_json::json;
use std::sync::Arc;

/// Where the charges are, under the public URL.
const CHARGE_PATH: &str = "/pix/cob/";
/// The key set of the charges' signatures, under the public URL.
pub const KEY_SET_PATH: &str = "/pix/jwks";
/// Longest `solicitacaoPagador` of API Pix.
const MAX_PAYER_REQUEST_CHARS: usize = 140;

pub fn routes() -> axum::Router<Arc<Gateway>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/pix/cob/{location_id}", get(charge))
        .route(KEY_SET_PATH, get(key_set))
}

/// The public URL without its scheme and final slash (`pay.example.com/kassa`).
fn public_host_path(config: &ServerConfig) -> &str {
    let url = config.public_url.trim_end_matches('/');
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// The location of an order's charge, as a dynamic code carries it: `None` when the public
/// URL is too long for the 77 characters the BR Code manual allows (the code is then static).
pub fn location_of(gateway: &Gateway, order: &Order) -> Option<String> {
    let order_no = order.order_no.as_str();
    let location = format!(
        "{}{CHARGE_PATH}{order_no}{}",
        public_host_path(&gateway.config),
        gateway.form_key.location_tag(order_no)
    );
    (location.len() <= MAX_LOCATION_CHARS).then_some(location)
}

/// The order a location id names, if its tag holds.
fn order_no_of(gateway: &Gateway, location_id: &str) -> Option<OrderNo> {
    let split = location_id.len().checked_sub(16)?;
    let (order_no, tag) = (location_id.get(..split)?, location_id.get(split..)?);
    let order_no = OrderNo::parse(order_no)?;
    gateway
        .form_key
        .verify_location_tag(order_no.as_str(), tag)
        .then_some(order_no)
}

/// API Pix's status of a charge: payable, paid, or withdrawn by the receiving PSP (failed,
/// expired, or held for the operator: none of these may be paid).
fn charge_status(order: &Order, now_ms: i64) -> &'static str {
    match order.status {
        OrderStatus::Succeeded => "CONCLUIDA",
        OrderStatus::Created | OrderStatus::InProgress if !order.is_overdue(now_ms) => "ATIVA",
        _ => "REMOVIDA_PELO_PSP",
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The `cob` payload of an order: what the payer's bank shows and pays.
fn payload(order: &Order, location_id: &str, key: &str, now_ms: i64) -> serde_json::Value {
    let mut charge = json!({
        "calendario": {
            "criacao": rfc3339(order.created_at_ms),
            "apresentacao": rfc3339(now_ms),
            "expiracao": (order.expires_at_ms - order.created_at_ms).max(0) / 1000,
        },
        "txid": location_id,
        "revisao": 0,
        "status": charge_status(order, now_ms),
        "valor": { "original": order.amount_minor.to_decimal_string() },
        "chave": key,
    });
    if let Some(subject) = &order.subject {
        let request: String = subject.chars().take(MAX_PAYER_REQUEST_CHARS).collect();
        charge["solicitacaoPagador"] = request.into();
    }
    charge
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/problem+json")],
        r#"{"title":"Not Found","status":404,"detail":"no charge at this location"}"#,
    )
        .into_response()
}

/// `GET /pix/cob/{location_id}`: the signed charge behind a dynamic code.
pub async fn charge(
    State(gateway): State<Arc<Gateway>>,
    Path(location_id): Path<String>,
) -> Response {
    let Some(order_no) = order_no_of(&gateway, &location_id) else {
        return not_found();
    };
    let order = match gateway.store.order_by_no(&order_no).await {
        Ok(Some(order)) => order,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "pix location: store error");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    // Only an order whose code points here has a charge here.
    let here = order
        .pix_code
        .as_deref()
        .is_some_and(|code| code.contains(location_id.as_str()));
    let receiver = match gateway.apps.get(gateway.store.as_ref(), order.app_id).await {
        Ok(Some(app)) => app.pix.clone(),
        _ => None,
    };
    let (true, Some(receiver)) = (here, receiver) else {
        return not_found();
    };
    let body = payload(&order, &location_id, receiver.key.as_str(), now_ms());
    let key_set_url = format!(
        "https://{}{KEY_SET_PATH}",
        public_host_path(&gateway.config)
    );
    let jws = kassa_signature::jws::sign_compact(
        gateway.notary.key(),
        &[("jku", &key_set_url)],
        body.to_string().as_bytes(),
    );
    (
        [
            (header::CONTENT_TYPE, "application/jose"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jws,
    )
        .into_response()
}

/// `GET /pix/jwks`: the public key that signs the charges.
pub async fn key_set(State(gateway): State<Arc<Gateway>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        kassa_signature::jws::key_set(gateway.notary.key()).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_payable_only_while_the_order_is() {
        let mut order = kassa_core::fixtures::order("P-1", 1_234, 7, 60_000);
        order.status = OrderStatus::InProgress;
        assert_eq!(charge_status(&order, order.created_at_ms), "ATIVA");
        assert_eq!(
            charge_status(&order, order.expires_at_ms),
            "REMOVIDA_PELO_PSP"
        );
        order.status = OrderStatus::Succeeded;
        assert_eq!(charge_status(&order, order.expires_at_ms), "CONCLUIDA");
        order.status = OrderStatus::Exception;
        assert_eq!(charge_status(&order, 0), "REMOVIDA_PELO_PSP");
    }
}
