//! The payer's path in a real browser: headless Chromium (Debian's package, driven through
//! chromedriver's WebDriver protocol) opens `payUrl` of a cashier-mode order on a phone-sized
//! screen, picks a method, chooses *paid*, and lands on the shop's `callBackUrl`; the order then
//! queries as status 2. A second payer does the same with the keyboard alone. Screenshots of the
//! pages are kept in `target/test-artifacts/`.
//!
//! Without chromium and chromedriver the test is skipped with a printed reason; `.ci/run`
//! installs them, and under `CI=true` a missing browser fails the test instead.

mod common;

use common::*;
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn browser_available() -> bool {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the browser test: {CHROMIUM} or {CHROMEDRIVER} is missing"
        );
        eprintln!("skipped the browser test: install Debian's chromium and chromium-driver");
    }
    present
}

/// chromedriver and one browser session, both ended on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        use std::os::unix::process::CommandExt;
        // Its own process group, so dropping the browser ends chromedriver and its Chromium.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=390,844",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let created = browser
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(reply["value"].get("error").is_none(), "{path}: {reply}");
        reply["value"].clone()
    }

    async fn session(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn open(&self, url: &str) {
        self.session(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn current_url(&self) -> String {
        self.session(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits for an element to appear, then clicks it.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let element = loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let reply: Value = self
                .http
                .post(url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = reply["value"][ELEMENT_KEY].as_str() {
                break id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.session(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// How many elements match `css` once at least `at_least` do (waits up to 10 s).
    async fn count(&self, css: &str, at_least: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .session(
                    reqwest::Method::POST,
                    "/elements",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            let n = found.as_array().map_or(0, Vec::len);
            if n >= at_least || Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses keys, one after another (WebDriver key codes: Tab U+E004, Enter U+E007).
    async fn press(&self, keys: &[&str]) {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.session(reqwest::Method::POST, "/actions", Some(body))
            .await;
    }

    async fn wait_for_url(&self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.current_url().await;
            if url.starts_with(prefix) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stuck at {url}, expected {prefix}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page into `target/test-artifacts/`.
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self
            .session(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

impl Browser {
    /// Ends the session, which closes Chromium.
    async fn quit(&self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and whatever Chromium it still runs.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

/// The shop the payer returns to.
async fn shop() -> String {
    let app = axum::Router::new()
        .route(
            "/paid",
            axum::routing::get(|| async {
                axum::response::Html("<h1>Thank you for your order</h1>")
            }),
        )
        .route(
            "/failed",
            axum::routing::get(|| async { axum::response::Html("<h1>Payment failed</h1>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn cashier_order(server: &Server, order_id: &str, shop: &str) -> String {
    let mut body = server.apply_body(order_id);
    body["country"] = json!("000");
    body["subject"] = json!("2 × coffee beans <dark roast>");
    body["callBackUrl"] = json!(format!("{shop}/paid"));
    body["callBackFailUrl"] = json!(format!("{shop}/failed"));
    let (status, reply) = server.post("/eur/collect/apply", &body).await;
    assert_eq!(status, 200, "{reply}");
    reply["data"]["payUrl"].as_str().unwrap().to_string()
}

async fn status_of(server: &Server, order_id: &str) -> i64 {
    let (_, reply) = server
        .post(
            "/eur/collect/query",
            &json!({"appId": server.eur.0, "orderId": order_id}),
        )
        .await;
    reply["data"]["status"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payer_pays_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    // The shop runs on loopback, so this gateway allows private redirect targets.
    let server = Server::start_allowing_private_targets(TestDatabase::sqlite().await).await;
    let shop = shop().await;
    let browser = Browser::start().await;

    // With the mouse.
    let pay_url = cashier_order(&server, "B-1", &shop).await;
    browser.open(&pay_url).await;
    browser.click(r#"button[value="IDEAL_EUR"]"#).await;
    browser.screenshot("cashier-methods-clicked.png").await;
    browser.click(r#"button[value="paid"]"#).await;
    browser.wait_for_url(&format!("{shop}/paid")).await;
    assert_eq!(status_of(&server, "B-1").await, 2);

    // With the keyboard alone: Tab to the first method, Enter; Tab past the amount to "Paid", Enter.
    let pay_url = cashier_order(&server, "B-2", &shop).await;
    browser.open(&pay_url).await;
    browser.screenshot("cashier-methods.png").await;
    browser.press(&["\u{E004}", "\u{E007}"]).await;
    browser.click("#amount").await; // waits for the method page; focus is then on the amount
    browser.screenshot("cashier-sandbox-bank.png").await;
    browser.press(&["\u{E004}", "\u{E007}"]).await;
    browser.wait_for_url(&format!("{shop}/paid")).await;
    assert_eq!(status_of(&server, "B-2").await, 2);
    let stored = server
        .store
        .order_by_merchant_order_id(server.eur, "B-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.chosen_method.map(|m| m.code),
        Some("EPS_EUR"),
        "Tab reached the first method"
    );
    browser.quit().await;
}

/// Swagger UI at `/docs` runs in a real browser from kassa's own files (no CDN can be reached
/// here, so a page that needed one would stay empty) and lists every documented operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_every_operation_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let server = Server::start(TestDatabase::sqlite().await).await;
    let browser = Browser::start().await;
    browser.open(&format!("{}/docs/", server.base)).await;
    let documented = kassa_server::openapi::document()
        .paths
        .paths
        .values()
        .map(|item| {
            let item = serde_json::to_value(item).unwrap();
            ["get", "post"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum::<usize>();
    assert_eq!(browser.count(".opblock", documented).await, documented);
    browser.screenshot("swagger-ui.png").await;
    browser.quit().await;
}
