//! What the books cost. `pay`: orders created, started and paid at the store — the writes of a
//! create and a payment, the callback included — with the success journal posted (the fee and
//! settlement delay read, the journal built and written in the payment's transaction) and
//! without, alternated over `--rounds` rounds on fresh databases; medians and their ratio. The
//! HTTP and signing work of a real create-and-pay is left out of both, so the ratio is the
//! books' share of the store's work alone: an upper bound of their share of the whole.
//! Then one end-to-end run over HTTP (the signed create, the payer's page, the payer's "paid"),
//! whose server CPU per order the books' extra CPU is set against: their share of a whole
//! create-and-pay. `report`: a day of `--preload` succeeded orders, and `kassa report settlement`
//! of it run as a child process (its time, its peak memory, the bytes it wrote).

use super::{BenchArgs, BenchDatabase, Measured, Report, cpu_seconds, peak_rss_mb, report};
use crate::Failure;
use kassa_core::ledger::{Journal, settles_at_ms};
use kassa_core::{AmountMinor, App, NewOrder, Order, OrderEvent, OrderStatus, PaymentMethod};
use kassa_server::now_ms;
use kassa_store::prelude::*;
use kassa_store::{NewCallback, SqlStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub async fn pay(args: &BenchArgs, base_url: Option<&str>) -> Result<Vec<Report>, Failure> {
    if args.target.is_some() {
        return Err(Failure(
            "--scenario pay works on its own databases; drop --target".into(),
        ));
    }
    let mut runs: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds.max(1) {
        // Alternating which goes first: a later run meets a warmer machine.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for books in order {
            let db = BenchDatabase::fresh(base_url).await?;
            let store = Arc::new(SqlStore::connect(&db.url).await?);
            store.migrate().await?;
            let app = set_up(&store).await?;
            let cpu_before = cpu_seconds(std::process::id());
            let run = create_and_pay(&store, &app, books, args).await;
            let cpu = cpu_seconds(std::process::id())
                .zip(cpu_before)
                .map(|(a, b)| a - b);
            let name = if books {
                "pay-with-books"
            } else {
                "pay-without-books"
            };
            let rss = peak_rss_mb(std::process::id());
            runs[usize::from(!books)].push(report(name, &db, args, run, cpu, rss, 0.0));
            store.close().await;
            db.drop_schema().await;
        }
    }
    let mut lines = medians(runs);
    let whole = pay_over_http(args, base_url).await?;
    // The books' CPU per order (measured in-process, the store's side) against a whole
    // create-and-pay's CPU in the server: their share of it.
    let cpu = |r: &Report| r.fields["server_cpu_us_per_request"].as_f64();
    if let (Some(with), Some(without)) = (lines.first(), lines.get(1))
        && let (Some(a), Some(b), Some(e)) = (cpu(with), cpu(without), cpu(&whole))
    {
        let share = ((a - b) / e * 1000.0).round() / 1000.0;
        lines[0].fields["books_cpu_share_of_create_and_pay"] = serde_json::json!(share);
    }
    lines.push(whole);
    Ok(lines)
}

/// The notification address of the end-to-end run's orders (its receiver, in this process).
static RECEIVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn pay_body(app_id: kassa_core::AppId, i: usize) -> serde_json::Value {
    let mut body = super::create_body(app_id, i);
    let notify = RECEIVER.get().cloned().unwrap_or_default();
    body["notifyUrl"] = serde_json::json!(notify);
    body
}

