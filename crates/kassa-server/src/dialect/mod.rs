//! The merchant-facing dialects: the [`Dialect`] trait each one implements once, the registry
//! of those a gateway speaks ([`Dialects`]), and what every dialect does alike — above all the
//! one create pipeline ([`create`]): read the body, authenticate the app by its signature, read
//! the order, check callback targets, and insert it under a fresh number or give a retry its
//! original reply.
//!
//! Nothing outside a dialect's own module names it: the router mounts each dialect's routes,
//! the lifecycle finds an order's dialect by the name stored with it, and answers given before
//! routing (overload, unknown paths) find the dialect by path.

mod error;

pub(crate) use error::error_table;
pub use error::{ApiError, ErrorKind, Words};

use crate::notary::{Notary, Signature, Signed};
use crate::wire::Fields;
use crate::{Gateway, ServerConfig, ids, now_ms, telemetry};
use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use kassa_core::validate::FieldError;
use kassa_core::{App, AppId, NewOrder, Order, OrderStatus, OrderVersion};
use kassa_signature::{
    SignedObject, VerifyError, ambiguous_split, digest_hex, parse_signed_object,
};
use kassa_store::{InsertOutcome, StoreError};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::task::Poll;

pub use crate::wire::MAX_BODY_BYTES;
/// Fresh order numbers tried before giving up (a collision is a 1 in 10^15 event).
const ORDER_NO_ATTEMPTS: usize = 3;

