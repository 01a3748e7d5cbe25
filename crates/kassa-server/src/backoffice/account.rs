//! A user's own account: enrolling a second factor (TOTP) in the browser, confirmed by a first
//! code; and the operator's rule that every user must have one.

use super::{Backoffice, Caller, Error, Nav, Result, html, page, see};
use crate::accounts::{code_step, enrol_totp};
use crate::now_ms;
use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;

/// The setting that makes a second factor required of every user ("true" or "false").
pub const REQUIRE_SECOND_FACTOR: &str = "backoffice_require_second_factor";

/// Whether every user must have a second factor.
pub async fn second_factor_required(backoffice: &Backoffice) -> Result<bool> {
    let store = backoffice.gateway.store.as_ref();
    Ok(store.setting(REQUIRE_SECOND_FACTOR).await?.as_deref() == Some("true"))
}

#[derive(Template)]
#[template(path = "backoffice/account.html")]
struct AccountPage {
    title: &'static str,
    nav: Option<Nav>,
    email: String,
    role: &'static str,
    has_second_factor: bool,
    required: bool,
    enrolment: Option<Enrolment>,
    error: Option<&'static str>,
}

/// A secret offered for enrolment: sealed in the form (nothing stored until confirmed), and
/// shown as a QR code and as text.
pub struct Enrolment {
    sealed: String,
    qr_svg: String,
    secret_text: String,
}

fn enrolment(backoffice: &Backoffice, caller: &Caller, sealed: Option<String>) -> Enrolment {
    let (sealed, uri) = match sealed {
        // Shown again after a wrong code: the same secret, its URI rebuilt from it.
        Some(sealed) => {
            match crate::accounts::enrolment_uri_of(&backoffice.kek, &sealed, &caller.user.email) {
                Some(uri) => (sealed, uri),
                None => enrol_totp(&backoffice.kek, &caller.user.email),
            }
        }
        None => enrol_totp(&backoffice.kek, &caller.user.email),
    };
    let secret_text = uri
        .split_once("secret=")
        .map(|(_, rest)| rest.split('&').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    Enrolment {
        qr_svg: crate::qr::svg(&uri),
        sealed,
        secret_text,
    }
}

async fn account_page(
    backoffice: &Backoffice,
    caller: &Caller,
    sealed: Option<String>,
    error: Option<&'static str>,
) -> Result<AccountPage> {
    let has_second_factor = caller.user.totp_secret.is_some();
    Ok(AccountPage {
        title: "Your account",
        nav: Some(Nav::of(caller)),
        email: caller.user.email.clone(),
        role: caller.user.role.as_str(),
        has_second_factor,
        required: second_factor_required(backoffice).await?,
        enrolment: (!has_second_factor).then(|| enrolment(backoffice, caller, sealed)),
        error,
    })
}

pub async fn show(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    Ok(page(&account_page(&backoffice, &caller, None, None).await?))
}

#[derive(Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    sealed: String,
    #[serde(default)]
    code: String,
}

/// Confirms an enrolment with a first code; only then is the secret stored (audited).
pub async fn enrol(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<EnrolForm>,
) -> Result<Response> {
    if caller.user.totp_secret.is_some() {
        return Err(Error::BadInput(
            "your account has a second factor already".into(),
        ));
    }
    let sealed = form.sealed.trim();
    let step = code_step(&backoffice.kek, sealed, form.code.trim(), None, now_ms())
        .map_err(|_| Error::BadInput("the enrolment form was changed; start again".into()))?;
    if step.is_none() {
        let again = account_page(
            &backoffice,
            &caller,
            Some(sealed.into()),
            Some("That code is wrong; try the next one your app shows."),
        )
        .await?;
        return Ok(html(StatusCode::BAD_REQUEST, &again));
    }
    let audit = caller.audit("user.totp-enrol", format!("user:{}", caller.user.user_id));
    let store = backoffice.gateway.store.as_ref();
    store
        .set_totp_secret(caller.user.user_id, Some(sealed), &audit)
        .await?;
    Ok(see("/admin/account"))
}

#[derive(Deserialize)]
pub struct RequireForm {
    #[serde(default)]
    required: String,
}

/// Makes a second factor required of every user, or not; audited.
pub async fn require(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<RequireForm>,
) -> Result<Response> {
    let required = match form.required.as_str() {
        "yes" => "true",
        "no" => "false",
        _ => return Err(Error::BadInput("say yes or no".into())),
    };
    let store = backoffice.gateway.store.as_ref();
    let before = second_factor_required(&backoffice).await?;
    let mut audit = caller.audit("backoffice.require-second-factor", "backoffice".into());
    audit.before = Some(before.to_string());
    audit.after = Some(required.into());
    store
        .set_setting(REQUIRE_SECOND_FACTOR, required, now_ms(), Some(&audit))
        .await?;
    Ok(see("/admin/users"))
}