/// Whole create-and-pays against a `kassa serve`: the merchant's signed create, the payer's
/// page (which starts the payment) and the payer's "paid" on the sandbox bank's form; the
/// server signs and sends each callback to a receiver here. Latency is of all three requests.
async fn pay_over_http(args: &BenchArgs, base_url: Option<&str>) -> Result<Report, Failure> {
    let db = BenchDatabase::fresh(base_url).await?;
    let store = SqlStore::connect(&db.url).await?;
    store.migrate().await?;
    let shop = super::set_up_shop(&store).await?;
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let receiver = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { "success" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let _ = RECEIVER.set(format!("http://{}/notify", listener.local_addr()?));
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let count = (args.duration as usize * 600).clamp(1_000, super::MAX_PRESIGNED);
    let bodies = Arc::new(super::presign(&shop.key, count, pay_body, shop.app_id).await);
    store.close().await;
    let server = super::Server::start(&db.url, true)?;
    let mut costs = super::writes::Costs::start(&db.url, Some(server.pid())).await;
    let cpu_before = cpu_seconds(server.pid());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (base, bodies, next) = (server.base.clone(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client");
            let (mut latencies_us, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let began = Instant::now();
                match create_and_pay_over_http(&client, &base, body).await {
                    Some(()) => latencies_us
                        .push(began.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                    None => errors += 1,
                }
            }
            (latencies_us, errors)
        });
    }
    let mut run = Measured {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        machine_idle_pct: None,
    };
    for (latencies, errors) in tasks.join_all().await {
        run.requests += latencies.len();
        run.errors += errors;
        run.latencies_us.extend(latencies);
    }
    run.elapsed = started.elapsed();
    let cpu = cpu_seconds(server.pid())
        .zip(cpu_before)
        .map(|(a, b)| a - b);
    let rss = peak_rss_mb(server.pid());
    // Every callback delivered (and recorded so) before the database's work is read.
    let drained_by = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < run.requests as u64 && Instant::now() < drained_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    costs.run_ended();
    drop(server);
    let orders = run.requests;
    let mut line = report("pay-over-http", &db, args, run, cpu, rss, 0.0);
    let costs = costs.per_request(&db.url, orders).await;
    super::writes::attach(&mut line.fields, costs);
    let callbacks = received.load(Ordering::Relaxed) as f64 / orders.max(1) as f64;
    line.fields["callbacks_per_order"] = serde_json::json!((callbacks * 100.0).round() / 100.0);
    db.drop_schema().await;
    Ok(line)
}

/// One order created, its page opened and paid; `None` if any step failed.
async fn create_and_pay_over_http(client: &reqwest::Client, base: &str, body: &str) -> Option<()> {
    let created = client
        .post(format!("{base}{}", super::CREATE_PATH))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let reply: serde_json::Value = created.json().await.ok()?;
    let pay_url = reply["data"]["payUrl"].as_str()?;
    let path = &pay_url[pay_url.find("/pay/")?..];
    let page = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let marker = "name=\"csrf\" value=\"";
    let from = page.find(marker)? + marker.len();
    let csrf = &page[from..from + page[from..].find('"')?];
    let paid = client
        .post(format!("{base}{path}/outcome"))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&outcome=paid"))
        .send()
        .await
        .ok()?;
    (paid.status().is_success() || paid.status().is_redirection()).then_some(())
}

/// A merchant's EUR app with a fee rule, as a live one has.
async fn set_up(store: &SqlStore) -> Result<App, Failure> {
    let app = super::set_up_app(store, kassa_core::Currency::Eur)
        .await?
        .app_id;
    let rule = kassa_core::FeeRule::new(150, kassa_core::AmountMinor(30))
        .map_err(|e| Failure(e.to_string()))?;
    store
        .set_fee_rule(
            app,
            kassa_core::FeeRule::ANY_METHOD,
            Some(rule),
            now_ms(),
            None,
        )
        .await?;
    let app = store
        .app(app)
        .await?
        .ok_or_else(|| Failure("the app just made is gone".into()))?;
    Ok(app)
}

/// `--connections` tasks creating and paying orders until `--duration` is over.
async fn create_and_pay(
    store: &Arc<SqlStore>,
    app: &App,
    books: bool,
    args: &BenchArgs,
) -> Measured {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let seed = Arc::new(AtomicU64::new(1));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (store, seed, app) = (store.clone(), seed.clone(), app.clone());
        tasks.spawn(async move {
            let (mut latencies_us, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let n = seed.fetch_add(1, Ordering::Relaxed);
                let began = Instant::now();
                match one_order(&store, &app, n, books).await {
                    Ok(()) => latencies_us
                        .push(began.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                    Err(_) => errors += 1,
                }
            }
            (latencies_us, errors)
        });
    }
    let mut measured = Measured {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        machine_idle_pct: None,
    };
    for (latencies, errors) in tasks.join_all().await {
        measured.requests += latencies.len();
        measured.errors += errors;
        measured.latencies_us.extend(latencies);
    }
    measured.elapsed = started.elapsed();
    measured
}

/// One order's store work: created, started by the payer, paid (fee charged, callback queued
/// and, with the books, the success journal posted) — what the lifecycle writes.
async fn one_order(store: &SqlStore, app: &App, n: u64, books: bool) -> Result<(), Failure> {
    let now = now_ms();
    let new = NewOrder {
        app_id: app.app_id,
        merchant_order_id: format!("P-{n}"),
        amount_minor: AmountMinor(2_500),
        method: PaymentMethod::by_code("IDEAL_EUR").ok_or_else(|| Failure("no iDEAL".into()))?,
        country: None,
        payer: None,
        subject: None,
        body: None,
        callback_url: None,
        callback_fail_url: None,
        notify_url: Some("https://shop.example/notify".into()),
        language: None,
        request_fingerprint: "bench".into(),
        dialect: "collect",
    };
    let mut order = Order::create(
        app,
        new,
        kassa_server::ids::new_order_ids(now),
        now,
        3_600_000,
    )?;
    order.route_to("sandbox", "sandbox");
    store.insert_order(&order).await?;
    let created = order.clone();
    order.apply(&OrderEvent::PayerStarted, now)?;
    store
        .transition_order(&order, created.status, None, None, None)
        .await?;
    let started = order.clone();
    let paid = OrderEvent::Paid {
        requested: order.amount_minor,
        received: order.amount_minor,
    };
    order.apply(&paid, now)?;
    // As the lifecycle does: with the books, the fee rules and the settlement delay are read
    // together; without, the fee rules alone.
    let journal = if books {
        let terms = store.success_terms(app.app_id).await?;
        let method = order.paying_method().code;
        order.charge_fee(kassa_core::FeeRule::select(&terms.fee_rules, method));
        let delay_days = terms.settlement_delay_days;
        Journal::of_success(&order, now, settles_at_ms(now, delay_days, |_| 0))
    } else {
        let method = order.paying_method().code;
        order.charge_fee(store.fee_rule_for(app.app_id, method).await?);
        None
    };
    let callback = callback_of(&order, now);
    let stored = store
        .transition_order(
            &order,
            started.status,
            Some(&callback),
            journal.as_ref(),
            None,
        )
        .await?;
    if !stored || order.status != OrderStatus::Succeeded {
        return Err(Failure("the payment was not stored".into()));
    }
    Ok(())
}

/// A callback of the size a merchant's is.
fn callback_of(order: &Order, now: i64) -> NewCallback {
    NewCallback {
        callback_id: format!("msg_{}", order.order_no),
        order_no: order.order_no.clone(),
        app_id: order.app_id,
        url: "https://shop.example/notify".into(),
        body: format!(
            r#"{{"appId":{},"orderId":"{}","orderNo":"{}","amount":"25.00","actualAmount":"25.00","fee":"0.68","status":2,"sign":"{}"}}"#,
            order.app_id.0,
            order.merchant_order_id,
            order.order_no,
            "s".repeat(344)
        ),
        headers: vec![("Content-Type".into(), "application/json".into())],
        created_at_ms: now,
    }
}

/// The median round of each variant, the one with the books carrying its ratios to the other.
fn medians(runs: [Vec<Report>; 2]) -> Vec<Report> {
    let median = |reports: &[Report], field: &str| -> Option<(f64, usize)> {
        let mut values: Vec<(f64, usize)> = reports
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.fields[field].as_f64().map(|v| (v, i)))
            .collect();
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        values.get(values.len() / 2).copied()
    };
    let [with, without] = runs;
    let mut out = Vec::new();
    let ratio = |a: Option<(f64, usize)>, b: Option<(f64, usize)>| {
        a.zip(b).map(|(a, b)| (a.0 / b.0 * 1000.0).round() / 1000.0)
    };
    let rps = |r: &[Report]| median(r, "requests_per_second");
    let cpu = |r: &[Report]| median(r, "server_cpu_us_per_request");
    for (reports, is_with) in [(&with, true), (&without, false)] {
        let Some((_, index)) = rps(reports) else {
            continue;
        };
        let mut line = reports[index].clone();
        line.fields["server_cpu_us_per_request"] = serde_json::json!(cpu(reports).map(|c| c.0));
        line.fields["rounds"] = serde_json::json!(reports.len());
        if is_with {
            line.fields["rps_with_to_without_books"] =
                serde_json::json!(ratio(rps(&with), rps(&without)));
            line.fields["cpu_with_to_without_books"] =
                serde_json::json!(ratio(cpu(&with), cpu(&without)));
        }
        out.push(line);
    }
    out
}

