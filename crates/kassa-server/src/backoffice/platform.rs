//! Apps (keys, fees and limits, balances), and the operator's pages: merchants, channels,
//! users, the audit log.

use super::{Backoffice, Caller, Error, Nav, Result, local_time, page, see, user_label};
use crate::now_ms;
use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kassa_core::user::Permission;
use kassa_core::{AmountLimits, AmountMinor, App, AppId, FeeRule};
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
    may_set_terms: bool,
    /// Until when the replaced webhook secret still signs, if it does.
    retiring_until: Option<String>,
    /// Today in the operator's zone, the report form's first choice.
    today: String,
    settlement_delay_days: i64,
    is_brl: bool,
    pix: (String, String, String),
    pix_dynamic: bool,
    /// The merchant's colour on the payer's pages (empty: kassa's).
    brand_colour: String,
    methods: Vec<&'static str>,
    limits: (String, String),
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
        may_set_terms: caller.user.role.may(Permission::ManageTerms),
        today: local_time(backoffice, now_ms())[..10].to_string(),
        settlement_delay_days: terms.settlement_delay_days,
        is_brl: app.currency == kassa_core::Currency::Brl,
        pix: app.pix.as_ref().map_or_else(Default::default, |p| {
            (p.key.as_str().to_string(), p.name.clone(), p.city.clone())
        }),
        brand_colour: app
            .brand_colour
            .as_ref()
            .map_or_else(String::new, |c| c.as_str().to_string()),
        pix_dynamic: app
            .pix
            .as_ref()
            .is_some_and(|p| p.codes == kassa_core::pix::CodeKind::Dynamic),
        retiring_until: app
            .retiring_webhook_secret
            .as_ref()
            .filter(|(_, until)| *until > now_ms())
            .map(|(_, until)| local_time(backoffice, *until)),
        methods: std::iter::once(FeeRule::ANY_METHOD)
            .chain(
                kassa_core::method::CATALOGUE
                    .iter()
                    .filter(|m| m.allows_currency(app.currency))
                    .map(|m| m.code),
            )
            .collect(),
        limits: app.limits_override.map_or_else(Default::default, |l| {
            (
                l.min_minor.to_decimal_string(),
                l.max_minor.to_decimal_string(),
            )
        }),
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
    let mut audit = caller.audit("app.set-key", format!("app:{}", app.app_id.0));
    audit.before = Some(key_label(&app));
    audit.after = Some(key.fingerprint());
    store
        .set_app_public_key(app.app_id, &key.to_pem(), now_ms(), Some(&audit))
        .await?;
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
    /// When it was suspended, if it is.
    pub suspended: Option<String>,
}

#[derive(Template)]
#[template(path = "backoffice/merchants.html")]
struct MerchantsPage {
    title: &'static str,
    nav: Option<Nav>,
    merchants: Vec<MerchantLine>,
    may_create: bool,
    currencies: Vec<&'static str>,
}

