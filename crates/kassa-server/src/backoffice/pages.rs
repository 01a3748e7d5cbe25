//! Signing in and out, and the overview: the day's and the week's orders per dialect and
//! method, what waits for someone, and a chart of the week drawn on the server.

use super::guard::{
    SIGN_IN_COOKIE, cookie, session_cookie_name, set_cookie, sign_in_token, sign_in_token_holds,
};
use super::{Backoffice, Caller, Nav, Result, html, page, see};
use crate::accounts::{self, Attempt, new_token, token_hash};
use crate::now_ms;
use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kassa_core::OrderStatus;
use kassa_store::{OrderFilter, OrderStats};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn home() -> Response {
    see("/admin/overview")
}

pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/backoffice/backoffice.css"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "backoffice/sign_in.html")]
struct SignInPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf: String,
    next: String,
    email: String,
    error: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only a back-office page of this host: never another site (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with("/admin/") && !path.contains("//") && path.len() < 512 => {
            path.to_string()
        }
        _ => "/admin/overview".to_string(),
    }
}

/// The sign-in form, with a fresh nonce cookie its token is bound to.
pub async fn sign_in_page(
    State(backoffice): State<Arc<Backoffice>>,
    Query(query): Query<Next>,
) -> Response {
    let nonce = new_token();
    let form = SignInPage {
        title: "Sign in",
        nav: None,
        csrf: sign_in_token(&backoffice, &nonce),
        next: safe_next(query.next.as_deref()),
        email: String::new(),
        error: None,
    };
    let cookie = set_cookie(SIGN_IN_COOKIE, &nonce, 3_600, backoffice.secure_cookies);
    let mut response = page(&form);
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    email: String,
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn sign_in(
    State(backoffice): State<Arc<Backoffice>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let nonce = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !sign_in_token_holds(&backoffice, nonce, &form.csrf) {
        return super::forbidden();
    }
    let email: String = form.email.trim().chars().take(254).collect();
    let code = form.code.trim();
    let attempt = Attempt {
        email: &email,
        password: &form.password,
        totp_code: (!code.is_empty()).then_some(code),
        source: &peer.ip().to_string(),
    };
    let store = backoffice.gateway.store.as_ref();
    let outcome = accounts::sign_in(
        store,
        &backoffice.kek,
        &backoffice.policy,
        &attempt,
        now_ms(),
    )
    .await;
    let signed_in = match outcome {
        Ok(signed_in) => signed_in,
        Err(error) => {
            let again = SignInPage {
                title: "Sign in",
                nav: None,
                csrf: form.csrf.clone(),
                next: safe_next(form.next.as_deref()),
                email,
                error: Some(error.to_the_person()),
            };
            return html(StatusCode::UNAUTHORIZED, &again);
        }
    };
    // Whatever session the browser brought is over: the new one has a token never seen before.
    if let Some(old) = cookie(&headers, session_cookie_name(&backoffice)) {
        let _ = store.end_session(&token_hash(old)).await;
    }
    let max_age_s = backoffice.policy.absolute_ms / 1_000;
    let name = session_cookie_name(&backoffice);
    let token = signed_in.token.expose();
    let mut response = see(&safe_next(form.next.as_deref()));
    let cookies = [
        set_cookie(name, token, max_age_s, backoffice.secure_cookies),
        set_cookie(SIGN_IN_COOKIE, "", 0, backoffice.secure_cookies),
    ];
    for value in cookies {
        if let Ok(value) = value.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub async fn sign_out(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let store = backoffice.gateway.store.as_ref();
    store.end_session(&caller.session).await?;
    store
        .append_audit(&caller.audit("sign-out", format!("user:{}", caller.user.user_id)))
        .await?;
    let mut response = see("/admin/sign-in");
    let name = session_cookie_name(&backoffice);
    if let Ok(value) = set_cookie(name, "", 0, backoffice.secure_cookies).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// One row of the overview's tables: a dialect and method over a period.
pub struct StatsRow {
    pub dialect: String,
    pub method: String,
    pub orders: i64,
    pub succeeded: i64,
    pub success_rate: String,
    /// What was paid, per currency ("12.00 EUR, 3.50 USD").
    pub volume: String,
}

/// The rows of a period's stats, by dialect and method.
fn stats_rows(stats: &[OrderStats]) -> Vec<StatsRow> {
    let mut grouped: BTreeMap<(String, String), Vec<&OrderStats>> = BTreeMap::new();
    for s in stats {
        let key = (s.dialect.clone(), s.method.clone());
        grouped.entry(key).or_default().push(s);
    }
    grouped
        .into_iter()
        .map(|((dialect, method), group)| {
            let orders: i64 = group.iter().map(|s| s.orders).sum();
            let paid: Vec<&&OrderStats> = group
                .iter()
                .filter(|s| s.status == OrderStatus::Succeeded)
                .collect();
            let succeeded: i64 = paid.iter().map(|s| s.orders).sum();
            StatsRow {
                dialect,
                method,
                orders,
                succeeded,
                success_rate: percent(succeeded, orders),
                volume: volume(paid.iter().map(|s| (s.currency.as_str(), s.paid_minor))),
            }
        })
        .collect()
}

/// A share as a whole percentage with one decimal, from integers (no floats near money).
fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "–".into();
    }
    let tenths = part.saturating_mul(1_000) / whole;
    format!("{}.{} %", tenths / 10, tenths % 10)
}

/// Amounts per currency, summed: "12.00 EUR, 3.50 USD".
fn volume<'a>(amounts: impl Iterator<Item = (&'a str, i64)>) -> String {
    let mut by_currency: BTreeMap<&str, i64> = BTreeMap::new();
    for (currency, minor) in amounts {
        *by_currency.entry(currency).or_default() += minor;
    }
    let shown: Vec<String> = by_currency
        .into_iter()
        .map(|(currency, minor)| {
            let amount = kassa_core::AmountMinor(minor).to_decimal_string();
            format!("{amount} {currency}")
        })
        .collect();
    if shown.is_empty() {
        "–".into()
    } else {
        shown.join(", ")
    }
}

