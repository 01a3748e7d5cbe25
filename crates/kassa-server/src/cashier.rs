//! The payer's pages behind `payUrl`.
//!
//! `GET /pay/{token}` shows what the order's state calls for: the method list (cashier mode,
//! not started), the method's page (the sandbox bank's outcome form), the result (final), or a
//! "being confirmed" page (exception). `POST /pay/{token}/method` records the payer's pick;
//! `POST /pay/{token}/outcome` takes the sandbox bank's answer. A final order never takes
//! another outcome: a second submission just sees the result.
//!
//! Pages are addressed by an unguessable token, never by order number; forms carry an HMAC of
//! that token (CSRF) and cross-site posts are refused; every text is escaped by the templates;
//! nothing is loaded from elsewhere (strict CSP).

use crate::lifecycle::LifecycleError;
use crate::payer_text::Texts;
use crate::rails::{ManualOutcome, RailError, RailStart};
use crate::{Gateway, ServerConfig, ids, now_ms};
use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use kassa_core::{AmountMinor, Locale, Order, OrderEvent, OrderStatus, PaymentMethod};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// The payer's page of an order: `payUrl` of `collect`, `url` of `pix`.
pub fn pay_url(config: &ServerConfig, order: &Order) -> String {
    format!("{}/pay/{}", config.public_url, order.cashier_token)
}

/// Only kassa's own script (the PIX page's) and its own status endpoint; inline styles.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
    style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The payer's routes.
pub fn routes() -> axum::Router<Arc<Gateway>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/pay/{token}", get(serve_page))
        .route("/pay/{token}/method", post(choose_method))
        .route("/pay/{token}/outcome", post(submit_outcome))
        .route("/pay/{token}/cancel", post(cancel))
        .route("/pay/{token}/status", get(status))
        .route("/pay/{token}/qr.png", get(qr_png))
        .route("/assets/pix.js", get(pix_script))
        .route("/assets/logo/{app_id}/{version}", get(logo))
}

/// What every page shows about the order.
struct Summary {
    merchant: String,
    /// The amount as the payer's locale writes it (`R$ 12,34`).
    money: String,
    /// The amount as digits (`12.34`), for the sandbox bank's form.
    amount: String,
    order_id: String,
    subject: Option<String>,
    /// Until when the order can be paid, while it can.
    deadline: Option<Deadline>,
    /// The merchant's colour (`#rrggbb`, checked when set), else kassa's.
    accent: Option<String>,
    /// Where the merchant's logo is, if it has one (kassa serves it).
    logo_url: Option<String>,
}

/// An order's deadline: as text in the payer's locale and the operator's zone (readable
/// without JavaScript), and as RFC 3339 for the PIX page's countdown.
struct Deadline {
    text: String,
    rfc3339: String,
}

impl Deadline {
    fn of(order: &Order, speech: Speech, zone: &jiff::tz::TimeZone) -> Option<Deadline> {
        if order.status.is_final() {
            return None;
        }
        let at = jiff::Timestamp::from_millisecond(order.expires_at_ms).ok()?;
        let local = at.to_zoned(zone.clone());
        let when = speech.locale.date_time(
            local.year(),
            local.month(),
            local.day(),
            local.hour(),
            local.minute(),
        );
        Some(Deadline {
            text: format!("{when} ({})", local.strftime("UTC%:z")),
            rfc3339: at.to_string(),
        })
    }
}

/// The payer's language: the texts of the pages and the `lang` of the document.
#[derive(Clone, Copy)]
struct Speech {
    t: &'static Texts,
    locale: Locale,
}

impl Speech {
    fn new(locale: Locale) -> Speech {
        Speech {
            t: Texts::of(locale),
            locale,
        }
    }

    /// For a page without an order: the browser's language, else English.
    fn of_browser(headers: &HeaderMap) -> Speech {
        let locale = accept_language(headers).and_then(Locale::from_accept_language);
        Speech::new(locale.unwrap_or(Locale::En))
    }

    /// For an order's page: the merchant's `language`, else the browser's, else the order's
    /// country's (or its method's, or Brazil's for BRL), else English.
    fn of_order(headers: &HeaderMap, order: &Order) -> Speech {
        let country = (order.country.as_deref()).or(order.paying_method().country);
        Speech::new(Locale::negotiate(
            order.language.map(Locale::tag),
            accept_language(headers),
            country,
            order.currency,
        ))
    }

