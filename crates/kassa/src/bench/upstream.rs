//! The upstream scenario: PIX creates through one upstream hop. A second `kassa serve` (its own
//! SQLite database, on the same machine) plays the upstream PSP; the gateway under test routes
//! every create to it over a `pix-upstream` channel, so each create costs the gateway two
//! verifications (the merchant's request, the upstream's reply) and two signatures (its request
//! to the upstream, its reply to the merchant). The gateway's CPU per create is reported against
//! that floor, measured in the same run. Then the gateway is left with `--awaiting` (10,000)
//! orders awaiting reconciliation (queried every few seconds) and its memory is read.

use super::{
    BenchArgs, BenchDatabase, Measured, Report, Server, Shop, cpu_seconds, crypto_floor_us, report,
    set_up_app,
};
use crate::Failure;
use kassa_core::{Channel, ChannelKind, Currency, MethodRoute, PaymentMethod, Secret};
use kassa_server::now_ms;
use kassa_server::sealing::CHANNEL_MERCHANT_KEY;
use kassa_signature::{SigningKey, parse_signed_object};
use kassa_store::prelude::*;
use kassa_store::{SqlStore, Store};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long reconciliation works through the orders awaiting it before memory is read (at
/// most; never longer than the measured run).
const RECONCILE_WINDOW: Duration = Duration::from_secs(10);
/// More creates per second than one hop takes on a 2-core machine: the bodies signed for a
/// timed run.
const HOP_CREATES_PER_S_AT_MOST: usize = 800;

pub async fn run(args: &BenchArgs, base_url: Option<&str>) -> Result<Vec<Report>, Failure> {
    if args.target.is_some() {
        return Err(Failure(
            "--scenario upstream starts its own servers; drop --target".into(),
        ));
    }
    let upstream_db = BenchDatabase::fresh(None).await?;
    let upstream_store = open(&upstream_db.url).await?;
    let at_upstream = set_up_app(&upstream_store, Currency::Brl).await?;
    let receiver = kassa_core::pix::PixReceiver::new(
        "00000000-0000-4000-8000-00000000be0c",
        "Bench Upstream",
        "Sao Paulo",
    )
    .map_err(|e| Failure(e.to_string()))?;
    upstream_store
        .set_app_pix(at_upstream.app_id, Some(&receiver), now_ms(), None)
        .await?;
    let upstream = Server::start(&upstream_db.url, false)?;

    let db = BenchDatabase::fresh(base_url).await?;
    let store = open(&db.url).await?;
    let shop = set_up_app(&store, Currency::Brl).await?;
    add_channel(&store, &upstream.base, &at_upstream).await?;
    let gateway = Server::start_with(
        &db.url,
        true,
        &["--reconcile-after", "2s", "--reconcile-max-interval", "5s"],
    )?;

    // Two verifications and two signatures per create: twice the floor of one of each.
    let floor = 2.0 * crypto_floor_us(&shop.key, &shop.platform);
    let upstream_cpu_before = cpu_seconds(upstream.child.id());
    let gateway_cpu_before = cpu_seconds(gateway.pid());
    let measured = drive_pix(
        &gateway.base,
        &shop,
        args,
        Duration::from_secs(args.duration),
    )
    .await;
    let gateway_cpu = cpu_seconds(gateway.pid())
        .zip(gateway_cpu_before)
        .map(|(after, before)| after - before);
    let upstream_cpu = cpu_seconds(upstream.child.id())
        .zip(upstream_cpu_before)
        .map(|(after, before)| after - before);
    let created = measured.requests - measured.errors;
    let mut reports = vec![report(
        "upstream-create",
        &db,
        args,
        measured,
        gateway_cpu,
        super::peak_rss_mb(gateway.pid()),
        floor,
    )];
    let first = &mut reports[0].fields;
    first["upstream_cpu_us_per_request"] = json!(
        upstream_cpu
            .filter(|_| created > 0)
            .map(|s| (s * 1e6 / created as f64).round())
    );

    // Top up to 10,000 open orders, then let reconciliation work through them.
    if created < args.awaiting {
        let top_up = Duration::from_secs(120);
        let mut remaining = args.awaiting - created;
        let deadline = Instant::now() + top_up;
        while remaining > 0 && Instant::now() < deadline {
            let run = drive_pix_count(&gateway.base, &shop, args.connections, remaining).await;
            remaining = remaining.saturating_sub(run.requests - run.errors);
        }
    }
    let awaiting = store.upstream_orders_open().await?;
    let rss_before = current_rss_mb(gateway.pid());
    let window = RECONCILE_WINDOW.min(Duration::from_secs(args.duration));
    tokio::time::sleep(window).await;
    let rss_after = current_rss_mb(gateway.pid());
    reports[0].fields["awaiting_reconciliation"] = json!(awaiting);
    reports[0].fields["gateway_rss_mb_awaiting"] = json!({
        "before_reconciling": rss_before,
        "after_reconciling": rss_after,
        "reconciling_s": window.as_secs(),
        "peak": super::peak_rss_mb(gateway.pid()),
    });
    drop(gateway);
    drop(upstream);
    store.close().await;
    upstream_store.close().await;
    db.drop_schema().await;
    Ok(reports)
}

async fn open(url: &str) -> Result<SqlStore, Failure> {
    let store = SqlStore::connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// The gateway's channel to the upstream: kassa's key there sealed with the gateway's KEK.
async fn add_channel(store: &SqlStore, base_url: &str, at_upstream: &Shop) -> Result<(), Failure> {
    let kek = crate::kek::unlock(store).await?;
    let pem = at_upstream.key.to_pkcs8_pem();
    let channel = Channel {
        channel_id: "bench-upstream".into(),
        kind: ChannelKind::PixUpstream,
        upstream: Some(kassa_core::Upstream {
            base_url: base_url.to_string(),
            app_id: at_upstream.app_id.0,
            merchant_key: Secret::new(kek.seal(CHANNEL_MERCHANT_KEY, pem.as_bytes())),
            platform_public_key: at_upstream.platform.public_key_pem(),
        }),
        methods: vec![MethodRoute {
            method: PaymentMethod::by_code("PIX").expect("PIX is in the catalogue"),
            upstream_in_bank_code: "PIX".into(),
            upstream_pay_type: "PIX".into(),
        }],
        currencies: vec![Currency::Brl],
        limits: None,
        priority: 1,
        weight: 100,
        enabled: true,
        connect_timeout_ms: 2_000,
        request_timeout_ms: 10_000,
        created_at_ms: now_ms(),
        updated_at_ms: now_ms(),
    };
    channel.check().map_err(|e| Failure(e.to_string()))?;
    store.insert_channel(&channel).await?;
    Ok(())
}

/// A signed PIX create: its body and `X-Sign`.
fn pix_create(key: &SigningKey, serial: usize) -> (String, String) {
    let body = json!({
        "userOrderNumber": format!("bench-{}-{serial}", now_ms()),
        "submitAmount": "12.34", "paymentType": "PIX", "currencyType": "BRL",
    })
    .to_string();
    let canonical = parse_signed_object(&body).expect("a flat object").canonical;
    let sign = key.sign_base64(canonical.as_bytes());
    (body, sign)
}

async fn presign(key: &Arc<SigningKey>, count: usize) -> Vec<(String, String)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let tasks: Vec<_> = (0..threads)
        .map(|t| {
            let key = key.clone();
            tokio::task::spawn_blocking(move || {
                (t..count)
                    .step_by(threads)
                    .map(|i| pix_create(&key, i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut bodies = Vec::with_capacity(count);
    for task in tasks {
        bodies.extend(task.await.expect("signing thread"));
    }
    bodies
}

/// PIX creates as fast as the gateway answers, on `--connections` connections, for `duration`.
async fn drive_pix(base: &str, shop: &Shop, args: &BenchArgs, duration: Duration) -> Measured {
    drive(base, shop, args.connections, Some(duration), usize::MAX).await
}

/// `count` PIX creates as fast as the gateway answers.
async fn drive_pix_count(base: &str, shop: &Shop, connections: usize, count: usize) -> Measured {
    drive(base, shop, connections, None, count).await
}

async fn drive(
    base: &str,
    shop: &Shop,
    connections: usize,
    duration: Option<Duration>,
    count: usize,
) -> Measured {
    let window_s = duration.map_or(usize::MAX, |d| d.as_secs() as usize + 1);
    // Bodies are signed ahead, on every core, so the load generator's signing is not in the
    // window; a timed run gets more than a hop lets through on this kind of machine.
    let expected = count.min(HOP_CREATES_PER_S_AT_MOST.saturating_mul(window_s));
    let bodies = Arc::new(presign(&shop.key, expected).await);
    let url = Arc::new(format!("{base}/accountProxyCollect/initCollect"));
    let next = Arc::new(AtomicUsize::new(0));
    let app_id = shop.app_id.0.to_string();
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (bodies, url, next, app_id) =
                (bodies.clone(), url.clone(), next.clone(), app_id.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("client");
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while deadline.is_none_or(|d| Instant::now() < d) {
                    let Some((body, sign)) = bodies.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    let sent = Instant::now();
                    let answered = client
                        .post(url.as_str())
                        .header("content-type", "application/json")
                        .header("x-app-id", &app_id)
                        .header("x-sign", sign)
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match answered {
                        Ok(response) => {
                            response.status().is_success() && response.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    errors += usize::from(!ok);
                    latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.expect("load task");
        latencies_us.extend(l);
        errors += e;
    }
    Measured {
        requests: latencies_us.len(),
        errors,
        elapsed: start.elapsed(),
        latencies_us,
        machine_idle_pct: None,
    }
}

/// Resident memory of a process now, in MB.
fn current_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}
