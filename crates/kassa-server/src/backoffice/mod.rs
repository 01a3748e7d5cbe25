//! The back office: the operator's console and each merchant's portal, under `/admin/` on a
//! listener of its own (`--backoffice-listen`).
//!
//! Every route is declared once in [`routes`] with the permission it needs; the router is
//! built from that table and [`guard`] enforces it before any handler runs: a signed-in
//! session (else a redirect to the sign-in page), the role's permission (else 403), and for
//! every form a same-origin request carrying the session's CSRF token. Which objects a
//! merchant's user may reach is checked by each handler against [`Caller::apps`]: another
//! merchant's object answers 404, as an unknown one does.

mod account;
mod chart;
mod guard;
mod invitations;
mod orders;
mod pages;
mod platform;

use crate::accounts::SignInPolicy;
use crate::sealing::Kek;
use crate::{Gateway, now_ms};
use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use kassa_core::user::Permission;
use kassa_core::{AppId, Order};
use kassa_store::{AuditEntry, StoreError, User};
use std::sync::Arc;

pub use guard::Caller;

/// The back office's shared state.
pub struct Backoffice {
    pub gateway: Arc<Gateway>,
    /// Unseals users' TOTP secrets.
    pub kek: Arc<Kek>,
    pub policy: SignInPolicy,
    /// Whether cookies carry `Secure` (off only for a plain-HTTP listener a browser would
    /// otherwise refuse them on; loopback counts as secure to browsers).
    pub secure_cookies: bool,
}

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the sign-in page and the style sheet.
    Anyone,
    /// A signed-in user whose role has the permission.
    SignedIn(Permission),
}

/// One route of the back office, as the authorisation tests walk them.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

type Handler = MethodRouter<Arc<Backoffice>>;

