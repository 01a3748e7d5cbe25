//! The null gateway: the reference `kassa bench --scenario limit` measures kassa against. It
//! runs kassa's own HTTP stack (the same listener, limits and router machinery) and does only
//! what no gateway can avoid — read the request, parse it, verify the merchant's signature,
//! and answer a reply of kassa's size, signed for a create, and signed once ahead for a query
//! (kassa does not sign an unchanged order's reply again). No validation, no database.

use crate::Failure;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kassa_signature::{SigningKey, VerifyingKey, parse_signed_object, sign_map};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct NullGatewayArgs {
    /// Where to listen (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The merchant's public key (PEM).
    #[arg(long)]
    merchant_key: PathBuf,
    /// The platform's private key (PKCS#8 PEM) that signs the replies.
    #[arg(long)]
    platform_key: PathBuf,
}

struct Keys {
    merchant: VerifyingKey,
    platform: SigningKey,
    /// A query's reply, signed once.
    query_reply: String,
}

/// Serves until SIGTERM or Ctrl-C; prints `null gateway listening on http://…` once it listens.
pub async fn serve(args: NullGatewayArgs) -> Result<(), Failure> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| Failure(format!("{}: {e}", path.display())))
    };
    let merchant = VerifyingKey::parse(&read(&args.merchant_key)?)?;
    let platform = SigningKey::parse(&read(&args.platform_key)?)?;
    let query_reply = signed_reply(&platform, query_data());
    let keys = Arc::new(Keys {
        merchant,
        platform,
        query_reply,
    });
    let router = axum::Router::new()
        .route(super::CREATE_PATH, axum::routing::post(create))
        .route(super::QUERY_PATH, axum::routing::post(query))
        .layer(axum::extract::DefaultBodyLimit::max(
            kassa_server::dialect::MAX_BODY_BYTES,
        ))
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "null gateway listening on http://{}",
        listener.local_addr()?
    );
    let limits = kassa_server::listen::ConnectionLimits::default();
    let stop = crate::serve::shutdown_signal();
    kassa_server::listen::serve(listener, router, limits, stop).await?;
    Ok(())
}

/// The merchant's signature over the body's canonical string holds.
fn verified(keys: &Keys, body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let Ok(object) = parse_signed_object(text) else {
        return false;
    };
    let Some(sign) = object.sign.as_deref() else {
        return false;
    };
    keys.merchant
        .verify_base64(object.canonical.as_bytes(), sign)
        .is_ok()
}

/// A reply in kassa's envelope with `data` signed, as kassa writes a create's.
fn signed_reply(platform: &SigningKey, mut data: Map<String, Value>) -> String {
    sign_map(platform, &mut data);
    json!({"status": "1", "error": "00000000", "msg": "", "data": data}).to_string()
}

fn create_data() -> Map<String, Value> {
    let data = json!({
        "appId": 1001, "orderId": "bench-1764745200000-123456", "orderNo": "6023071013539074",
        "payUrl": "http://127.0.0.1:8080/pay/3JxWq9rPz4Vb7nKc1mYt5sLd8fGh2jQa6wEe0uRi-Xo",
    });
    data.as_object().expect("an object").clone()
}

fn query_data() -> Map<String, Value> {
    let data = json!({
        "appId": 1001, "orderId": "preload-123", "orderNo": "6023071013539074",
        "amount": "25.00", "status": 1, "payTime": null, "errorMsg": null,
    });
    data.as_object().expect("an object").clone()
}

async fn create(State(keys): State<Arc<Keys>>, body: Bytes) -> Response {
    if !verified(&keys, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let reply = signed_reply(&keys.platform, create_data());
    ([("content-type", "application/json")], reply).into_response()
}

async fn query(State(keys): State<Arc<Keys>>, body: Bytes) -> Response {
    if !verified(&keys, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    (
        [("content-type", "application/json")],
        keys.query_reply.clone(),
    )
        .into_response()
}