pub async fn merchants(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let merchants = backoffice.gateway.store.list_merchants().await?;
    let shown = MerchantsPage {
        title: "Merchants",
        nav: Some(Nav::of(&caller)),
        may_create: caller.user.role.may(Permission::ManageMerchants),
        currencies: kassa_core::Currency::ALL.iter().map(|c| c.code()).collect(),
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
                suspended: m
                    .merchant
                    .suspended_at_ms
                    .map(|ms| local_time(&backoffice, ms)),
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
    roles: Vec<&'static str>,
    second_factor_required: bool,
}

pub async fn users(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let users = backoffice.gateway.store.users().await?;
    let shown = UsersPage {
        title: "Users",
        nav: Some(Nav::of(&caller)),
        roles: kassa_core::user::Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect(),
        second_factor_required: super::account::second_factor_required(&backoffice).await?,
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

#[derive(Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
}

fn amount(field: &str, text: &str) -> Result<AmountMinor> {
    AmountMinor::parse(text.trim())
        .map_err(|_| Error::BadInput(format!("{field}: an amount such as 10.00")))
}

/// Sets the app's amount limits, or with both fields empty goes back to the methods' own.
pub async fn set_limits(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    Form(form): Form<LimitsForm>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    let limits = match (form.min.trim(), form.max.trim()) {
        ("", "") => None,
        (min, max) => Some(
            AmountLimits::for_operator(amount("least", min)?, amount("most", max)?).ok_or_else(
                || Error::BadInput("the least must be above zero and not above the most".into()),
            )?,
        ),
    };
    let shown = |l: Option<AmountLimits>| {
        l.map_or_else(
            || "the methods' own".into(),
            |l| format!("{} to {}", l.min_minor, l.max_minor),
        )
    };
    let store = backoffice.gateway.store.as_ref();
    let mut audit = caller.audit("app.set-limits", format!("app:{}", app.app_id.0));
    audit.before = Some(shown(app.limits_override));
    audit.after = Some(shown(limits));
    store
        .set_app_limits(app.app_id, limits, now_ms(), Some(&audit))
        .await?;
    Ok(see(&format!("/admin/apps/{}", app.app_id.0)))
}

#[derive(Deserialize)]
pub struct FeeForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    basis_points: String,
    #[serde(default)]
    fixed: String,
    #[serde(default)]
    clear: Option<String>,
}

/// Sets (or clears) the app's fee rule for a method or for every method (`*`).
pub async fn set_fee(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    Form(form): Form<FeeForm>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    let method = form.method.trim();
    if !FeeRule::method_known(method) {
        return Err(Error::BadInput(format!(
            "{method:?} is not a payment method or *"
        )));
    }
    let rule = match form.clear {
        Some(_) => None,
        None => {
            let basis_points: u32 = form.basis_points.trim().parse().map_err(|_| {
                Error::BadInput("basis points: a whole number from 0 to 10000".into())
            })?;
            let fixed = amount(
                "fixed fee",
                if form.fixed.trim().is_empty() {
                    "0"
                } else {
                    &form.fixed
                },
            )?;
            Some(FeeRule::new(basis_points, fixed).map_err(|e| Error::BadInput(e.to_string()))?)
        }
    };
    let store = backoffice.gateway.store.as_ref();
    let before = store.fee_rules(app.app_id).await?;
    let before = before
        .iter()
        .find(|(m, _)| m == method)
        .map(|(_, r)| r.to_string());
    let mut audit = caller.audit(
        "app.set-fee",
        format!("app:{} method:{method}", app.app_id.0),
    );
    audit.before = before;
    audit.after = rule.map(|r| r.to_string());
    store
        .set_fee_rule(app.app_id, method, rule, now_ms(), Some(&audit))
        .await?;
    Ok(see(&format!("/admin/apps/{}", app.app_id.0)))
}

pub struct ChannelLine {
    pub channel_id: String,
    pub kind: &'static str,
    pub upstream: String,
    pub currencies: String,
    pub methods: String,
    pub priority: i32,
    pub weight: u32,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "backoffice/channels.html")]
struct ChannelsPage {
    title: &'static str,
    nav: Option<Nav>,
    channels: Vec<ChannelLine>,
    /// The last reconciliation's differences: channel, kind, how many.
    differences: Vec<(String, String, i64)>,
    may_change: bool,
}

/// The channels rails route to (set with `kassa channel`); no credential is shown.
pub async fn channels(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let store = backoffice.gateway.store.as_ref();
    let channels = store.channels().await?;
    let differences = store.reconciliation_differences().await?;
    let join = |items: Vec<&str>| {
        if items.is_empty() {
            "all".to_string()
        } else {
            items.join(", ")
        }
    };
    let shown = ChannelsPage {
        title: "Channels",
        nav: Some(Nav::of(&caller)),
        differences,
        may_change: caller.user.role.may(Permission::ManageTerms),
        channels: channels
            .iter()
            .map(|c| ChannelLine {
                channel_id: c.channel_id.clone(),
                kind: c.kind.code(),
                upstream: c.upstream.as_ref().map_or_else(
                    || "–".into(),
                    |u| format!("{} (appId {})", u.base_url, u.app_id),
                ),
                currencies: join(c.currencies.iter().map(|c| c.code()).collect()),
                methods: join(c.methods.iter().map(|m| m.method.code).collect()),
                priority: c.priority,
                weight: c.weight,
                enabled: c.enabled,
            })
            .collect(),
    };
    Ok(page(&shown))
}