    fn lang(&self) -> &'static str {
        self.locale.tag()
    }
}

fn accept_language(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

#[derive(Template)]
#[template(path = "cashier/methods.html")]
struct MethodsPage {
    speech: Speech,
    title: &'static str,
    summary: Summary,
    token: String,
    csrf: String,
    methods: Vec<MethodChoice>,
    may_cancel: bool,
}

#[derive(Template)]
#[template(path = "cashier/cancel.html")]
struct CancelPage {
    speech: Speech,
    title: &'static str,
    summary: Summary,
    token: String,
    csrf: String,
}

/// A method as the method list shows it: its name beside a mark kassa draws itself (initials
/// on the brand's colour; no third-party image is loaded).
struct MethodChoice {
    code: &'static str,
    name: &'static str,
    initials: &'static str,
    /// The CSS class of the mark's colour (`mark-ideal`).
    family: &'static str,
}

impl MethodChoice {
    fn of(method: &'static PaymentMethod) -> MethodChoice {
        let (initials, family) = match method.code.split('_').next().unwrap_or_default() {
            "IDEAL" => ("iD", "ideal"),
            "BANCONTACT" => ("BC", "bancontact"),
            "EPS" => ("eps", "eps"),
            "PRZELEWY24" => ("P24", "p24"),
            "BLIK" => ("BLIK", "blik"),
            "BANCOMATPAY" => ("BP", "bancomat"),
            "GOOGLE" => ("G", "google"),
            "APPLE" => ("A", "apple"),
            "PIX" => ("pix", "pix"),
            _ => ("•", "other"),
        };
        MethodChoice {
            code: method.code,
            name: method.display_name,
            initials,
            family,
        }
    }
}

#[derive(Template)]
#[template(path = "cashier/method.html")]
struct MethodPage {
    speech: Speech,
    title: &'static str,
    summary: Summary,
    token: String,
    csrf: String,
    method_name: &'static str,
    outcomes: Vec<(&'static str, &'static str)>,
    may_cancel: bool,
    may_switch: bool,
}

#[derive(Template)]
#[template(path = "cashier/result.html")]
struct ResultPage {
    speech: Speech,
    title: &'static str,
    summary: Summary,
    paid: bool,
    reason: Option<String>,
    return_url: Option<String>,
    redirect: bool,
}

#[derive(Template)]
#[template(path = "cashier/pix.html")]
struct PixPage {
    speech: Speech,
    title: &'static str,
    summary: Summary,
    token: String,
    csrf: String,
    state: &'static str,
    qr_svg: String,
    pix_code: String,
    /// Who receives the payment, as the code names them (the payer's bank shows the same).
    recipient: Option<String>,
    outcomes: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "cashier/handoff.html")]
struct HandoffPage {
    speech: Speech,
    title: &'static str,
    url: String,
}

#[derive(Template)]
#[template(path = "cashier/pending.html")]
struct PendingPage {
    speech: Speech,
    title: &'static str,
    summary: Summary,
    /// Look again now and then: the rail's word is expected (not so for an exception, which
    /// waits for the operator).
    refresh: bool,
}

#[derive(Template)]
#[template(path = "cashier/message.html")]
struct MessagePage {
    speech: Speech,
    title: &'static str,
    message: &'static str,
}

fn html(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                // Same-origin: the shop never sees the page token; our own forms keep their Origin.
                (header::REFERRER_POLICY, "same-origin"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a cashier page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn message(
    status: StatusCode,
    speech: Speech,
    title: &'static str,
    message: &'static str,
) -> Response {
    html(
        status,
        MessagePage {
            speech,
            title,
            message,
        },
    )
}

fn not_found(speech: Speech) -> Response {
    let t = speech.t;
    message(
        StatusCode::NOT_FOUND,
        speech,
        t.not_found_title,
        t.not_found_body,
    )
}

fn unavailable(speech: Speech) -> Response {
    let t = speech.t;
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        speech,
        t.unavailable_title,
        t.unavailable_body,
    )
}

/// Whether a path is one of the payer's (pages, forms, their assets).
pub fn owns_path(path: &str) -> bool {
    path.starts_with("/pay/") || path.starts_with("/assets/")
}

/// The payer's "try again" page for an overloaded server, with `Retry-After`, in the
/// browser's language.
pub fn unavailable_page(accept_language: Option<&str>, retry_after_s: u64) -> Response {
    let locale = accept_language.and_then(Locale::from_accept_language);
    let mut response = unavailable(Speech::new(locale.unwrap_or(Locale::En)));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after_s.into());
    response
}

