//! Request ids: every request gets one — the client's `X-Request-Id` when it is sane (1 to 128
//! printable ASCII characters without spaces), else a fresh one, distinct within the process
//! ([`crate::ids::new_request_id`]) — returned in the response's `X-Request-Id` and carried by
//! every log line of the request, so an operator can follow one request through the logs. An
//! insane incoming id is replaced, never echoed. A callback that a request causes carries its
//! id (see [`current`]).
//!
//! The request (its id, method and path) is kept in a task-local for its handling, and the log
//! formatter writes it into each line logged meanwhile, where a tracing span would have stood
//! (`kassa`'s `log_lines`). A span per request cost 2.6–4 µs of a query's CPU whether or not a
//! line was logged (its fields formatted, a registry slot, its entry at every poll); the
//! task-local costs nothing until a line is written (docs/performance.md, "A request's log
//! context without a span; apps shared from their cache"). Only where debug lines are on is the
//! request a span as well.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, Uri};
use axum::response::Response;
use std::future::Future;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
/// The longest incoming id kept.
pub const MAX_CHARS: usize = 128;

/// The request a task handles, as its log lines name it.
pub struct Current {
    id: String,
    method: Method,
    uri: Uri,
    /// The request is a tracing span too, which names it in every line (see [`assign`]).
    spanned: bool,
}

impl Current {
    /// Whether the formatter should name the request itself: not when its span does.
    pub fn needs_naming(&self) -> bool {
        !self.spanned
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

tokio::task_local! {
    /// The request being handled on this task.
    static CURRENT: Current;
}

/// The id of the request this code runs for, if it runs for one (not in background tasks or
/// one-shot commands).
pub fn current() -> Option<String> {
    CURRENT.try_with(|current| current.id.clone()).ok()
}

/// `read` of the request this code runs for, if it runs for one.
pub fn with_current<R>(read: impl FnOnce(&Current) -> R) -> Option<R> {
    CURRENT.try_with(read).ok()
}

/// The incoming id, if it is one kassa may log and echo.
fn sane(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let ok =
        !text.is_empty() && text.len() <= MAX_CHARS && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(text)
}

/// Gives the request its id, then runs the rest of its handling (`next`) with the request as
/// the task's [`Current`], and answers with the id.
pub async fn assign<F, Fut>(request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = match request.headers().get(HEADER).and_then(sane) {
        Some(id) => id.to_string(),
        None => crate::ids::new_request_id(),
    };
    let header = HeaderValue::from_str(&id).ok();
    // With debug lines on, the request is a span as well: sqlx writes its statements' lines on
    // its SQLite connections' own threads, which do not see this task's task-local but enter
    // the span of the task that sent the statement. At info that span's cost is saved.
    let spanned = tracing::level_enabled!(tracing::Level::DEBUG);
    let span = match spanned {
        true => tracing::info_span!(
            "request",
            request_id = %id,
            method = %request.method(),
            path = %request.uri().path(),
        ),
        false => tracing::Span::none(),
    };
    let current = Current {
        id,
        method: request.method().clone(),
        uri: request.uri().clone(),
        spanned,
    };
    let handled = CURRENT.scope(current, next(request));
    let mut response = handled.instrument(span).await;
    if let Some(value) = header {
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
