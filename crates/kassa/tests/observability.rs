//! Observability against the real thing: a real Prometheus (Debian's `prometheus` package, which
//! `.ci/run` installs) scrapes a running `kassa serve` and finds the orders, callbacks and
//! latencies of a whole order's life; `promtool` checks the exposition and the alert rules;
//! every expression of the shipped Grafana dashboard is parsed by that Prometheus and names
//! only metrics kassa exports; the admin listener is apart from the public one.
//!
//! Without Prometheus the Prometheus tests are skipped with a printed reason (and fail in CI).

mod common;

use common::{create_shop, json, kassa, run_ok, serve};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root (the tests run in the crate's folder).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A program on PATH, or `None` with the reason printed; in CI a missing one is a failure.
fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed; .ci/run installs Debian's prometheus package"
        );
        eprintln!("SKIPPED: {name} is not installed (apt-get install prometheus)");
    }
    found
}

/// A Prometheus server for one test, killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts Prometheus scraping `target` every second, with kassa's alert rules loaded.
fn start_prometheus(binary: &Path, dir: &Path, target: &str) -> Prometheus {
    let alerts = repo().join("deploy/prometheus/alerts.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: kassa\n    static_configs:\n      - targets: [\"{target}\"]\n",
        alerts.canonicalize().unwrap().display()
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// Asks Prometheus an instant query; `Err` carries its error for expressions it refuses.
async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Result<Value, String> {
    let reply = client
        .post(format!("{prometheus}/api/v1/query"))
        .form(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = reply.json().await.map_err(|e| e.to_string())?;
    if body["status"] == "success" {
        Ok(body["data"]["result"].clone())
    } else {
        Err(body.to_string())
    }
}

/// The value of the first series an expression returns.
fn first_value(result: &Value) -> Option<f64> {
    result.get(0)?["value"][1].as_str()?.parse().ok()
}

/// Waits (at most 60 s) until `expr` returns a value of at least `at_least`.
async fn wait_for(client: &reqwest::Client, prometheus: &str, expr: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = query(client, prometheus, expr).await.ok();
        if let Some(value) = value.as_ref().and_then(first_value)
            && value >= at_least
        {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw {expr} >= {at_least} (last: {value:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A merchant endpoint that acknowledges every callback.
async fn acknowledging_receiver() -> String {
    let app = axum::Router::new().route("/notify", axum::routing::post(|| async { "success" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Every PromQL expression of the shipped Grafana dashboard.
fn dashboard_expressions() -> Vec<String> {
    let path = repo().join("deploy/grafana/kassa-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "the dashboard has its panels");
    panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().expect("targets").clone())
        .map(|target| target["expr"].as_str().expect("expr").to_string())
        .collect()
}

/// The metric names an expression mentions: identifiers that are not PromQL's own words, label
/// names or label values.
fn metric_names(expr: &str) -> Vec<String> {
    let without_strings: String = expr
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(" ");
    let without_labels = strip_between(&without_strings, '{', '}');
    let without_groupings = strip_between(&without_labels, '(', ')');
    without_groupings
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter(|word| word.starts_with("kassa_") || word.starts_with("process_") || *word == "up")
        .map(String::from)
        .collect()
}

/// `by (…)`/`without (…)` lists hold label names, not metrics: drop parenthesised runs that
/// follow those words; and drop `{…}` label matchers.
fn strip_between(text: &str, open: char, close: char) -> String {
    if open == '{' {
        let mut out = String::new();
        let mut depth = 0;
        for c in text.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ if depth == 0 => out.push(c),
                _ => {}
            }
        }
        return out;
    }
    let mut out = text.to_string();
    for word in ["by (", "without ("] {
        while let Some(start) = out.find(word) {
            let end = out[start..]
                .find(close)
                .map_or(out.len(), |e| start + e + 1);
            out.replace_range(start..end, " ");
        }
    }
    out
}

#[test]
fn dashboard_names_only_metrics_kassa_exports() {
    let exported = kassa_server::telemetry::exported_names();
    let mut checked = 0;
    for expr in dashboard_expressions() {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "no metric found in {expr}");
        for name in names {
            assert!(
                name == "up" || exported.contains(&name),
                "{name} (in {expr}) is not a metric kassa exports"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} names checked");
    // The extraction itself: label names and values are not taken for metrics.
    assert_eq!(
        metric_names(r#"sum by (le, route) (rate(kassa_x_bucket{route="kassa_y"}[5m]))"#),
        ["kassa_x_bucket"]
    );
}

#[test]
fn alert_rules_pass_promtool_and_their_tests() {
    let Some(promtool) = program("promtool") else {
        return;
    };
    let rules = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&rules)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(rules.join("alerts.yml")).unwrap();
    let operations = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    for alert in text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            operations.contains(&format!("### {alert}")),
            "docs/operations.md has no runbook section for {alert}"
        );
    }
}

/// A signed `collect` create for the EUR app, calling back to `notify_url`.
fn order_body(
    app_id: i64,
    key: &kassa_signature::SigningKey,
    order_id: &str,
    notify_url: &str,
) -> Value {
    let mut body = serde_json::json!({
        "appId": app_id, "orderId": order_id, "name": "Jane Doe", "phone": "+31612345678",
        "email": "jane@example.com", "amount": "25.00", "payType": "BANK_TRANSFER",
        "inBankCode": "IDEAL_EUR", "callBackUrl": "https://shop.example/ok",
        "callBackFailUrl": "https://shop.example/fail", "notifyUrl": notify_url,
        "partnerUserId": "u1",
    })
    .as_object()
    .unwrap()
    .clone();
    kassa_signature::sign_map(key, &mut body);
    Value::Object(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_sees_orders_callbacks_and_latency() {
    let (Some(prometheus_bin), Some(promtool)) = (program("prometheus"), program("promtool"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let (app_id, key) = create_shop(&url, "EUR", dir.path());
    let notify_url = acknowledging_receiver().await;
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--allow-private-callbacks",
        "--callback-retry-interval",
        "1s",
    ];
    let server = serve(&args, dir.path());
    let client = reqwest::Client::new();

    // A whole order's life: created, opened by the payer, paid, its callback acknowledged.
    let reply: Value = client
        .post(format!("{}/eur/collect/apply", server.base))
        .json(&order_body(app_id, &key, "PROM-1", &notify_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_no = reply["data"]["orderNo"]
        .as_str()
        .expect("created")
        .to_string();
    let pay_url = reply["data"]["payUrl"].as_str().unwrap();
    assert!(
        client
            .get(pay_url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let paid = json(&run_ok(&mut kassa(&[
        "sandbox",
        "pay",
        &order_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ])));
    assert_eq!(paid["status"], "succeeded");

    // promtool lints the exposition as kassa serves it.
    let exposition = client
        .get(format!("{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let target = server.admin.trim_start_matches("http://").to_string();
    let prometheus = start_prometheus(&prometheus_bin, dir.path(), &target);
    let p = prometheus.base.as_str();
    let created = wait_for(
        &client,
        p,
        r#"sum(kassa_orders_created_total{dialect="collect",currency="EUR"})"#,
        1.0,
    )
    .await;
    assert_eq!(created, 1.0, "one order was created");
    wait_for(
        &client,
        p,
        r#"sum(kassa_callback_attempts_total{outcome="acknowledged"})"#,
        1.0,
    )
    .await;
    wait_for(
        &client,
        p,
        "sum(kassa_callback_delivery_seconds_count)",
        1.0,
    )
    .await;
    wait_for(
        &client,
        p,
        r#"sum(kassa_http_request_duration_seconds_bucket{route="/{currency}/collect/apply",le="+Inf"})"#,
        1.0,
    )
    .await;
    wait_for(
        &client,
        p,
        r#"sum(kassa_order_transitions_total{from="created",to="in_progress"})"#,
        1.0,
    )
    .await;
    let rail =
        r#"kassa_rail_call_duration_seconds_count{rail="sandbox",channel="sandbox",call="start"}"#;
    wait_for(&client, p, rail, 1.0).await;
    wait_for(&client, p, r#"kassa_build_info{job="kassa"}"#, 1.0).await;
    wait_for(
        &client,
        p,
        r#"process_resident_memory_bytes{job="kassa"}"#,
        1_000_000.0,
    )
    .await;
    assert_eq!(wait_for(&client, p, "kassa_ready", 1.0).await, 1.0);

    // Every dashboard expression parses and runs (Grafana's interval variable filled in).
    for expr in dashboard_expressions() {
        let expr = expr.replace("$__rate_interval", "1m");
        query(&client, p, &expr)
            .await
            .unwrap_or_else(|e| panic!("Prometheus refuses the dashboard's {expr}: {e}"));
    }
    // The alert rules load and evaluate without error against live data.
    let alerts = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let alert_count = alerts
        .lines()
        .filter(|l| l.trim().starts_with("- alert: "))
        .count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rules: Value = client
            .get(format!("{p}/api/v1/rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rules: Vec<&Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().unwrap())
            .collect();
        let healthy = rules.iter().filter(|rule| rule["health"] == "ok").count();
        if rules.len() == alert_count && healthy == alert_count {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert rules not all healthy: {rules:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_admin_listener_is_apart_from_the_public_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let server = serve(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", &url],
        dir.path(),
    );
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    // Merchants and payers cannot read the metrics.
    assert_eq!(status(format!("{}/metrics", server.base)).await, 404);
    // The admin listener serves its three routes and nothing of the public surface.
    assert_eq!(status(format!("{}/metrics", server.admin)).await, 200);
    assert_eq!(status(format!("{}/healthz", server.admin)).await, 200);
    assert_eq!(status(format!("{}/readyz", server.admin)).await, 200);
    for path in [
        "/docs",
        "/openapi.json",
        "/eur/collect/query",
        "/pay/x",
        "/v1/orders",
    ] {
        assert_eq!(
            status(format!("{}{path}", server.admin)).await,
            404,
            "{path}"
        );
    }
    let create = client
        .post(format!("{}/eur/collect/apply", server.admin))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(create.status().as_u16(), 404);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--metrics",
        "false",
    ];
    let server = serve(&args, dir.path());
    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("{}/metrics", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 404);
    let ready = client
        .get(format!("{}/readyz", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[test]
fn the_admin_listener_stays_on_loopback_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let out = kassa(&["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .args(["--admin-listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--admin-listen-public"), "{stderr}");
}