/// A request as every dialect receives it: path, headers, and the body as read (or why it
/// could not be: too large, cut off). An extractor, so a handler takes it whole.
pub struct Incoming {
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Result<Bytes, ApiError>,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Incoming {
    type Rejection = std::convert::Infallible;

    async fn from_request(
        request: axum::extract::Request,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        // The same reading, and the same limit, as the shedding layer's (which has usually
        // read the body already; then this only takes the buffer).
        let body = crate::wire::read_body(body, None)
            .await
            .map_err(|why| match why {
                crate::wire::BodyError::TooLarge => ApiError::body_too_large(),
                crate::wire::BodyError::Broken => {
                    ApiError::new(ErrorKind::MalformedJson, "the body could not be read")
                }
            });
        Ok(Incoming {
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

/// A request whose app is known and whose signature verified.
pub struct Authenticated<'a> {
    pub app: Arc<App>,
    pub object: SignedObject<'a>,
}

/// One merchant-facing API flavour. Implemented once per dialect, registered in [`Dialects`].
#[async_trait]
pub trait Dialect: Send + Sync + 'static {
    /// The name stored with each order it receives; its callbacks are rendered by it.
    fn name(&self) -> &'static str;

    /// Its HTTP routes.
    fn routes(&self) -> Router<Arc<Gateway>>;

    /// Whether a path is one of its own (for answers given before routing).
    fn owns_path(&self, path: &str) -> bool;

    /// Its part of the OpenAPI description: its operations and wire shapes.
    fn openapi(&self) -> utoipa::openapi::OpenApi;

    /// How its messages name things.
    fn words(&self) -> &'static Words;

    /// An error in its envelope, with its code and HTTP status.
    fn error_response(&self, error: ApiError) -> Response;

    /// Where it carries the platform's signature of reply data.
    fn signature(&self) -> Signature;

    /// A success reply around signed data.
    fn success_response(&self, reply: &Signed) -> Response;

    /// Whether its merchants hear about an order reaching `status`.
    fn notifies(&self, status: OrderStatus) -> bool;

    /// The callback of an order in its current state: body and the dialect's own headers.
    fn callback(&self, notary: &Notary, order: &Order) -> (String, Vec<(String, String)>);

    /// Finds the app a request names and checks what the dialect requires of it (currency).
    /// The signature is verified by [`authenticate`], around this.
    async fn identify_app(
        &self,
        gateway: &Gateway,
        incoming: &Incoming,
        object: &SignedObject<'_>,
    ) -> Result<(AppId, String), ApiError>;

    /// Checks the authenticated app is one this dialect (and this path) serves.
    fn check_app(&self, app: &App, incoming: &Incoming) -> Result<(), ApiError>;

    /// The merchant's order id of a create or query request: the field [`Words`] names, of
    /// the identifier charset and at most its length.
    fn merchant_order_id(&self, fields: &Fields) -> Result<String, ApiError> {
        let (name, max_chars) = (self.words().order_id, self.words().order_id_max_chars);
        let order_id = fields.required(name, max_chars)?;
        kassa_core::validate::order_id(name, &order_id, max_chars)?;
        Ok(order_id)
    }

    /// Reads a create request into the core's new-order command.
    fn new_order(
        &self,
        app: &App,
        fields: &Fields,
        merchant_order_id: String,
    ) -> Result<NewOrder, ApiError>;

    /// How long its orders wait for the payer.
    fn order_lifetime_ms(&self, config: &ServerConfig) -> i64;

    /// Refuses a routed, opened order that this dialect's reply cannot be made for.
    fn check_opened(&self, _app: &App, _order: &Order) -> Result<(), ApiError> {
        Ok(())
    }

    /// Fills in what depends on the order's number (a BR Code) and returns the create reply's
    /// data, to be signed.
    fn created(&self, gateway: &Gateway, app: &App, order: &mut Order) -> Map<String, Value>;
}

/// The dialects a gateway speaks, in registration order; the first answers paths nobody owns.
/// `Dialects::standard()` (in the crate root, which wires the dialects in) registers the seeds'.
#[derive(Clone, Default)]
pub struct Dialects(Vec<Arc<dyn Dialect>>);

impl Dialects {
    /// Registers one more dialect.
    pub fn with(mut self, dialect: impl Dialect) -> Dialects {
        assert!(
            self.by_name(dialect.name()).is_none(),
            "dialect {} registered twice",
            dialect.name()
        );
        self.0.push(Arc::new(dialect));
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn Dialect> {
        self.0.iter().map(|d| d.as_ref())
    }

    pub fn by_name(&self, name: &str) -> Option<&dyn Dialect> {
        self.iter().find(|d| d.name() == name)
    }

    /// The dialect whose path this is, if any.
    pub fn owner_of(&self, path: &str) -> Option<&dyn Dialect> {
        self.iter().find(|d| d.owns_path(path))
    }

    /// The dialect whose path this is, else the first registered.
    pub fn for_path(&self, path: &str) -> &dyn Dialect {
        self.owner_of(path)
            .or_else(|| self.iter().next())
            .expect("a gateway speaks at least one dialect")
    }
}

/// The request body as text, within the size limit.
pub fn body_text(body: &Result<Bytes, ApiError>) -> Result<&str, ApiError> {
    let bytes = body.as_ref().map_err(Clone::clone)?;
    std::str::from_utf8(bytes)
        .map_err(|_| ApiError::new(ErrorKind::MalformedJson, "the body is not UTF-8"))
}

/// Reads the body, finds the app, verifies its signature, applies its request budget and the
/// dialect's checks of the app.
pub async fn authenticate<'a>(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    incoming: &'a Incoming,
) -> Result<Authenticated<'a>, ApiError> {
    let object = parse_signed_object(body_text(&incoming.body)?)?;
    if let Some((field, key)) = ambiguous_split(&object, dialect.words().fields) {
        return Err(ApiError::ambiguous(&field, &key));
    }
    let (app_id, sign) = dialect.identify_app(gateway, incoming, &object).await?;
    let app = verified_app(gateway, dialect, app_id, &object.canonical, &sign).await?;
    dialect.check_app(&app, incoming)?;
    Ok(Authenticated { app, object })
}

/// The app whose registered key verifies `sign` over `canonical`. An unknown app is answered
/// exactly like a wrong signature — same code, message and work (its request is checked
/// against a decoy key) — so that app ids cannot be probed without a merchant's key.
async fn verified_app(
    gateway: &Gateway,
    dialect: &dyn Dialect,
    app_id: AppId,
    canonical: &str,
    sign: &str,
) -> Result<Arc<App>, ApiError> {
    let words = dialect.words();
    let app = gateway.apps.get(gateway.store.as_ref(), app_id).await?;
    let registered = match &app {
        Some(app) => Some(
            gateway
                .merchant_keys
                .for_app(app)
                .map_err(|e| {
                    tracing::error!(app_id = app_id.0, error = %e, "registered public key unusable");
                    ApiError::no_key(words, app_id)
                })?
                .ok_or_else(|| ApiError::no_key(words, app_id))?,
        ),
        None => None,
    };
    let key: &kassa_signature::VerifyingKey = match registered.as_deref() {
        Some(key) => key,
        None => crate::keys::decoy_key(),
    };
    let verified = key.verify_base64(canonical.as_bytes(), sign);
    let app = match (verified, app) {
        (Ok(()), Some(app)) => app,
        (Err(e @ (VerifyError::MissingSign | VerifyError::Base64)), _) => {
            telemetry::verified("malformed");
            return Err(ApiError::signature(words, e));
        }
        _ => {
            telemetry::verified("wrong");
            return Err(ApiError::wrong_sign(words, app_id));
        }
    };
    telemetry::verified("ok");
    let per_s = gateway.config.app_rate_limit_per_s;
    if per_s > 0 {
        gateway
            .app_rates
            .admit(app_id, per_s, now_ms())
            .map_err(|wait| {
                telemetry::rate_limited(dialect.name());
                ApiError::rate_limited(wait)
            })?;
    }
    Ok(app)
}

/// A callback or redirect URL field: required or not, an absolute http(s) URL of `max_chars`.
pub fn url_field(
    fields: &Fields,
    name: &'static str,
    max_chars: usize,
    required: bool,
) -> Result<Option<String>, FieldError> {
    let value = if required {
        Some(fields.required(name, max_chars)?)
    } else {
        fields.optional(name, max_chars)?
    };
    if let Some(value) = &value {
        kassa_core::validate::http_url(name, value)?;
    }
    Ok(value)
}

/// The longest `language` accepted (a BCP 47 tag such as `pt-BR`; longer tags are refused).
pub const MAX_LANGUAGE_CHARS: usize = 35;

/// kassa's optional `language` of a new order: the payer pages' language. A well-formed tag
/// of a language kassa does not speak is taken and ignored (the pages fall back); a malformed
/// one is refused.
pub fn language_field(fields: &Fields) -> Result<Option<kassa_core::Locale>, FieldError> {
    let Some(tag) = fields.optional("language", MAX_LANGUAGE_CHARS)? else {
        return Ok(None);
    };
    let well_formed = tag.split(['-', '_']).all(|part| {
        (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !well_formed {
        return Err(FieldError::invalid(
            "language",
            "must be a language tag such as pt-BR, nl or de",
        ));
    }
    Ok(kassa_core::Locale::from_tag(&tag))
}

/// Refuses callback and redirect targets on ports outside the operator's allowlist, and on
/// private, loopback and similar addresses (SSRF) unless the operator allowed them.
async fn check_targets(gateway: &Gateway, words: &Words, new: &NewOrder) -> Result<(), ApiError> {
    let targets = [
        (words.success_url, &new.callback_url),
        (words.fail_url, &new.callback_fail_url),
        (words.notify_url, &new.notify_url),
    ];
    let forbidden = |field: &str, why: String| {
        ApiError::new(ErrorKind::ForbiddenTarget, format!("{field} {why}"))
    };
    for (field, target) in targets {
        let Some(target) = target else { continue };
        let url = url::Url::parse(target).map_err(|e| FieldError::invalid(field, e.to_string()))?;
        crate::ssrf::check_port(&url, &gateway.config.allowed_target_ports)
            .map_err(|why| forbidden(field, why))?;
        if !gateway.config.allow_private_targets {
            let verdict = gateway.targets.check(&url).await;
            verdict.map_err(|why| forbidden(field, why))?;
        }
    }
    Ok(())
}

/// The signed reply an order was created with, for an identical retry; a duplicate error if
/// the order id came with other parameters.
fn replay(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    existing: &Order,
    fingerprint: &str,
) -> Result<Signed, ApiError> {
    if existing.request_fingerprint != fingerprint {
        return Err(ApiError::duplicate(
            dialect.words(),
            &existing.merchant_order_id,
            &existing.order_no,
        ));
    }
    Ok(Signed::replayed(
        &existing.create_reply,
        dialect.signature(),
        &gateway.notary,
    ))
}

/// A create request of any dialect, from the body to the signed reply.
pub async fn create(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    incoming: &Incoming,
) -> Result<Signed, ApiError> {
    let Authenticated { app, object } = authenticate(dialect, gateway, incoming).await?;
    let fields = Fields::new(&object.fields);
    let merchant_order_id = dialect.merchant_order_id(&fields)?;
    // The signed canonical string covers every parameter: equal strings, equal requests.
    let fingerprint = digest_hex(object.canonical.as_bytes());
    match prepare(
        dialect,
        gateway,
        &app,
        &fields,
        &merchant_order_id,
        &fingerprint,
    )
    .await
    {
        // The insert finds an earlier order with this id by itself (and replays or refuses).
        Ok((order, opened)) => insert_new_order(dialect, gateway, &app, order, opened).await,
        // A retry gets its original answer even if limits or rules changed since.
        Err(refusal) => match gateway
            .store
            .order_by_merchant_order_id(app.app_id, &merchant_order_id)
            .await?
        {
            Some(existing) => replay(dialect, gateway, &existing, &fingerprint),
            None => Err(refusal),
        },
    }
}

/// A new order, checked by the dialect's syntax, the targets rule and the core's rules, routed
/// to a rail and opened there (true if the rail opened it elsewhere: its number must stay).
async fn prepare(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    app: &App,
    fields: &Fields<'_>,
    merchant_order_id: &str,
    fingerprint: &str,
) -> Result<(Order, bool), ApiError> {
    let mut new = dialect.new_order(app, fields, merchant_order_id.to_string())?;
    new.request_fingerprint = fingerprint.to_string();
    new.dialect = dialect.name();
    check_targets(gateway, dialect.words(), &new).await?;
    let lifetime_ms = dialect.order_lifetime_ms(&gateway.config);
    let now = now_ms();
    let mut order = Order::create(app, new, ids::new_order_ids(now), now, lifetime_ms)
        .map_err(|e| ApiError::order(dialect.words(), e))?;
    let (rail, channel) = gateway.rails.route(&order).map_err(|e| {
        tracing::warn!(error = %e, "no rail takes the order");
        ApiError::new(
            ErrorKind::Unavailable,
            "no payment rail is available; retry later",
        )
    })?;
    order.route_to(rail.name(), &channel);
    let opened = gateway.rails.open(&mut order).await.map_err(|e| {
        tracing::warn!(error = %e, "the rail could not open the order");
        ApiError::new(
            ErrorKind::Unavailable,
            "the payment rail did not answer; retry later with the same request",
        )
    })?;
    dialect.check_opened(app, &order)?;
    Ok((order, opened))
}

/// Stores a new order with its signed reply, drawing a new number on the rare collision; a
/// concurrent identical request gets the same reply.
async fn insert_new_order(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    app: &App,
    mut order: Order,
    opened: bool,
) -> Result<Signed, ApiError> {
    for _ in 0..ORDER_NO_ATTEMPTS {
        let data = dialect.created(gateway, app, &mut order);
        order.create_reply = Signed::unsigned_stored(&data);
        // The reply, most of a create's work, is signed while the insert commits: on
        // PostgreSQL that is a round trip to another process (docs/performance.md). A retry
        // of a stored order spends this signature and makes the replay's: two, not one.
        let sign = || gateway.notary.sign_as(dialect.signature(), data);
        let (inserted, reply) = while_waiting(gateway.store.insert_order(&order), sign).await;
        match inserted {
            Ok(InsertOutcome::Inserted) => {
                telemetry::order_created(dialect.name(), order.currency, order.method.code);
                tracing::info!(
                    app_id = order.app_id.0,
                    order_no = %order.order_no,
                    amount = %order.amount_minor,
                    currency = %order.currency,
                    method = order.method.code,
                    dialect = dialect.name(),
                    rail = %order.rail,
                    "order created"
                );
                return Ok(reply);
            }
            Ok(InsertOutcome::Existing(existing)) => {
                return replay(dialect, gateway, &existing, &order.request_fingerprint);
            }
            // An order opened at an upstream keeps its number (the upstream knows it by it):
            // the merchant's retry draws a new one.
            Err(StoreError::OrderNoTaken) if opened => break,
            Err(StoreError::OrderNoTaken) => {
                order.pix_code = None;
                let fresh = ids::new_order_ids(order.created_at_ms);
                order.order_no = fresh.order_no;
                order.cashier_token = fresh.cashier_token;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        ErrorKind::Internal,
        "could not draw a free order number",
    ))
}

/// Runs `work` on this task's thread while `call` waits, typically on the store: `call` is
/// polled once first, so that its statement is sent (or queued for a batch) before the work
/// starts. A timing taken inside `call` that is still pending then includes `work`'s time.
///
/// While `call` waits, the task yields once before the work: under load the requests that
/// arrived meanwhile then verify and queue their inserts first, and join the batch this one
/// waits in, instead of queueing behind a signature (most of a create's CPU) and missing it.
/// Bigger batches, fewer commits per create (docs/performance.md, "A create yields before its
/// signature").
async fn while_waiting<F: Future, T>(call: F, work: impl FnOnce() -> T) -> (F::Output, T) {
    let mut call = std::pin::pin!(call);
    let early = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    if early.is_pending() {
        tokio::task::yield_now().await;
    }
    let worked = work();
    let output = match early {
        Poll::Ready(output) => output,
        Poll::Pending => call.await,
    };
    (output, worked)
}

/// A query's signed reply for the order `version` names: the kept reply while the order is at
/// that version, else its state signed from the whole order, read by its number (see
/// [`state_reply`]). `not_found` answers for an order gone between the two reads (one pruned
/// from the archive at that moment).
pub async fn query_reply(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    version: &OrderVersion,
    not_found: impl FnOnce() -> ApiError,
    data: impl FnOnce(&Order) -> Map<String, Value>,
) -> Result<Signed, ApiError> {
    if let Some(stored) = gateway.replies.current(version) {
        let signature = dialect.signature();
        return Ok(Signed::from_stored(stored, signature, &gateway.notary));
    }
    let order = gateway.store.order_by_no(&version.order_no).await?;
    let order = order.ok_or_else(not_found)?;
    Ok(state_reply(dialect, gateway, &order, || data(&order)))
}

/// The signed reply for an order's current state. A state is signed once: replies whose data
/// has not changed come from the reply cache.
pub fn state_reply(
    dialect: &dyn Dialect,
    gateway: &Gateway,
    order: &Order,
    data: impl FnOnce() -> Map<String, Value>,
) -> Signed {
    let stored = gateway.replies.get_or_render(order, || {
        gateway
            .notary
            .sign_as(dialect.signature(), data())
            .to_stored()
    });
    Signed::from_stored(stored, dialect.signature(), &gateway.notary)
}

/// A success body: the dialect's envelope opened by `opening`, the reply's data as its last
/// field, and the closing brace, written into one buffer of the right size (a reply can be
/// kilobytes, and `format!` grows its buffer as it goes).
pub fn success_body(opening: &str, data: &str) -> String {
    let mut body = String::with_capacity(opening.len() + data.len() + 1);
    body.push_str(opening);
    body.push_str(data);
    body.push('}');
    body
}

/// A handler's answer in the dialect's envelopes.
pub fn respond(dialect: &dyn Dialect, reply: Result<Signed, ApiError>) -> Response {
    match reply {
        Ok(signed) => dialect.success_response(&signed),
        Err(error) => dialect.error_response(error),
    }
}

/// Every path no route takes: "no such endpoint" in the envelope of the dialect the path
/// looks like (the first dialect's for paths of nobody).
pub async fn unknown_endpoint(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
) -> Response {
    let path: String = uri.path().chars().take(100).collect();
    gateway
        .dialects
        .for_path(uri.path())
        .error_response(ApiError::new(
            ErrorKind::UnknownEndpoint,
            format!("no endpoint {method} {path}"),
        ))
}

/// A known path asked with a method it does not take (a GET of an API endpoint): the dialect's
/// envelope with 405 and `Allow`; other paths (the payer's pages) get a plain 405.
pub async fn wrong_method(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
) -> Response {
    use axum::response::IntoResponse;
    let path: String = uri.path().chars().take(100).collect();
    let Some(dialect) = gateway.dialects.owner_of(uri.path()) else {
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
    };
    let mut response = dialect.error_response(ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{path} takes POST, not {method}"),
    ));
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST"),
    );
    response
}

/// An error answer: the envelope as JSON, with `Retry-After` when the client should wait.
pub fn error_response(
    status: StatusCode,
    envelope: impl serde::Serialize,
    retry_after_s: Option<u64>,
) -> Response {
    use axum::response::IntoResponse;
    let mut response = (status, axum::Json(envelope)).into_response();
    if let Some(wait_s) = retry_after_s {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, wait_s.into());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Pending at its first poll (waking itself), then ready with the number of its polls.
    struct SecondPoll<'a>(&'a AtomicUsize);

    impl Future for SecondPoll<'_> {
        type Output = usize;

        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<usize> {
            let polls = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            if polls == 1 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(polls)
        }
    }

    #[tokio::test]
    async fn the_work_runs_after_the_call_has_started() {
        let polls = AtomicUsize::new(0);
        let seen_by_work = || polls.load(Ordering::SeqCst);
        let (output, seen) = while_waiting(SecondPoll(&polls), seen_by_work).await;
        assert_eq!(seen, 1, "the call was polled once before the work");
        assert_eq!(output, 2, "and finished after it");
        let (output, worked) = while_waiting(std::future::ready(7), || "done").await;
        assert_eq!((output, worked), (7, "done"));
    }

    /// A task made ready before the work (a request that arrived meanwhile) runs before it
    /// while the call waits; one thread, so nothing else could run it.
    #[tokio::test(flavor = "current_thread")]
    async fn tasks_ready_meanwhile_run_before_the_work() {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = tokio::spawn({
            let ran = ran.clone();
            async move { ran.store(true, Ordering::SeqCst) }
        });
        let polls = AtomicUsize::new(0);
        let ran_before_work = || ran.load(Ordering::SeqCst);
        let (_, seen) = while_waiting(SecondPoll(&polls), ran_before_work).await;
        assert!(seen, "the other task ran before the work");
        other.await.unwrap();
    }
}
