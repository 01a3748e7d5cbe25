//! Load shedding and slow clients. A request first has its body read in full — under a deadline,
//! within its own budget of concurrent uploads, at most `max_uploads_per_address` from one client
//! address — and only then takes a request slot: so a slow upload holds no slot that fast,
//! authenticated clients need. Slots come from two budgets: the merchant APIs (the paths a
//! dialect owns) and everything else (the payer's pages, health, docs), so a saturated API leaves
//! payers and load balancers served. Past a budget kassa answers 503 with `Retry-After` at once,
//! in the dialect's envelope (an HTML page on the payer's pages), instead of queueing without
//! bound; a request that takes longer than the request timeout is cut off the same way.

use crate::ServerConfig;
use crate::dialect::{ApiError, Dialects, ErrorKind};
use crate::health::DatabaseHealth;
use crate::listen::PerAddress;
use crate::ratelimit::RetryAfterS;
use crate::telemetry::{self, Level, Shed};
use crate::wire::{BodyError, MAX_BODY_BYTES, read_body};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a shed client is asked to wait.
const RETRY_AFTER_S: u64 = 1;
/// Bodies received at once, at the least: uploads cost a buffer, not a handler, so their budget
/// is set apart from (and is never smaller than) the request slots. With the per-address cap,
/// exhausting it takes this many / `max_uploads_per_address` addresses.
const MIN_UPLOADS: usize = 1_024;

pub struct InFlight {
    /// Requests of the merchant APIs handled at once.
    api_slots: Arc<Semaphore>,
    /// Requests of the payer's pages, health and docs handled at once.
    page_slots: Arc<Semaphore>,
    /// Payers' pages waiting for their order to change: they wait long and cheaply, so they
    /// take none of the page slots.
    waiting_slots: Arc<Semaphore>,
    /// Bodies being received at once.
    uploads: Arc<Semaphore>,
    uploads_by_address: PerAddress,
    max_uploads_per_address: usize,
    request_timeout: Duration,
    body_read_timeout: Duration,
    /// Whose envelope a refusal is written in, by path.
    dialects: Arc<Dialects>,
    /// While the database is known to be down, requests that need it fail at once.
    database: Arc<DatabaseHealth>,
}

/// Why a body could not be received.
enum Unreceived {
    TooLarge,
    Broken,
    Late,
    Busy(Shed, &'static str),
}

impl InFlight {
    pub fn new(
        config: &ServerConfig,
        dialects: Arc<Dialects>,
        database: Arc<DatabaseHealth>,
    ) -> InFlight {
        let slots = config.max_in_flight.max(1);
        let request_timeout_ms = config.request_timeout_ms.max(1);
        InFlight {
            api_slots: Arc::new(Semaphore::new(slots)),
            page_slots: Arc::new(Semaphore::new(slots)),
            waiting_slots: Arc::new(Semaphore::new(config.max_status_waiters.max(1))),
            uploads: Arc::new(Semaphore::new(slots.max(MIN_UPLOADS))),
            uploads_by_address: PerAddress::default(),
            max_uploads_per_address: config.max_uploads_per_address.max(1),
            request_timeout: Duration::from_millis(request_timeout_ms),
            // The body is part of the request: its deadline is never the later one.
            body_read_timeout: Duration::from_millis(
                config.body_read_timeout_ms.clamp(1, request_timeout_ms),
            ),
            dialects,
            database,
        }
    }

    /// 503 with `Retry-After`: an HTML page on the payer's pages, else the envelope of the
    /// dialect the path belongs to.
    fn unavailable(&self, uri: &Uri, language: Option<&str>, msg: String) -> Response {
        tracing::warn!(path = %uri.path(), "{msg}");
        if crate::cashier::owns_path(uri.path()) {
            return crate::cashier::unavailable_page(language, RETRY_AFTER_S);
        }
        let error =
            ApiError::new(ErrorKind::Unavailable, msg).retry_after(RetryAfterS(RETRY_AFTER_S));
        self.dialects.for_path(uri.path()).error_response(error)
    }

    /// The answer to a request whose body was not received. Its connection cannot carry another
    /// request (the rest of the body is unread), so it is closed, and the client told so.
    fn refusal(&self, uri: &Uri, language: Option<&str>, why: Unreceived) -> Response {
        let mut response = self.refusal_body(uri, language, why);
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        response
    }

