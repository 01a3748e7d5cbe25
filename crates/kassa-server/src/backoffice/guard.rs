//! The guard in front of every back-office route: who is calling (the session cookie), whether
//! their role may use the route, and — for every form — that the request comes from the back
//! office's own pages (same origin, and the session's CSRF token in the form).

use super::{Access, Backoffice, forbidden};
use crate::accounts::token_hash;
use crate::now_ms;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use kassa_core::AppId;
use kassa_store::User;
use std::net::SocketAddr;
use std::sync::Arc;

/// The session cookie. `__Host-`: only ever set by this host, on `/`, with `Secure`.
pub const SESSION_COOKIE: &str = "__Host-kassa_session";
/// The same without `Secure`, for a listener served over plain HTTP to a remote browser.
pub const PLAIN_SESSION_COOKIE: &str = "kassa_session";
/// The sign-in form's own cookie (a nonce its CSRF token is bound to).
pub const SIGN_IN_COOKIE: &str = "kassa_sign_in";

/// What a user without a second factor may still reach where one is required.
const ENROLMENT_PATHS: &[&str] = &[
    "/admin/account",
    "/admin/account/second-factor",
    "/admin/sign-out",
];

/// The largest form the back office takes (a PEM key is ~1 KiB; a bulk resend ~2 KiB).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The signed-in user of a request, put there by [`guard`].
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    /// The session's token hash (what it is known by in the database).
    pub session: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The client's address, for the audit log.
    pub source: String,
    /// The apps this user may reach: `None` for operators (all).
    pub apps: Option<Vec<AppId>>,
}

pub async fn guard(
    State((backoffice, access)): State<(Arc<Backoffice>, Access)>,
    request: Request,
    next: Next,
) -> Response {
    let posting = request.method() == Method::POST;
    if posting && !same_origin(request.headers()) {
        return forbidden();
    }
    let Access::SignedIn(permission) = access else {
        return next.run(request).await;
    };
    let source = source_of(&request);
    let caller = match caller(&backoffice, request.headers(), source).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return to_sign_in(&request),
        Err(response) => return response,
    };
    if !caller.user.role.may(permission) {
        return forbidden();
    }
    // Where a second factor is required, a user without one may only enrol it (or leave).
    if caller.user.totp_secret.is_none() && !ENROLMENT_PATHS.contains(&request.uri().path()) {
        match super::account::second_factor_required(&backoffice).await {
            Ok(false) => {}
            Ok(true) => return Redirect::to("/admin/account").into_response(),
            Err(e) => return e.into_response(),
        }
    }
    let mut request = if posting {
        match with_checked_form(&backoffice, &caller, request).await {
            Some(request) => request,
            None => return forbidden(),
        }
    } else {
        request
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A browser sends `Origin` with every POST and `Sec-Fetch-Site` with every request; a form
/// posted from another site says so in both. A request with neither is not a browser's and
/// carries no ambient cookie to abuse; the CSRF token still has to match.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            let bare = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            bare == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The value of a cookie in a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The session cookie's name on this listener.
pub fn session_cookie_name(backoffice: &Backoffice) -> &'static str {
    if backoffice.secure_cookies {
        SESSION_COOKIE
    } else {
        PLAIN_SESSION_COOKIE
    }
}

/// The caller of a request, if it carries a live session.
async fn caller(
    backoffice: &Backoffice,
    headers: &HeaderMap,
    source: String,
) -> Result<Option<Caller>, Response> {
    let name = session_cookie_name(backoffice);
    let Some(token) = cookie(headers, name).filter(|t| t.len() <= 64) else {
        return Ok(None);
    };
    let store = backoffice.gateway.store.as_ref();
    let session = token_hash(token);
    let found = store.live_session(&session, now_ms()).await;
    let Some((_, user)) = found
        .map_err(super::Error::from)
        .map_err(IntoResponse::into_response)?
    else {
        return Ok(None);
    };
    let apps = match (user.role.is_operator(), user.merchant_id) {
        (true, _) => None,
        (false, Some(merchant_id)) => {
            let apps = store.apps_of_merchant(merchant_id).await;
            let apps = apps
                .map_err(super::Error::from)
                .map_err(IntoResponse::into_response)?;
            Some(apps.iter().map(|a| a.app_id).collect())
        }
        // A merchant role without a merchant reaches nothing.
        (false, None) => Some(Vec::new()),
    };
    Ok(Some(Caller {
        csrf: backoffice
            .gateway
            .form_key
            .token_for(&csrf_subject(&session)),
        source,
        user,
        session,
        apps,
    }))
}

/// What a session's CSRF token is an HMAC of.
fn csrf_subject(session_hash: &str) -> String {
    format!("backoffice:{session_hash}")
}

/// The client's address, as the listener saw it.
pub fn source_of(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string())
}

/// Reads the form (bounded), checks its `csrf` field against the session, and gives the
/// request back with the same body.
async fn with_checked_form(
    backoffice: &Backoffice,
    caller: &Caller,
    request: Request,
) -> Option<Request> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.ok()?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == "csrf")
        .map(|(_, value)| value.into_owned())?;
    let subject = csrf_subject(&caller.session);
    backoffice
        .gateway
        .form_key
        .verify(&subject, &token)
        .then(|| Request::from_parts(parts, Body::from(bytes)))
}

/// The token a sign-in form carries: bound to the nonce in its own cookie.
pub fn sign_in_token(backoffice: &Backoffice, nonce: &str) -> String {
    backoffice
        .gateway
        .form_key
        .token_for(&format!("sign-in:{nonce}"))
}

pub fn sign_in_token_holds(backoffice: &Backoffice, nonce: &str, token: &str) -> bool {
    backoffice
        .gateway
        .form_key
        .verify(&format!("sign-in:{nonce}"), token)
}

/// Signed out (or never in): to the sign-in page, which brings the user back here after.
fn to_sign_in(request: &Request) -> Response {
    let path = request.uri().path();
    if request.method() != Method::GET || !path.starts_with("/admin/") {
        return Redirect::to("/admin/sign-in").into_response();
    }
    let back: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    Redirect::to(&format!("/admin/sign-in?next={back}")).into_response()
}

/// A cookie for the browser: `HttpOnly`, `SameSite=Strict`, on `/`, `Secure` unless the
/// listener is plain HTTP to a remote browser.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}
