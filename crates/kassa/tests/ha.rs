//! Failure tests of the highly available set-up (`deploy/ha`): Patroni-managed PostgreSQL with a
//! synchronous standby, HAProxy in front of the primary and of two kassa nodes. Merchants create
//! orders through HAProxy while the kassa nodes are restarted one by one, then one is killed,
//! and then the primary (SIGKILL of its Patroni and its postmaster); an independent record of every order kassa acknowledged is
//! checked afterwards against what kassa answers then.
//!
//! Needs Debian's patroni, etcd-server, haproxy and postgresql-15, and root (PostgreSQL runs as
//! the postgres user); `.ci/run` installs them. Without them the test is skipped with a printed
//! reason; under `CI=true` it fails instead.

mod common;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tools_available() -> Result<(), String> {
    for (tool, path) in [
        ("patroni", "/usr/bin/patroni"),
        ("etcd-server", "/usr/bin/etcd"),
        ("haproxy", "/usr/sbin/haproxy"),
        ("postgresql-15", "/usr/lib/postgresql/15/bin/postgres"),
    ] {
        if !Path::new(path).exists() {
            return Err(format!("{tool} is not installed"));
        }
    }
    // SAFETY: geteuid only reads the process's user id.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the set-up runs PostgreSQL as the postgres user, which needs root".into());
    }
    Ok(())
}