/// The order behind a page token, or the response to give instead.
async fn order_for(gateway: &Gateway, token: &str, headers: &HeaderMap) -> Result<Order, Response> {
    if !ids::is_cashier_token(token) {
        return Err(not_found(Speech::of_browser(headers)));
    }
    match gateway.store.order_by_cashier_token(token).await {
        Ok(Some(order)) => Ok(order),
        Ok(None) => Err(not_found(Speech::of_browser(headers))),
        Err(e) => {
            tracing::error!(error = %e, "cashier: store error");
            Err(unavailable(Speech::of_browser(headers)))
        }
    }
}

async fn summary(gateway: &Gateway, order: &Order, speech: Speech) -> Summary {
    let merchant = match gateway.store.merchant_of_app(order.app_id).await {
        Ok(Some(merchant)) => merchant.name,
        _ => speech.t.the_shop.into(),
    };
    let app = gateway
        .apps
        .get(gateway.store.as_ref(), order.app_id)
        .await
        .ok()
        .flatten();
    Summary {
        merchant,
        money: speech.locale.money(order.amount_minor, order.currency),
        amount: order.amount_minor.to_decimal_string(),
        order_id: order.merchant_order_id.clone(),
        subject: order.subject.clone(),
        deadline: Deadline::of(order, speech, gateway.notary.timezone()),
        accent: app
            .as_ref()
            .and_then(|app| app.brand_colour.as_ref())
            .map(|c| c.as_str().to_string()),
        logo_url: app.as_ref().and_then(|app| {
            let version = app.logo_version?;
            Some(format!("/assets/logo/{}/{version}", app.app_id))
        }),
    }
}

pub async fn serve_page(
    State(gateway): State<Arc<Gateway>>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    // `?done=1` follows an outcome: the result page then sends the payer back by itself.
    // `?cancel=1` asks the payer to confirm going back to the shop.
    let redirect = query.as_deref() == Some("done=1");
    let cancelling = query.as_deref() == Some("cancel=1");
    // `?methods=1`: back to the method list of a started cashier order.
    let switching = query.as_deref() == Some("methods=1");
    let mut order = match order_for(&gateway, &token, &headers).await {
        Ok(order) => order,
        Err(response) => return response,
    };
    // Time ran out but the sweep has not come by yet: expire it now (unless its rail reports
    // the outcome itself: an upstream may have been paid in time).
    if order.is_overdue(now_ms())
        && !gateway.rails.reports_outcomes(&order)
        && let Ok(expired) = gateway
            .change_order(&order.order_no, &OrderEvent::Expired)
            .await
    {
        order = expired;
    }
    let speech = Speech::of_order(&headers, &order);
    if order.starts_on_view() {
        match start(&gateway, &order.order_no, order.method, speech).await {
            Ok(Started::Here(started)) => order = *started,
            Ok(Started::Elsewhere(url)) => return Redirect::to(&url).into_response(),
            Err(response) => return response,
        }
    }
    if cancelling && may_cancel(&gateway, &order) {
        return html(
            StatusCode::OK,
            CancelPage {
                speech,
                title: speech.t.cancel_question,
                csrf: gateway.form_key.token_for(&token),
                token,
                summary: summary(&gateway, &order, speech).await,
            },
        );
    }
    if switching && may_switch(&gateway, &order) {
        let summary = summary(&gateway, &order, speech).await;
        return methods_page(&gateway, &token, &order, speech, summary);
    }
    render(&gateway, &token, order, redirect, speech).await
}

/// Whether a started cashier order may go back to its method list: only where its bank page
/// is kassa's own, so that nothing was started elsewhere.
fn may_switch(gateway: &Gateway, order: &Order) -> bool {
    order.method.is_cashier()
        && order.status == OrderStatus::InProgress
        && order.pix_code.is_none()
        && !manual_outcomes(gateway, order).is_empty()
}

fn methods_page(
    gateway: &Gateway,
    token: &str,
    order: &Order,
    speech: Speech,
    summary: Summary,
) -> Response {
    html(
        StatusCode::OK,
        MethodsPage {
            speech,
            title: speech.t.choose_method,
            csrf: gateway.form_key.token_for(token),
            token: token.to_string(),
            methods: (gateway.rails.payable_methods(order).into_iter())
                .map(MethodChoice::of)
                .collect(),
            may_cancel: may_cancel(gateway, order),
            summary,
        },
    )
}