/// Creates a merchant with an app per currency ticked (`currency` repeated); audited.
pub async fn create_merchant(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let mut name = String::new();
    let mut currencies = Vec::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "name" => name = value.into_owned(),
            "currency" => currencies.push(
                kassa_core::Currency::parse(&value)
                    .ok_or_else(|| Error::BadInput(format!("unknown currency {value:?}")))?,
            ),
            _ => {}
        }
    }
    let store = backoffice.gateway.store.as_ref();
    // The store fills in the new merchant's number and apps.
    let audit = caller.audit("merchant.create", String::new());
    let kek = &backoffice.kek;
    crate::onboarding::create_merchant(store, kek, &name, &currencies, None, Some(&audit))
        .await
        .map_err(|e| match e {
            crate::onboarding::OnboardingError::Store(e) => Error::Store(e),
            refused => Error::BadInput(refused.to_string()),
        })?;
    Ok(see("/admin/merchants"))
}

#[derive(Template)]
#[template(path = "backoffice/webhook_secret.html")]
struct SecretPage {
    title: &'static str,
    nav: Option<Nav>,
    app_id: i64,
    secret: String,
    until: String,
}

/// A new webhook secret for the app, shown once; the old one keeps signing callbacks beside it
/// for 24 hours. Audited (without either secret).
pub async fn rotate_webhook_secret(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    let (secret, sealed) = crate::onboarding::new_webhook_secret(&backoffice.kek);
    let now = now_ms();
    let until = now + crate::onboarding::RETIRING_SECRET_MS;
    let store = backoffice.gateway.store.as_ref();
    let mut audit = caller.audit("app.rotate-webhook-secret", format!("app:{}", app.app_id.0));
    audit.after = Some(format!(
        "the old secret signs too until {}",
        local_time(&backoffice, until)
    ));
    store
        .rotate_webhook_secret(app.app_id, &sealed, until, now, Some(&audit))
        .await?;
    let shown = SecretPage {
        title: "New webhook secret",
        nav: Some(Nav::of(&caller)),
        app_id: app.app_id.0,
        secret: secret.expose().to_string(),
        until: local_time(&backoffice, until),
    };
    Ok(page(&shown))
}

#[derive(Deserialize)]
pub struct ReportQuery {
    #[serde(default)]
    date: String,
}

/// Chunks of a report on their way to the browser: a few pages at most wait here.
const REPORT_CHUNKS_IN_FLIGHT: usize = 4;

