//! Orders in the back office: the list (filters, search, keyset pages), its CSV export
//! (streamed page by page), an order's page (timeline, routing, journals, every callback
//! attempt), and the actions on it — resend a callback, resolve an exception — each audited.
//! Also the exceptions queue and the callbacks that need a look.

use super::{Backoffice, Caller, Error, Nav, Result, local_time, page, see};
use crate::now_ms;
use crate::report::csv_text;
use askama::Template;
use axum::Extension;
use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kassa_core::user::Permission;
use kassa_core::{AmountMinor, AppId, Order, OrderEvent, OrderNo, OrderStatus};
use kassa_store::{Callback, CallbackHistory, OrderFilter};
use serde::Deserialize;
use std::sync::Arc;

/// Orders on one page of the list.
const PAGE: i64 = 50;
/// Orders read at a time by the CSV export.
const EXPORT_PAGE: i64 = 1_000;

/// The list's query string, as the filter form sends it (empty fields are absent).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    app: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    currency: String,
    /// Created from this day on (YYYY-MM-DD, the operator's zone).
    #[serde(default)]
    from: String,
    /// Created up to this day, included.
    #[serde(default)]
    to: String,
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    #[serde(default)]
    q: String,
    /// Where the page starts: `CREATED_MS-ORDER_NO` of the previous page's last order.
    #[serde(default)]
    before: String,
}

fn given(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

fn bad(what: &str, text: &str) -> Error {
    let shown: String = text.chars().take(40).collect();
    Error::BadInput(format!("{what}: {shown:?} is not valid"))
}

/// The start of a day in the operator's zone.
fn day_start(backoffice: &Backoffice, text: &str, next: bool) -> Result<i64> {
    let day = crate::report::Day::parse(text, backoffice.gateway.notary.timezone())
        .map_err(|_| bad("date", text))?;
    Ok(if next { day.to_ms } else { day.from_ms })
}

fn amount(text: &str) -> Result<i64> {
    AmountMinor::parse(text)
        .map(|a| a.0)
        .map_err(|_| bad("amount", text))
}

impl ListQuery {
    /// The store's filter: the caller's scope intersected with the app asked for.
    fn filter(&self, backoffice: &Backoffice, caller: &Caller) -> Result<OrderFilter> {
        let app_ids = match given(&self.app) {
            None => caller.apps.clone(),
            Some(text) => {
                let app_id = AppId(text.parse().map_err(|_| bad("app", text))?);
                Some(if caller.reaches(app_id) {
                    vec![app_id]
                } else {
                    Vec::new()
                })
            }
        };
        let status = match given(&self.status) {
            None => None,
            Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| bad("status", text))?),
        };
        let bounded = |text: &str| text.chars().take(64).collect::<String>();
        Ok(OrderFilter {
            app_ids,
            status,
            method: given(&self.method).map(bounded),
            currency: given(&self.currency)
                .map(|c| c.to_ascii_uppercase())
                .map(|c| bounded(&c)),
            created_from_ms: given(&self.from)
                .map(|d| day_start(backoffice, d, false))
                .transpose()?,
            created_to_ms: given(&self.to)
                .map(|d| day_start(backoffice, d, true))
                .transpose()?,
            amount_min_minor: given(&self.min).map(amount).transpose()?,
            amount_max_minor: given(&self.max).map(amount).transpose()?,
            search: given(&self.q).map(bounded),
        })
    }

    fn before(&self) -> Result<Option<(i64, OrderNo)>> {
        let Some(text) = given(&self.before) else {
            return Ok(None);
        };
        let parsed = text
            .split_once('-')
            .and_then(|(ms, no)| Some((ms.parse::<i64>().ok()?, OrderNo::parse(no)?)));
        parsed.map(Some).ok_or_else(|| bad("page", text))
    }

    /// The query string of the same filters, starting at `before`.
    fn with_before(&self, before: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let fields = [
            ("app", &self.app),
            ("status", &self.status),
            ("method", &self.method),
            ("currency", &self.currency),
            ("from", &self.from),
            ("to", &self.to),
            ("min", &self.min),
            ("max", &self.max),
            ("q", &self.q),
        ];
        for (name, value) in fields {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        if !before.is_empty() {
            query.append_pair("before", before);
        }
        query.finish()
    }
}

/// An order as a line of a list: personal data masked.
pub struct OrderLine {
    pub order_no: String,
    pub order_id: String,
    pub app_id: i64,
    pub created: String,
    pub amount: String,
    pub currency: &'static str,
    pub method: &'static str,
    pub status: &'static str,
    pub payer: String,
}

