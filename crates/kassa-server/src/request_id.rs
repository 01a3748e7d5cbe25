//! Request ids: every request gets one — the client's `X-Request-Id` when it is sane (1 to 128
//! printable ASCII characters without spaces), else a fresh one, distinct within the process
//! ([`crate::ids::new_request_id`]) — returned in the response's `X-Request-Id` and carried by
//! every log line of the request (a tracing span), so an operator can follow one request
//! through the logs. An insane incoming id is replaced,
//! never echoed. A callback that a request causes carries its id (see [`current`]).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use std::future::Future;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
/// The longest incoming id kept.
pub const MAX_CHARS: usize = 128;

tokio::task_local! {
    /// The id of the request being handled on this task.
    static CURRENT: String;
}

/// The id of the request this code runs for, if it runs for one (not in background tasks or
/// one-shot commands).
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The incoming id, if it is one kassa may log and echo.
fn sane(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let ok =
        !text.is_empty() && text.len() <= MAX_CHARS && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(text)
}

/// Gives the request its id, then runs the rest of its handling (`next`) inside the id's span
/// and task-local, and answers with the id.
pub async fn assign<F, Fut>(request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = match request.headers().get(HEADER).and_then(sane) {
        Some(id) => id.to_string(),
        None => crate::ids::new_request_id(),
    };
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let handled = CURRENT.scope(id.clone(), next(request));
    let mut response = handled.instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_kept() {
        let keep = |text: &str| sane(&HeaderValue::from_str(text).unwrap()).is_some();
        assert!(keep("abc-123_XYZ.42"));
        assert!(keep(&"a".repeat(128)));
        assert!(!keep(&"a".repeat(129)));
        assert!(!keep("two words"));
        assert!(!keep(""));
        assert!(sane(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()).is_none());
    }
}