#[derive(Template)]
#[template(path = "backoffice/overview.html")]
struct OverviewPage {
    title: &'static str,
    nav: Option<Nav>,
    /// "Today" and "The last seven days", each with its rows.
    periods: Vec<(&'static str, Vec<StatsRow>)>,
    exceptions: String,
    callbacks_failing: String,
    callbacks_dead: String,
    chart: String,
}

/// The start of each of the last `days` days (today last) in the operator's zone, and the
/// end of today.
fn day_starts(backoffice: &Backoffice, days: i64, now_ms: i64) -> (Vec<(String, i64)>, i64) {
    let zone = backoffice.gateway.notary.timezone().clone();
    let now = jiff::Timestamp::from_millisecond(now_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(zone.clone());
    let today = now.date();
    let start = |date: jiff::civil::Date| {
        date.to_zoned(zone.clone())
            .map_or(now_ms, |z| z.timestamp().as_millisecond())
    };
    let starts = (0..days)
        .rev()
        .filter_map(|back| today.checked_sub(jiff::Span::new().days(back)).ok())
        .map(|date| (date.strftime("%a %d %b").to_string(), start(date)))
        .collect();
    let end = today.tomorrow().map_or(now_ms, start);
    (starts, end)
}

/// A count shown as counted: "600+" when the counting stopped at its bound.
fn bounded_count(count: i64, capped: bool) -> String {
    if capped {
        format!("{count}+")
    } else {
        count.to_string()
    }
}

pub async fn overview(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let store = backoffice.gateway.store.as_ref();
    let apps = caller.apps.as_deref();
    let (days, end_ms) = day_starts(&backoffice, 7, now_ms());
    let mut per_day = Vec::with_capacity(days.len());
    let (mut week, mut today) = (Vec::new(), Vec::new());
    for (i, (label, from_ms)) in days.iter().enumerate() {
        let to_ms = days.get(i + 1).map_or(end_ms, |(_, next)| *next);
        let stats = store.order_stats(apps, (*from_ms, to_ms)).await?;
        let count = |paid: bool| -> i64 {
            stats
                .iter()
                .filter(|s| (s.status == OrderStatus::Succeeded) == paid)
                .map(|s| s.orders)
                .sum()
        };
        per_day.push((label.clone(), count(true), count(false)));
        // The last day is today.
        today.clone_from(&stats);
        week.extend(stats);
    }
    const BOUND: i64 = 1_000;
    let exceptions = OrderFilter {
        app_ids: caller.apps.clone(),
        status: Some(OrderStatus::Exception),
        ..OrderFilter::default()
    };
    let waiting = store.count_orders(&exceptions, BOUND).await?;
    let (failing, dead) = store.count_troubled_callbacks(apps, BOUND).await?;
    let overview = OverviewPage {
        title: "Overview",
        nav: Some(Nav::of(&caller)),
        periods: vec![
            ("Today", stats_rows(&today)),
            ("The last seven days", stats_rows(&week)),
        ],
        exceptions: bounded_count(waiting, waiting >= BOUND),
        // Counted together up to the bound: if it was reached, either may be more.
        callbacks_failing: bounded_count(failing, failing + dead >= BOUND),
        callbacks_dead: bounded_count(dead, failing + dead >= BOUND),
        chart: super::chart::daily_orders(&per_day),
    };
    Ok(page(&overview))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_volumes_are_shown_from_integers() {
        assert_eq!(percent(1, 3), "33.3 %");
        assert_eq!(percent(2, 2), "100.0 %");
        assert_eq!(percent(0, 0), "–");
        let shown = volume([("EUR", 1_200), ("USD", 350), ("EUR", 5)].into_iter());
        assert_eq!(shown, "12.05 EUR, 3.50 USD");
    }

    #[test]
    fn sign_in_sends_nobody_elsewhere() {
        assert_eq!(
            safe_next(Some("/admin/orders?status=failed")),
            "/admin/orders?status=failed"
        );
        for elsewhere in [
            "https://evil.example/",
            "//evil.example/admin/",
            "/admin//evil",
            "/pay/x",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), "/admin/overview", "{elsewhere}");
        }
        assert_eq!(safe_next(None), "/admin/overview");
    }
}
