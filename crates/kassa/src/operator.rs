//! The operator's commands: merchants, apps, keys. They talk to the same database as the
//! server, so they work while it runs; every change is one statement or one transaction.
//! Output is JSON, for people and scripts alike.

use crate::keyfiles::{read_key_text, write_key_pair};
use crate::{Failure, Outcome};
use clap::{Subcommand, ValueEnum};
use kassa_core::pix::{CodeKind, PixReceiver};
use kassa_core::{
    AmountLimits, AmountMinor, App, AppId, Currency, FeeRule, Order, OrderEvent, OrderNo, Personal,
};
use kassa_server::dialect::Dialects;
use kassa_server::keys::load_or_create_platform_key;
use kassa_server::lifecycle::Lifecycle;
use kassa_server::notary::{Notary, operator_timezone};
use kassa_server::now_ms;
use kassa_server::onboarding::{self, OnboardingError};
use kassa_server::rails::Rails;
use kassa_server::sealing::{Kek, WEBHOOK_SECRET};
use kassa_signature::VerifyingKey;
use kassa_store::prelude::*;
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
    /// Replace the app's webhook secret (whsec_…) that signs its callbacks; the old one signs
    /// them too for 24 hours, so that the merchant can switch without missing one.
    RotateWebhookSecret { app_id: i64 },
    /// Set the merchant's colour on the payer's pages (#RRGGBB, dark enough for white text).
    SetBrand {
        app_id: i64,
        /// The colour, e.g. '#1f5fbf'.
        #[arg(long, required_unless_present = "clear")]
        colour: Option<String>,
        /// Go back to kassa's own colour.
        #[arg(long, conflicts_with = "colour")]
        clear: bool,
    },
    /// Set the merchant's logo on the payer's pages: a PNG or JPEG of at most 16 KiB, each side
    /// 16 to 1024 px (SVG is refused).
    SetLogo {
        app_id: i64,
        /// The image file.
        #[arg(long, required_unless_present = "clear")]
        file: Option<PathBuf>,
        /// Remove the logo.
        #[arg(long, conflicts_with = "file")]
        clear: bool,
    },
    /// Set who receives the app's PIX payments (BRL apps): the key and the name and city its
    /// BR Codes show (transliterated to ASCII; at most 25 and 15 characters).
    SetPix {
        app_id: i64,
        /// A CPF, CNPJ, e-mail, phone (+55…) or random (EVP) key.
        #[arg(long)]
        key: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        city: String,
        /// Dynamic codes: the code holds a location on the public URL where the payer's bank
        /// fetches the signed charge (amount, expiry), instead of the amount and txid.
        #[arg(long)]
        dynamic: bool,
    },
    /// Set the fee of an app for a method (or * for every method without its own rule).
    SetFee {
        app_id: i64,
        /// A method code such as IDEAL_EUR, or * for all.
        #[arg(long, default_value = "*")]
        method: String,
        /// Percentage in basis points (150 = 1.50 %).
        #[arg(long, required_unless_present = "clear", default_value_t = 0)]
        basis_points: u32,
        /// Fixed part, e.g. 0.25.
        #[arg(long, default_value = "0")]
        fixed: String,
        /// Remove the rule.
        #[arg(long, conflicts_with_all = ["basis_points", "fixed"])]
        clear: bool,
    },
    /// Set after how many days an app's successes settle (T+N, from the start of the day in
    /// the operator's zone; 0 to 30).
    SetSettlement {
        app_id: i64,
        #[arg(long)]
        days: i64,
    },
}

#[derive(Subcommand)]
pub enum CallbackCommand {
    /// Show an order's callbacks with every delivery attempt.
    List {
        #[arg(long = "order")]
        order_no: String,
    },
    /// Queue the order's latest callback for a fresh delivery (also a dead or delivered one).
    Resend { order_no: String },
}

#[derive(Subcommand)]
pub enum SandboxCommand {
    /// Do what the payer's bank does: settle an order with an outcome.
    Pay {
        order_no: String,
        #[arg(long, value_enum)]
        outcome: PayOutcome,
        /// The amount received (paid only); a different amount than requested is an exception.
        #[arg(long)]
        amount: Option<String>,
    },
}

/// `kassa trigger`: the arguments of `kassa sandbox pay`.
#[derive(clap::Args)]
pub struct TriggerArgs {
    order_no: String,
    #[arg(long, value_enum)]
    outcome: PayOutcome,
    /// The amount received (paid only); a different amount than requested is an exception.
    #[arg(long)]
    amount: Option<String>,
}

