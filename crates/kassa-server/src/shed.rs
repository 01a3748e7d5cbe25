//! Load shedding: at most `max_in_flight` requests are handled at once; past that kassa answers
//! 503 with `Retry-After` at once, in the dialect's envelope, instead of queueing without bound
//! and collapsing under overload.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Seconds a shed client is asked to wait.
const RETRY_AFTER_S: &str = "1";

#[derive(Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max_in_flight: usize) -> InFlight {
        InFlight(Arc::new(Semaphore::new(max_in_flight.max(1))))
    }
}

fn overloaded(path: &str) -> Response {
    // Answer in the envelope of the dialect the path belongs to.
    let body =
        if path.starts_with("/accountProxyCollect/") || path.starts_with("/proxyCollectQuery/") {
            r#"{"code":9002,"msg":"kassa is overloaded; retry shortly"}"#
        } else {
            r#"{"status":"0","error":"90000002","msg":"kassa is overloaded; retry shortly"}"#
        };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::RETRY_AFTER, RETRY_AFTER_S),
        ],
        body,
    )
        .into_response()
}

pub async fn limit(State(in_flight): State<InFlight>, request: Request, next: Next) -> Response {
    match in_flight.0.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(_) => {
            tracing::warn!(path = %request.uri().path(), "request shed: too many in flight");
            overloaded(request.uri().path())
        }
    }
}