/// A day of `--preload` succeeded orders, and the settlement report of it written by a child
/// `kassa report settlement`: how long it took, its peak memory, what it wrote.
pub async fn settlement_report(
    args: &BenchArgs,
    base_url: Option<&str>,
) -> Result<Vec<Report>, Failure> {
    let db = BenchDatabase::fresh(base_url).await?;
    let store = SqlStore::connect(&db.url).await?;
    store.migrate().await?;
    let app = set_up(&store).await?;
    // Today in UTC (the bench database's zone; the app did not exist before), so far.
    let (day_ms, now) = (86_400_000, now_ms());
    let from_ms = now / day_ms * day_ms;
    let loading = Instant::now();
    (store.bench_preload_paid_orders(app.app_id, args.preload, (from_ms, now))).await?;
    let loaded_s = loading.elapsed().as_secs_f64();
    store.close().await;
    let date = kassa_core::time::format_datetime(from_ms, 0)[..10].to_string();
    let app_text = app.app_id.0.to_string();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "report",
            "settlement",
            "--app",
            &app_text,
            "--date",
            &date,
            "--format",
            "csv",
        ])
        .args(["--database-url", &db.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let began = Instant::now();
    let pid = child.id();
    let mut out = child.stdout.take().expect("piped");
    let counting = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    // The child's peak memory, read until it exits (the kernel keeps the high-water mark).
    let mut peak_mb: f64 = 0.0;
    let status = loop {
        if let Some(mb) = peak_rss_mb(pid) {
            peak_mb = peak_mb.max(mb);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = began.elapsed();
    let bytes = counting
        .join()
        .map_err(|_| Failure("the report's reader failed".into()))??;
    db.drop_schema().await;
    if !status.success() {
        return Err(Failure(format!("kassa report settlement failed: {status}")));
    }
    let run = Measured {
        requests: args.preload as usize,
        errors: 0,
        elapsed,
        latencies_us: Vec::new(),
        machine_idle_pct: None,
    };
    let mut line = report("report", &db, args, run, None, Some(peak_mb), 0.0);
    line.fields["report_seconds"] =
        serde_json::json!((elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
    line.fields["report_bytes"] = serde_json::json!(bytes);
    line.fields["preload_seconds"] = serde_json::json!((loaded_s * 10.0).round() / 10.0);
    Ok(vec![line])
}