/// Every route, with who may use it: the one place a route is added.
fn routes() -> Vec<(Route, Handler)> {
    use Access::*;
    use Permission::*;
    let route = |method: Method, path, access, handler| {
        (
            Route {
                method,
                path,
                access,
            },
            handler,
        )
    };
    vec![
        route(Method::GET, "/admin/", Anyone, get(pages::home)),
        route(
            Method::GET,
            "/admin/assets/backoffice.css",
            Anyone,
            get(pages::style),
        ),
        route(
            Method::GET,
            "/admin/sign-in",
            Anyone,
            get(pages::sign_in_page),
        ),
        route(Method::POST, "/admin/sign-in", Anyone, post(pages::sign_in)),
        route(
            Method::POST,
            "/admin/sign-out",
            SignedIn(Read),
            post(pages::sign_out),
        ),
        route(
            Method::GET,
            "/admin/overview",
            SignedIn(Read),
            get(pages::overview),
        ),
        route(
            Method::GET,
            "/admin/account",
            SignedIn(Read),
            get(account::show),
        ),
        route(
            Method::POST,
            "/admin/account/second-factor",
            SignedIn(Read),
            post(account::enrol),
        ),
        route(
            Method::GET,
            "/admin/orders",
            SignedIn(Read),
            get(orders::list),
        ),
        route(
            Method::GET,
            "/admin/orders.csv",
            SignedIn(Read),
            get(orders::export),
        ),
        route(
            Method::GET,
            "/admin/orders/{order_no}",
            SignedIn(Read),
            get(orders::detail),
        ),
        route(
            Method::POST,
            "/admin/orders/{order_no}/resend",
            SignedIn(ResendCallbacks),
            post(orders::resend),
        ),
        route(
            Method::POST,
            "/admin/orders/{order_no}/resolve",
            SignedIn(ResolveExceptions),
            post(orders::resolve),
        ),
        route(
            Method::GET,
            "/admin/exceptions",
            SignedIn(ResolveExceptions),
            get(orders::exceptions),
        ),
        route(
            Method::GET,
            "/admin/callbacks",
            SignedIn(Read),
            get(orders::callbacks),
        ),
        route(
            Method::POST,
            "/admin/callbacks/resend",
            SignedIn(ResendCallbacks),
            post(orders::resend_many),
        ),
        route(
            Method::GET,
            "/admin/apps",
            SignedIn(Read),
            get(platform::apps),
        ),
        route(
            Method::GET,
            "/admin/apps/{app_id}",
            SignedIn(Read),
            get(platform::app),
        ),
        route(
            Method::POST,
            "/admin/apps/{app_id}/key",
            SignedIn(ManageKeys),
            post(platform::set_key),
        ),
        route(
            Method::GET,
            "/admin/apps/{app_id}/report.csv",
            SignedIn(Read),
            get(platform::report),
        ),
        route(
            Method::POST,
            "/admin/apps/{app_id}/webhook-secret",
            SignedIn(ManageKeys),
            post(platform::rotate_webhook_secret),
        ),
        route(
            Method::POST,
            "/admin/apps/{app_id}/fees",
            SignedIn(ManageTerms),
            post(platform::set_fee),
        ),
        route(
            Method::POST,
            "/admin/apps/{app_id}/settlement",
            SignedIn(ManageTerms),
            post(platform::set_settlement),
        ),
        route(
            Method::POST,
            "/admin/apps/{app_id}/pix",
            SignedIn(ManageTerms),
            post(platform::set_pix),
        ),
        route(
            Method::POST,
            "/admin/apps/{app_id}/brand",
            SignedIn(ManageTerms),
            post(platform::set_brand),
        ),
        route(
            Method::POST,
            "/admin/apps/{app_id}/limits",
            SignedIn(ManageTerms),
            post(platform::set_limits),
        ),
        route(
            Method::GET,
            "/admin/platform-key.pem",
            SignedIn(Read),
            get(platform::platform_key),
        ),
        route(
            Method::GET,
            "/admin/channels",
            SignedIn(ViewPlatform),
            get(platform::channels),
        ),
        route(
            Method::POST,
            "/admin/channels/{channel_id}/enable",
            SignedIn(ManageTerms),
            post(platform::enable_channel),
        ),
        route(
            Method::POST,
            "/admin/channels/{channel_id}/disable",
            SignedIn(ManageTerms),
            post(platform::disable_channel),
        ),
        route(
            Method::POST,
            "/admin/merchants",
            SignedIn(ManageMerchants),
            post(platform::create_merchant),
        ),
        route(
            Method::POST,
            "/admin/merchants/{merchant_id}/suspend",
            SignedIn(ManageMerchants),
            post(platform::suspend_merchant),
        ),
        route(
            Method::POST,
            "/admin/merchants/{merchant_id}/reinstate",
            SignedIn(ManageMerchants),
            post(platform::reinstate_merchant),
        ),
        route(
            Method::GET,
            "/admin/merchants",
            SignedIn(ViewPlatform),
            get(platform::merchants),
        ),
        route(
            Method::GET,
            "/admin/audit",
            SignedIn(ViewPlatform),
            get(platform::audit),
        ),
        route(
            Method::GET,
            "/admin/users",
            SignedIn(ManageUsers),
            get(platform::users),
        ),
        route(
            Method::POST,
            "/admin/users/second-factor",
            SignedIn(ManageUsers),
            post(account::require),
        ),
        route(
            Method::POST,
            "/admin/users/invite",
            SignedIn(ManageUsers),
            post(invitations::invite),
        ),
        route(
            Method::GET,
            "/admin/invitation/{token}",
            Anyone,
            get(invitations::show),
        ),
        route(
            Method::POST,
            "/admin/invitation/{token}",
            Anyone,
            post(invitations::accept),
        ),
        route(
            Method::POST,
            "/admin/users/{user_id}/reset-password",
            SignedIn(ManageUsers),
            post(platform::reset_password),
        ),
        route(
            Method::POST,
            "/admin/users/{user_id}/remove-second-factor",
            SignedIn(ManageUsers),
            post(platform::remove_second_factor),
        ),
        route(
            Method::POST,
            "/admin/users/{user_id}/disable",
            SignedIn(ManageUsers),
            post(platform::disable_user),
        ),
        route(
            Method::POST,
            "/admin/users/{user_id}/enable",
            SignedIn(ManageUsers),
            post(platform::enable_user),
        ),
    ]
}

/// The routes and who may use them (for the authorisation tests).
pub fn route_table() -> Vec<Route> {
    routes().into_iter().map(|(route, _)| route).collect()
}

