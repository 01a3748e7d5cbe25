//! Apps (keys, limits, balances), and the operator's pages: merchants, users, the audit log.

use super::{Backoffice, Caller, Error, Nav, Result, local_time, page, see, user_label};
use crate::now_ms;
use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kassa_core::user::Permission;
use kassa_core::{AmountMinor, App, AppId};
use kassa_signature::VerifyingKey;
use serde::Deserialize;
use std::sync::Arc;

pub struct AppLine {
    pub app_id: i64,
    pub merchant: String,
    pub currency: &'static str,
    pub key: String,
}

#[derive(Template)]
#[template(path = "backoffice/apps.html")]
struct AppsPage {
    title: &'static str,
    nav: Option<Nav>,
    apps: Vec<AppLine>,
}

/// The fingerprint of an app's key, or what stands instead.
fn key_label(app: &App) -> String {
    match app.public_key.as_deref().map(VerifyingKey::parse) {
        None => "no key yet".into(),
        Some(Ok(key)) => key.fingerprint(),
        Some(Err(e)) => format!("unreadable key: {e}"),
    }
}

pub async fn apps(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let merchants = backoffice.gateway.store.list_merchants().await?;
    let apps = merchants
        .iter()
        .flat_map(|m| m.apps.iter().map(move |app| (m, app)))
        .filter(|(_, app)| caller.reaches(app.app_id))
        .map(|(m, app)| AppLine {
            app_id: app.app_id.0,
            merchant: m.merchant.name.clone(),
            currency: app.currency.code(),
            key: key_label(app),
        })
        .collect();
    let shown = AppsPage {
        title: "Apps",
        nav: Some(Nav::of(&caller)),
        apps,
    };
    Ok(page(&shown))
}

#[derive(Template)]
#[template(path = "backoffice/app.html")]
struct AppPage {
    title: String,
    nav: Option<Nav>,
    app_id: i64,
    fields: Vec<(&'static str, String)>,
    key: String,
    balances: Vec<(String, String, String)>,
    fees: Vec<(String, String)>,
    may_set_key: bool,
    error: Option<String>,
}

/// The app, if this caller may see it; another merchant's is "not found".
async fn reachable_app(backoffice: &Backoffice, caller: &Caller, app_id: &str) -> Result<App> {
    let app_id = AppId(app_id.parse().map_err(|_| Error::NotFound)?);
    if !caller.reaches(app_id) {
        return Err(Error::NotFound);
    }
    backoffice
        .gateway
        .store
        .app(app_id)
        .await?
        .ok_or(Error::NotFound)
}

async fn app_page(
    backoffice: &Backoffice,
    caller: &Caller,
    app: &App,
    error: Option<String>,
) -> Result<Response> {
    let store = backoffice.gateway.store.as_ref();
    let merchant = store.merchant_of_app(app.app_id).await?;
    let balances = store.balances(Some(app.app_id)).await?;
    let terms = store.success_terms(app.app_id).await?;
    let limits = match app.limits_override {
        Some(l) => format!("{} to {}", l.min_minor, l.max_minor),
        None => "the methods' own".into(),
    };
    let fields = vec![
        ("App id", app.app_id.0.to_string()),
        ("Merchant", merchant.map_or_else(String::new, |m| m.name)),
        ("Currency", app.currency.code().to_string()),
        ("Amount limits", limits),
        (
            "Settlement delay",
            format!("{} days", terms.settlement_delay_days),
        ),
        (
            "PIX receiver",
            app.pix
                .as_ref()
                .map_or_else(|| "–".into(), |p| p.name.clone()),
        ),
        ("Created", local_time(backoffice, app.created_at_ms)),
    ];
    let shown = AppPage {
        title: format!("App {}", app.app_id.0),
        nav: Some(Nav::of(caller)),
        app_id: app.app_id.0,
        fields,
        key: key_label(app),
        balances: balances
            .into_iter()
            .map(|(account, currency, minor)| {
                (account, currency, AmountMinor(minor).to_decimal_string())
            })
            .collect(),
        fees: terms
            .fee_rules
            .iter()
            .map(|(method, rule)| (method.clone(), rule.to_string()))
            .collect(),
        may_set_key: caller.user.role.may(Permission::ManageKeys),
        error,
    };
    Ok(page(&shown))
}

pub async fn app(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    app_page(&backoffice, &caller, &app, None).await
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    public_key: String,
}

/// Sets the merchant's public key (PEM or base64 DER), stored as SPKI PEM; audited with the
/// fingerprints before and after.
pub async fn set_key(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    Form(form): Form<KeyForm>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    let key = match VerifyingKey::parse(form.public_key.trim()) {
        Ok(key) => key,
        Err(e) => {
            let error = Some(format!("That key cannot be used: {e}"));
            return app_page(&backoffice, &caller, &app, error).await;
        }
    };
    let store = backoffice.gateway.store.as_ref();
    store
        .set_app_public_key(app.app_id, &key.to_pem(), now_ms())
        .await?;
    let mut audit = caller.audit("app.set-key", format!("app:{}", app.app_id.0));
    audit.before = Some(key_label(&app));
    audit.after = Some(key.fingerprint());
    store.append_audit(&audit).await?;
    Ok(see(&format!("/admin/apps/{}", app.app_id.0)))
}

/// The platform's public key, which verifies kassa's replies and callbacks.
pub async fn platform_key(State(backoffice): State<Arc<Backoffice>>) -> Response {
    let pem = backoffice.gateway.notary.key().public_key_pem();
    (
        [
            (header::CONTENT_TYPE, "application/x-pem-file"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"kassa-platform-public-key.pem\"",
            ),
        ],
        pem,
    )
        .into_response()
}

pub struct MerchantLine {
    pub merchant_id: i64,
    pub name: String,
    pub apps: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "backoffice/merchants.html")]