fn line(backoffice: &Backoffice, order: &Order) -> OrderLine {
    OrderLine {
        order_no: order.order_no.to_string(),
        order_id: order.merchant_order_id.clone(),
        app_id: order.app_id.0,
        created: local_time(backoffice, order.created_at_ms),
        amount: order.amount_minor.to_decimal_string(),
        currency: order.currency.code(),
        method: order.paying_method().code,
        status: order.status.as_str(),
        payer: order
            .payer
            .as_ref()
            .map_or_else(String::new, |p| p.email.masked()),
    }
}

#[derive(Template)]
#[template(path = "backoffice/orders.html")]
struct OrdersPage {
    title: &'static str,
    nav: Option<Nav>,
    query: ListQuery,
    statuses: Vec<&'static str>,
    orders: Vec<OrderLine>,
    next: Option<String>,
    export: String,
}

pub async fn list(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Result<Response> {
    let filter = query.filter(&backoffice, &caller)?;
    let before = query.before()?;
    let before_key = before.as_ref().map(|(ms, no)| (*ms, no));
    let store = backoffice.gateway.store.as_ref();
    let mut orders = store.search_orders(&filter, before_key, PAGE + 1).await?;
    let more = orders.len() as i64 > PAGE;
    orders.truncate(PAGE as usize);
    let next = match orders.last() {
        Some(last) if more => {
            Some(query.with_before(&format!("{}-{}", last.created_at_ms, last.order_no)))
        }
        _ => None,
    };
    let list = OrdersPage {
        title: "Orders",
        nav: Some(Nav::of(&caller)),
        statuses: OrderStatus::ALL.iter().map(|s| s.as_str()).collect(),
        orders: orders.iter().map(|o| line(&backoffice, o)).collect(),
        next,
        export: query.with_before(""),
        query,
    };
    Ok(page(&list))
}

/// The CSV export's columns.
const EXPORT_HEADER: &str = "orderNo,orderId,appId,createdAt,status,method,currency,amount,paidAmount,fee,paidAt,payerEmail";

fn export_line(backoffice: &Backoffice, order: &Order) -> String {
    let time = |ms: Option<i64>| ms.map_or_else(String::new, |ms| local_time(backoffice, ms));
    let payer = order
        .payer
        .as_ref()
        .map_or_else(String::new, |p| p.email.masked());
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{}\n",
        order.order_no,
        csv_text(&order.merchant_order_id),
        order.app_id.0,
        time(Some(order.created_at_ms)),
        order.status.as_str(),
        order.paying_method().code,
        order.currency.code(),
        order.amount_minor,
        order.actual_amount_minor,
        order.booked_fee_minor(),
        time(order.paid_at_ms),
        csv_text(&payer),
    )
}

