//! Load shedding: at most `max_in_flight` requests are handled at once; past that kassa answers
//! 503 with `Retry-After` at once, in the dialect's envelope, instead of queueing without bound
//! and collapsing under overload. A request that takes longer than the request timeout (a slow
//! upload, a stuck database) is cut off the same way, so no client holds a slot for long.

use crate::dialect::{ApiError, Dialects, ErrorKind};
use crate::ratelimit::RetryAfterS;
use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Seconds a shed client is asked to wait.
const RETRY_AFTER_S: u64 = 1;

#[derive(Clone)]
pub struct InFlight {
    slots: Arc<Semaphore>,
    request_timeout: Duration,
    /// Whose envelope a refusal is written in, by path.
    dialects: Arc<Dialects>,
}

impl InFlight {
    pub fn new(max_in_flight: usize, request_timeout_ms: u64, dialects: Arc<Dialects>) -> InFlight {
        InFlight {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            request_timeout: Duration::from_millis(request_timeout_ms.max(1)),
            dialects,
        }
    }

    /// 503 with `Retry-After`, in the envelope of the dialect the path belongs to.
    fn unavailable(&self, uri: &Uri, msg: String) -> Response {
        tracing::warn!(path = %uri.path(), "{msg}");
        let error =
            ApiError::new(ErrorKind::Unavailable, msg).retry_after(RetryAfterS(RETRY_AFTER_S));
        self.dialects.for_path(uri.path()).error_response(error)
    }
}

pub async fn limit(State(in_flight): State<InFlight>, request: Request, next: Next) -> Response {
    let Ok(permit) = in_flight.slots.clone().try_acquire_owned() else {
        return in_flight.unavailable(request.uri(), "kassa is overloaded; retry shortly".into());
    };
    // Kept for the answer to a request cut off below (a cheap, reference-counted copy).
    let uri = request.uri().clone();
    let response = tokio::time::timeout(in_flight.request_timeout, next.run(request)).await;
    drop(permit);
    response.unwrap_or_else(|_| {
        let msg = format!(
            "the request took longer than {} ms; retry it unchanged (a retried create gets the original reply)",
            in_flight.request_timeout.as_millis()
        );
        in_flight.unavailable(&uri, msg)
    })
}