struct MerchantsPage {
    title: &'static str,
    nav: Option<Nav>,
    merchants: Vec<MerchantLine>,
}

pub async fn merchants(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let merchants = backoffice.gateway.store.list_merchants().await?;
    let shown = MerchantsPage {
        title: "Merchants",
        nav: Some(Nav::of(&caller)),
        merchants: merchants
            .iter()
            .map(|m| MerchantLine {
                merchant_id: m.merchant.id.0,
                name: m.merchant.name.clone(),
                apps: m
                    .apps
                    .iter()
                    .map(|a| format!("{} ({})", a.app_id.0, a.currency.code()))
                    .collect::<Vec<_>>()
                    .join(", "),
                created: local_time(&backoffice, m.merchant.created_at_ms),
            })
            .collect(),
    };
    Ok(page(&shown))
}

pub struct AuditLine {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
    pub source: String,
}

#[derive(Template)]
#[template(path = "backoffice/audit.html")]
struct AuditPage {
    title: &'static str,
    nav: Option<Nav>,
    entries: Vec<AuditLine>,
}

pub async fn audit(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let entries = backoffice.gateway.store.audit_entries(500).await?;
    let shown = AuditPage {
        title: "Audit log",
        nav: Some(Nav::of(&caller)),
        entries: entries
            .into_iter()
            .map(|e| AuditLine {
                at: local_time(&backoffice, e.at_ms),
                actor: e.actor,
                action: e.action,
                target: e.target,
                before: e.before.unwrap_or_default(),
                after: e.after.unwrap_or_default(),
                source: e.source,
            })
            .collect(),
    };
    Ok(page(&shown))
}

pub struct UserLine {
    pub user_id: i64,
    pub label: String,
    pub merchant: String,
    pub second_factor: bool,
    pub disabled: bool,
    pub is_self: bool,
}

#[derive(Template)]
#[template(path = "backoffice/users.html")]
struct UsersPage {
    title: &'static str,
    nav: Option<Nav>,
    users: Vec<UserLine>,
}

pub async fn users(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let users = backoffice.gateway.store.users().await?;
    let shown = UsersPage {
        title: "Users",
        nav: Some(Nav::of(&caller)),
        users: users
            .iter()
            .map(|u| UserLine {
                user_id: u.user_id,
                label: user_label(u),
                merchant: u.merchant_id.map_or_else(String::new, |m| m.0.to_string()),
                second_factor: u.totp_secret.is_some(),
                disabled: u.disabled,
                is_self: u.user_id == caller.user.user_id,
            })
            .collect(),
    };
    Ok(page(&shown))
}

async fn set_disabled(
    backoffice: &Backoffice,
    caller: &Caller,
    user_id: &str,
    disabled: bool,
) -> Result<Response> {
    let user_id: i64 = user_id.parse().map_err(|_| Error::NotFound)?;
    if user_id == caller.user.user_id {
        return Err(Error::BadInput("you cannot disable yourself".into()));
    }
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    let audit = caller.audit(action, format!("user:{user_id}"));
    let store = backoffice.gateway.store.as_ref();
    if !store.set_user_disabled(user_id, disabled, &audit).await? {
        return Err(Error::NotFound);
    }
    Ok(see("/admin/users"))
}

pub async fn disable_user(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Response> {
    set_disabled(&backoffice, &caller, &user_id, true).await
}

pub async fn enable_user(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Response> {
    set_disabled(&backoffice, &caller, &user_id, false).await
}