/// Every order the filters match, as CSV, read and sent a page at a time: memory stays flat
/// however many there are.
pub async fn export(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Result<Response> {
    let filter = query.filter(&backoffice, &caller)?;
    struct Cursor {
        before: Option<(i64, OrderNo)>,
        header: bool,
        done: bool,
    }
    let start = Cursor {
        before: None,
        header: true,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut cursor| {
        let (backoffice, filter) = (backoffice.clone(), filter.clone());
        async move {
            if cursor.done {
                return None;
            }
            if cursor.header {
                cursor.header = false;
                return Some((Ok(Bytes::from(format!("{EXPORT_HEADER}\n"))), cursor));
            }
            let before = cursor.before.as_ref().map(|(ms, no)| (*ms, no));
            let store = backoffice.gateway.store.as_ref();
            let page = match store.search_orders(&filter, before, EXPORT_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "back office: the export stopped");
                    cursor.done = true;
                    return Some((Err(std::io::Error::other("the export stopped")), cursor));
                }
            };
            cursor.done = (page.len() as i64) < EXPORT_PAGE;
            cursor.before = page.last().map(|o| (o.created_at_ms, o.order_no.clone()));
            let text: String = page.iter().map(|o| export_line(&backoffice, o)).collect();
            Some((Ok(Bytes::from(text)), cursor))
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"orders.csv\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One line of an order's timeline.
pub struct TimelineLine {
    pub at: String,
    pub what: String,
    pub detail: String,
}

/// A callback and its attempts as the order's page shows them.
pub struct CallbackView {
    pub callback_id: String,
    pub url: String,
    pub state: &'static str,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub attempts: Vec<AttemptView>,
}

pub struct AttemptView {
    pub no: i64,
    pub at: String,
    pub latency_ms: i64,
    pub answer: String,
    pub excerpt: String,
    pub node: String,
}

fn callback_view(backoffice: &Backoffice, history: &CallbackHistory) -> CallbackView {
    let c = &history.callback;
    CallbackView {
        callback_id: c.callback_id.clone(),
        url: c.url.clone(),
        state: c.state.as_str(),
        body: c.body.clone(),
        headers: c.headers.clone(),
        attempts: history
            .attempts
            .iter()
            .map(|a| AttemptView {
                no: a.attempt_no,
                at: local_time(backoffice, a.started_at_ms),
                latency_ms: a.latency_ms,
                answer: match (a.http_status, &a.error) {
                    (Some(status), _) if a.acknowledged => format!("{status}, acknowledged"),
                    (Some(status), _) => format!("{status}, not acknowledged"),
                    (None, Some(error)) => error.clone(),
                    (None, None) => "no answer".into(),
                },
                excerpt: a.response_excerpt.clone().unwrap_or_default(),
                node: a.node.clone(),
            })
            .collect(),
    }
}

/// A journal as the order's page shows it: its entries as "account amount".
pub struct JournalView {
    pub journal_id: String,
    pub posted: String,
    pub entries: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "backoffice/order.html")]
struct OrderPage {
    title: String,
    nav: Option<Nav>,
    order: OrderLine,
    fields: Vec<(&'static str, String)>,
    payer: Vec<(&'static str, String)>,
    may_reveal: bool,
    revealed: bool,
    timeline: Vec<TimelineLine>,
    routing: Vec<(String, String)>,
    journals: Vec<JournalView>,
    callbacks: Vec<CallbackView>,
    may_resend: bool,
    may_resolve: bool,
}

#[derive(Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    reveal: Option<String>,
}

/// The order's own fields, as the page lists them.
fn order_fields(backoffice: &Backoffice, order: &Order) -> Vec<(&'static str, String)> {
    let time = |ms: Option<i64>| ms.map_or_else(|| "–".into(), |ms| local_time(backoffice, ms));
    let text = |t: &Option<String>| t.clone().unwrap_or_else(|| "–".into());
    vec![
        ("Order number", order.order_no.to_string()),
        ("orderId", order.merchant_order_id.clone()),
        ("App", order.app_id.0.to_string()),
        ("Dialect", order.dialect.clone()),
        (
            "Amount",
            format!("{} {}", order.amount_minor, order.currency.code()),
        ),
        (
            "Paid",
            format!("{} {}", order.actual_amount_minor, order.currency.code()),
        ),
        (
            "Fee",
            format!("{} {}", order.booked_fee_minor(), order.currency.code()),
        ),
        ("Method asked", order.method.code.to_string()),
        ("Method paid with", order.paying_method().code.to_string()),
        ("Status", order.status.as_str().to_string()),
        ("Reason", text(&order.error_msg)),
        ("Subject", text(&order.subject)),
        ("Country", text(&order.country)),
        ("Notify URL", text(&order.notify_url)),
        ("Return URL (paid)", text(&order.callback_url)),
        ("Return URL (failed)", text(&order.callback_fail_url)),
        ("Created", time(Some(order.created_at_ms))),
        ("Expires", time(Some(order.expires_at_ms))),
        ("Paid at", time(order.paid_at_ms)),
    ]
}

/// The payer's data: masked unless revealed to a role that may see it.
fn payer_fields(order: &Order, reveal: bool) -> Vec<(&'static str, String)> {
    let Some(payer) = &order.payer else {
        return Vec::new();
    };
    let show = |p: &kassa_core::Personal| {
        if reveal {
            p.expose().to_string()
        } else {
            p.masked()
        }
    };
    vec![
        ("Name", show(&payer.name)),
        ("E-mail", show(&payer.email)),
        ("Phone", show(&payer.phone)),
        ("Payer id", payer.partner_user_id.clone()),
    ]
}

pub async fn detail(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(order_no): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<Response> {
    let order = caller.order(&backoffice, &order_no).await?;
    let role = caller.user.role;
    let revealed = query.reveal.is_some() && role.may(Permission::ViewPersonalData);
    let store = backoffice.gateway.store.as_ref();
    if revealed && order.payer.is_some() {
        let audit = caller.audit(
            "order.view-personal-data",
            format!("order:{}", order.order_no),
        );
        store.append_audit(&audit).await?;
    }
    let events = store.order_events(&order.order_no).await?;
    let mut timeline = vec![TimelineLine {
        at: local_time(&backoffice, order.created_at_ms),
        what: "created".into(),
        detail: format!("{} {}", order.amount_minor, order.currency.code()),
    }];
    timeline.extend(events.iter().map(|e| TimelineLine {
        at: local_time(&backoffice, e.at_ms),
        what: format!("{} → {}", e.from.as_str(), e.to.as_str()),
        detail: e.detail.clone().unwrap_or_default(),
    }));
    let routing = routing(&backoffice, &order).await?;
    let journals = store.journals_of_order(&order.order_no).await?;
    let callbacks = store.callbacks_of_order(&order.order_no).await?;
    let shown = OrderPage {
        title: format!("Order {}", order.order_no),
        nav: Some(Nav::of(&caller)),
        fields: order_fields(&backoffice, &order),
        payer: payer_fields(&order, revealed),
        may_reveal: role.may(Permission::ViewPersonalData) && !revealed && order.payer.is_some(),
        revealed,
        timeline,
        routing,
        journals: journals
            .iter()
            .map(|j| JournalView {
                journal_id: j.journal_id.clone(),
                posted: local_time(&backoffice, j.posted_at_ms),
                entries: j
                    .entries
                    .iter()
                    .map(|e| {
                        (
                            e.account.key(),
                            AmountMinor(e.amount_minor).to_decimal_string(),
                        )
                    })
                    .collect(),
            })
            .collect(),
        may_resend: role.may(Permission::ResendCallbacks) && !callbacks.is_empty(),
        callbacks: callbacks
            .iter()
            .map(|h| callback_view(&backoffice, h))
            .collect(),
        may_resolve: role.may(Permission::ResolveExceptions)
            && order.status == OrderStatus::Exception,
        order: line(&backoffice, &order),
    };
    Ok(page(&shown))
}

/// Where the order went: its rail and channel, its order at an upstream, each channel tried.
async fn routing(backoffice: &Backoffice, order: &Order) -> Result<Vec<(String, String)>> {
    let store = backoffice.gateway.store.as_ref();
    let mut rows = vec![
        ("Rail".to_string(), order.rail.clone()),
        ("Channel".to_string(), order.channel.clone()),
    ];
    if let Some(upstream) = store.upstream_order(&order.order_no).await? {
        let at = format!(
            "{} at channel {}",
            upstream.upstream_order_no.as_deref().unwrap_or("–"),
            upstream.channel_id
        );
        rows.push(("Upstream order".into(), at));
    }
    for attempt in store.routing_attempts(&order.order_no).await? {
        let what = format!(
            "channel {}: {} ({} ms) {}",
            attempt.channel_id, attempt.outcome, attempt.latency_ms, attempt.detail
        );
        rows.push((format!("Attempt {}", attempt.attempt_no), what));
    }
    Ok(rows)
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    reason: String,
}

pub async fn resend(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(order_no): Path<String>,
) -> Result<Response> {
    let order = caller.order(&backoffice, &order_no).await?;
    let store = backoffice.gateway.store.as_ref();
    let audit = caller.audit("callback.resend", format!("order:{}", order.order_no));
    let queued = store.resend_latest_callback(&order.order_no, now_ms(), Some(&audit));
    if queued.await?.is_none() {
        return Err(Error::BadInput(
            "this order has no callback to resend".into(),
        ));
    }
    backoffice.gateway.dispatcher_wake.notify_one();
    Ok(see(&format!("/admin/orders/{}", order.order_no)))
}

/// Decides an order in exception, with the reason the audit log keeps.
pub async fn resolve(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(order_no): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response> {
    let order = caller.order(&backoffice, &order_no).await?;
    let reason = form.reason.trim();
    if reason.chars().count() < 3 || reason.chars().count() > 500 {
        return Err(Error::BadInput(
            "give a reason of 3 to 500 characters".into(),
        ));
    }
    let event = match form.outcome.as_str() {
        "succeeded" => OrderEvent::OperatorSucceeded,
        "failed" => OrderEvent::OperatorFailed {
            reason: reason.to_string(),
        },
        other => return Err(bad("outcome", other)),
    };
    // The resolution and its audit entry are written together, with the change itself.
    let mut audit = caller.audit("order.resolve", format!("order:{}", order.order_no));
    audit.before = Some(order.status.as_str().into());
    audit.after = Some(format!("{}: {reason}", form.outcome));
    backoffice
        .gateway
        .change_order_audited(&order.order_no, &event, &audit)
        .await
        .map_err(|e| Error::BadInput(format!("cannot resolve this order: {e}")))?;
    Ok(see(&format!("/admin/orders/{}", order.order_no)))
}

#[derive(Template)]
#[template(path = "backoffice/exceptions.html")]
struct ExceptionsPage {
    title: &'static str,
    nav: Option<Nav>,
    orders: Vec<OrderLine>,
}

pub async fn exceptions(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let filter = OrderFilter {
        app_ids: caller.apps.clone(),
        status: Some(OrderStatus::Exception),
        ..OrderFilter::default()
    };
    let orders = backoffice
        .gateway
        .store
        .search_orders(&filter, None, 200)
        .await?;
    let shown = ExceptionsPage {
        title: "Exceptions",
        nav: Some(Nav::of(&caller)),
        orders: orders.iter().map(|o| line(&backoffice, o)).collect(),
    };
    Ok(page(&shown))
}

pub struct TroubledLine {
    pub order_no: String,
    pub app_id: i64,
    pub url: String,
    pub state: &'static str,
    pub attempts: i64,
    pub next: String,
}

#[derive(Template)]
#[template(path = "backoffice/callbacks.html")]
struct CallbacksPage {
    title: &'static str,
    nav: Option<Nav>,
    /// Each endpoint with callbacks in trouble: its URL, how many are still tried, how many
    /// were given up; the most troubled first.
    endpoints: Vec<(String, usize, usize)>,
    callbacks: Vec<TroubledLine>,
    may_resend: bool,
}

/// The troubled callbacks by endpoint, the most troubled first.
fn by_endpoint(troubled: &[Callback]) -> Vec<(String, usize, usize)> {
    let mut counts: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for callback in troubled {
        let count = counts.entry(callback.url.as_str()).or_default();
        match callback.state {
            kassa_store::CallbackState::Dead => count.1 += 1,
            _ => count.0 += 1,
        }
    }
    let mut endpoints: Vec<(String, usize, usize)> = counts
        .into_iter()
        .map(|(url, (failing, dead))| (url.to_string(), failing, dead))
        .collect();
    endpoints.sort_by_key(|(_, failing, dead)| std::cmp::Reverse(failing + dead));
    endpoints
}

fn troubled_line(backoffice: &Backoffice, c: &Callback) -> TroubledLine {
    TroubledLine {
        order_no: c.order_no.to_string(),
        app_id: c.app_id.0,
        url: c.url.clone(),
        state: c.state.as_str(),
        attempts: c.attempts,
        next: match c.dead_at_ms {
            Some(ms) => format!("given up {}", local_time(backoffice, ms)),
            None => local_time(backoffice, c.next_attempt_at_ms),
        },
    }
}

pub async fn callbacks(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let store = backoffice.gateway.store.as_ref();
    let troubled = store
        .troubled_callbacks(caller.apps.as_deref(), 200)
        .await?;
    let shown = CallbacksPage {
        title: "Callbacks",
        nav: Some(Nav::of(&caller)),
        endpoints: by_endpoint(&troubled),
        callbacks: troubled
            .iter()
            .map(|c| troubled_line(&backoffice, c))
            .collect(),
        may_resend: caller.user.role.may(Permission::ResendCallbacks),
    };
    Ok(page(&shown))
}

/// Most orders one bulk resend takes.
const MAX_BULK: usize = 200;

/// Resends the latest callback of each order ticked (`order` repeated), each audited.
pub async fn resend_many(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response> {
    let picked: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(key, _)| key == "order")
        .map(|(_, value)| value.into_owned())
        .collect();
    if picked.is_empty() || picked.len() > MAX_BULK {
        return Err(Error::BadInput(format!("tick 1 to {MAX_BULK} callbacks")));
    }
    // Every order is checked before any is resent: one out of reach resends none.
    let mut orders = Vec::with_capacity(picked.len());
    for order_no in &picked {
        orders.push(caller.order(&backoffice, order_no).await?);
    }
    let store = backoffice.gateway.store.as_ref();
    for order in &orders {
        let audit = caller.audit("callback.resend", format!("order:{}", order.order_no));
        store
            .resend_latest_callback(&order.order_no, now_ms(), Some(&audit))
            .await?;
    }
    backoffice.gateway.dispatcher_wake.notify_one();
    Ok(see("/admin/callbacks"))
}
