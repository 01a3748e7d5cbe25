//! `kassa serve`: opens and migrates the database, loads the platform key, optionally sets up
//! the demo merchant, and runs the HTTP server until SIGINT or SIGTERM.

use crate::config::{self, FileConfig, pick};
use crate::keyfiles::{PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, read_key_text, write_key_pair};
use crate::operator::{create_merchant, open_store};
use crate::{Failure, Outcome};
use clap::Args;
use kassa_core::{AppId, Currency};
use kassa_server::dispatcher::{Dispatcher, DispatcherConfig};
use kassa_server::keys::{FormKey, MerchantKeys, load_or_create_platform_key};
use kassa_server::listen::ConnectionLimits;
use kassa_server::notary::{Notary, parse_timezone};
use kassa_server::rails::SandboxRail;
use kassa_server::{Gateway, ServerConfig, now_ms, router};
use kassa_signature::SigningKey;
use kassa_store::{SqlStore, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "KASSA_LISTEN")]
    listen: Option<String>,
    /// Base URL payers reach kassa at; payUrl starts with it. [default: http://LISTEN]
    #[arg(long, env = "KASSA_PUBLIC_URL")]
    public_url: Option<String>,
    /// Folder for files kassa writes (demo keys). [default: the SQLite file's folder, or kassa-data]
    #[arg(long, env = "KASSA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// How long a collect order waits for its payer, e.g. 30m. [default: 30m]
    #[arg(long, env = "KASSA_COLLECT_ORDER_LIFETIME")]
    collect_order_lifetime: Option<String>,
    /// How long a PIX order waits for its payment, e.g. 24h. [default: 24h]
    #[arg(long, env = "KASSA_PIX_ORDER_LIFETIME")]
    pix_order_lifetime: Option<String>,
    /// Create (once) a demo merchant with EUR and USD apps and print how to use it.
    /// Implies --allow-private-callbacks.
    #[arg(long, env = "KASSA_DEMO")]
    demo: bool,
    /// How often an unacknowledged callback is retried, e.g. 60s. [default: 60s]
    #[arg(long, env = "KASSA_CALLBACK_RETRY_INTERVAL")]
    callback_retry_interval: Option<String>,
    /// How long a callback is retried before it is marked dead, e.g. 24h. [default: 24h]
    #[arg(long, env = "KASSA_CALLBACK_MAX_AGE")]
    callback_max_age: Option<String>,
    /// How long one callback request may take, e.g. 10s. [default: 10s]
    #[arg(long, env = "KASSA_CALLBACK_TIMEOUT")]
    callback_timeout: Option<String>,
    /// Allow callback and redirect targets on loopback and private addresses (sandboxes, tests).
    #[arg(long, env = "KASSA_ALLOW_PRIVATE_CALLBACKS")]
    allow_private_callbacks: bool,
    /// The operator's time zone (IANA name) for times shown to merchants, such as payTime.
    /// [default: UTC]
    #[arg(long, env = "KASSA_TIMEZONE")]
    timezone: Option<String>,
    /// Most requests handled at once; more are answered 503 with Retry-After. [default: 1024]
    #[arg(long, env = "KASSA_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// How often orders past their expiry are failed, e.g. 5s. [default: 5s]
    #[arg(long, env = "KASSA_EXPIRY_SWEEP_INTERVAL")]
    expiry_sweep_interval: Option<String>,
    /// Time a client has to send a request's headers, and the longest a kept-alive connection
    /// may sit idle, e.g. 10s. [default: 10s]
    #[arg(long, env = "KASSA_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<String>,
    /// Time one request may take, body upload included, e.g. 30s. [default: 30s]
    #[arg(long, env = "KASSA_REQUEST_TIMEOUT")]
    request_timeout: Option<String>,
    /// Open client connections at once; more wait to be accepted. [default: 4096]
    #[arg(long, env = "KASSA_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Requests per second each app may make to the merchant APIs (bursts of as many); above
    /// it, 429 with Retry-After. 0 turns the limit off. [default: 0]
    #[arg(long, env = "KASSA_APP_RATE_LIMIT")]
    app_rate_limit: Option<u32>,
}