    fn refusal_body(&self, uri: &Uri, language: Option<&str>, why: Unreceived) -> Response {
        match why {
            Unreceived::TooLarge if self.dialects.owner_of(uri.path()).is_some() => self
                .dialects
                .for_path(uri.path())
                .error_response(ApiError::body_too_large()),
            Unreceived::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n").into_response()
            }
            Unreceived::Broken => {
                (StatusCode::BAD_REQUEST, "the body could not be read\n").into_response()
            }
            Unreceived::Late => {
                telemetry::timed_out("body");
                let ms = self.body_read_timeout.as_millis();
                let msg = format!(
                    "the body did not arrive within {ms} ms; retry it unchanged (a retried create gets the original reply)"
                );
                self.unavailable(uri, language, msg)
            }
            Unreceived::Busy(reason, msg) => {
                telemetry::shed(reason);
                self.unavailable(uri, language, msg.to_string())
            }
        }
    }

    /// The request with its body read in full, within the upload budgets and the deadline.
    async fn receive(&self, request: Request) -> Result<Request, Unreceived> {
        if !carries_body(&request) {
            return Ok(request);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(Unreceived::TooLarge);
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let _address_slot = match peer {
            Some(ip) => Some(
                self.uploads_by_address
                    .take(ip, self.max_uploads_per_address)
                    .ok_or(Unreceived::Busy(
                        Shed::AddressUploads,
                        "too many uploads from your address at once; retry shortly",
                    ))?,
            ),
            None => None,
        };
        let _upload: OwnedSemaphorePermit =
            self.uploads.clone().try_acquire_owned().map_err(|_| {
                Unreceived::Busy(
                    Shed::Uploads,
                    "kassa is receiving too many uploads; retry shortly",
                )
            })?;
        let (parts, body) = request.into_parts();
        let expected = declared.map(|length| length as usize);
        let bytes = tokio::time::timeout(self.body_read_timeout, read_body(body, expected))
            .await
            .map_err(|_| Unreceived::Late)?
            .map_err(|e| match e {
                BodyError::TooLarge => Unreceived::TooLarge,
                BodyError::Broken => Unreceived::Broken,
            })?;
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// Whether a request announces a body (a length above zero, or chunks).
fn carries_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The request's body received and a slot taken, then the rest of its handling (`next`), under
/// the request timeout; else the refusal.
pub async fn limit<F, Fut>(in_flight: &InFlight, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    // Kept for the answers below (a cheap, reference-counted copy).
    let uri = request.uri().clone();
    // The payer's language, for the "try again" page (bounded by the header limits).
    let language = (request.headers().get(header::ACCEPT_LANGUAGE))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let language = language.as_deref();
    let request = match in_flight.receive(request).await {
        Ok(request) => request,
        Err(why) => return in_flight.refusal(&uri, language, why),
    };
    let api = in_flight.dialects.owner_of(uri.path()).is_some();
    // Merchants and payers need the database: while it is known to be down, say so at once.
    if (api || crate::cashier::owns_path(uri.path())) && !in_flight.database.is_up() {
        telemetry::shed(Shed::DatabaseDown);
        let msg = "the database is temporarily unavailable; retry shortly".to_string();
        return in_flight.unavailable(&uri, language, msg);
    }
    let (slots, budget) = if api {
        (&in_flight.api_slots, "api")
    } else if crate::cashier::is_status_wait(&uri) {
        (&in_flight.waiting_slots, "waiting")
    } else {
        (&in_flight.page_slots, "pages")
    };
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        telemetry::shed(Shed::Overloaded);
        return in_flight.unavailable(&uri, language, "kassa is overloaded; retry shortly".into());
    };
    let level = Level::in_flight(budget);
    let response = tokio::time::timeout(in_flight.request_timeout, next(request)).await;
    drop((level, permit));
    response.unwrap_or_else(|_| {
        telemetry::timed_out("request");
        let msg = format!(
            "the request took longer than {} ms; retry it unchanged (a retried create gets the original reply)",
            in_flight.request_timeout.as_millis()
        );
        in_flight.unavailable(&uri, language, msg)
    })
}
