//! Helpers shared by the binary's test suites: running `kassa` commands and servers.
#![allow(dead_code)] // each suite uses its own subset

pub mod crash;
pub mod leases;
pub mod upstreams;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub const KASSA: &str = env!("CARGO_BIN_EXE_kassa");
/// The key-encryption key every command of the tests is given (so that commands and servers
/// on one PostgreSQL schema agree); `kek.rs`'s own tests remove it.
pub const TEST_KEK: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

pub fn kassa(args: &[&str]) -> Command {
    let mut command = Command::new(KASSA);
    command
        .args(args)
        .env_remove("KASSA_DATABASE_URL")
        .env_remove("KASSA_CONFIG")
        .env_remove("KASSA_KEK_FILE")
        .env("KASSA_KEK", TEST_KEK)
        // Servers of parallel tests must not compete for the admin listener's default port.
        .env("KASSA_ADMIN_LISTEN", "127.0.0.1:0")
        .env("KASSA_BACKOFFICE_LISTEN", "127.0.0.1:0");
    command
}

pub fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn run_with_stdin(command: &mut Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Fails unless `kassa ledger check` finds the books whole.
pub fn assert_books_hold(database_url: &str) {
    let books = kassa(&["ledger", "check", "--database-url", database_url])
        .output()
        .unwrap();
    assert!(
        books.status.success(),
        "kassa ledger check: {}{}",
        String::from_utf8_lossy(&books.stdout),
        String::from_utf8_lossy(&books.stderr)
    );
}

/// `kassa report settlement` of an app for today (UTC), as JSON.
pub fn todays_settlement_report(database_url: &str, app_id: i64) -> Value {
    let today = kassa_core::time::format_datetime(kassa_server::now_ms(), 0)[..10].to_string();
    let app = app_id.to_string();
    let mut report = kassa(&["report", "settlement", "--app", &app, "--date", &today]);
    json(&run_ok(report.args([
        "--format",
        "json",
        "--database-url",
        database_url,
    ])))
}

/// A running `kassa serve`, stopped when dropped.
pub struct Served {
    pub child: Child,
    pub base: String,
    /// The admin listener's base URL (metrics, health).
    pub admin: String,
    pub stdout_lines: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(args: &[&str], dir: &Path) -> Served {
    serve_with(kassa(args), dir, Stdio::null())
}

/// `kassa serve` from a prepared command (environment set), its logs going to `stderr`.
pub fn serve_with(mut command: Command, dir: &Path, stderr: impl Into<Stdio>) -> Served {
    let child = command
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // Owned by `Served` from here on, so any panic below still kills and reaps it.
    let mut served = Served {
        child,
        base: String::new(),
        admin: String::new(),
        stdout_lines: Vec::new(),
    };
    let mut reader = BufReader::new(served.child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!(
                "kassa serve exited early; it printed: {:#?}",
                served.stdout_lines
            );
        }
        if let Some(rest) = line.strip_prefix("kassa admin listening on ") {
            served.admin = rest.split_whitespace().next().unwrap().to_string();
        }
        if let Some(rest) = line.strip_prefix("kassa listening on ") {
            served.base = rest.split_whitespace().next().unwrap().to_string();
            served.stdout_lines.push(line);
            return served;
        }
        served.stdout_lines.push(line);
    }
}

/// A merchant with one app of `currency` and a generated key pair in `dir/keys`: its appId and
/// its private key.
pub fn create_shop(
    database_url: &str,
    currency: &str,
    dir: &Path,
) -> (i64, kassa_signature::SigningKey) {
    let keys = dir.join("keys");
    let mut command = kassa(&[
        "merchant",
        "create",
        "--name",
        "Shop",
        "--currency",
        currency,
    ]);
    command
        .args(["--database-url", database_url, "--generate-keys"])
        .arg(&keys);
    let created = json(&run_ok(&mut command));
    let key_text = std::fs::read_to_string(keys.join("merchant.key.pem")).unwrap();
    (
        created["apps"][0]["appId"].as_i64().unwrap(),
        kassa_signature::SigningKey::parse(&key_text).unwrap(),
    )
}

/// Gives a BRL app a receiving PIX key ("Upstream Shop" in São Paulo), so that it can collect.
pub fn set_upstream_pix(database_url: &str, app_id: i64) {
    run_ok(&mut kassa(&[
        "app",
        "set-pix",
        &app_id.to_string(),
        "--key",
        "00000000-0000-4000-8000-00000000d3e0",
        "--name",
        "Upstream Shop",
        "--city",
        "Sao Paulo",
        "--database-url",
        database_url,
    ]));
}

/// A small deterministic generator (xorshift64*), so a failing run's choices can be replayed.
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `kassa serve --demo` on a SQLite database in `dir` (keys in `dir/data/demo`), callbacks
/// retried every second; the server and its database URL.
pub fn serve_demo(dir: &Path) -> (Served, String) {
    serve_demo_with(dir, &[])
}

/// `kassa serve --demo` as [`serve_demo`] starts it, with `extra` options.
pub fn serve_demo_with(dir: &Path, extra: &[&str]) -> (Served, String) {
    let database_url = format!("sqlite://{}/kassa.db", dir.display());
    let mut args = vec![
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &database_url,
        "--data-dir",
        "data",
        "--callback-retry-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    (serve(&args, dir), database_url)
}

/// Creates a PIX order of the demo's BRL app (1003) on a `kassa serve --demo` whose data
/// directory is `dir/data`, signed with the demo merchant's key; the raw reply.
pub async fn demo_pix_order(
    base: &str,
    dir: &Path,
    number: &str,
    amount: &str,
) -> reqwest::Response {
    let key = std::fs::read_to_string(dir.join("data/demo/merchant.key.pem")).unwrap();
    let key = kassa_signature::SigningKey::parse(&key).unwrap();
    let body = serde_json::json!({"userOrderNumber": number, "submitAmount": amount,
        "paymentType": "PIX", "currencyType": "BRL"})
    .to_string();
    let canonical = kassa_signature::parse_signed_object(&body)
        .unwrap()
        .canonical;
    reqwest::Client::new()
        .post(format!("{base}/accountProxyCollect/initCollect"))
        .header("content-type", "application/json")
        .header("x-app-id", "1003")
        .header("x-sign", key.sign_base64(canonical.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// What a test's callback receiver got: each request's headers and body.
pub type Inbox = std::sync::Arc<std::sync::Mutex<Vec<(reqwest::header::HeaderMap, Vec<u8>)>>>;

/// A receiver of callbacks on loopback that answers `answer`; its URL and what it got.
pub async fn callback_receiver(answer: &'static str) -> (String, Inbox) {
    callback_receiver_after(answer, std::time::Duration::ZERO).await
}

/// A receiver that answers `answer` after `delay` (a slow shop, so that callbacks stay leased
/// while they are delivered).
pub async fn callback_receiver_after(
    answer: &'static str,
    delay: std::time::Duration,
) -> (String, Inbox) {
    let inbox: Inbox = Default::default();
    let kept = inbox.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(
            move |headers: reqwest::header::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push((headers, body.to_vec()));
                    tokio::time::sleep(delay).await;
                    answer
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// The payer: opens the page (which starts the payment) and presses "paid" on the sandbox
/// bank's form, again after a refusal; whether kassa confirmed it (303 to the result).
pub async fn pay_on_bank_page(
    client: &reqwest::Client,
    pay_url: &str,
    until: std::time::Instant,
) -> bool {
    while std::time::Instant::now() < until {
        let page = match client.get(pay_url).send().await {
            Ok(page) if page.status() == 200 => page.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        let csrf = page
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next());
        if let Some(csrf) = csrf {
            let form = [("outcome", "paid"), ("csrf", csrf)];
            let posted = client
                .post(format!("{pay_url}/outcome"))
                .form(&form)
                .send()
                .await;
            if let Ok(answer) = posted
                && answer.status() == 303
            {
                let to = answer
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap_or(""));
                return to.is_some_and(|l| l.ends_with("?done=1"));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    false
}

/// What `url` answers to `body`, signed with `key` as a collect merchant signs.
pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    key: &kassa_signature::SigningKey,
    mut body: Value,
) -> Value {
    kassa_signature::sign_map(key, body.as_object_mut().unwrap());
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    answer.json().await.unwrap()
}

/// A collect create of an EUR bank-transfer order for `amount` (its payer Jane Doe), with a
/// `notifyUrl` when given.
pub fn eur_order_body(
    app_id: i64,
    order_id: &str,
    amount: &str,
    notify_url: Option<&str>,
) -> Value {
    let mut body = serde_json::json!({
        "appId": app_id, "orderId": order_id, "name": "Jane Doe",
        "phone": "+31612345678", "email": "jane@example.com", "amount": amount,
        "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
        "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
        "partnerUserId": "u1",
    });
    if let Some(url) = notify_url {
        body["notifyUrl"] = Value::from(url);
    }
    body
}

/// What `base` answers to an EUR app's signed `collect/query` of `order_id`.
pub async fn query_eur_order(
    client: &reqwest::Client,
    base: &str,
    (app_id, key): (i64, &kassa_signature::SigningKey),
    order_id: &str,
) -> Value {
    let body = serde_json::json!({"appId": app_id, "orderId": order_id});
    post_signed(client, &format!("{base}/eur/collect/query"), key, body).await
}

/// The independent check of the failure tests: every order kassa acknowledged (orderId,
/// orderNo, amount) is there as acknowledged, and paid (status 2) if its payer was told so.
pub async fn check_acknowledged<'a>(
    base: &str,
    app: (i64, &kassa_signature::SigningKey),
    acknowledged: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
    paid: &std::collections::HashSet<&String>,
) {
    use futures_util::StreamExt;
    let client = &reqwest::Client::new();
    let checks = acknowledged.map(|(order_id, order_no, amount)| async move {
        let reply = query_eur_order(client, base, app, order_id).await;
        assert_eq!(reply["status"], "1", "{order_id} was acknowledged: {reply}");
        assert_eq!(reply["data"]["orderNo"], order_no, "{order_id}");
        assert_eq!(reply["data"]["amount"], amount, "{order_id}");
        if paid.contains(&order_id.to_string()) {
            assert_eq!(reply["data"]["status"], 2, "{order_id} was paid: {reply}");
        }
    });
    futures_util::stream::iter(checks)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}