/// The demo BRL app's receiving PIX key: a random (EVP) key that belongs to nobody.
const DEMO_PIX_KEY: &str = "00000000-0000-4000-8000-00000000d3e0";

/// The settings row that remembers the demo merchant's apps.
const DEMO_SETTING: &str = "demo_merchant";

/// The demo's merchant key: the file in `dir` if there is one, else a new pair written there.
fn demo_key(dir: &Path) -> Result<SigningKey, Failure> {
    let private_path = dir.join(PRIVATE_KEY_FILE);
    if private_path.exists() {
        return SigningKey::parse(&read_key_text(&private_path)?)
            .map_err(|e| Failure(format!("{}: {e}", private_path.display())));
    }
    // A public key without its private half is of no use; replace it.
    let _ = std::fs::remove_file(dir.join(PUBLIC_KEY_FILE));
    Ok(write_key_pair(dir)?.2)
}

/// Creates the demo merchant once; on later starts makes sure its apps carry the key on disk.
async fn ensure_demo(store: &SqlStore, dir: &Path) -> Result<Vec<(Currency, AppId)>, Failure> {
    let key = demo_key(dir)?;
    let public_pem = key.public_key_pem();
    if let Some(saved) = store.setting(DEMO_SETTING).await? {
        let apps: Vec<(String, i64)> = serde_json::from_str(&saved)?;
        let mut out = Vec::new();
        for (code, id) in apps {
            let currency = Currency::parse(&code)
                .ok_or_else(|| Failure(format!("demo setting names currency {code}")))?;
            let app = store
                .app(AppId(id))
                .await?
                .ok_or_else(|| Failure(format!("the demo app {id} is gone")))?;
            if app.public_key.as_deref() != Some(public_pem.as_str()) {
                store
                    .set_app_public_key(app.app_id, &public_pem, now_ms())
                    .await?;
            }
            out.push((currency, app.app_id));
        }
        return Ok(out);
    }
    let created = create_merchant(
        store,
        "Demo Shop",
        &[Currency::Eur, Currency::Usd, Currency::Brl],
        Some(&public_pem),
    )
    .await?;
    // The BRL app receives PIX payments with a made-up random key (the sandbox moves no money).
    let receiver = kassa_core::pix::PixReceiver::new(DEMO_PIX_KEY, "Demo Shop", "Sao Paulo")?;
    if let Some(brl) = created.apps.iter().find(|a| a.currency == Currency::Brl) {
        store
            .set_app_pix(brl.app_id, Some(&receiver), now_ms())
            .await?;
    }
    let apps: Vec<(Currency, AppId)> = created
        .apps
        .iter()
        .map(|a| (a.currency, a.app_id))
        .collect();
    let saved: Vec<(&str, i64)> = apps.iter().map(|(c, id)| (c.code(), id.0)).collect();
    store
        .setting_or_insert(DEMO_SETTING, &serde_json::to_string(&saved)?, now_ms())
        .await?;
    Ok(apps)
}

/// How to call this very binary in the printed examples.
fn this_command() -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kassa"));
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|p| Path::new(".").join(p)))
        .unwrap_or(exe);
    shown.display().to_string()
}

