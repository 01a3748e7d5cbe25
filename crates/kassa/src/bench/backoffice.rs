//! `kassa bench --scenario backoffice`: the back office's orders list over a database of
//! `--preload` orders, as one operator uses it (requests one after another, over a real
//! `kassa serve` and a signed-in session), each filter on its own; then the CSV export of every
//! order, with its time and the server's memory.

use super::{
    BenchArgs, BenchDatabase, Measured, Report, Server, peak_rss_mb, percentile_ms, report,
};
use crate::Failure;
use kassa_core::user::{NewUser, Role};
use kassa_server::{now_ms, passwords};
use kassa_store::prelude::*;
use kassa_store::{AuditEntry, SqlStore};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const EMAIL: &str = "bench@psp.example";
const PASSWORD: &str = "a bench password, long enough";

/// A client signed in to the back office: its cookie.
async fn sign_in(client: &reqwest::Client, base: &str) -> Result<String, Failure> {
    let page = client.get(format!("{base}/admin/sign-in")).send().await?;
    let nonce = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("kassa_sign_in="))
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| Failure("no sign-in cookie".into()))?
        .to_string();
    let html = page.text().await?;
    let at = html
        .find(r#"name="csrf" value=""#)
        .ok_or_else(|| Failure("no sign-in form".into()))?;
    let csrf = html[at + 19..].split('"').next().unwrap_or_default();
    let signed = client
        .post(format!("{base}/admin/sign-in"))
        .header("cookie", nonce)
        .header("origin", base)
        .form(&[("csrf", csrf), ("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await?;
    signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-kassa_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| {
            Failure(format!(
                "the bench user could not sign in: {}",
                signed.status()
            ))
        })
}

/// The filters an operator uses, by name: each a query string of the list.
fn filters(
    app_id: i64,
    count: i64,
    day: &str,
    from_ms: i64,
    to_ms: i64,
) -> Vec<(&'static str, String)> {
    let middle = count / 2;
    let middle_ms = from_ms + middle * (to_ms - from_ms) / count.max(1);
    vec![
        ("newest", String::new()),
        ("app", format!("app={app_id}")),
        ("status_succeeded", "status=succeeded".into()),
        ("status_exception_none", "status=exception".into()),
        ("search_order_id", format!("q=paid-{middle}")),
        ("search_order_no", format!("q=7{middle:015}")),
        ("search_email_none", "q=nobody%40example.com".into()),
        ("amount_range", "min=5.00&max=20.00".into()),
        ("today", format!("from={day}&to={day}")),
        ("deep_page", format!("before={middle_ms}-7{middle:015}")),
    ]
}

/// The list, filter after filter, until `--duration` is over.
async fn browse(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    filters: &[(&'static str, String)],
    duration: Duration,
) -> Result<(Measured, BTreeMap<&'static str, Vec<u32>>), Failure> {
    let mut by_filter: BTreeMap<&'static str, Vec<u32>> = BTreeMap::new();
    let (mut all, mut errors) = (Vec::new(), 0);
    let started = Instant::now();
    for (name, query) in filters.iter().cycle() {
        if started.elapsed() >= duration {
            break;
        }
        let began = Instant::now();
        let answer = client
            .get(format!("{base}/admin/orders?{query}"))
            .header("cookie", cookie)
            .send()
            .await?;
        let ok = answer.status().is_success();
        let _ = answer.bytes().await?;
        let us = began.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        if !ok {
            errors += 1;
        }
        all.push(us);
        by_filter.entry(name).or_default().push(us);
    }
    let measured = Measured {
        requests: all.len(),
        errors,
        elapsed: started.elapsed(),
        latencies_us: all,
        machine_idle_pct: None,
    };
    Ok((measured, by_filter))
}

pub async fn orders_list(args: &BenchArgs, base_url: Option<&str>) -> Result<Vec<Report>, Failure> {
    let db = BenchDatabase::fresh(base_url).await?;
    let store = SqlStore::connect(&db.url).await?;
    store.migrate().await?;
    let app = super::set_up_app(&store, kassa_core::Currency::Eur)
        .await?
        .app_id;
    let (day_ms, now) = (86_400_000, now_ms());
    let from_ms = now / day_ms * day_ms;
    let loading = Instant::now();
    (store.bench_preload_paid_orders(app, args.preload, (from_ms, now))).await?;
    let loaded_s = loading.elapsed().as_secs_f64();
    let hash = passwords::hash(PASSWORD).map_err(|e| Failure(e.to_string()))?;
    let user =
        NewUser::new(EMAIL, Role::OperatorAdmin, None).map_err(|e| Failure(e.to_string()))?;
    let entry = AuditEntry {
        at_ms: now,
        actor: "cli:bench".into(),
        action: "user.add".into(),
        target: String::new(),
        before: None,
        after: None,
        source: "cli".into(),
    };
    store.add_user(&user, &hash, &entry).await?;
    store.close().await;
    let server = Server::start(&db.url, false)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = server.backoffice.clone();
    let cookie = sign_in(&client, &base).await?;
    let day = kassa_core::time::format_datetime(from_ms, 0)[..10].to_string();
    let filters = filters(app.0, args.preload, &day, from_ms, now);
    let duration = Duration::from_secs(args.duration);
    let (measured, by_filter) = browse(&client, &base, &cookie, &filters, duration).await?;
    let rss_before_export = peak_rss_mb(server.pid());
    let mut line = report(
        "backoffice-list",
        &db,
        args,
        measured,
        None,
        rss_before_export,
        0.0,
    );
    line.fields["connections"] = serde_json::json!(1);
    line.fields["preload_orders"] = serde_json::json!(args.preload);
    line.fields["preload_seconds"] = serde_json::json!((loaded_s * 10.0).round() / 10.0);
    let mut per_filter = serde_json::Map::new();
    for (name, mut latencies) in by_filter {
        latencies.sort_unstable();
        per_filter.insert(
            name.into(),
            serde_json::json!({
                "requests": latencies.len(),
                "p50_ms": percentile_ms(&latencies, 0.50),
                "p99_ms": percentile_ms(&latencies, 0.99),
            }),
        );
    }
    line.fields["by_filter"] = serde_json::Value::Object(per_filter);
    let export = export_all(&client, &base, &cookie, &server, args, &db).await?;
    drop(server);
    db.drop_schema().await;
    Ok(vec![line, export])
}

/// Every order as CSV, read to the end: time, size, the server's peak memory after.
async fn export_all(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    server: &Server,
    args: &BenchArgs,
    db: &BenchDatabase,
) -> Result<Report, Failure> {
    let began = Instant::now();
    let mut answer = client
        .get(format!("{base}/admin/orders.csv"))
        .header("cookie", cookie)
        .send()
        .await?;
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = answer.chunk().await? {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let elapsed = began.elapsed();
    if lines as i64 != args.preload + 1 {
        return Err(Failure(format!(
            "the export has {lines} lines, not {} orders and a header",
            args.preload
        )));
    }
    let run = Measured {
        requests: args.preload as usize,
        errors: 0,
        elapsed,
        latencies_us: Vec::new(),
        machine_idle_pct: None,
    };
    let mut line = report(
        "backoffice-export",
        db,
        args,
        run,
        None,
        peak_rss_mb(server.pid()),
        0.0,
    );
    line.fields["export_seconds"] =
        serde_json::json!((elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
    line.fields["export_bytes"] = serde_json::json!(bytes);
    Ok(line)
}
