//! `kassa user`: the back office's users from the server's command line — the first operator
//! above all. Passwords are generated and shown once (or read from standard input), stored only
//! as argon2id hashes; every change is written with its audit entry (actor `cli:$USER`).

use crate::operator::{print_dated, print_json};
use crate::{Failure, Outcome};
use clap::Subcommand;
use kassa_core::MerchantId;
use kassa_core::user::{NewUser, Role};
use kassa_server::{now_ms, passwords};
use kassa_store::prelude::*;
use kassa_store::{AuditEntry, SqlStore, StoreError, User};
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; prints a generated password once (or reads one from standard input).
    Add {
        #[arg(long)]
        email: String,
        /// operator-admin, operator-support, merchant-admin or merchant-developer.
        #[arg(long)]
        role: String,
        /// The merchant of a merchant role.
        #[arg(long)]
        merchant: Option<i64>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every user: id, e-mail, role, merchant, whether disabled (never a password or hash).
    List,
    /// Stop a user from signing in.
    Disable { user_id: i64 },
    /// Let a disabled user sign in again.
    Enable { user_id: i64 },
    /// Give a user a TOTP second factor: prints the otpauth:// URI for an authenticator app
    /// once (the secret is stored sealed); replaces any earlier one.
    TotpEnrol { user_id: i64 },
    /// Remove a user's TOTP second factor.
    TotpRemove { user_id: i64 },
    /// Give a user a new password (generated and shown once, or read from standard input);
    /// clears their failed sign-ins and lock.
    ResetPassword {
        user_id: i64,
        #[arg(long)]
        password_stdin: bool,
    },
}

pub async fn user(command: UserCommand, store: &SqlStore) -> Outcome {
    match command {
        UserCommand::Add {
            email,
            role,
            merchant,
            password_stdin,
        } => add(store, &email, &role, merchant, password_stdin).await,
        UserCommand::List => {
            let users: Vec<Value> = store.users().await?.iter().map(user_json).collect();
            print_dated(Value::Array(users), store).await
        }
        UserCommand::TotpEnrol { user_id } => totp(store, user_id, true).await,
        UserCommand::TotpRemove { user_id } => totp(store, user_id, false).await,
        UserCommand::Disable { user_id } => set_disabled(store, user_id, true).await,
        UserCommand::Enable { user_id } => set_disabled(store, user_id, false).await,
        UserCommand::ResetPassword {
            user_id,
            password_stdin,
        } => {
            let (password, shown) = password(password_stdin)?;
            let hash = passwords::hash(&password).map_err(|e| Failure(e.to_string()))?;
            let entry = audit("user.reset-password", user_id, None, None);
            if !store.set_password_hash(user_id, &hash, &entry).await? {
                return Err(Failure(format!("no user has id {user_id}")));
            }
            print_json(&json!({"userId": user_id, "password": shown}));
            Ok(())
        }
    }
}

async fn add(
    store: &SqlStore,
    email: &str,
    role: &str,
    merchant: Option<i64>,
    password_stdin: bool,
) -> Outcome {
    let role = Role::parse(role).ok_or_else(|| {
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        Failure(format!("--role must be one of {}", roles.join(", ")))
    })?;
    let merchant_id = merchant.map(MerchantId);
    if let Some(id) = merchant_id
        && !store
            .list_merchants()
            .await?
            .iter()
            .any(|m| m.merchant.id == id)
    {
        return Err(Failure(format!("no merchant has id {}", id.0)));
    }
    let new = NewUser::new(email, role, merchant_id).map_err(|e| Failure(e.to_string()))?;
    let (password, shown) = password(password_stdin)?;
    let hash = passwords::hash(&password).map_err(|e| Failure(e.to_string()))?;
    let after = json!({"role": role.as_str(), "merchantId": merchant}).to_string();
    let entry = audit("user.add", 0, None, Some(after));
    let added = match store.add_user(&new, &hash, &entry).await {
        Err(StoreError::Conflict(_)) => {
            return Err(Failure(format!("a user has e-mail {} already", new.email)));
        }
        other => other?,
    };
    let mut shown_user = user_json(&added);
    shown_user["password"] = json!(shown);
    print_dated(shown_user, store).await?;
    Ok(())
}

/// Enrols (or removes) a user's second factor; the URI is printed once, the secret stored
/// sealed with the key-encryption key.
async fn totp(store: &SqlStore, user_id: i64, enrol: bool) -> Outcome {
    let users = store.users().await?;
    let found = users.iter().find(|u| u.user_id == user_id);
    let user = found.ok_or_else(|| Failure(format!("no user has id {user_id}")))?;
    let (sealed, uri) = if enrol {
        let kek = crate::kek::unlock(store).await?;
        let (sealed, uri) = kassa_server::accounts::enrol_totp(&kek, &user.email);
        (Some(sealed), Some(uri))
    } else {
        (None, None)
    };
    let action = if enrol {
        "user.totp-enrol"
    } else {
        "user.totp-remove"
    };
    let entry = audit(action, user_id, None, None);
    store
        .set_totp_secret(user_id, sealed.as_deref(), &entry)
        .await?;
    print_json(&json!({"userId": user_id, "totp": enrol, "otpauthUri": uri}));
    Ok(())
}

async fn set_disabled(store: &SqlStore, user_id: i64, disabled: bool) -> Outcome {
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    let after = json!({ "disabled": disabled }).to_string();
    let entry = audit(action, user_id, None, Some(after));
    if !store.set_user_disabled(user_id, disabled, &entry).await? {
        return Err(Failure(format!("no user has id {user_id}")));
    }
    print_json(&json!({"userId": user_id, "disabled": disabled}));
    Ok(())
}

/// The password to set, and what to print of it: a generated one is shown (once), one read
/// from standard input is not.
fn password(from_stdin: bool) -> Result<(String, Option<String>), Failure> {
    if !from_stdin {
        let generated = passwords::generate();
        return Ok((generated.clone(), Some(generated)));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok((line.trim_end_matches(['\r', '\n']).to_string(), None))
}

/// An audit entry of a user's change made on the command line.
fn audit(action: &str, user_id: i64, before: Option<String>, after: Option<String>) -> AuditEntry {
    AuditEntry {
        before,
        after,
        ..cli_audit(action, format!("user:{user_id}"))
    }
}

/// An audit entry of the command line: the shell user who ran it, on `target`.
pub(crate) fn cli_audit(action: &str, target: String) -> AuditEntry {
    let shell_user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    AuditEntry {
        at_ms: now_ms(),
        actor: format!("cli:{}", shell_user.chars().take(64).collect::<String>()),
        action: action.into(),
        target,
        before: None,
        after: None,
        source: "cli".into(),
    }
}

fn user_json(user: &User) -> Value {
    json!({
        "userId": user.user_id,
        "email": user.email,
        "role": user.role.as_str(),
        "merchantId": user.merchant_id.map(|m| m.0),
        "disabled": user.disabled,
        "createdAtMs": user.created_at_ms,
    })
}
