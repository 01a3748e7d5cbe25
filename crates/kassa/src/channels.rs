//! `kassa channel`: the operator's channels — the sandbox, or an account at an upstream PSP that
//! speaks the `collect` or the `pix` API. Stored in the database, so every node sees a change
//! within seconds; kassa's private key at the upstream is sealed with the KEK and never printed
//! (its public half is, to register at the upstream).

use crate::config::Span;
use crate::keyfiles::read_key_text;
use crate::operator::{limits_of, parse_currencies, read_public_key};
use crate::{Failure, Outcome};
use clap::{Args, Subcommand};
use kassa_core::{Channel, ChannelKind, MethodRoute, PaymentMethod, Secret, Upstream};
use kassa_server::now_ms;
use kassa_server::sealing::Kek;
use kassa_signature::SigningKey;
use kassa_store::SqlStore;
use kassa_store::prelude::*;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Add a channel.
    Add {
        id: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Change a channel's settings (only those given).
    Update {
        id: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Every channel, by priority.
    List,
    /// One channel, with the public half of kassa's key at the upstream.
    Show { id: String },
    /// Let routing send new orders to the channel.
    Enable { id: String },
    /// Send no new orders to the channel (orders already there still settle).
    Disable { id: String },
    /// Call the upstream once (a query of an order that does not exist) and report whether it
    /// answers in its API's format, and how fast.
    Test {
        id: String,
        /// Allow an upstream on a loopback or private address.
        #[arg(long)]
        allow_private_upstream: bool,
    },
}

#[derive(Args)]
pub struct Settings {
    /// sandbox, collect-upstream or pix-upstream.
    #[arg(long)]
    kind: Option<String>,
    /// The upstream's base URL, e.g. https://psp.example (no trailing slash).
    #[arg(long)]
    base_url: Option<String>,
    /// kassa's appId at the upstream.
    #[arg(long)]
    upstream_app_id: Option<i64>,
    /// kassa's private key at the upstream (PEM file); sealed in the database.
    #[arg(long)]
    merchant_key: Option<PathBuf>,
    /// The upstream's platform public key (PEM file).
    #[arg(long)]
    upstream_public_key: Option<PathBuf>,
    /// METHOD=IN_BANK_CODE/PAY_TYPE, e.g. IDEAL_EUR=IDEAL/BANK_TRANSFER (repeat; replaces all).
    #[arg(long = "method")]
    methods: Vec<String>,
    /// A currency it takes (repeat; replaces all).
    #[arg(long = "currency")]
    currencies: Vec<String>,
    /// Smallest amount it takes, e.g. 1.00 (with --max).
    #[arg(long, requires = "max")]
    min: Option<String>,
    /// Largest amount it takes, e.g. 5000.00 (with --min).
    #[arg(long, requires = "min")]
    max: Option<String>,
    /// Take any amount the methods allow.
    #[arg(long, conflicts_with_all = ["min", "max"])]
    clear_limits: bool,
    /// Lower goes first (default 100).
    #[arg(long)]
    priority: Option<i32>,
    /// Share among the channels of one priority, 1 to 1000 (default 100).
    #[arg(long)]
    weight: Option<u32>,
    /// Time to connect to the upstream, e.g. 2s (default 2s).
    #[arg(long)]
    connect_timeout: Option<Span>,
    /// Time one upstream call may take, e.g. 10s (default 10s).
    #[arg(long)]
    request_timeout: Option<Span>,
    /// Allow an upstream on a loopback or private address (tests, private networks).
    #[arg(long)]
    allow_private_upstream: bool,
}

pub async fn channel(command: ChannelCommand, show_secrets: bool, store: &SqlStore) -> Outcome {
    let kek = crate::kek::unlock(store).await?;
    let shown = match command {
        ChannelCommand::Add { id, settings } => {
            kassa_core::channel::check_id(&id)?;
            let blank = blank(id.clone());
            let channel = settings.apply(blank, &kek)?;
            if !store.insert_channel(&channel).await? {
                return Err(Failure(format!("a channel {id} exists; use update")));
            }
            channel
        }
        ChannelCommand::Update { id, settings } => {
            let current = existing(store, &id).await?;
            let mut channel = settings.apply(current, &kek)?;
            channel.updated_at_ms = now_ms();
            let audit = crate::users::cli_audit(
                "channel.update",
                format!("channel:{}", channel.channel_id),
            );
            store.update_channel(&channel, Some(&audit)).await?;
            channel
        }
        ChannelCommand::Enable { id } => set_enabled(store, &id, true).await?,
        ChannelCommand::Disable { id } => set_enabled(store, &id, false).await?,
        ChannelCommand::Show { id } => existing(store, &id).await?,
        ChannelCommand::Test {
            id,
            allow_private_upstream,
        } => {
            let channel = existing(store, &id).await?;
            return probe(&channel, &kek, allow_private_upstream).await;
        }
        ChannelCommand::List => {
            let channels = store.channels().await?;
            let list: Vec<Value> = channels
                .iter()
                .map(|c| channel_json(c, None, show_secrets))
                .collect();
            crate::operator::print_json(&Value::Array(list));
            return Ok(());
        }
    };
    let public = shown
        .upstream
        .as_ref()
        .map(|upstream| public_half(&kek, upstream));
    let public = public.transpose()?;
    crate::operator::print_json(&channel_json(&shown, public.as_deref(), show_secrets));
    Ok(())
}

async fn existing(store: &SqlStore, id: &str) -> Result<Channel, Failure> {
    store
        .channel(id)
        .await?
        .ok_or_else(|| Failure(format!("no channel {id}")))
}

async fn set_enabled(store: &SqlStore, id: &str, enabled: bool) -> Result<Channel, Failure> {
    let mut channel = existing(store, id).await?;
    channel.enabled = enabled;
    channel.updated_at_ms = now_ms();
    let audit =
        crate::users::cli_audit("channel.update", format!("channel:{}", channel.channel_id));
    store.update_channel(&channel, Some(&audit)).await?;
    Ok(channel)
}

/// A new channel's defaults, before its settings are applied.
fn blank(channel_id: String) -> Channel {
    Channel {
        channel_id,
        kind: ChannelKind::Sandbox,
        upstream: None,
        methods: Vec::new(),
        currencies: Vec::new(),
        limits: None,
        priority: 100,
        weight: 100,
        enabled: true,
        connect_timeout_ms: 2_000,
        request_timeout_ms: 10_000,
        created_at_ms: now_ms(),
        updated_at_ms: now_ms(),
    }
}

impl Settings {
    /// `channel` with the settings given, checked.
    fn apply(self, mut channel: Channel, kek: &Kek) -> Result<Channel, Failure> {
        if let Some(kind) = &self.kind {
            channel.kind = ChannelKind::parse(kind).ok_or_else(|| {
                Failure(format!(
                    "--kind {kind}: use sandbox, collect-upstream or pix-upstream"
                ))
            })?;
        }
        channel.upstream = self.upstream(channel.kind, channel.upstream.take(), kek)?;
        if !self.methods.is_empty() {
            channel.methods = parse_methods(&self.methods)?;
        }
        if !self.currencies.is_empty() {
            channel.currencies = parse_currencies(&self.currencies)?;
        }
        if self.clear_limits {
            channel.limits = None;
        } else if self.min.is_some() {
            channel.limits = limits_of(self.min, self.max, false)?;
        }
        channel.priority = self.priority.unwrap_or(channel.priority);
        channel.weight = self.weight.unwrap_or(channel.weight);
        channel.connect_timeout_ms = self
            .connect_timeout
            .map_or(channel.connect_timeout_ms, |s| s.ms);
        channel.request_timeout_ms = self
            .request_timeout
            .map_or(channel.request_timeout_ms, |s| s.ms);
        channel.check()?;
        if let Some(upstream) = &channel.upstream {
            check_address(&upstream.base_url, self.allow_private_upstream)?;
        }
        Ok(channel)
    }

    /// The upstream settings: the current ones with those given replacing them.
    fn upstream(
        &self,
        kind: ChannelKind,
        current: Option<Upstream>,
        kek: &Kek,
    ) -> Result<Option<Upstream>, Failure> {
        if !kind.is_upstream() {
            return Ok(None);
        }
        let merchant_key = match &self.merchant_key {
            Some(path) => {
                let key = SigningKey::parse(&read_key_text(path)?)
                    .map_err(|e| Failure(format!("--merchant-key {}: {e}", path.display())))?;
                Some(Secret::new(kek.seal(
                    kassa_server::sealing::CHANNEL_MERCHANT_KEY,
                    key.to_pkcs8_pem().as_bytes(),
                )))
            }
            None => None,
        };
        let public_key = match &self.upstream_public_key {
            Some(path) => Some(read_public_key(path)?),
            None => None,
        };
        let missing = |flag: &str| Failure(format!("an upstream channel needs {flag}"));
        let upstream = Upstream {
            base_url: (self.base_url.clone())
                .or_else(|| current.as_ref().map(|u| u.base_url.clone()))
                .ok_or_else(|| missing("--base-url"))?,
            app_id: (self.upstream_app_id)
                .or_else(|| current.as_ref().map(|u| u.app_id))
                .ok_or_else(|| missing("--upstream-app-id"))?,
            merchant_key: merchant_key
                .or_else(|| current.as_ref().map(|u| u.merchant_key.clone()))
                .ok_or_else(|| missing("--merchant-key"))?,
            platform_public_key: public_key
                .or_else(|| current.as_ref().map(|u| u.platform_public_key.clone()))
                .ok_or_else(|| missing("--upstream-public-key"))?,
        };
        Ok(Some(upstream))
    }
}

/// `METHOD=IN_BANK_CODE/PAY_TYPE` mappings, by method code.
fn parse_methods(texts: &[String]) -> Result<Vec<MethodRoute>, Failure> {
    let mut routes = Vec::new();
    for text in texts {
        let bad = || {
            Failure(format!(
                "--method {text:?}: write METHOD=IN_BANK_CODE/PAY_TYPE"
            ))
        };
        let (code, upstream) = text.split_once('=').ok_or_else(bad)?;
        let (in_bank_code, pay_type) = upstream.split_once('/').ok_or_else(bad)?;
        let method = PaymentMethod::by_code(code)
            .ok_or_else(|| Failure(format!("--method: kassa has no method {code}")))?;
        routes.push(MethodRoute {
            method,
            upstream_in_bank_code: in_bank_code.to_string(),
            upstream_pay_type: pay_type.to_string(),
        });
    }
    routes.sort_by_key(|route| route.method.code);
    Ok(routes)
}

/// An upstream written as an IP address must be a public one unless the operator allows
/// private ones (names are checked when they are resolved, at each call).
fn check_address(base_url: &str, allow_private: bool) -> Result<(), Failure> {
    let url = kassa_core::validate::http_url("base-url", base_url)?;
    match kassa_server::ssrf::check_literal(&url) {
        Err(why) if !allow_private => Err(Failure(format!(
            "--base-url {why}; add --allow-private-upstream if a private upstream is meant"
        ))),
        _ => Ok(()),
    }
}

/// One probe call: an answer in the API's format (a refusal of the unknown order included)
/// shows the upstream reachable and speaking its API; no answer, a 5xx or a malformed answer
/// fails the command.
async fn probe(channel: &Channel, kek: &Kek, allow_private: bool) -> Outcome {
    use kassa_server::rails::connector::Connector;
    use kassa_server::rails::upstream::UpstreamError;
    if channel.upstream.is_none() {
        let id = &channel.channel_id;
        return Err(Failure(format!(
            "{id} is a sandbox channel: nothing to call"
        )));
    }
    let connector = Connector::build_with(channel, kek, allow_private).map_err(Failure)?;
    let started = std::time::Instant::now();
    let answer = connector.probe(channel).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (reachable, said) = match &answer {
        Ok(()) => (
            true,
            "it found an order of that id, yet it answered".to_string(),
        ),
        Err(UpstreamError::NotFound) => (
            true,
            "it answered that it does not know the probe's order".to_string(),
        ),
        Err(UpstreamError::Refused { code, msg }) => {
            (true, format!("it refused the unknown order: {code} {msg}"))
        }
        Err(e) => (false, e.to_string()),
    };
    crate::operator::print_json(&json!({
        "channelId": channel.channel_id,
        "reachable": reachable,
        "latencyMs": latency_ms,
        "answer": said,
    }));
    if reachable {
        Ok(())
    } else {
        Err(Failure(format!(
            "channel {} failed its test",
            channel.channel_id
        )))
    }
}

/// The public half of kassa's key at the upstream, to register there.
fn public_half(kek: &Kek, upstream: &Upstream) -> Result<String, Failure> {
    let pem = kek.open(
        kassa_server::sealing::CHANNEL_MERCHANT_KEY,
        upstream.merchant_key.expose(),
    )?;
    Ok(SigningKey::parse(&pem)?.public_key_pem())
}

/// A channel as JSON: never its private key; public keys as fingerprints unless the operator
/// asks for their PEM (`--show-secrets`), to register kassa's at the upstream.
fn channel_json(channel: &Channel, merchant_public_key: Option<&str>, show_pem: bool) -> Value {
    let key = |pem: Option<&str>| crate::operator::key_shown(pem, show_pem);
    let upstream = channel.upstream.as_ref().map(|u| {
        json!({
            "baseUrl": u.base_url,
            "appId": u.app_id,
            "merchantPublicKey": key(merchant_public_key),
            "platformPublicKey": key(Some(&u.platform_public_key)),
        })
    });
    json!({
        "channelId": channel.channel_id,
        "kind": channel.kind.code(),
        "enabled": channel.enabled,
        "priority": channel.priority,
        "weight": channel.weight,
        "currencies": channel.currencies.iter().map(|c| c.code()).collect::<Vec<_>>(),
        "methods": channel.methods.iter().map(|r| json!({
            "method": r.method.code,
            "inBankCode": r.upstream_in_bank_code,
            "payType": r.upstream_pay_type,
        })).collect::<Vec<_>>(),
        "limits": channel.limits.map(|l| json!({
            "min": l.min_minor.to_decimal_string(),
            "max": l.max_minor.to_decimal_string(),
        })),
        "connectTimeoutMs": channel.connect_timeout_ms,
        "requestTimeoutMs": channel.request_timeout_ms,
        "upstream": upstream,
    })
}

#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// The channel (an upstream one).
    #[arg(long)]
    channel: String,
    /// The day, YYYY-MM-DD, in the operator's time zone (the upstream is asked for the same
    /// date, in its own).
    #[arg(long)]
    date: String,
}

