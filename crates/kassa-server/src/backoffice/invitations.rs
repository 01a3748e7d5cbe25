//! Invitations: an operator invites a person by e-mail with a role; the link (shown once, to be
//! sent by the operator) lets that person choose a password and become a user. Taken once,
//! before it expires; only the token's hash is stored; both steps audited.

use super::{Backoffice, Caller, Error, Nav, Result, html, local_time, message, page, see};
use crate::accounts::{new_token, token_hash};
use crate::{now_ms, passwords};
use askama::Template;
use axum::Extension;
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kassa_core::MerchantId;
use kassa_core::user::{NewUser, Role, check_password};
use kassa_store::{AuditEntry, Invitation, StoreError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// How long an invitation can be taken.
pub const INVITATION_LIFETIME_MS: i64 = 72 * 3_600_000;

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    merchant: String,
}

#[derive(Template)]
#[template(path = "backoffice/invited.html")]
struct InvitedPage {
    title: &'static str,
    nav: Option<Nav>,
    email: String,
    role: &'static str,
    link: String,
    until: String,
}

/// The invitee as the form describes them, checked.
async fn invitee(backoffice: &Backoffice, form: &InviteForm) -> Result<NewUser> {
    let role =
        Role::parse(form.role.trim()).ok_or_else(|| Error::BadInput("choose a role".into()))?;
    let merchant = match form.merchant.trim() {
        "" => None,
        text => {
            let id = MerchantId(
                text.parse()
                    .map_err(|_| Error::BadInput("merchant: a number".into()))?,
            );
            let known = backoffice.gateway.store.list_merchants().await?;
            if !known.iter().any(|m| m.merchant.id == id) {
                return Err(Error::BadInput(format!("there is no merchant {}", id.0)));
            }
            Some(id)
        }
    };
    NewUser::new(&form.email, role, merchant).map_err(|e| Error::BadInput(e.to_string()))
}

/// The link's address as the inviting operator reached the back office.
fn link(headers: &HeaderMap, token: &str) -> String {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = text("x-forwarded-proto")
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let host = text("host").unwrap_or("localhost");
    format!("{scheme}://{host}/admin/invitation/{token}")
}

pub async fn invite(
    State(backoffice): State<Arc<Backoffice>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Result<Response> {
    let user = invitee(&backoffice, &form).await?;
    let token = new_token();
    let now = now_ms();
    let invitation = Invitation {
        token_hash: token_hash(&token),
        user,
        created_at_ms: now,
        expires_at_ms: now + INVITATION_LIFETIME_MS,
    };
    let mut audit = caller.audit(
        "user.invite",
        format!("invitation:{}", invitation.user.email),
    );
    audit.after = Some(invitation.user.role.as_str().into());
    backoffice
        .gateway
        .store
        .add_invitation(&invitation, &audit)
        .await?;
    let shown = InvitedPage {
        title: "Invitation made",
        nav: Some(Nav::of(&caller)),
        role: invitation.user.role.as_str(),
        until: local_time(&backoffice, invitation.expires_at_ms),
        email: invitation.user.email,
        link: link(&headers, &token),
    };
    Ok(page(&shown))
}

#[derive(Template)]
#[template(path = "backoffice/invitation.html")]
struct InvitationPage {
    title: &'static str,
    nav: Option<Nav>,
    email: String,
    role: &'static str,
    csrf: String,
    error: Option<String>,
}

fn gone() -> Response {
    message(
        StatusCode::GONE,
        "Invitation no longer valid",
        "This invitation was used already or has expired. Ask for a new one.",
    )
}

/// What the acceptance form's token is an HMAC of.
fn form_subject(hash: &str) -> String {
    format!("invitation:{hash}")
}

/// The open invitation of a link's token.
async fn open(backoffice: &Backoffice, token: &str) -> Result<Option<Invitation>> {
    if token.len() > 64 {
        return Ok(None);
    }
    let store = backoffice.gateway.store.as_ref();
    Ok(store.open_invitation(&token_hash(token), now_ms()).await?)
}

fn invitation_page(
    backoffice: &Backoffice,
    invitation: Invitation,
    error: Option<String>,
) -> InvitationPage {
    InvitationPage {
        title: "Join the back office",
        nav: None,
        csrf: backoffice
            .gateway
            .form_key
            .token_for(&form_subject(&invitation.token_hash)),
        role: invitation.user.role.as_str(),
        email: invitation.user.email,
        error,
    }
}

pub async fn show(
    State(backoffice): State<Arc<Backoffice>>,
    Path(token): Path<String>,
) -> Result<Response> {
    match open(&backoffice, &token).await? {
        Some(invitation) => Ok(page(&invitation_page(&backoffice, invitation, None))),
        None => Ok(gone()),
    }
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

pub async fn accept(
    State(backoffice): State<Arc<Backoffice>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    Form(form): Form<AcceptForm>,
) -> Result<Response> {
    let Some(invitation) = open(&backoffice, &token).await? else {
        return Ok(gone());
    };
    let subject = form_subject(&invitation.token_hash);
    if !backoffice.gateway.form_key.verify(&subject, &form.csrf) {
        return Ok(super::forbidden());
    }
    let refused = match check_password(&form.password) {
        Err(e) => Some(e.to_string()),
        Ok(()) if form.password != form.again => Some("the two passwords differ".into()),
        Ok(()) => None,
    };
    if let Some(error) = refused {
        let again = invitation_page(&backoffice, invitation, Some(error));
        return Ok(html(StatusCode::BAD_REQUEST, &again));
    }
    let hash = passwords::hash(&form.password).map_err(|e| Error::Internal(e.to_string()))?;
    let audit = AuditEntry {
        at_ms: now_ms(),
        actor: format!("invitation:{}", invitation.user.email),
        action: "user.accept-invitation".into(),
        target: String::new(),
        before: None,
        after: Some(invitation.user.role.as_str().into()),
        source: peer.ip().to_string(),
    };
    let store = backoffice.gateway.store.as_ref();
    match store
        .accept_invitation(&invitation.token_hash, &hash, &audit)
        .await
    {
        Ok(Some(_)) => Ok(see("/admin/sign-in")),
        Ok(None) => Ok(gone()),
        Err(StoreError::Conflict(_)) => Err(Error::BadInput(
            "an account with this e-mail exists already: sign in instead".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