impl From<TriggerArgs> for SandboxCommand {
    fn from(args: TriggerArgs) -> Self {
        SandboxCommand::Pay {
            order_no: args.order_no,
            outcome: args.outcome,
            amount: args.amount,
        }
    }
}

#[derive(Subcommand)]
pub enum OrderCommand {
    /// Show an order (payer data masked unless asked for).
    Show {
        order_no: String,
        /// Show the payer's name, phone and e-mail unmasked.
        #[arg(long)]
        show_personal_data: bool,
    },
    /// Settle an order in exception as paid or failed.
    Resolve {
        order_no: String,
        #[arg(long, required_unless_present = "fail", conflicts_with = "fail")]
        succeed: bool,
        #[arg(long)]
        fail: bool,
        /// Why it failed (shown to the merchant as errorMsg).
        #[arg(long, requires = "fail")]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum PixCommand {
    /// Decode a BR Code (a PIX copy-and-paste code): print its fields and whether its CRC holds.
    /// Without CODE it is read from standard input (codes hold spaces: `… | kassa pix decode`).
    Decode { code: Option<String> },
}

/// The longest code read from standard input: a BR Code has at most 512 characters.
const MAX_CODE_BYTES: u64 = 4_096;

/// A code from standard input: its first line, bounded.
fn read_code() -> Result<String, Failure> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_CODE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Failure(format!("cannot read the code from standard input: {e}")))?;
    if text.len() as u64 > MAX_CODE_BYTES {
        return Err(Failure(format!(
            "a BR Code is shorter than {MAX_CODE_BYTES} bytes"
        )));
    }
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// `kassa pix decode`: the fields, one per line, and the CRC verdict; fails on bad structure
/// or a CRC that does not hold.
pub fn pix(command: PixCommand) -> Outcome {
    let PixCommand::Decode { code } = command;
    let code = match code {
        Some(code) => code,
        None => read_code()?,
    };
    // Only the line's end is dropped: spaces inside (and at the ends of) fields are the code's.
    let parsed = kassa_core::brcode::parse(code.trim_end_matches(['\r', '\n']))
        .map_err(|e| Failure(format!("not a BR Code: {e}")))?;
    println!("{parsed}");
    if parsed.crc_holds() {
        Ok(())
    } else {
        Err(Failure("the CRC does not hold".into()))
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PayOutcome {
    Paid,
    Failed,
    Cancelled,
    Expired,
    Exception,
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

/// Prints a command's answer with its times in the operator's zone: every `…AtMs` field of
/// milliseconds becomes `…At`, RFC 3339 with the zone's offset (as the server dates
/// `payTime`), so an operator reads dates, not epoch numbers.
pub(crate) async fn print_dated(mut value: Value, store: &SqlStore) -> Outcome {
    let zone = operator_timezone(store).await?;
    date_fields(&mut value, &zone);
    print_json(&value);
    Ok(())
}

fn date_fields(value: &mut Value, zone: &jiff::tz::TimeZone) {
    match value {
        Value::Object(map) => {
            let timed: Vec<String> = map
                .keys()
                .filter(|k| k.ends_with("AtMs"))
                .cloned()
                .collect();
            for key in timed {
                let ms = map.remove(&key).and_then(|v| v.as_i64());
                let at = ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
                let text = at.map(|at| {
                    at.to_zoned(zone.clone())
                        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                        .to_string()
                });
                map.insert(key.trim_end_matches("Ms").to_string(), json!(text));
            }
            map.values_mut().for_each(|v| date_fields(v, zone));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| date_fields(v, zone)),
        _ => {}
    }
}

pub(crate) fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("JSON values always serialise");
    println!("{}", escape_invisible(&text));
}

/// JSON text with every invisible or direction-changing character written as its `\uXXXX`
/// escape, so a terminal shows what is there (still the same JSON to a program). Such
/// characters appear only inside strings, where the escape is valid.
fn escape_invisible(json: &str) -> String {
    json.chars()
        .map(|c| {
            if kassa_core::validate::is_invisible(c) {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub use kassa_server::onboarding::sealed_webhook_secret;

/// What `--show-secrets` hides: the webhook secret, and PEM text (a fingerprint instead).
pub const HIDDEN: &str = "hidden; --show-secrets shows it";

/// A public key as the operator's commands print it: its PEM when asked, else its SHA-256
/// fingerprint (enough to compare, short to read).
pub(crate) fn key_shown(pem: Option<&str>, show_pem: bool) -> Value {
    match pem {
        None => Value::Null,
        Some(pem) if show_pem => json!(pem),
        Some(pem) => json!(VerifyingKey::parse(pem).map_or_else(
            |_| "unusable".to_string(),
            |key| format!("SHA-256 {}", key.fingerprint())
        )),
    }
}

/// An app as JSON; its webhook secret and key PEM only where the operator asked for that one
/// app with `--show-secrets`.
fn app_json(app: &App, webhook_secret: Option<&str>) -> Value {
    let public_key = key_shown(app.public_key.as_deref(), webhook_secret.is_some());
    json!({
        "appId": app.app_id.0,
        "merchantId": app.merchant_id.0,
        "currency": app.currency.code(),
        "publicKey": public_key,
        "webhookSecret": webhook_secret.unwrap_or(HIDDEN),
        "pix": app.pix.as_ref().map(|p| json!({
            "key": p.key.as_str(),
            "keyType": p.key.kind(),
            "name": p.name,
            "city": p.city,
            "codes": p.codes.as_str(),
        })),
        "limits": app.limits_override.map(|l| json!({
            "min": l.min_minor.to_decimal_string(),
            "max": l.max_minor.to_decimal_string(),
        })),
        "brandColour": app.brand_colour.as_ref().map(kassa_core::BrandColour::as_str),
        "logoSetAtMs": app.logo_version,
        "createdAtMs": app.created_at_ms,
    })
}

pub(crate) fn parse_currencies(codes: &[String]) -> Result<Vec<Currency>, Failure> {
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

/// Reads and checks a logo file (its size is checked before it is read whole).
fn read_logo(path: &Path) -> Result<kassa_core::Logo, Failure> {
    let failure = |e: &dyn std::fmt::Display| Failure(format!("{}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(|e| failure(&e))?.len();
    if size > kassa_core::logo::MAX_LOGO_BYTES as u64 {
        return Err(failure(&kassa_core::LogoError::TooLarge(size as usize)));
    }
    let bytes = std::fs::read(path).map_err(|e| failure(&e))?;
    kassa_server::logo::check(bytes).map_err(|e| failure(&e))
}

/// Reads and checks a public key file; returns the key as normalised SPKI PEM.
pub(crate) fn read_public_key(path: &Path) -> Result<String, Failure> {
    let key = VerifyingKey::parse(&read_key_text(path)?)
        .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    Ok(key.to_pem())
}

pub async fn create_merchant(
    store: &SqlStore,
    kek: &Kek,
    name: &str,
    currencies: &[Currency],
    public_key_pem: Option<&str>,
    audit: Option<&kassa_store::AuditEntry>,
) -> Result<MerchantWithApps, Failure> {
    let created =
        onboarding::create_merchant(store, kek, name, currencies, public_key_pem, audit).await;
    created.map_err(|e| match e {
        OnboardingError::Name => {
            Failure("--name must be 1 to 100 characters without control characters".into())
        }
        other => Failure(other.to_string()),
    })
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
            let kek = crate::kek::unlock(&store).await?;
            let platform = load_or_create_platform_key(&store, &kek, now_ms()).await?;
            let mut key_files = Value::Null;
            if let Some(dir) = &generate_keys {
                let (private_path, public_path, key) = write_key_pair(dir)?;
                public_key_pem = Some(key.public_key_pem());
                key_files = json!({
                    "privateKey": private_path.display().to_string(),
                    "publicKey": public_path.display().to_string(),
                });
            }
            let pem = public_key_pem.as_deref();
            let audit = crate::users::cli_audit("merchant.create", String::new());
            let created =
                create_merchant(&store, &kek, &name, &currencies, pem, Some(&audit)).await?;
            let mut out = json!({
                "merchantId": created.merchant.id.0,
                "apps": created.apps.iter().map(|a| json!({
                    "appId": a.app_id.0,
                    "currency": a.currency.code(),
                })).collect::<Vec<_>>(),
                // A fingerprint, not the PEM: `kassa keys platform` prints the key itself.
                "platformKeyFingerprint": platform.verifying_key().fingerprint(),
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
            let listed = Value::Array(
                merchants
                    .iter()
                    .map(|m| {
                        json!({
                            "merchantId": m.merchant.id.0,
                            "name": m.merchant.name,
                            "createdAtMs": m.merchant.created_at_ms,
                            "apps": m.apps.iter().map(|a| app_json(a, None)).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            );
            print_dated(listed, &store).await
        }
    }
}

fn parse_limit(flag: &str, text: &str) -> Result<AmountMinor, Failure> {
    AmountMinor::parse(text).map_err(|e| Failure(format!("{flag} {text:?} {e}")))
}

/// The operator's limits of an app, from `--min`/`--max`, or none with `--clear`.
pub(crate) fn limits_of(
    min: Option<String>,
    max: Option<String>,
    clear: bool,
) -> Result<Option<AmountLimits>, Failure> {
    if clear {
        return Ok(None);
    }
    let min = parse_limit("--min", min.as_deref().unwrap_or_default())?;
    let max = parse_limit("--max", max.as_deref().unwrap_or_default())?;
    AmountLimits::for_operator(min, max)
        .map(Some)
        .ok_or_else(|| Failure("--min must be above zero and not above --max".into()))
}

/// A fee rule from `--basis-points`/`--fixed` for a known method (or `*`), or none with `--clear`.
fn fee_rule_of(
    method: &str,
    basis_points: u32,
    fixed: &str,
    clear: bool,
) -> Result<Option<FeeRule>, Failure> {
    if !FeeRule::method_known(method) {
        return Err(Failure(format!(
            "--method {method} is not a payment method"
        )));
    }
    if clear {
        return Ok(None);
    }
    Ok(Some(FeeRule::new(
        basis_points,
        parse_limit("--fixed", fixed)?,
    )?))
}

/// Sets who receives a BRL app's PIX payments.
async fn set_pix(store: &SqlStore, app_id: AppId, receiver: PixReceiver) -> Outcome {
    if let Some(app) = store.app(app_id).await?
        && app.currency != Currency::Brl
    {
        return Err(Failure(format!(
            "app {app_id} collects {}; PIX keys belong to BRL apps",
            app.currency
        )));
    }
    let audit = app_audit("app.set-pix", app_id.0);
    store
        .set_app_pix(app_id, Some(&receiver), now_ms(), Some(&audit))
        .await?;
    Ok(())
}

/// An audit entry of an app's change made on the command line.
fn app_audit(action: &str, app_id: i64) -> kassa_store::AuditEntry {
    crate::users::cli_audit(action, format!("app:{app_id}"))
}

/// Prints an app as it now is, with its fee rules (an unknown app changed nothing); its
/// secrets only when asked.
async fn show_app(store: &SqlStore, kek: &Kek, app_id: AppId, show_secrets: bool) -> Outcome {
    let app = store
        .app(app_id)
        .await?
        .ok_or_else(|| Failure(format!("no app has appId {app_id}")))?;
    let secret = match show_secrets {
        true => Some(kek.open(WEBHOOK_SECRET, app.webhook_secret.expose())?),
        false => None,
    };
    let mut shown = app_json(&app, secret.as_deref());
    let fees = store.fee_rules(app.app_id).await?;
    shown["fees"] = fees
        .iter()
        .map(|(method, rule)| {
            json!({
                "method": method,
                "basisPoints": rule.basis_points,
                "fixed": rule.fixed_minor.to_decimal_string(),
            })
        })
        .collect();
    shown["settlementDelayDays"] = store
        .success_terms(app.app_id)
        .await?
        .settlement_delay_days
        .into();
    print_dated(shown, store).await
}

pub async fn app(command: AppCommand, show_secrets: bool, database_url: &str) -> Outcome {
    let store = open_store(database_url).await?;
    // Every app command shows the app afterwards (its webhook secret when asked).
    let kek = crate::kek::unlock(&store).await?;
    let app_id = match command {
        AppCommand::Show { app_id } => AppId(app_id),
        AppCommand::SetKey { app_id, public_key } => {
            let pem = read_public_key(&public_key)?;
            store
                .set_app_public_key(
                    AppId(app_id),
                    &pem,
                    now_ms(),
                    Some(&app_audit("app.set-key", app_id)),
                )
                .await?;
            AppId(app_id)
        }
        AppCommand::SetLimits {
            app_id,
            min,
            max,
            clear,
        } => {
            let limits = limits_of(min, max, clear)?;
            store
                .set_app_limits(
                    AppId(app_id),
                    limits,
                    now_ms(),
                    Some(&app_audit("app.set-limits", app_id)),
                )
                .await?;
            AppId(app_id)
        }
        AppCommand::SetFee {
            app_id,
            method,
            basis_points,
            fixed,
            clear,
        } => {
            let rule = fee_rule_of(&method, basis_points, &fixed, clear)?;
            store
                .set_fee_rule(
                    AppId(app_id),
                    &method,
                    rule,
                    now_ms(),
                    Some(&app_audit("app.set-fee", app_id)),
                )
                .await?;
            AppId(app_id)
        }
        AppCommand::SetSettlement { app_id, days } => {
            let most = kassa_core::ledger::MAX_SETTLEMENT_DELAY_DAYS;
            if !(0..=most).contains(&days) {
                return Err(Failure(format!("--days must be 0 to {most}, not {days}")));
            }
            store
                .set_settlement_delay_days(
                    AppId(app_id),
                    days,
                    Some(&app_audit("app.set-settlement", app_id)),
                )
                .await?;
            AppId(app_id)
        }
        AppCommand::SetBrand {
            app_id,
            colour,
            clear: _,
        } => {
            let colour = colour
                .map(|c| kassa_core::BrandColour::parse(&c))
                .transpose()?;
            let audit = app_audit("app.set-brand", app_id);
            let found = store
                .set_app_brand(AppId(app_id), colour.as_ref(), now_ms(), Some(&audit))
                .await?;
            if !found {
                return Err(Failure(format!("no app has appId {app_id}")));
            }
            AppId(app_id)
        }
        AppCommand::SetLogo { app_id, file, .. } => {
            let logo = file.map(|path| read_logo(&path)).transpose()?;
            let audit = app_audit("app.set-logo", app_id);
            let found = store
                .set_app_logo(AppId(app_id), logo.as_ref(), now_ms(), Some(&audit))
                .await?;
            if !found {
                return Err(Failure(format!("no app has appId {app_id}")));
            }
            AppId(app_id)
        }
        AppCommand::SetPix {
            app_id,
            key,
            name,
            city,
            dynamic,
        } => {
            let codes = if dynamic {
                CodeKind::Dynamic
            } else {
                CodeKind::Static
            };
            let receiver = PixReceiver::new(&key, &name, &city)?.with_codes(codes);
            set_pix(&store, AppId(app_id), receiver).await?;
            AppId(app_id)
        }
        AppCommand::RotateWebhookSecret { app_id } => {
            let secret = sealed_webhook_secret(&kek);
            let now = now_ms();
            let until = now + kassa_server::onboarding::RETIRING_SECRET_MS;
            store
                .rotate_webhook_secret(
                    AppId(app_id),
                    &secret,
                    until,
                    now,
                    Some(&app_audit("app.rotate-webhook-secret", app_id)),
                )
                .await?;
            AppId(app_id)
        }
    };
    show_app(&store, &kek, app_id, show_secrets).await
}

pub async fn keys(command: KeysCommand, database_url: &str) -> Outcome {
    match command {
        KeysCommand::Platform => {
            let store = open_store(database_url).await?;
            let key = crate::kek::platform_key(&store).await?;
            print!("{}", key.public_key_pem());
            Ok(())
        }
    }
}

fn parse_order_no(text: &str) -> Result<OrderNo, Failure> {
    OrderNo::parse(text).ok_or_else(|| Failure(format!("{text:?} is not a 16-digit order number")))
}

pub async fn callback(command: CallbackCommand, database_url: &str) -> Outcome {
    let store = open_store(database_url).await?;
    match command {
        CallbackCommand::List { order_no } => {
            let order_no = parse_order_no(&order_no)?;
            let histories = store.callbacks_of_order(&order_no).await?;
            let shown: Vec<Value> = histories
                .iter()
                .map(|h| {
                    let c = &h.callback;
                    json!({
                        "callbackId": c.callback_id,
                        "url": c.url,
                        "state": c.state.as_str(),
                        "attempts": c.attempts,
                        "createdAtMs": c.created_at_ms,
                        "nextAttemptAtMs": c.next_attempt_at_ms,
                        "deliveredAtMs": c.delivered_at_ms,
                        "deadAtMs": c.dead_at_ms,
                        "body": c.body,
                        "history": h.attempts.iter().map(|a| json!({
                            "attempt": a.attempt_no,
                            "startedAtMs": a.started_at_ms,
                            "latencyMs": a.latency_ms,
                            "httpStatus": a.http_status,
                            "error": a.error,
                            "response": a.response_excerpt,
                            "acknowledged": a.acknowledged,
                            "node": a.node,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            print_dated(
                json!({"orderNo": order_no.as_str(), "callbacks": shown}),
                &store,
            )
            .await?;
        }
        CallbackCommand::Resend { order_no } => {
            let order_no = parse_order_no(&order_no)?;
            let audit = crate::users::cli_audit("callback.resend", format!("order:{order_no}"));
            match store
                .resend_latest_callback(&order_no, now_ms(), Some(&audit))
                .await?
            {
                Some(id) => print_json(&json!({"orderNo": order_no.as_str(), "queued": id})),
                None => {
                    return Err(Failure(format!(
                        "order {order_no} has no callback (unknown order, no notifyUrl, or not settled)"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The notary of one-shot commands: the platform key, times in the operator's stored zone,
/// as the server dates them.
async fn notary(store: &SqlStore) -> Result<Notary, Failure> {
    let key = crate::kek::platform_key(store).await?;
    Ok(Notary::new(key, operator_timezone(store).await?))
}

/// Applies an event to an order as the server would: its dialect renders the callback; a
/// person's event is written with its audit entry.
async fn apply_event(
    store: &SqlStore,
    order_no: &OrderNo,
    event: &OrderEvent,
    audit: Option<&kassa_store::AuditEntry>,
) -> Result<Order, Failure> {
    let notary = notary(store).await?;
    let lifecycle = Lifecycle {
        store,
        notary: &notary,
        dialects: &Dialects::standard(),
    };
    Ok(lifecycle
        .apply_event_audited(order_no, event, now_ms(), audit)
        .await?)
}

fn order_json(order: &Order, reveal_personal_data: bool) -> Value {
    let payer = order.payer.as_ref().map(|p| {
        let show = |v: &Personal| {
            if reveal_personal_data {
                v.expose().to_string()
            } else {
                v.masked()
            }
        };
        json!({
            "name": show(&p.name),
            "phone": show(&p.phone),
            "email": show(&p.email),
            "partnerUserId": p.partner_user_id,
        })
    });
    json!({
        "orderNo": order.order_no.as_str(),
        "appId": order.app_id.0,
        "orderId": order.merchant_order_id,
        "currency": order.currency.code(),
        "amount": order.amount_minor.to_decimal_string(),
        "actualAmount": order.actual_amount_minor.to_decimal_string(),
        "fee": order.fee_minor.to_decimal_string(),
        "status": order.status.as_str(),
        "method": order.method.code,
        "chosenMethod": order.chosen_method.map(|m| m.code),
        "country": order.country,
        "payer": payer,
        "subject": order.subject,
        "callBackUrl": order.callback_url,
        "callBackFailUrl": order.callback_fail_url,
        "notifyUrl": order.notify_url,
        "paidAtMs": order.paid_at_ms,
        "errorMsg": order.error_msg,
        "createdAtMs": order.created_at_ms,
        "expiresAtMs": order.expires_at_ms,
    })
}

/// Where an order was routed: its rail and channel, its order at the upstream (and when
/// reconciliation asks next), and every channel tried.
async fn routing_json(store: &SqlStore, order: &Order) -> Result<Value, Failure> {
    let upstream = store.upstream_order(&order.order_no).await?.map(|u| {
        json!({
            "channelId": u.channel_id,
            "upstreamOrderNo": u.upstream_order_no,
            "nextCheckAtMs": u.next_check_at_ms,
            "checks": u.checks,
        })
    });
    let attempts: Vec<Value> = (store.routing_attempts(&order.order_no).await?)
        .iter()
        .map(|a| {
            json!({
                "attempt": a.attempt_no,
                "channelId": a.channel_id,
                "outcome": a.outcome,
                "detail": a.detail,
                "latencyMs": a.latency_ms,
                "atMs": a.at_ms,
            })
        })
        .collect();
    Ok(json!({
        "rail": order.rail,
        "channel": order.channel,
        "upstream": upstream,
        "attempts": attempts,
    }))
}

pub async fn sandbox(command: SandboxCommand, database_url: &str) -> Outcome {
    let SandboxCommand::Pay {
        order_no,
        outcome,
        amount,
    } = command;
    let order_no = parse_order_no(&order_no)?;
    let store = open_store(database_url).await?;
    let order = store
        .order_by_no(&order_no)
        .await?
        .ok_or_else(|| Failure(format!("no order has number {order_no}")))?;
    if amount.is_some() && !matches!(outcome, PayOutcome::Paid) {
        return Err(Failure("--amount goes with --outcome paid".into()));
    }
    if order.status.is_final() {
        return Err(Failure(format!(
            "order {order_no} is already {}, and final states never change",
            order.status.as_str()
        )));
    }
    let received = match amount {
        Some(text) => Some(parse_limit("--amount", &text)?),
        None => None,
    };
    let name = outcome
        .to_possible_value()
        .expect("every outcome has a name")
        .get_name()
        .to_string();
    // The order's own rail says what the outcome means (only the sandbox takes them by hand).
    let rail_outcome = Rails::standard()
        .of(&order)?
        .manual_outcome(&order, &name, received)?;
    let changed = apply_event(
        &store,
        &order_no,
        &rail_outcome.event(order.amount_minor),
        None,
    )
    .await?;
    print_dated(order_json(&changed, false), &store).await
}

pub async fn order(command: OrderCommand, database_url: &str) -> Outcome {
    let store = open_store(database_url).await?;
    match command {
        OrderCommand::Show {
            order_no,
            show_personal_data,
        } => {
            let order_no = parse_order_no(&order_no)?;
            let order = store
                .order_by_no(&order_no)
                .await?
                .ok_or_else(|| Failure(format!("no order has number {order_no}")))?;
            let mut shown = order_json(&order, show_personal_data);
            shown["routing"] = routing_json(&store, &order).await?;
            print_dated(shown, &store).await?;
        }
        OrderCommand::Resolve {
            order_no,
            succeed,
            fail: _,
            reason,
        } => {
            let order_no = parse_order_no(&order_no)?;
            let status = store
                .order_by_no(&order_no)
                .await?
                .ok_or_else(|| Failure(format!("no order has number {order_no}")))?
                .status;
            if status != kassa_core::OrderStatus::Exception {
                return Err(Failure(format!(
                    "order {order_no} is {}, not in exception: only an order in exception \
                     (status -1) is resolved by the operator",
                    status.as_str()
                )));
            }
            let outcome = if succeed { "succeeded" } else { "failed" };
            let default = if succeed {
                "paid, as the operator found"
            } else {
                "declined by the operator"
            };
            let reason = reason.unwrap_or_else(|| default.into());
            let mut audit = crate::users::cli_audit("order.resolve", format!("order:{order_no}"));
            audit.after = Some(format!("{outcome}: {reason}"));
            let event = if succeed {
                OrderEvent::OperatorSucceeded
            } else {
                OrderEvent::OperatorFailed { reason }
            };
            let changed = apply_event(&store, &order_no, &event, Some(&audit)).await?;
            print_dated(order_json(&changed, false), &store).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_escaped_in_output() {
        let value = json!({"name": "Ma\u{200B}ria\u{FEFF}", "plain": "é"});
        let shown = escape_invisible(&serde_json::to_string(&value).unwrap());
        assert_eq!(shown, r#"{"name":"Ma\u200bria\ufeff","plain":"é"}"#);
        let read: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(read, value, "still the same JSON");
    }

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

/// `kassa prune`: what is past its retention, taken out of the hot tables now.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// Move final orders older than this to the archive, e.g. 400d (at least 30d).
    #[arg(long)]
    order_retention: Option<crate::config::Span>,
    /// Delete callbacks delivered or given up longer ago than this, e.g. 90d (at least 1d).
    #[arg(long)]
    callback_retention: Option<crate::config::Span>,
}

/// Prunes batch after batch until nothing the retention names is left; prints the totals.
pub async fn prune(args: PruneArgs, database_url: &str) -> Outcome {
    let policy = crate::config::retention_policy(args.order_retention, args.callback_retention);
    if policy.is_off() {
        return Err(Failure(
            "say what to prune: --order-retention, --callback-retention or both".into(),
        ));
    }
    policy.check().map_err(Failure)?;
    let store = open_store(database_url).await?;
    let pruned = kassa_server::retention::prune_all(&store, policy).await?;
    print_json(&json!({
        "ordersArchived": pruned.orders_archived,
        "callbacksDeleted": pruned.callbacks_deleted,
    }));
    Ok(())
}