/// `kassa reconcile`: the channel's day against the upstream's word, every difference printed
/// and stored (for the metrics), and a failing exit when there is one.
pub async fn reconcile(args: ReconcileArgs, store: &SqlStore) -> Outcome {
    use kassa_server::rails::connector::Connector;
    use kassa_server::rails::reconcile_day::reconcile_day;
    let channel = existing(store, &args.channel).await?;
    if channel.upstream.is_none() {
        let id = &channel.channel_id;
        return Err(Failure(format!(
            "{id} is a sandbox channel: kassa is its own record"
        )));
    }
    let kek = crate::kek::unlock(store).await?;
    let connector = std::sync::Arc::new(Connector::build(&channel, &kek).map_err(Failure)?);
    let zone = kassa_server::notary::operator_timezone(store).await?;
    let day =
        kassa_server::report::Day::parse(&args.date, &zone).map_err(|e| Failure(e.to_string()))?;
    if day.from_ms > now_ms() {
        return Err(Failure(format!("{} has not begun yet", args.date)));
    }
    let found = reconcile_day(store, &channel, &connector, &day, now_ms())
        .await
        .map_err(|e| Failure(e.to_string()))?;
    let differences: Vec<Value> = found
        .differences
        .iter()
        .map(|d| {
            json!({
                "kind": d.kind.as_str(), "upstreamOrderId": d.upstream_order_id,
                "orderNo": d.order_no.as_ref().map(|n| n.as_str()),
                "kassa": d.kassa, "upstream": d.upstream,
            })
        })
        .collect();
    crate::operator::print_json(&json!({
        "channelId": found.run.channel_id, "date": found.run.day, "mode": found.run.mode,
        "ordersCompared": found.run.orders_compared, "differences": differences,
    }));
    match found.differences.len() {
        0 => Ok(()),
        n => Err(Failure(format!(
            "{n} differences with the upstream: see above"
        ))),
    }
}