fn print_demo(apps: &[(Currency, AppId)], dir: &Path, base_url: &str) {
    let kassa = this_command();
    let key = dir.join(PRIVATE_KEY_FILE).display().to_string();
    let platform = dir.join("platform.pub.pem").display().to_string();
    println!("Demo merchant \"Demo Shop\":");
    for (currency, app_id) in apps {
        println!("  {currency} appId {app_id}");
    }
    println!("  merchant private key: {key}");
    println!(
        "  merchant public key:  {}",
        dir.join(PUBLIC_KEY_FILE).display()
    );
    println!("  platform public key:  {platform}");
    if let Some((currency, app_id)) = apps.first() {
        let path = currency.code().to_lowercase();
        println!();
        println!("Create an order, then query it and check kassa's signature (another terminal):");
        println!();
        println!("  ORDER=demo-$(date +%s)");
        println!(
            "  echo '{{\"appId\":{app_id},\"orderId\":\"'$ORDER'\",\"name\":\"Jane Doe\",\
             \"phone\":\"+31612345678\",\"email\":\"jane@example.com\",\"amount\":\"25.00\",\
             \"payType\":\"CASHIER\",\"inBankCode\":\"CASHIER\",\"country\":\"000\",\
             \"callBackUrl\":\"https://shop.example/paid\",\
             \"callBackFailUrl\":\"https://shop.example/failed\",\"partnerUserId\":\"demo-user\"}}' \\"
        );
        println!("    | {kassa} sign --key {key} \\");
        println!(
            "    | curl -s -H 'Content-Type: application/json' --data-binary @- {base_url}/{path}/collect/apply"
        );
        println!("  echo '{{\"appId\":{app_id},\"orderId\":\"'$ORDER'\"}}' \\");
        println!("    | {kassa} sign --key {key} \\");
        println!(
            "    | curl -s -H 'Content-Type: application/json' --data-binary @- {base_url}/{path}/collect/query \\"
        );
        println!("    | tee /dev/stderr | {kassa} verify --key {platform}");
        println!();
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

pub async fn run(args: ServeArgs, file: &FileConfig, database_url: &str) -> Outcome {
    let listen = pick(args.listen, file.listen.clone(), || {
        config::DEFAULT_LISTEN.into()
    });
    let listen = config::parse_listen(&listen).map_err(Failure)?;
    let lifetime = pick(
        args.collect_order_lifetime,
        file.collect_order_lifetime.clone(),
        || config::DEFAULT_COLLECT_ORDER_LIFETIME.into(),
    );
    let lifetime = config::parse_duration(&lifetime)
        .map_err(|e| Failure(format!("--collect-order-lifetime: {e}")))?;
    let data_dir = pick(args.data_dir, file.data_dir.clone(), || {
        config::default_data_dir(database_url)
    });
    let duration = |flag: &str, cli: Option<String>, from_file: Option<String>, default: &str| {
        let text = pick(cli, from_file, || default.to_string());
        config::parse_duration(&text)
            .map(|d| d.as_millis() as u64)
            .map_err(|e| Failure(format!("--{flag}: {e}")))
    };
    let retry_interval_ms = duration(
        "callback-retry-interval",
        args.callback_retry_interval,
        file.callback_retry_interval.clone(),
        "60s",
    )?;
    let max_age_ms = duration(
        "callback-max-age",
        args.callback_max_age,
        file.callback_max_age.clone(),
        "24h",
    )?;
    let callback_timeout_ms = duration(
        "callback-timeout",
        args.callback_timeout,
        file.callback_timeout.clone(),
        "10s",
    )?;
    let pix_lifetime_ms = duration(
        "pix-order-lifetime",
        args.pix_order_lifetime,
        file.pix_order_lifetime.clone(),
        "24h",
    )?;
    let sweep_interval_ms = duration(
        "expiry-sweep-interval",
        args.expiry_sweep_interval,
        file.expiry_sweep_interval.clone(),
        "5s",
    )?;
    let header_read_timeout_ms = duration(
        "header-read-timeout",
        args.header_read_timeout,
        file.header_read_timeout.clone(),
        "10s",
    )?;
    let request_timeout_ms = duration(
        "request-timeout",
        args.request_timeout,
        file.request_timeout.clone(),
        "30s",
    )?;
    let timezone = pick(args.timezone, file.timezone.clone(), || "UTC".into());
    let timezone = parse_timezone(&timezone).map_err(|e| Failure(format!("--timezone: {e}")))?;
    if [
        retry_interval_ms,
        callback_timeout_ms,
        sweep_interval_ms,
        header_read_timeout_ms,
        request_timeout_ms,
    ]
    .contains(&0)
    {
        return Err(Failure(
            "--callback-retry-interval, --callback-timeout, --expiry-sweep-interval, \
             --header-read-timeout and --request-timeout must be above zero"
                .into(),
        ));
    }
    let allow_private =
        args.allow_private_callbacks || file.allow_private_callbacks.unwrap_or(false) || args.demo;

    let store = open_store(database_url).await?;
    tracing::info!(backend = store.backend().name(), "database ready");
    let platform_key = load_or_create_platform_key(&store, now_ms()).await?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {listen}: {e}")))?;
    let bound = listener.local_addr()?;
    let public_url = pick(args.public_url, file.public_url.clone(), || {
        format!("http://{bound}")
    });
    let public_url = public_url.trim_end_matches('/').to_string();
    kassa_core::validate::http_url("--public-url", &public_url)?;

    if args.demo {
        let dir = data_dir.join("demo");
        let apps = ensure_demo(&store, &dir).await?;
        std::fs::write(dir.join("platform.pub.pem"), platform_key.public_key_pem())?;
        print_demo(&apps, &dir, &public_url);
    }

    let form_key = FormKey::load_or_create(&store, now_ms()).await?;
    let store: Arc<dyn Store> = Arc::new(store);
    let wake = Arc::new(tokio::sync::Notify::new());
    let dispatcher = Arc::new(Dispatcher::new(
        store.clone(),
        DispatcherConfig {
            retry_interval_ms,
            max_age_ms,
            request_timeout_ms: callback_timeout_ms,
            allow_private_targets: allow_private,
            ..DispatcherConfig::default()
        },
        wake.clone(),
    )?);
    let (stop_dispatcher, stopped) = tokio::sync::watch::channel(false);
    let dispatcher_task = tokio::spawn(dispatcher.run(stopped));

    let gateway = Arc::new(Gateway {
        store,
        notary: Notary::new(platform_key, timezone),
        merchant_keys: MerchantKeys::default(),
        config: ServerConfig {
            public_url: public_url.clone(),
            collect_order_lifetime_ms: lifetime.as_millis() as i64,
            pix_order_lifetime_ms: pix_lifetime_ms as i64,
            max_in_flight: pick(args.max_in_flight, file.max_in_flight, || {
                ServerConfig::default().max_in_flight
            })
            .max(1),
            allow_private_targets: allow_private,
            request_timeout_ms,
            app_rate_limit_per_s: pick(args.app_rate_limit, file.app_rate_limit, || 0),
            ..ServerConfig::default()
        },
        dispatcher_wake: wake,
        targets: Default::default(),
        rail: Arc::new(SandboxRail),
        form_key,
        apps: kassa_server::cache::AppCache::new(std::time::Duration::from_millis(
            ServerConfig::default().app_cache_ttl_ms,
        )),
        replies: Default::default(),
        app_rates: Default::default(),
    });
    let sweeper_task = tokio::spawn(kassa_server::sweeper::run(
        gateway.clone(),
        sweep_interval_ms,
        stop_dispatcher.subscribe(),
    ));
    if allow_private {
        tracing::warn!("callbacks and redirects to private and loopback addresses are allowed");
    }
    println!("kassa listening on http://{bound} (public URL {public_url})");
    let connection_limits = ConnectionLimits {
        header_read_timeout_ms,
        max_connections: pick(args.max_connections, file.max_connections, || {
            ConnectionLimits::default().max_connections
        }),
        ..ConnectionLimits::default()
    };
    kassa_server::listen::serve(
        listener,
        router(gateway),
        connection_limits,
        shutdown_signal(),
    )
    .await?;
    // Deliveries in flight finish (bounded by the callback timeout); the rest stay queued.
    let _ = stop_dispatcher.send(true);
    let _ = dispatcher_task.await;
    let _ = sweeper_task.await;
    Ok(())
}
