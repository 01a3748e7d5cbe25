//! The operator's commands: merchants, apps, keys. They talk to the same database as the
//! server, so they work while it runs; every change is one statement or one transaction.
//! Output is JSON, for people and scripts alike.

use crate::keyfiles::{read_key_text, write_key_pair};
use crate::{Failure, Outcome};
use clap::Subcommand;
use kassa_core::{AmountLimits, AmountMinor, App, AppId, Currency};
use kassa_server::keys::load_or_create_platform_key;
use kassa_server::now_ms;
use kassa_signature::VerifyingKey;
use kassa_store::{MerchantWithApps, SqlStore, Store};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant with one app per currency and print its appIds.
    Create {
        /// Shown to payers on the payment pages.
        #[arg(long)]
        name: String,
        /// One app is created per currency: EUR, USD (collect) or BRL (pix).
        #[arg(long = "currency", required = true)]
        currencies: Vec<String>,
        /// Register this public key (PEM or base64 DER) on every new app.
        #[arg(long, conflicts_with = "generate_keys")]
        public_key: Option<PathBuf>,
        /// Generate a merchant key pair into this folder and register its public key.
        #[arg(long)]
        generate_keys: Option<PathBuf>,
    },
    /// List merchants and their apps.
    List,
}

#[derive(Subcommand)]
pub enum AppCommand {
    /// Show an app: currency, registered key, limits.
    Show { app_id: i64 },
    /// Register (or replace) the merchant's public key of an app.
    SetKey {
        app_id: i64,
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Set the amount limits of an app (replacing the currency's and methods'), or clear them.
    SetLimits {
        app_id: i64,
        /// Smallest amount, e.g. 5.00.
        #[arg(long, required_unless_present = "clear")]
        min: Option<String>,
        /// Largest amount, e.g. 250.00.
        #[arg(long, required_unless_present = "clear")]
        max: Option<String>,
        /// Go back to the default limits.
        #[arg(long, conflicts_with_all = ["min", "max"])]
        clear: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print the platform public key (PEM) that merchants verify replies and callbacks with.
    Platform,
}

/// Connects and migrates, so every command works on a fresh database too.
pub async fn open_store(database_url: &str) -> Result<SqlStore, Failure> {
    let store = SqlStore::connect(database_url)
        .await
        .map_err(|e| Failure(format!("cannot open {}: {e}", redact_url(database_url))))?;
    store.migrate().await?;
    Ok(store)
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialise")
    );
}

fn app_json(app: &App) -> Value {
    json!({
        "appId": app.app_id.0,
        "merchantId": app.merchant_id.0,
        "currency": app.currency.code(),
        "publicKey": app.public_key,
        "limits": app.limits_override.map(|l| json!({
            "min": l.min_minor.to_decimal_string(),
            "max": l.max_minor.to_decimal_string(),
        })),
        "createdAtMs": app.created_at_ms,
    })
}

fn parse_currencies(codes: &[String]) -> Result<Vec<Currency>, Failure> {
    let mut currencies = Vec::new();
    for code in codes {
        let currency = Currency::parse(code)
            .ok_or_else(|| Failure(format!("unknown currency {code}; use EUR, USD or BRL")))?;
        if currencies.contains(&currency) {
            return Err(Failure(format!("currency {currency} given twice")));
        }
        currencies.push(currency);
    }
    Ok(currencies)
}

/// Reads and checks a public key file; returns the key as normalised SPKI PEM.
fn read_public_key(path: &Path) -> Result<String, Failure> {
    let key = VerifyingKey::parse(&read_key_text(path)?)
        .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    Ok(key.to_pem())
}

pub async fn create_merchant(
    store: &SqlStore,
    name: &str,
    currencies: &[Currency],
    public_key_pem: Option<&str>,
) -> Result<MerchantWithApps, Failure> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Failure(
            "--name must be 1 to 100 characters without control characters".into(),
        ));
    }
    Ok(store
        .create_merchant(name, currencies, public_key_pem, now_ms())
        .await?)
}