/// The app's settlement report of a day as CSV (the columns of `kassa report settlement`),
/// streamed page by page: a slow download holds back the reading, memory stays a few pages.
pub async fn report(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<ReportQuery>,
) -> Result<Response> {
    use crate::report::{Day, Format, write_day};
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    let zone = backoffice.gateway.notary.timezone().clone();
    let day = Day::of_app(query.date.trim(), &zone, &app, now_ms())
        .map_err(|e| Error::BadInput(e.to_string()))?;
    let (chunks, mut received) = tokio::sync::mpsc::channel(REPORT_CHUNKS_IN_FLIGHT);
    let store = backoffice.gateway.store.clone();
    let app_row = app.clone();
    tokio::spawn(async move {
        let emit = |text: String| {
            let chunks = chunks.clone();
            async move {
                let chunk = Ok::<_, std::io::Error>(axum::body::Bytes::from(text));
                chunks
                    .send(chunk)
                    .await
                    .map_err(|_| std::io::Error::other("the reader left"))
            }
        };
        if let Err(e) = write_day(store.as_ref(), &app_row, &day, &zone, Format::Csv, emit).await {
            tracing::warn!(error = %e, app_id = app_row.app_id.0, "back office: the report stopped");
            let _ = chunks
                .send(Err(std::io::Error::other("the report stopped")))
                .await;
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| received.poll_recv(cx));
    let name = format!(
        "attachment; filename=\"settlement-{}-{}.csv\"",
        app.app_id.0,
        query.date.trim()
    );
    let mut response = axum::body::Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "text/csv; charset=utf-8".parse().expect("a header"),
    );
    if let Ok(value) = name.parse() {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Suspends a merchant (no new order for any of its apps) or reinstates it; audited.
async fn set_suspended(
    backoffice: &Backoffice,
    caller: &Caller,
    merchant_id: &str,
    suspend: bool,
) -> Result<Response> {
    let merchant_id = kassa_core::MerchantId(merchant_id.parse().map_err(|_| Error::NotFound)?);
    let now = now_ms();
    let store = backoffice.gateway.store.as_ref();
    let at = suspend.then_some(now);
    let action = if suspend {
        "merchant.suspend"
    } else {
        "merchant.reinstate"
    };
    let audit = caller.audit(action, format!("merchant:{}", merchant_id.0));
    if !store
        .set_merchant_suspended(merchant_id, at, now, Some(&audit))
        .await?
    {
        return Err(Error::NotFound);
    }
    Ok(see("/admin/merchants"))
}

pub async fn suspend_merchant(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(merchant_id): Path<String>,
) -> Result<Response> {
    set_suspended(&backoffice, &caller, &merchant_id, true).await
}

pub async fn reinstate_merchant(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(merchant_id): Path<String>,
) -> Result<Response> {
    set_suspended(&backoffice, &caller, &merchant_id, false).await
}

#[derive(Deserialize)]
pub struct SettlementForm {
    #[serde(default)]
    days: String,
}

/// Sets how many days after payment the app's funds become available; audited.
pub async fn set_settlement(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    Form(form): Form<SettlementForm>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    let most = kassa_core::ledger::MAX_SETTLEMENT_DELAY_DAYS;
    let days: i64 = form
        .days
        .trim()
        .parse()
        .ok()
        .filter(|d| (0..=most).contains(d))
        .ok_or_else(|| Error::BadInput(format!("the delay is 0 to {most} days")))?;
    let store = backoffice.gateway.store.as_ref();
    let before = store.success_terms(app.app_id).await?.settlement_delay_days;
    let mut audit = caller.audit("app.set-settlement", format!("app:{}", app.app_id.0));
    audit.before = Some(format!("{before} days"));
    audit.after = Some(format!("{days} days"));
    store
        .set_settlement_delay_days(app.app_id, days, Some(&audit))
        .await?;
    Ok(see(&format!("/admin/apps/{}", app.app_id.0)))
}

#[derive(Deserialize)]
pub struct BrandForm {
    #[serde(default)]
    colour: String,
}

/// Sets or clears the merchant's colour on the payer's pages, as `kassa app set-brand` does
/// (refused when white text on it would be hard to read); audited.
pub async fn set_brand(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    Form(form): Form<BrandForm>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    let colour = match form.colour.trim() {
        "" => None,
        text => {
            Some(kassa_core::BrandColour::parse(text).map_err(|e| Error::BadInput(e.to_string()))?)
        }
    };
    let shown = |c: Option<&kassa_core::BrandColour>| {
        c.map_or("kassa's own".to_string(), |c| c.as_str().to_string())
    };
    let mut audit = caller.audit("app.set-brand", format!("app:{}", app.app_id.0));
    audit.before = Some(shown(app.brand_colour.as_ref()));
    audit.after = Some(shown(colour.as_ref()));
    let store = backoffice.gateway.store.as_ref();
    store
        .set_app_brand(app.app_id, colour.as_ref(), now_ms(), Some(&audit))
        .await?;
    Ok(see(&format!("/admin/apps/{}", app.app_id.0)))
}

#[derive(Deserialize)]
pub struct PixForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    city: String,
    /// The checkbox of dynamic codes: present when ticked.
    dynamic: Option<String>,
}

/// Sets who receives a BRL app's PIX payments (the key and the name and city its BR Codes
/// show), as `kassa app set-pix` does; audited.
pub async fn set_pix(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(app_id): Path<String>,
    Form(form): Form<PixForm>,
) -> Result<Response> {
    let app = reachable_app(&backoffice, &caller, &app_id).await?;
    if app.currency != kassa_core::Currency::Brl {
        return Err(Error::BadInput("PIX receivers belong to BRL apps".into()));
    }
    let codes = match form.dynamic {
        Some(_) => kassa_core::pix::CodeKind::Dynamic,
        None => kassa_core::pix::CodeKind::Static,
    };
    let receiver = kassa_core::pix::PixReceiver::new(form.key.trim(), &form.name, &form.city)
        .map_err(|e| Error::BadInput(e.to_string()))?
        .with_codes(codes);
    let store = backoffice.gateway.store.as_ref();
    let shown = |r: &kassa_core::pix::PixReceiver| {
        let (kind, name, city, codes) = (r.key.kind(), &r.name, &r.city, r.codes.as_str());
        format!("{kind} ({name}, {city}; {codes} codes)")
    };
    let mut audit = caller.audit("app.set-pix", format!("app:{}", app.app_id.0));
    audit.before = app.pix.as_ref().map(shown);
    audit.after = Some(shown(&receiver));
    store
        .set_app_pix(app.app_id, Some(&receiver), now_ms(), Some(&audit))
        .await?;
    Ok(see(&format!("/admin/apps/{}", app.app_id.0)))
}

/// Takes a channel into routing or out of it (every node follows at its next refresh);
/// audited.
async fn set_channel_enabled(
    backoffice: &Backoffice,
    caller: &Caller,
    channel_id: &str,
    enabled: bool,
) -> Result<Response> {
    let store = backoffice.gateway.store.as_ref();
    let mut channel = store.channel(channel_id).await?.ok_or(Error::NotFound)?;
    let before = channel.enabled;
    channel.enabled = enabled;
    channel.updated_at_ms = now_ms();
    let action = if enabled {
        "channel.enable"
    } else {
        "channel.disable"
    };
    let mut audit = caller.audit(action, format!("channel:{}", channel.channel_id));
    audit.before = Some(if before { "enabled" } else { "disabled" }.into());
    if !store.update_channel(&channel, Some(&audit)).await? {
        return Err(Error::NotFound);
    }
    Ok(see("/admin/channels"))
}

pub async fn enable_channel(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(channel_id): Path<String>,
) -> Result<Response> {
    set_channel_enabled(&backoffice, &caller, &channel_id, true).await
}

pub async fn disable_channel(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(channel_id): Path<String>,
) -> Result<Response> {
    set_channel_enabled(&backoffice, &caller, &channel_id, false).await
}

#[derive(Template)]
#[template(path = "backoffice/new_password.html")]
struct NewPasswordPage {
    title: &'static str,
    nav: Option<Nav>,
    user: String,
    password: String,
}

/// The user asked for, by id; not the caller (who has their own account page).
async fn other_user(
    backoffice: &Backoffice,
    caller: &Caller,
    user_id: &str,
) -> Result<kassa_store::User> {
    let user_id: i64 = user_id.parse().map_err(|_| Error::NotFound)?;
    if user_id == caller.user.user_id {
        return Err(Error::BadInput("not your own account".into()));
    }
    let users = backoffice.gateway.store.users().await?;
    users
        .into_iter()
        .find(|u| u.user_id == user_id)
        .ok_or(Error::NotFound)
}

/// Gives a user a new password, generated and shown once (as `kassa user reset-password`
/// does); their sessions end and their lock is lifted; audited with the change.
pub async fn reset_password(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Response> {
    let user = other_user(&backoffice, &caller, &user_id).await?;
    let password = crate::passwords::generate();
    let hash = crate::passwords::hash(&password).map_err(|e| Error::Internal(e.to_string()))?;
    let audit = caller.audit("user.reset-password", format!("user:{}", user.user_id));
    let store = backoffice.gateway.store.as_ref();
    if !store.set_password_hash(user.user_id, &hash, &audit).await? {
        return Err(Error::NotFound);
    }
    let shown = NewPasswordPage {
        title: "New password",
        nav: Some(Nav::of(&caller)),
        user: user_label(&user),
        password,
    };
    Ok(page(&shown))
}

/// Removes a user's second factor (a lost phone), as `kassa user totp-remove` does; audited
/// with the change.
pub async fn remove_second_factor(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Response> {
    let user = other_user(&backoffice, &caller, &user_id).await?;
    let audit = caller.audit("user.totp-remove", format!("user:{}", user.user_id));
    let store = backoffice.gateway.store.as_ref();
    if !store.set_totp_secret(user.user_id, None, &audit).await? {
        return Err(Error::NotFound);
    }
    Ok(see("/admin/users"))
}