/// Whether the payer may give up and go back to the shop: while nothing can be paid any more
/// without kassa knowing — not yet started, or started on a page of kassa's own. Not once an
/// upstream holds the payment, and never for PIX, whose code stays payable at the bank.
fn may_cancel(gateway: &Gateway, order: &Order) -> bool {
    match order.status {
        OrderStatus::Created => order.pix_code.is_none(),
        OrderStatus::InProgress => {
            order.pix_code.is_none() && !manual_outcomes(gateway, order).is_empty()
        }
        _ => false,
    }
}

/// The sandbox bank's answers with their labels in the payer's language.
fn outcomes_in(
    gateway: &Gateway,
    order: &Order,
    speech: Speech,
) -> Vec<(&'static str, &'static str)> {
    manual_outcomes(gateway, order)
        .iter()
        .map(|(value, _)| (*value, speech.t.outcome(value)))
        .collect()
}

async fn render(
    gateway: &Gateway,
    token: &str,
    order: Order,
    redirect: bool,
    speech: Speech,
) -> Response {
    let summary = summary(gateway, &order, speech).await;
    let t = speech.t;
    match order.status {
        OrderStatus::Succeeded | OrderStatus::Failed => html(
            StatusCode::OK,
            ResultPage {
                speech,
                title: if order.status == OrderStatus::Succeeded {
                    t.paid
                } else {
                    t.not_paid
                },
                paid: order.status == OrderStatus::Succeeded,
                reason: order.error_msg.clone(),
                return_url: order.return_url().map(str::to_string),
                redirect,
                summary,
            },
        ),
        OrderStatus::Exception => html(
            StatusCode::OK,
            PendingPage {
                speech,
                title: t.confirming,
                summary,
                refresh: false,
            },
        ),
        OrderStatus::Created => methods_page(gateway, token, &order, speech, summary),
        OrderStatus::InProgress if order.pix_code.is_some() => {
            let pix_code = order.pix_code.clone().unwrap_or_default();
            html(
                StatusCode::OK,
                PixPage {
                    speech,
                    title: t.pay_with_pix,
                    csrf: gateway.form_key.token_for(token),
                    token: token.to_string(),
                    state: order.status.as_str(),
                    qr_svg: crate::qr::svg(&pix_code),
                    recipient: kassa_core::brcode::decode(&pix_code)
                        .ok()
                        .and_then(|code| code.text(&[59]).map(str::to_string)),
                    pix_code,
                    outcomes: outcomes_in(gateway, &order, speech),
                    summary,
                },
            )
        }
        // Paid elsewhere (an upstream's page): kassa waits for the rail's word.
        OrderStatus::InProgress if manual_outcomes(gateway, &order).is_empty() => html(
            StatusCode::OK,
            PendingPage {
                speech,
                title: t.confirming,
                summary,
                refresh: true,
            },
        ),
        OrderStatus::InProgress => html(
            StatusCode::OK,
            MethodPage {
                speech,
                title: order.paying_method().display_name,
                method_name: order.paying_method().display_name,
                csrf: gateway.form_key.token_for(token),
                token: token.to_string(),
                outcomes: outcomes_in(gateway, &order, speech),
                may_cancel: may_cancel(gateway, &order),
                may_switch: may_switch(gateway, &order),
                summary,
            },
        ),
    }
}

/// The outcomes the order's rail lets the payer report on its page (the sandbox bank's).
fn manual_outcomes(gateway: &Gateway, order: &Order) -> &'static [ManualOutcome] {
    gateway
        .rails
        .of(order)
        .map(|rail| rail.manual_outcomes())
        .unwrap_or_default()
}

/// Starts paying with `method`: the rail is asked first, then the order moves to in progress.
/// Where the payer goes once a payment has started.
enum Started {
    /// kassa's own page of the order.
    Here(Box<Order>),
    /// The rail's page elsewhere (an upstream PSP's).
    Elsewhere(String),
}