/// The back office's router: each route behind its guard, every answer with strict headers.
pub fn router(backoffice: Arc<Backoffice>) -> Router {
    let mut router = Router::new();
    for (route, handler) in routes() {
        let guarded = handler.route_layer(axum::middleware::from_fn_with_state(
            (backoffice.clone(), route.access),
            guard::guard,
        ));
        router = router.route(route.path, guarded);
    }
    router
        .fallback(|| async { not_found() })
        .layer(axum::middleware::map_response(secure_headers))
        .layer(axum::extract::DefaultBodyLimit::max(guard::MAX_FORM_BYTES))
        .with_state(backoffice)
}

/// Nothing from elsewhere, nothing inline, never in a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// What a handler answers when it cannot go on; logged once, here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::NotFound => not_found(),
            Error::BadInput(text) => message(StatusCode::BAD_REQUEST, "Cannot do that", &text),
            Error::Store(e) => {
                tracing::error!(error = %e, "back office: store error");
                unavailable()
            }
            Error::Internal(e) => {
                tracing::error!(error = %e, "back office: internal error");
                unavailable()
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Template)]
#[template(path = "backoffice/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
    nav: Option<Nav>,
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage {
        title,
        message: text,
        nav: None,
    };
    html(status, &page)
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "There is nothing here.")
}

fn forbidden() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Your role does not allow this.",
    )
}

fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "The back office cannot answer just now; please try again in a moment.",
    )
}

/// A rendered page.
fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a back-office page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn page(page: &impl Template) -> Response {
    html(StatusCode::OK, page)
}

/// After a form: back to a page (303, so that reloading does not post again).
fn see(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// The navigation of a signed-in user: what their role may open, and the form token.
pub struct Nav {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    pub links: Vec<(&'static str, &'static str)>,
}

impl Nav {
    fn of(caller: &Caller) -> Nav {
        let role = caller.user.role;
        let all = [
            ("/admin/overview", "Overview", Permission::Read),
            ("/admin/orders", "Orders", Permission::Read),
            (
                "/admin/exceptions",
                "Exceptions",
                Permission::ResolveExceptions,
            ),
            ("/admin/callbacks", "Callbacks", Permission::Read),
            ("/admin/apps", "Apps", Permission::Read),
            ("/admin/merchants", "Merchants", Permission::ViewPlatform),
            ("/admin/channels", "Channels", Permission::ViewPlatform),
            ("/admin/users", "Users", Permission::ManageUsers),
            ("/admin/audit", "Audit log", Permission::ViewPlatform),
            ("/admin/account", "Your account", Permission::Read),
        ];
        Nav {
            email: caller.user.email.clone(),
            role: role.as_str(),
            csrf: caller.csrf.clone(),
            links: all
                .into_iter()
                .filter(|(_, _, permission)| role.may(*permission))
                .map(|(path, label, _)| (path, label))
                .collect(),
        }
    }
}

impl Caller {
    /// Whether this caller may see `app_id`'s objects.
    fn reaches(&self, app_id: AppId) -> bool {
        self.apps.as_ref().is_none_or(|apps| apps.contains(&app_id))
    }

    /// The order, if this caller may see it; another merchant's is "not found" too.
    async fn order(&self, backoffice: &Backoffice, order_no: &str) -> Result<Order> {
        let order_no = kassa_core::OrderNo::parse(order_no).ok_or(Error::NotFound)?;
        match backoffice.gateway.store.order_by_no(&order_no).await? {
            Some(order) if self.reaches(order.app_id) => Ok(order),
            _ => Err(Error::NotFound),
        }
    }

    /// An audit entry of this caller's.
    fn audit(&self, action: &str, target: String) -> AuditEntry {
        AuditEntry {
            at_ms: now_ms(),
            actor: format!("user:{}", self.user.user_id),
            action: action.to_string(),
            target,
            before: None,
            after: None,
            source: self.source.clone(),
        }
    }
}

/// A user as the pages show them: never the hash or the TOTP secret.
fn user_label(user: &User) -> String {
    format!("{} ({})", user.email, user.role.as_str())
}

/// A time in the operator's zone, to the second.
fn local_time(backoffice: &Backoffice, ms: i64) -> String {
    crate::report::local_time(ms, backoffice.gateway.notary.timezone())
}
