//! `kassa serve`: opens and migrates the database, loads the platform key and the operator's
//! time zone, optionally sets up the demo merchant, and runs the HTTP server, the callback
//! dispatcher and the expiry sweep until SIGINT or SIGTERM.

use crate::config::{self, ServeOptions};
use crate::keyfiles::{PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, read_key_text, write_key_pair};
use crate::operator::{create_merchant, open_store};
use crate::{Failure, Outcome};
use kassa_core::BreakerPolicy;
use kassa_core::{AppId, Currency, RetryPolicy};
use kassa_server::accounts::SignInPolicy;
use kassa_server::backoffice::Backoffice;
use kassa_server::dialect::Dialects;
use kassa_server::dispatcher::{Dispatcher, DispatcherConfig};
use kassa_server::keys::{FormKey, load_or_create_platform_key};
use kassa_server::listen::ConnectionLimits;
use kassa_server::notary::{Notary, operator_timezone, set_operator_timezone};
use kassa_server::rails::Rails;
use kassa_server::rails::book::ChannelBook;
use kassa_server::rails::reconcile::ReconcilePolicy;
use kassa_server::rails::upstream_rail::UpstreamContext;
use kassa_server::sealing::Kek;
use kassa_server::{Gateway, GatewayParts, ServerConfig, now_ms, router};
use kassa_signature::SigningKey;
use kassa_store::SqlStore;
use kassa_store::prelude::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
async fn ensure_demo(
    store: &SqlStore,
    kek: &Kek,
    dir: &Path,
) -> Result<Vec<(Currency, AppId)>, Failure> {
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
                    .set_app_public_key(app.app_id, &public_pem, now_ms(), None)
                    .await?;
            }
            out.push((currency, app.app_id));
        }
        return Ok(out);
    }
    let created = create_merchant(
        store,
        kek,
        "Demo Shop",
        &[Currency::Eur, Currency::Usd, Currency::Brl],
        Some(&public_pem),
        None,
    )
    .await?;
    // The BRL app receives PIX payments with a made-up random key (the sandbox moves no money).
    let receiver = kassa_core::pix::PixReceiver::new(DEMO_PIX_KEY, "Demo Shop", "Sao Paulo")?;
    if let Some(brl) = created.apps.iter().find(|a| a.currency == Currency::Brl) {
        store
            .set_app_pix(brl.app_id, Some(&receiver), now_ms(), None)
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

/// Resolves on SIGTERM or Ctrl-C: how a server (or the bench's null gateway) is asked to stop.
pub(crate) async fn shutdown_signal() {
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

/// Waits for SIGTERM or Ctrl-C, then drains: `/readyz` answers 503 while requests are still
/// served for `drain_ms`, so a load balancer moves traffic away before the listener closes.
async fn drain_then_stop(gateway: Arc<kassa_server::Gateway>, drain_ms: u64) {
    shutdown_signal().await;
    gateway.database.start_draining();
    // Waiting payers' pages are answered now: their next requests go to a node that stays.
    gateway.status_watch.release_all();
    tracing::info!(
        drain_ms,
        "draining: /readyz answers 503, requests are still served"
    );
    tokio::time::sleep(std::time::Duration::from_millis(drain_ms)).await;
}

pub async fn run(options: ServeOptions, database_url: &str) -> Outcome {
    options.check().map_err(Failure)?;
    raise_open_files_limit(options.max_connections);
    // Before anything else, so that start-up is measured too.
    let exporter = options.metrics.then(kassa_server::telemetry::install);
    let allow_private = options.allow_private_callbacks || options.demo;
    let store = open_store(database_url).await?;
    tracing::info!(backend = store.backend().name(), "database ready");
    let kek = Arc::new(crate::kek::unlock(&store).await?);
    crate::kek::seal_plain_webhook_secrets(&store, &kek).await?;
    let platform_key = load_or_create_platform_key(&store, &kek, now_ms()).await?;
    let timezone = match &options.timezone {
        Some(name) => set_operator_timezone(&store, name, now_ms()).await,
        None => operator_timezone(&store).await,
    }
    .map_err(|e| Failure(format!("--timezone: {e}")))?;
    let listener = listen_on(options.listen, "")?;
    let bound = listener.local_addr()?;
    let admin_listener = listen_on(options.admin_listen, " (--admin-listen)")?;
    let admin_bound = admin_listener.local_addr()?;
    let backoffice_listener = listen_on(options.backoffice_listen, " (--backoffice-listen)")?;
    let backoffice_bound = backoffice_listener.local_addr()?;
    let public_url = public_url(&options, bound)?;
    if options.demo {
        let data_dir =
            (options.data_dir.clone()).unwrap_or_else(|| config::default_data_dir(database_url));
        let demo_dir = data_dir.join("demo");
        start_demo(&store, &kek, &demo_dir, &platform_key, &public_url).await?;
    } else if store.list_merchants().await?.is_empty() {
        print_first_steps();
    }
    let form_key = FormKey::load_or_create(&store, &kek, now_ms()).await?;
    let dispatcher_thread = !store.backend().calls_bound_to_runtime();
    let store: Arc<dyn Store> = Arc::new(store);
    let book = Arc::new(ChannelBook::new(
        store.clone(),
        kek.clone(),
        BreakerPolicy {
            failures_to_open: options.circuit_failures,
            cool_down_ms: options.circuit_cool_down.ms as i64,
        },
    ));
    book.refresh().await?;
    let rails = Rails::with_channels(UpstreamContext {
        book: book.clone(),
        store: store.clone(),
        public_url: public_url.clone(),
        reconcile_after_ms: options.reconcile_after.ms as i64,
    });
    let gateway = Arc::new(Gateway::new(GatewayParts {
        store,
        notary: Notary::new(platform_key, timezone),
        form_key,
        config: server_config(&options, public_url.clone(), allow_private),
        dialects: Dialects::standard(),
        rails,
        dispatcher_wake: Arc::default(),
    }));
    let backoffice = Arc::new(Backoffice {
        gateway: gateway.clone(),
        kek: kek.clone(),
        policy: SignInPolicy::default(),
        secure_cookies: !options.backoffice_plain_http,
    });
    let background = Background::start(
        (&gateway, book),
        &options,
        (allow_private, dispatcher_thread),
        (kek, exporter.clone()),
    )?;
    if allow_private {
        tracing::warn!("callbacks and redirects to private and loopback addresses are allowed");
    }
    // The public line comes last: scripts wait for it and may stop reading there.
    println!("kassa admin listening on http://{admin_bound} (/metrics, /healthz, /readyz)");
    println!("kassa back office on http://{backoffice_bound}/admin/");
    println!("kassa listening on http://{bound} (public URL {public_url})");
    let admin = SideListener::start(
        admin_listener,
        kassa_server::admin::router(gateway.clone(), exporter),
        "admin",
    );
    let backoffice = SideListener::start(
        backoffice_listener,
        kassa_server::backoffice::router(backoffice),
        "backoffice",
    );
    let limits = ConnectionLimits {
        header_read_timeout_ms: options.header_read_timeout.ms,
        max_connections: options.max_connections,
        max_connections_per_address: options.max_connections_per_address,
        ..ConnectionLimits::default()
    };
    let drain = drain_then_stop(gateway.clone(), options.drain_period.ms);
    kassa_server::listen::serve(listener, router(gateway), limits, drain).await?;
    background.stop().await;
    backoffice.stop().await;
    admin.stop().await;
    Ok(())
}

/// A listener beside the public one (admin, back office): it serves through the drain period
/// and stops after the public one.
struct SideListener {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SideListener {
    /// Monitoring and the back office's staff need few connections.
    const MAX_CONNECTIONS: usize = 64;

    fn start(
        listener: tokio::net::TcpListener,
        router: axum::Router,
        name: &'static str,
    ) -> SideListener {
        let (stop, mut stopped) = watch::channel(false);
        let limits = ConnectionLimits {
            max_connections: Self::MAX_CONNECTIONS,
            max_connections_per_address: Self::MAX_CONNECTIONS,
            shutdown_grace_ms: 1_000,
            name,
            ..ConnectionLimits::default()
        };
        let stopping = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let task = tokio::spawn(async move {
            if let Err(e) = kassa_server::listen::serve(listener, router, limits, stopping).await {
                tracing::error!(error = %e, listener = name, "a listener failed");
            }
        });
        SideListener { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The base URL payers reach kassa at: the option, else the address bound.
fn public_url(options: &ServeOptions, bound: SocketAddr) -> Result<String, Failure> {
    let public_url = (options.public_url.clone()).unwrap_or_else(|| format!("http://{bound}"));
    let public_url = public_url.trim_end_matches('/').to_string();
    kassa_core::validate::http_url("--public-url", &public_url)?;
    Ok(public_url)
}

/// Connections the kernel holds for a listener before kassa accepts them (capped by the
/// kernel's `net.core.somaxconn`). Tokio's default, 1,024, overflows when thousands of payers'
/// pages reconnect at once (a node restarted, a balancer moving them over): the kernel then
/// drops their handshakes, and each waits out TCP's retransmission backoff (1, 3, 7, 15 s …).
const LISTEN_BACKLOG: u32 = 8_192;

/// A listener on `address` with [`LISTEN_BACKLOG`]; `flag` names the option in the error.
fn listen_on(address: SocketAddr, flag: &str) -> Result<tokio::net::TcpListener, Failure> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    };
    // As `TcpListener::bind` does: a restarted server may listen while old connections linger.
    let listening = socket
        .and_then(|socket| socket.set_reuseaddr(true).map(|()| socket))
        .and_then(|socket| socket.bind(address).map(|()| socket))
        .and_then(|socket| socket.listen(LISTEN_BACKLOG));
    listening.map_err(|e| Failure(format!("cannot listen on {address}{flag}: {e}")))
}

/// Files the process keeps open besides its connections (database, logs, listeners, the
/// callback and upstream clients), with room to spare.
const FILES_BESIDES_CONNECTIONS: u64 = 1_024;

/// Lifts the soft limit of open files to the hard one: each connection is a file, and the
/// default soft limit (often 1024) is far below `--max-connections` (thousands of payers'
/// pages waiting for their PIX payment). Says so when even the hard limit is too low.
fn raise_open_files_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    let needed = max_connections as u64 + FILES_BESIDES_CONNECTIONS;
    if !raised || limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            "the open-file limit is below --max-connections plus what kassa needs besides; raise it (ulimit -n, LimitNOFILE=) or lower --max-connections"
        );
    }
}

fn server_config(options: &ServeOptions, public_url: String, allow_private: bool) -> ServerConfig {
    ServerConfig {
        public_url,
        collect_order_lifetime_ms: options.collect_order_lifetime.ms as i64,
        pix_order_lifetime_ms: options.pix_order_lifetime.ms as i64,
        request_timeout_ms: options.request_timeout.ms,
        body_read_timeout_ms: options.body_read_timeout.ms,
        max_uploads_per_address: options.max_uploads_per_address,
        allow_private_targets: allow_private,
        allowed_target_ports: options.allowed_target_ports.clone(),
        max_in_flight: options.max_in_flight.max(1),
        app_rate_limit_per_s: options.app_rate_limit,
        ..ServerConfig::default()
    }
}

/// What to do on a database without merchants: a gateway nobody can call yet.
fn print_first_steps() {
    let kassa = this_command();
    println!("No merchant yet. Create one (in another terminal, against the same database):");
    println!(
        "  {kassa} merchant create --name \"Your Shop\" --currency EUR --generate-keys ./shop-keys"
    );
    println!("or start with a demo merchant to try things out: {kassa} serve --demo");
    println!(
        "Then add yourself to the back office: {kassa} user add --email you@psp.example --role operator-admin"
    );
    println!();
}

/// The demo merchant, its key files and the printed walk-through.
async fn start_demo(
    store: &SqlStore,
    kek: &Kek,
    dir: &Path,
    platform_key: &SigningKey,
    public_url: &str,
) -> Outcome {
    let apps = ensure_demo(store, kek, dir).await?;
    std::fs::write(dir.join("platform.pub.pem"), platform_key.public_key_pem())?;
    print_demo(&apps, dir, public_url);
    Ok(())
}

/// How often the database is asked whether it answers (see `kassa_server::health`).
const PROBE_INTERVAL_MS: u64 = 1_000;

/// The tasks that run beside the HTTP server: the callback dispatcher, the expiry sweep and
/// the database prober.
struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    fn start(
        (gateway, book): (&Arc<Gateway>, Arc<ChannelBook>),
        options: &ServeOptions,
        (allow_private, own_thread): (bool, bool),
        (kek, exporter): (
            Arc<Kek>,
            Option<metrics_exporter_prometheus::PrometheusHandle>,
        ),
    ) -> Result<Background, Failure> {
        let dispatcher = Arc::new(Dispatcher::new(
            gateway.store.clone(),
            DispatcherConfig {
                retry: RetryPolicy {
                    retry_interval_ms: options.callback_retry_interval.ms,
                    max_age_ms: options.callback_max_age.ms,
                },
                request_timeout_ms: options.callback_timeout.ms,
                allow_private_targets: allow_private,
                allowed_ports: options.allowed_target_ports.clone(),
                kek,
                ..DispatcherConfig::default()
            },
            gateway.dispatcher_wake.clone(),
        )?);
        let (stop, stopped) = watch::channel(false);
        let sweeper = kassa_server::sweeper::run(
            gateway.clone(),
            options.expiry_sweep_interval.ms,
            stop.subscribe(),
        );
        let prober =
            kassa_server::health::run(gateway.clone(), PROBE_INTERVAL_MS, stop.subscribe());
        let refresher = kassa_server::rails::book::run(
            book,
            options.channel_refresh_interval.ms,
            stop.subscribe(),
        );
        let reconciler = kassa_server::rails::reconcile::run(
            gateway.clone(),
            ReconcilePolicy {
                first_interval_ms: options.reconcile_after.ms as i64,
                max_interval_ms: options.reconcile_max_interval.ms as i64,
                grace_ms: options.reconcile_grace.ms as i64,
            },
            options.expiry_sweep_interval.ms,
            stop.subscribe(),
        );
        let settler = kassa_server::settlement::run(
            gateway.store.clone(),
            options.expiry_sweep_interval.ms,
            stop.subscribe(),
        );
        let mut tasks = vec![
            tokio::spawn(settler),
            dispatcher
                .start(stopped, own_thread)
                .map_err(|e| Failure(format!("cannot start the callback dispatcher: {e}")))?,
            tokio::spawn(sweeper),
            tokio::spawn(prober),
            tokio::spawn(refresher),
            tokio::spawn(reconciler),
        ];
        let retention = options.retention();
        if !retention.is_off() {
            let prune = kassa_server::retention::run(
                gateway.store.clone(),
                retention,
                options.expiry_sweep_interval.ms,
                stop.subscribe(),
            );
            tasks.push(tokio::spawn(prune));
        }
        if options.ledger_check_interval.ms > 0 {
            let watch = kassa_server::settlement::watch_books(
                gateway.store.clone(),
                options.ledger_check_interval.ms,
                stop.subscribe(),
            );
            tasks.push(tokio::spawn(watch));
        }
        if let Some(exporter) = exporter {
            let upkeep = kassa_server::telemetry::run_upkeep(exporter, stop.subscribe());
            tasks.push(tokio::spawn(upkeep));
        }
        Ok(Background { stop, tasks })
    }

    /// Deliveries in flight finish (bounded by the callback timeout); the rest stay queued.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