async fn start(
    gateway: &Gateway,
    order_no: &kassa_core::OrderNo,
    method: &'static PaymentMethod,
    speech: Speech,
) -> Result<Started, Response> {
    // A started order here is one going back to its list (the caller checked it may).
    let started = gateway
        .change(order_no, |order| {
            Ok(match order.status {
                OrderStatus::InProgress => order.switch_method(method, now_ms()),
                _ => order.choose_method(method, now_ms()),
            }?)
        })
        .await;
    match started {
        Ok(order) => match gateway.rails.start(&order, method).await {
            Ok(RailStart::OwnPage) => Ok(Started::Here(Box::new(order))),
            Ok(RailStart::Redirect(url)) => Ok(Started::Elsewhere(url)),
            // The rail may hold the payment: the page says it is being confirmed.
            Err(RailError::Pending(why)) => {
                tracing::warn!(order_no = %order.order_no, why, "payment start pending at the rail");
                Ok(Started::Here(Box::new(order)))
            }
            Err(e @ RailError::NotRunning(_)) => {
                tracing::warn!(order_no = %order.order_no, error = %e, "rail not running here");
                Err(unavailable(speech))
            }
            // No channel took it: the order fails, and the merchant hears so.
            Err(e) => {
                tracing::warn!(order_no = %order.order_no, error = %e, "rail refused to start");
                let failed = kassa_core::RailOutcome::Failed {
                    reason: "no payment channel could take the payment".into(),
                };
                (gateway.settle_from_rail(&order.order_no, &failed).await)
                    .map(|order| Started::Here(Box::new(order)))
                    .map_err(|_| unavailable(speech))
            }
        },
        // Someone else started or settled it meanwhile: show what is there now.
        Err(
            LifecycleError::Refused(_) | LifecycleError::Illegal(_) | LifecycleError::Expired(_),
        ) => gateway
            .store
            .order_by_no(order_no)
            .await
            .ok()
            .flatten()
            .map(|order| Started::Here(Box::new(order)))
            .ok_or_else(|| not_found(speech)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start a payment");
            Err(unavailable(speech))
        }
    }
}

/// Refuses posts from other sites, as far as the browser tells: `Sec-Fetch-Site` where it is
/// sent, else `Origin`. (The form token is the real defence; this is a second one.)
fn same_origin(gateway: &Gateway, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => url::Url::parse(&gateway.config.public_url)
            .is_ok_and(|public| public.origin().ascii_serialization() == origin),
    }
}

fn forbidden(speech: Speech) -> Response {
    let t = speech.t;
    message(StatusCode::FORBIDDEN, speech, t.start_again, t.form_expired)
}

fn back_to_page(token: &str, done: bool) -> Response {
    let suffix = if done { "?done=1" } else { "" };
    Redirect::to(&format!("../{token}{suffix}")).into_response()
}

/// A payer's form: it carries the page's form token.
trait PayerForm {
    fn csrf(&self) -> &str;
}

/// What every post of the payer's pages checks first: the page exists, the form is complete,
/// it carries this page's form token, and it did not come from another site.
async fn checked_post<F: PayerForm>(
    gateway: &Gateway,
    token: &str,
    headers: &HeaderMap,
    form: Result<Form<F>, FormRejection>,
) -> Result<(Order, F, Speech), Response> {
    let order = order_for(gateway, token, headers).await?;
    let speech = Speech::of_order(headers, &order);
    let t = speech.t;
    let Ok(Form(form)) = form else {
        return Err(message(
            StatusCode::BAD_REQUEST,
            speech,
            t.start_again,
            t.form_incomplete,
        ));
    };
    if !same_origin(gateway, headers) || !gateway.form_key.verify(token, form.csrf()) {
        return Err(forbidden(speech));
    }
    Ok((order, form, speech))
}

/// The longest a page's status request waits for a change: well inside the request timeout,
/// and short enough for proxies that cut idle requests.
const MAX_STATUS_WAIT_MS: u64 = 20_000;

/// Whether a request is a page waiting for its order to change (`/pay/{token}/status?wait=…`).
pub fn is_status_wait(uri: &axum::http::Uri) -> bool {
    uri.path().starts_with("/pay/")
        && uri.path().ends_with("/status")
        && uri.query().is_some_and(|q| q.starts_with("wait="))
}