/// A running `deploy/ha` set-up in a directory of its own; stopped (by its own pids) on drop.
struct Cluster {
    dir: tempfile::TempDir,
    base: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Fixed ports below the ephemeral range (32768 up), moving with the test process.
        let base = 20_000 + (std::process::id() % 20) as u16 * 600;
        let started = Command::new("bash")
            .arg(repository().join("deploy/ha/start.sh"))
            .args(["--dir", dir.path().join("ha").to_str().unwrap()])
            .args(["--kassa", env!("CARGO_BIN_EXE_kassa")])
            .args(["--port-base", &base.to_string(), "--nodes", "2"])
            .args(["--", "--callback-retry-interval", "1s"])
            // The nodes log JSON lines: their dispatchers' ids are read from them.
            .env("KASSA_LOG_FORMAT", "json")
            .output()
            .unwrap();
        let cluster = Cluster { dir, base };
        assert!(
            started.status.success(),
            "deploy/ha/start.sh failed: {}{}",
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr)
        );
        cluster
    }

    fn ha(&self) -> PathBuf {
        self.dir.path().join("ha")
    }

    /// The database as the kassa nodes reach it: HAProxy's port of the primary.
    fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/kassa", self.base + 432)
    }

    fn front(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 80)
    }

    /// The node Patroni says leads, by asking each node's REST API until one answers.
    async fn leader(&self) -> String {
        for i in 1..=3 {
            let url = format!("http://127.0.0.1:{}/cluster", self.base + 100 + i);
            let Ok(answer) = reqwest::get(url).await else {
                continue;
            };
            let cluster: Value = answer.json().await.unwrap();
            let members = cluster["members"].as_array().unwrap();
            if let Some(leader) = members.iter().find(|m| m["role"] == "leader") {
                return leader["name"].as_str().unwrap().to_string();
            }
        }
        panic!("no Patroni node names a leader");
    }

    /// Kills kassa node `n` (SIGKILL).
    fn kill_kassa(&self, n: usize) {
        let text = std::fs::read_to_string(self.ha().join(format!("pids/kassa{n}.pid"))).unwrap();
        let pid: i32 = text.trim().parse().unwrap();
        // SAFETY: kill only signals a process this test's set-up started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    /// Kills a PostgreSQL node as a crash would: its Patroni and its postmaster, SIGKILL.
    fn kill_node(&self, name: &str) {
        let pid_of = |path: PathBuf| -> i32 {
            let text = std::fs::read_to_string(&path).unwrap();
            text.lines().next().unwrap().trim().parse().unwrap()
        };
        let patroni = pid_of(self.ha().join(format!("pids/patroni-{name}.pid")));
        let postmaster = pid_of(self.ha().join(format!("{name}/data/postmaster.pid")));
        for pid in [patroni, postmaster] {
            // SAFETY: kill only signals processes this test's set-up started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repository().join("deploy/ha/stop.sh"))
            .args(["--dir", self.ha().to_str().unwrap()])
            .output();
    }
}

/// What the merchants were told: each acknowledged order's id, number and amount.
#[derive(Default)]
struct Record {
    acknowledged: Vec<(String, String, String)>,
    /// Orders whose payment the payer's bank page confirmed.
    paid: Vec<String>,
    refused_attempts: usize,
    /// When each acknowledgement came.
    times: Vec<Instant>,
}

fn signed(key: &kassa_signature::SigningKey, body: Value) -> String {
    let mut map = body.as_object().unwrap().clone();
    kassa_signature::sign_map(key, &mut map);
    Value::Object(map).to_string()
}

/// One merchant's loop: create orders one after another; a refused or lost create is retried
/// with the same `orderId` (kassa's create is idempotent) until it is acknowledged.
async fn merchant(
    (front, notify_url): (String, String),
    key: Arc<kassa_signature::SigningKey>,
    who: usize,
    until: Instant,
    record: Arc<Mutex<Record>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut n = 0;
    while Instant::now() < until {
        let order_id = format!("ha-{who}-{n}");
        let amount = format!("{}.{:02}", 10 + n % 90, n % 100);
        let body = signed(
            &key,
            json!({"appId": 1001, "orderId": order_id, "name": "Jane Doe",
                "phone": "+31612345678", "email": "jane@example.com", "amount": amount,
                "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
                "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
                "notifyUrl": notify_url, "partnerUserId": "ha"}),
        );
        loop {
            let sent = client
                .post(format!("{front}/eur/collect/apply"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let reply: Option<Value> = match sent {
                Ok(answer) if answer.status() == 200 => answer.json().await.ok(),
                _ => None,
            };
            match reply.filter(|r| r["status"] == "1") {
                Some(reply) => {
                    let order_no = reply["data"]["orderNo"].as_str().unwrap().to_string();
                    let pay_url = reply["data"]["payUrl"].as_str().unwrap().to_string();
                    {
                        let mut record = record.lock().unwrap();
                        record
                            .acknowledged
                            .push((order_id.clone(), order_no, amount));
                        record.times.push(Instant::now());
                    }
                    if n % 5 == 0 && common::pay_on_bank_page(&client, &pay_url, until).await {
                        record.lock().unwrap().paid.push(order_id);
                    }
                    break;
                }
                None => {
                    record.lock().unwrap().refused_attempts += 1;
                    if Instant::now() >= until {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        n += 1;
        // A steady pace, not a flood: the check afterwards queries every order.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_a_node_and_the_primary_dying() {
    if let Err(why) = tools_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the HA failure tests: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    tokio::time::timeout(Duration::from_secs(270), under_load())
        .await
        .expect("the HA test took over 270 s");
}

/// Why the callbacks of orders `missing` (merchant order ids) were not heard: their rows, the
/// database's sessions and newest attempt, and the surviving node's callback and pool metrics
/// and last warnings and errors.
async fn unheard_callbacks(cluster: &Cluster, missing: &[&String]) -> String {
    let database = sqlx::PgPool::connect(&cluster.database_url())
        .await
        .unwrap();
    let mut report = String::new();
    for id in missing {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT c.callback_id || ' ' || c.state || ' attempts ' || c.attempts || ' next ' || \
             c.next_attempt_at_ms || ' lease ' || COALESCE(c.lease_owner, '-') || ' until ' || \
             COALESCE(c.lease_until_ms::text, '-') || ' now ' || \
             (extract(epoch FROM now()) * 1000)::bigint FROM callbacks c \
             JOIN orders o ON o.order_no = c.order_no WHERE o.merchant_order_id = $1",
        )
        .bind(id.as_str())
        .fetch_all(&database)
        .await
        .unwrap_or_else(|e| vec![e.to_string()]);
        report.push_str(&format!("\n{id}: {rows:?}"));
    }
    let sessions: Vec<String> = sqlx::query_scalar(
        "SELECT pid || ' ' || COALESCE(state, '-') || ' ' || COALESCE(wait_event_type, '-') || \
         ' ' || COALESCE(wait_event, '-') || ' ' || COALESCE(extract(epoch FROM now() - \
         query_start)::text, '-') || ' s: ' || left(query, 80) FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&database)
    .await
    .unwrap_or_else(|e| vec![e.to_string()]);
    report.push_str(&format!("\nsessions:\n{}", sessions.join("\n")));
    let attempts: Vec<String> = sqlx::query_scalar(
        "SELECT count(*) || ' attempts, the last ' || COALESCE(((extract(epoch FROM now()) * 1000) \
         ::bigint - max(started_at_ms))::text, '-') || ' ms ago' FROM callback_attempts",
    )
    .fetch_all(&database)
    .await
    .unwrap_or_else(|e| vec![e.to_string()]);
    report.push_str(&format!("\n{attempts:?}"));
    let metrics = format!("http://127.0.0.1:{}/metrics", cluster.base + 301);
    if let Ok(answer) = reqwest::get(metrics).await {
        let text = answer.text().await.unwrap_or_default();
        let wanted = [
            "callback",
            "finish_attempts",
            "claim_due",
            "release_callbacks",
            "pool",
        ];
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && wanted.iter().any(|w| l.contains(w)));
        let lines: Vec<&str> = lines.filter(|l| !l.contains("_bucket")).collect();
        report.push_str(&format!("\nnode 1's metrics:\n{}", lines.join("\n")));
    }
    let log = std::fs::read_to_string(cluster.ha().join("logs/kassa1.log")).unwrap_or_default();
    let noted = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"));
    let noted: Vec<&str> = noted.collect();
    let last = &noted[noted.len().saturating_sub(30)..];
    report.push_str(&format!(
        "\nkassa1's last warnings and errors:\n{}",
        last.join("\n")
    ));
    report
}

/// Long enough for the statements a killed node sent to commit or fail.
const IN_FLIGHT_LANDS: Duration = Duration::from_secs(2);

/// Kills kassa node 2 (SIGKILL) at a moment it holds callbacks' leases (waiting up to 10 s for
/// one): its dispatcher's id and the callbacks it held, which no one else may take before their
/// leases lapse.
async fn kill_node_holding_callbacks(cluster: &Cluster) -> (String, Vec<String>) {
    let node2 = common::leases::node_id(&cluster.ha().join("logs/kassa2.log"));
    let database = sqlx::PgPool::connect(&cluster.database_url())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::leases::held_by(&database, &node2).await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill_kassa(2);
    // What the node sent before it died still commits (PostgreSQL finishes a statement whose
    // client is gone, its synchronous standby's answer included): a record of a delivery read
    // as a lease still held would later show the dead node as its deliverer. Its held leases
    // are read once those have landed.
    tokio::time::sleep(IN_FLIGHT_LANDS).await;
    let held = common::leases::held_by(&database, &node2).await;
    assert!(!held.is_empty(), "node 2 held no callback when killed");
    database.close().await;
    (node2, held)
}

/// The longest time without an acknowledgement between `from` and `to`.
fn longest_silence(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut marks: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t > from && *t < to)
        .collect();
    marks.push(from);
    marks.push(to);
    marks.sort();
    marks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// Four merchants create orders (and payers pay every fifth) for 65 s; at 5 s both kassa nodes
/// are restarted one after another (no request may fail), then one is killed (HAProxy must
/// route around it), 10 s later the PostgreSQL primary (a standby must take over). Then every
/// order kassa acknowledged must be there, as acknowledged, every confirmed payment paid and
/// its callback received.
async fn under_load() {
    let cluster = Cluster::start();
    let key = std::fs::read_to_string(cluster.ha().join("kassa/demo/merchant.key.pem")).unwrap();
    let key = Arc::new(kassa_signature::SigningKey::parse(&key).unwrap());
    let record = Arc::new(Mutex::new(Record::default()));
    // A shop that takes half a second to answer: the nodes always hold some callbacks' leases.
    let shop_delay = Duration::from_millis(500);
    let (notify_url, inbox) = common::callback_receiver_after("success", shop_delay).await;
    let started = Instant::now();
    let until = started + Duration::from_secs(65);
    let merchants: Vec<_> = (0..4)
        .map(|who| {
            let urls = (cluster.front(), notify_url.clone());
            tokio::spawn(merchant(urls, key.clone(), who, until, record.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // A rolling restart (deploy/ha/restart.sh): no merchant request may fail.
    let refused_before = record.lock().unwrap().refused_attempts;
    let restart_began = Instant::now();
    let restart = repository().join("deploy/ha/restart.sh");
    let ha = cluster.ha();
    let restarted = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(restart)
            .arg("--dir")
            .arg(ha)
            .env("KASSA_LOG_FORMAT", "json")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        restarted.status.success(),
        "restart.sh: {}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    let restart_ended = Instant::now();
    let refused_in_restart = record.lock().unwrap().refused_attempts - refused_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (node2, held) = kill_node_holding_callbacks(&cluster).await;
    let node_killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let leader = cluster.leader().await;
    let primary_killed_at = Instant::now();
    cluster.kill_node(&leader);
    for merchant in merchants {
        merchant.await.unwrap();
    }
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader, "a standby took over");
    // The independent check: every acknowledged order is there, as acknowledged.
    let record = std::mem::take(&mut *record.lock().unwrap());
    let paid: std::collections::HashSet<&String> = record.paid.iter().collect();
    let told = record.acknowledged.iter();
    let told = told.map(|(id, no, amount)| (id.as_str(), no.as_str(), amount.as_str()));
    common::check_acknowledged(&cluster.front(), (1001, &key), told, &paid).await;
    // Every payment the bank page confirmed is final as paid (above), and its merchant hears so.
    let heard = || {
        let inbox = inbox.lock().unwrap();
        let mut heard = std::collections::HashSet::new();
        for (_, body) in inbox.iter() {
            let callback: Value = serde_json::from_slice(body).unwrap();
            if callback["status"] == 2 {
                heard.insert(callback["orderId"].as_str().unwrap().to_string());
            }
        }
        heard
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while paid.iter().any(|o| !heard().contains(*o)) {
        if Instant::now() > deadline {
            let heard = heard();
            let missing: Vec<&String> = paid
                .iter()
                .copied()
                .filter(|o| !heard.contains(*o))
                .collect();
            panic!(
                "a paid order's callback did not come in 60 s: {}",
                unheard_callbacks(&cluster, &missing).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The callbacks the killed node held: delivered, and recorded so, by the other node once
    // their leases lapsed.
    let database = sqlx::PgPool::connect(&cluster.database_url())
        .await
        .unwrap();
    for id in &held {
        let by = common::leases::delivered_by(&database, id).await;
        assert_ne!(by, node2, "callback {id} leased by the killed node");
    }
    // Service came back after each death: the longest silence after each is its window.
    let restart_window = longest_silence(&record.times, restart_began, restart_ended);
    let node_window = longest_silence(&record.times, node_killed_at, primary_killed_at);
    let primary_window = longest_silence(&record.times, primary_killed_at, until);
    let after = record
        .times
        .iter()
        .filter(|t| **t > primary_killed_at)
        .count();
    assert!(after > 0, "no order acknowledged after the failover");
    println!(
        "{} orders acknowledged, {} paid, {} refused attempts retried; rolling restart of both \
         nodes in {:?}: {refused_in_restart} refused, longest silence {restart_window:?}; kassa node 2 killed \
         holding {} callbacks' leases (all delivered by node 1 after the lease): longest time \
         without an acknowledgement {node_window:?}; primary {leader} killed \
         ({new_leader} leading then, {after} orders after): {primary_window:?}; every \
         acknowledged order found as acknowledged, every paid one paid and its callback \
         received",
        record.acknowledged.len(),
        paid.len(),
        record.refused_attempts,
        restart_ended - restart_began,
        held.len(),
    );
    assert_eq!(
        refused_in_restart, 0,
        "a rolling restart failed merchants' requests"
    );
    assert!(!paid.is_empty(), "no payment went through");
    assert!(
        node_window < Duration::from_secs(5),
        "a dead node held merchants {node_window:?}"
    );
    assert!(
        primary_window < Duration::from_secs(30),
        "unavailable for {primary_window:?}"
    );
}