pub async fn merchant(command: MerchantCommand, database_url: &str) -> Outcome {
    match command {
        MerchantCommand::Create {
            name,
            currencies,
            public_key,
            generate_keys,
        } => {
            let currencies = parse_currencies(&currencies)?;
            let mut public_key_pem = match &public_key {
                Some(path) => Some(read_public_key(path)?),
                None => None,
            };
            let store = open_store(database_url).await?;
            let platform = load_or_create_platform_key(&store, now_ms()).await?;
            let mut key_files = Value::Null;
            if let Some(dir) = &generate_keys {
                let (private_path, public_path, key) = write_key_pair(dir)?;
                public_key_pem = Some(key.public_key_pem());
                key_files = json!({
                    "privateKey": private_path.display().to_string(),
                    "publicKey": public_path.display().to_string(),
                });
            }
            let created =
                create_merchant(&store, &name, &currencies, public_key_pem.as_deref()).await?;
            let mut out = json!({
                "merchantId": created.merchant.id.0,
                "apps": created.apps.iter().map(|a| json!({
                    "appId": a.app_id.0,
                    "currency": a.currency.code(),
                })).collect::<Vec<_>>(),
                "platformPublicKey": platform.public_key_pem(),
            });
            if !key_files.is_null() {
                out["keyFiles"] = key_files;
            }
            print_json(&out);
            Ok(())
        }
        MerchantCommand::List => {
            let store = open_store(database_url).await?;
            let merchants = store.list_merchants().await?;
            print_json(&Value::Array(
                merchants
                    .iter()
                    .map(|m| {
                        json!({
                            "merchantId": m.merchant.id.0,
                            "name": m.merchant.name,
                            "createdAtMs": m.merchant.created_at_ms,
                            "apps": m.apps.iter().map(app_json).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            ));
            Ok(())
        }
    }
}

fn parse_limit(flag: &str, text: &str) -> Result<AmountMinor, Failure> {
    AmountMinor::parse(text).map_err(|e| Failure(format!("{flag} {text:?} {e}")))
}

pub async fn app(command: AppCommand, database_url: &str) -> Outcome {
    let store = open_store(database_url).await?;
    let app_id = match command {
        AppCommand::Show { app_id } => app_id,
        AppCommand::SetKey { app_id, public_key } => {
            let pem = read_public_key(&public_key)?;
            store
                .set_app_public_key(AppId(app_id), &pem, now_ms())
                .await?;
            app_id
        }
        AppCommand::SetLimits {
            app_id,
            min,
            max,
            clear,
        } => {
            let limits = if clear {
                None
            } else {
                let min = parse_limit("--min", min.as_deref().unwrap_or_default())?;
                let max = parse_limit("--max", max.as_deref().unwrap_or_default())?;
                if min.0 == 0 || min > max {
                    return Err(Failure(
                        "--min must be above zero and not above --max".into(),
                    ));
                }
                Some(AmountLimits::new(min, max))
            };
            store
                .set_app_limits(AppId(app_id), limits, now_ms())
                .await?;
            app_id
        }
    };
    // Every app command ends by showing the app as it now is (an unknown app changed nothing).
    let app = store
        .app(AppId(app_id))
        .await?
        .ok_or_else(|| Failure(format!("no app has appId {app_id}")))?;
    print_json(&app_json(&app));
    Ok(())
}

pub async fn keys(command: KeysCommand, database_url: &str) -> Outcome {
    match command {
        KeysCommand::Platform => {
            let store = open_store(database_url).await?;
            let key = load_or_create_platform_key(&store, now_ms()).await?;
            print!("{}", key.public_key_pem());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://kassa-data/kassa.db"),
            "sqlite://kassa-data/kassa.db"
        );
    }
}