/// `GET /pay/{token}/status`: where the order stands, for the PIX page. With `?wait=STATE`
/// (the state the page shows) the answer waits until the order leaves that state, or up to
/// 20 s: a long poll, which spares the database the pages' polling.
#[utoipa::path(
    get,
    path = "/pay/{token}/status",
    tag = "cashier",
    summary = "Where an order stands",
    params(
        ("token" = String, Path, description = "The page token of payUrl"),
        ("wait" = Option<CashierState>, Query, description = "The state the page shows: the answer waits until the order leaves it, up to 20 s (a long poll)"),
    ),
    responses(
        (status = 200, description = "The order's state.", body = CashierStatus),
        (status = 400, description = "`wait` is not a state, or another parameter was given.", body = CashierError),
        (status = 404, description = "No order has this token (an HTML page for the payer).", content_type = "text/html"),
        (status = 503, description = "The database is unavailable, or too many pages wait at once (an HTML page, with Retry-After).", content_type = "text/html"),
    )
)]
pub async fn status(
    State(gateway): State<Arc<Gateway>>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut order = match order_for(&gateway, &token, &headers).await {
        Ok(order) => order,
        Err(response) => return response,
    };
    let shown = match shown_state(query.as_deref()) {
        Ok(shown) => shown,
        Err(message) => {
            let body = axum::Json(serde_json::json!({ "error": message }));
            return (StatusCode::BAD_REQUEST, body).into_response();
        }
    };
    if shown == Some(order.status) && !order.status.is_final() {
        order = wait_for_change(&gateway, order).await;
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({
            "state": order.status.as_str(),
            "final": order.status.is_final(),
        })),
    )
        .into_response()
}

/// The state a page says it shows (`?wait=in_progress`), if it asks to wait; an error for an
/// unknown state or parameter.
fn shown_state(query: Option<&str>) -> Result<Option<OrderStatus>, String> {
    let mut shown = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "wait" || shown.is_some() {
            return Err(format!(
                "unknown or repeated parameter {name}; only wait is taken"
            ));
        }
        let state = OrderStatus::parse(&value).ok_or_else(|| {
            "wait must be one of created, in_progress, succeeded, failed, exception".to_string()
        })?;
        shown = Some(state);
    }
    Ok(shown)
}

/// The order once it changed, or as it is after the longest wait.
async fn wait_for_change(gateway: &Gateway, order: Order) -> Order {
    let watch = &gateway.status_watch;
    let Some(waiting) = watch.wait_on(&order.order_no, order.status, &gateway.store) else {
        return order;
    };
    let hold_ms = MAX_STATUS_WAIT_MS.min(gateway.config.request_timeout_ms / 2);
    let wake = waiting.wake.clone();
    let woken = wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let _ = tokio::time::timeout(std::time::Duration::from_millis(hold_ms), woken).await;
    drop(waiting);
    match gateway.store.order_by_no(&order.order_no).await {
        Ok(Some(now)) => now,
        _ => order,
    }
}

/// `GET /pay/{token}/qr.png`: the PIX order's QR code as a PNG, for merchants that embed it.
pub async fn qr_png(
    State(gateway): State<Arc<Gateway>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let order = match order_for(&gateway, &token, &headers).await {
        Ok(order) => order,
        Err(response) => return response,
    };
    let Some(code) = order.pix_code else {
        return not_found(Speech::of_browser(&headers));
    };
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        crate::qr::png(&code),
    )
        .into_response()
}

/// `GET /assets/pix.js`: the PIX page's script (copy button, status polling).
pub async fn pix_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/pix.js"),
    )
        .into_response()
}

/// `GET /assets/logo/{app_id}/{version}`: a merchant's logo, as checked when it was uploaded.
/// Its address changes with each new logo, so browsers may keep it for good; an old address
/// gets the current logo, briefly cached.
pub async fn logo(
    State(gateway): State<Arc<Gateway>>,
    Path((app_id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (Ok(app_id), Ok(version)) = (app_id.parse::<i64>(), version.parse::<i64>()) else {
        return not_found(Speech::of_browser(&headers));
    };
    let found = gateway.store.app_logo(kassa_core::AppId(app_id)).await;
    let (logo, current) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(Speech::of_browser(&headers)),
        Err(e) => {
            tracing::error!(error = %e, "cashier: store error");
            return unavailable(Speech::of_browser(&headers));
        }
    };
    let cache = match current == version {
        true => "public, max-age=31536000, immutable",
        false => "public, max-age=60",
    };
    (
        [
            (header::CONTENT_TYPE, logo.format.content_type()),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        logo.bytes,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub struct MethodForm {
    method: String,
    csrf: String,
}

pub async fn choose_method(
    State(gateway): State<Arc<Gateway>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<MethodForm>, FormRejection>,
) -> Response {
    let (order, form, speech) = match checked_post(&gateway, &token, &headers, form).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let t = speech.t;
    if order.status != OrderStatus::Created && !may_switch(&gateway, &order) {
        return back_to_page(&token, false);
    }
    let Some(method) =
        PaymentMethod::by_code(&form.method).filter(|m| order.offered_methods().contains(m))
    else {
        return message(
            StatusCode::BAD_REQUEST,
            speech,
            t.method_unavailable_title,
            t.method_unavailable_body,
        );
    };
    match start(&gateway, &order.order_no, method, speech).await {
        Ok(Started::Here(_)) => back_to_page(&token, false),
        // A page, not a redirect: browsers hold a form's redirect to another site to the
        // page's `form-action 'self'`.
        Ok(Started::Elsewhere(url)) => html(
            StatusCode::OK,
            HandoffPage {
                speech,
                title: t.continue_heading,
                url,
            },
        ),
        Err(response) => response,
    }
}

impl PayerForm for MethodForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(serde::Deserialize)]
pub struct OutcomeForm {
    outcome: String,
    amount: Option<String>,
    csrf: String,
}

impl PayerForm for OutcomeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn submit_outcome(
    State(gateway): State<Arc<Gateway>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<OutcomeForm>, FormRejection>,
) -> Response {
    let (order, form, speech) = match checked_post(&gateway, &token, &headers, form).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let t = speech.t;
    if order.method.is_cashier() && order.chosen_method.is_none() && !order.status.is_final() {
        return back_to_page(&token, false);
    }
    let received = match form
        .amount
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        Some(text) if form.outcome == "paid" => match AmountMinor::parse(text) {
            Ok(amount) => Some(amount),
            Err(_) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    speech,
                    t.amount_unclear_title,
                    t.amount_unclear_body,
                );
            }
        },
        _ => None,
    };
    let reported = gateway
        .rails
        .of(&order)
        .and_then(|rail| rail.manual_outcome(&order, &form.outcome, received));
    let outcome = match reported {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::info!(error = %e, "cashier: outcome refused");
            return message(
                StatusCode::BAD_REQUEST,
                speech,
                t.start_again,
                t.unknown_answer,
            );
        }
    };
    match gateway
        .change_order(&order.order_no, &outcome.event(order.amount_minor))
        .await
    {
        Ok(_) => back_to_page(&token, true),
        // Already settled (a double submission, or another tab), or its time ran out: the page
        // shows the result.
        Err(LifecycleError::Illegal(_) | LifecycleError::Expired(_)) => back_to_page(&token, false),
        Err(e) => {
            tracing::error!(error = %e, "cannot settle a payment");
            unavailable(speech)
        }
    }
}

#[derive(serde::Deserialize)]
pub struct CancelForm {
    csrf: String,
}

impl PayerForm for CancelForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /pay/{token}/cancel`: the payer gave up; the order fails ("cancelled by the payer"),
/// the merchant hears so, and the payer goes to the shop's failure page.
pub async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<CancelForm>, FormRejection>,
) -> Response {
    let (order, _, speech) = match checked_post(&gateway, &token, &headers, form).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    if !may_cancel(&gateway, &order) {
        return back_to_page(&token, false);
    }
    let event = OrderEvent::Failed {
        reason: "cancelled by the payer".into(),
    };
    match gateway.change_order(&order.order_no, &event).await {
        Ok(failed) => match failed.return_url() {
            Some(url) => Redirect::to(url).into_response(),
            None => back_to_page(&token, false),
        },
        // Settled meanwhile (another tab, the rail): the page shows what is so.
        Err(LifecycleError::Illegal(_) | LifecycleError::Expired(_)) => back_to_page(&token, false),
        Err(e) => {
            tracing::error!(error = %e, "cannot cancel a payment");
            unavailable(speech)
        }
    }
}

/// Where an order stands, for the PIX page's polling.
#[derive(Serialize, ToSchema)]
pub struct CashierStatus {
    pub state: CashierState,
    /// Whether the state can still change.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// Why a status request was refused.
#[derive(Serialize, ToSchema)]
pub struct CashierError {
    pub error: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CashierState {
    Created,
    InProgress,
    Succeeded,
    Failed,
    Exception,
}
