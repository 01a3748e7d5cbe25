//! kassa as a gateway in front of upstream PSPs: the gateway under test (SQLite or PostgreSQL)
//! routes merchants' orders to other `kassa serve` processes — each its own database — over real
//! HTTP, exactly as it would to a PSP that speaks the seeds' APIs. The payer pays at the
//! upstream's sandbox; the upstream's callback (or kassa's reconciliation) settles kassa's order;
//! kassa's callback reaches the merchant.
//!
//! Faults are real too: a closed port, and a small TCP relay in front of a real upstream that
//! holds back its answers (the upstream acts; kassa hears nothing in time) or answers 502.

mod common;

use common::upstreams::{Upstream, add_channel, upstream};
use common::{Served, create_shop, json, kassa, run_ok, serve};
use kassa_signature::{SigningKey, parse_signed_object, sign_map};
use kassa_store::testing::TestDatabase;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Every wait of these tests ends by itself.
const WAIT: Duration = Duration::from_secs(30);

/// The gateway under test and the merchant that uses it.
struct Gateway {
    db: String,
    dir: PathBuf,
    eur_app: i64,
    eur_key: SigningKey,
    brl_app: i64,
    brl_key: SigningKey,
    client: reqwest::Client,
}

impl Gateway {
    fn new(db: &TestDatabase, dir: &Path) -> Gateway {
        let (eur_app, eur_key) = create_shop(&db.url, "EUR", &dir.join("eur"));
        let (brl_app, brl_key) = create_shop(&db.url, "BRL", &dir.join("brl"));
        Gateway {
            db: db.url.clone(),
            dir: dir.to_path_buf(),
            eur_app,
            eur_key,
            brl_app,
            brl_key,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Adds a channel to `base_url` (the upstream's, or a relay's in front of it).
    fn add_channel(&self, id: &str, kind: &str, base_url: &str, up: &Upstream, extra: &[&str]) {
        add_channel(&self.db, (id, kind, base_url), up, extra);
    }

    fn serve(&self, extra: &[&str]) -> Served {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &self.db,
            "--allow-private-callbacks",
            "--callback-retry-interval",
            "1s",
            "--reconcile-after",
            "1s",
            "--reconcile-max-interval",
            "2s",
            "--expiry-sweep-interval",
            "300ms",
            "--channel-refresh-interval",
            "300ms",
            "--circuit-failures",
            "2",
            "--circuit-cool-down",
            "3s",
        ];
        args.extend_from_slice(extra);
        serve(&args, &self.dir)
    }

    /// A `collect` order for 25.00 EUR paid by iDEAL: its number and page.
    async fn collect_order(
        &self,
        served: &Served,
        order_id: &str,
        notify_url: &str,
    ) -> (String, String) {
        let mut body = json!({
            "appId": self.eur_app, "orderId": order_id, "name": "Jane Doe",
            "phone": "+31612345678", "email": "jane@example.com", "amount": "25.00",
            "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
            "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
            "notifyUrl": notify_url, "partnerUserId": "u1",
        });
        sign_map(&self.eur_key, body.as_object_mut().unwrap());
        let reply = self
            .post(served, "/eur/collect/apply", body.to_string(), &[])
            .await;
        assert_eq!(reply["status"], "1", "{reply}");
        let data = &reply["data"];
        (
            data["orderNo"].as_str().unwrap().into(),
            data["payUrl"].as_str().unwrap().into(),
        )
    }

    /// A `pix` order for 12.34 BRL: the whole reply.
    async fn pix_order(&self, served: &Served, order_id: &str, notify_url: &str) -> Value {
        let body = json!({
            "userOrderNumber": order_id, "submitAmount": "12.34", "paymentType": "PIX",
            "currencyType": "BRL", "notifyUrl": notify_url,
        })
        .to_string();
        let canonical = parse_signed_object(&body).unwrap().canonical;
        let headers = [
            ("x-app-id", self.brl_app.to_string()),
            ("x-sign", self.brl_key.sign_base64(canonical.as_bytes())),
        ];
        self.post(served, "/accountProxyCollect/initCollect", body, &headers)
            .await
    }

    async fn post(
        &self,
        served: &Served,
        path: &str,
        body: String,
        headers: &[(&str, String)],
    ) -> Value {
        let mut request = (self.client.post(format!("{}{path}", served.base)))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// The payer opens kassa's page (which starts the payment); where it sends them.
    async fn open_page(&self, served: &Served, pay_url: &str) -> reqwest::Response {
        let path = &pay_url[pay_url.find("/pay/").unwrap()..];
        // A payer who reads English (the pages' language is tested elsewhere).
        self.client
            .get(format!("{}{path}", served.base))
            .header("accept-language", "en")
            .send()
            .await
            .unwrap()
    }

    fn show(&self, order_no: &str) -> Value {
        json(&run_ok(&mut kassa(&[
            "order",
            "show",
            order_no,
            "--database-url",
            &self.db,
        ])))
    }

    /// Waits until the order's status is `status`; the order then.
    async fn until_status(&self, order_no: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let order = self.show(order_no);
            if order["status"] == status {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order never became {status}: {order}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A merchant's endpoint: keeps each callback's body, answers `success`.
async fn merchant_endpoint() -> (String, UnboundedReceiver<String>) {
    endpoint("success", 200).await
}

/// An HTTP endpoint that keeps every body posted to it and answers `status` with `answer`.
async fn endpoint(answer: &'static str, status: u16) -> (String, UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: String| async move {
        let _ = tx.send(body);
        (axum::http::StatusCode::from_u16(status).unwrap(), answer)
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next(rx: &mut UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a callback arrives")
        .unwrap()
}

fn closed_port_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", closed.local_addr().unwrap())
}

/// What the relay does with the upstream's answers.
const PASS: u8 = 0;
const HOLD: u8 = 1;
const BAD_GATEWAY: u8 = 2;
const REDIRECT: u8 = 3;

/// A TCP relay in front of a real upstream: passes traffic, holds the upstream's answers back
/// for 3 s (the request reaches the upstream, which acts on it), or answers 502 itself. A change
/// of mode closes the connections open (kassa's pooled ones included), so it applies at once.
async fn relay(target: &str) -> (String, tokio::sync::watch::Sender<u8>) {
    let (mode, _) = tokio::sync::watch::channel(PASS);
    let target = target.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let modes = mode.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let mut changed = modes.subscribe();
            let current = *changed.borrow_and_update();
            let target = target.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = relay_one(client, &target, current) => {}
                    _ = changed.changed() => {}
                }
            });
        }
    });
    (url, mode)
}

async fn relay_one(mut client: tokio::net::TcpStream, target: &str, mode: u8) {
    use tokio::io::AsyncWriteExt;
    if mode == BAD_GATEWAY || mode == REDIRECT {
        // The whole request first (until the client pauses), so the answer is read as one.
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 64 * 1024];
        let pause = Duration::from_millis(100);
        while let Ok(Ok(read)) = tokio::time::timeout(pause, client.read(&mut buffer)).await {
            if read == 0 {
                break;
            }
        }
        let answer = if mode == REDIRECT {
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        } else {
            "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        };
        let _ = client.write_all(answer.as_bytes()).await;
        return;
    }
    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upward = async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    };
    let downward = async move {
        if mode == HOLD {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(upward, downward);
}

fn attempts(order: &Value) -> Vec<(String, String)> {
    order["routing"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["channelId"].as_str().unwrap().into(),
                a["outcome"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn upstream_order_no(order: &Value) -> String {
    order["routing"]["upstream"]["upstreamOrderNo"]
        .as_str()
        .unwrap_or_else(|| panic!("no upstream order: {order}"))
        .to_string()
}

/// A `collect` order goes to the first channel that takes it (the first is down), the payer is
/// sent to the upstream's page and pays there, the upstream's callback settles kassa's order and
/// kassa's callback reaches the merchant; a PIX order is opened upstream at creation, with the
/// upstream's BR Code in the merchant's reply. A channel disabled mid-flight still settles its
/// orders.
async fn orders_are_paid_through_upstreams(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let eur_psp = upstream(dir.path(), "eur-psp", "EUR");
    let brl_psp = upstream(dir.path(), "brl-psp", "BRL");
    let gateway = Gateway::new(&db, dir.path());
    let down = closed_port_url();
    gateway.add_channel(
        "eur-down",
        "collect-upstream",
        &down,
        &eur_psp,
        &["--priority", "1"],
    );
    gateway.add_channel(
        "eur-a",
        "collect-upstream",
        &eur_psp.served.base,
        &eur_psp,
        &["--priority", "2"],
    );
    gateway.add_channel(
        "brl-down",
        "pix-upstream",
        &down,
        &brl_psp,
        &["--priority", "1"],
    );
    gateway.add_channel(
        "brl-a",
        "pix-upstream",
        &brl_psp.served.base,
        &brl_psp,
        &["--priority", "2"],
    );
    let served = gateway.serve(&[]);
    let (notify_url, mut merchant) = merchant_endpoint().await;

    let (order_no, pay_url) = gateway.collect_order(&served, "C-1", &notify_url).await;
    let page = gateway.open_page(&served, &pay_url).await;
    assert_eq!(
        page.status(),
        303,
        "the payer is sent on to the upstream's page"
    );
    let location = page.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&eur_psp.served.base), "{location}");
    let order = gateway.show(&order_no);
    assert_eq!(
        attempts(&order),
        [
            ("eur-down".into(), "not_connected".into()),
            ("eur-a".into(), "created".into())
        ]
    );
    assert_eq!(order["routing"]["rail"], "collect-upstream");
    assert_eq!(order["routing"]["channel"], "eur-a");
    // Disabled while the payer pays: no new orders, but this one still settles.
    run_ok(&mut kassa(&[
        "channel",
        "disable",
        "eur-a",
        "--database-url",
        &gateway.db,
    ]));
    let paid = eur_psp.pay(&upstream_order_no(&order), None);
    assert_eq!(paid["status"], "succeeded");
    let settled = gateway.until_status(&order_no, "succeeded").await;
    assert_eq!(settled["actualAmount"], "25.00");
    let callback = json(&next(&mut merchant).await);
    assert_eq!(callback["orderNo"], order_no.as_str());
    assert_eq!(callback["status"], 2, "{callback}");
    let (again_no, again_url) = gateway.collect_order(&served, "C-2", &notify_url).await;
    tokio::time::sleep(Duration::from_millis(800)).await; // the book reads the change
    let _ = gateway.open_page(&served, &again_url).await;
    let refused = gateway.until_status(&again_no, "failed").await;
    assert!(
        refused["errorMsg"]
            .as_str()
            .unwrap()
            .contains("no payment channel"),
        "{refused}"
    );
    let callback = json(&next(&mut merchant).await);
    assert_eq!(callback["orderNo"], again_no.as_str());
    assert_eq!(callback["status"], 3, "{callback}");

    let reply = gateway.pix_order(&served, "P-1", &notify_url).await;
    assert_eq!(reply["code"], 0, "{reply}");
    let data = &reply["data"];
    let qr = data["qrCode"].as_str().unwrap();
    let decoded = kassa_core::brcode::decode(qr).unwrap();
    assert!(
        format!("{decoded:?}").contains("Upstream Shop"),
        "the upstream's BR Code: {decoded:?}"
    );
    let pix_no = data["orderNo"].as_str().unwrap();
    let order = gateway.show(pix_no);
    assert_eq!(
        attempts(&order),
        [
            ("brl-down".into(), "not_connected".into()),
            ("brl-a".into(), "created".into())
        ]
    );
    brl_psp.pay(&upstream_order_no(&order), None);
    let settled = gateway.until_status(pix_no, "succeeded").await;
    assert_eq!(settled["actualAmount"], "12.34");
    let callback = json(&next(&mut merchant).await);
    assert_eq!(callback["orderNo"], pix_no);
}

/// The upstream's callbacks never arrive (kassa's public address answers 503): reconciliation
/// finds each outcome by query — a short payment is an exception. Callbacks that are forged,
/// about unknown orders, for another channel, or repeated change nothing.
async fn lost_callbacks_are_reconciled_and_forged_ones_refused(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let psp = upstream(dir.path(), "psp", "EUR");
    let gateway = Gateway::new(&db, dir.path());
    gateway.add_channel(
        "psp-a",
        "collect-upstream",
        &psp.served.base,
        &psp,
        &["--priority", "1"],
    );
    gateway.add_channel(
        "psp-b",
        "collect-upstream",
        &psp.served.base,
        &psp,
        &["--priority", "2"],
    );
    let (lost_url, mut lost) = endpoint("busy", 503).await;
    let served = gateway.serve(&["--public-url", &lost_url]);
    let (notify_url, _merchant) = merchant_endpoint().await;

    let (short_no, short_url) = gateway.collect_order(&served, "L-1", &notify_url).await;
    let (full_no, full_url) = gateway.collect_order(&served, "L-2", &notify_url).await;
    for url in [&short_url, &full_url] {
        assert_eq!(gateway.open_page(&served, url).await.status(), 303);
    }
    psp.pay(&upstream_order_no(&gateway.show(&short_no)), Some("24.00"));
    psp.pay(&upstream_order_no(&gateway.show(&full_no)), None);
    let genuine = next(&mut lost).await;
    let exception = gateway.until_status(&short_no, "exception").await;
    assert!(
        exception["routing"]["upstream"]["checks"]
            .as_i64()
            .is_some()
    );
    gateway.until_status(&full_no, "succeeded").await;

    let post = |channel: &str, body: String| {
        let url = format!("{}/rails/{channel}/callback", served.base);
        let client = gateway.client.clone();
        async move {
            let response = client.post(url).body(body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // Repeated: acknowledged, nothing changes.
    let genuine_no = json(&genuine)["orderId"]
        .as_str()
        .unwrap()
        .trim_start_matches("kassa-")
        .to_string();
    let before = gateway.show(&genuine_no);
    assert_eq!(
        post("psp-a", genuine.clone()).await,
        (200, "success".into())
    );
    // For another channel, forged, unknown channel, not JSON: refused.
    assert_eq!(post("psp-b", genuine.clone()).await.0, 404);
    let forged = genuine.replace("\"status\":2", "\"status\":3");
    let forged = if forged == genuine {
        genuine.replace("24.00", "25.00")
    } else {
        forged
    };
    assert_eq!(post("psp-a", forged).await.0, 401);
    let mut impostor = json(&genuine);
    impostor.as_object_mut().unwrap().remove("sign");
    sign_map(
        &SigningKey::generate().unwrap(),
        impostor.as_object_mut().unwrap(),
    );
    assert_eq!(post("psp-a", impostor.to_string()).await.0, 401);
    assert_eq!(post("nobody", genuine.clone()).await.0, 404);
    assert_eq!(post("psp-a", "{not json".into()).await.0, 400);
    let after = gateway.show(&genuine_no);
    assert_eq!(
        (&before["status"], &before["actualAmount"]),
        (&after["status"], &after["actualAmount"])
    );
}

/// The upstream takes the create but its answers come too late (a relay holds them back): the
/// order is not sent to the next channel — the upstream may hold it — and reconciliation finds
/// it there; one upstream order, none at the second channel. A channel answering 502 has its
/// circuit opened after two failures (routing passes it by) and closed again after the cool-down.
async fn unknown_outcomes_are_reconciled_and_circuits_open_and_close(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let slow = upstream(dir.path(), "slow", "EUR");
    let spare = upstream(dir.path(), "spare", "EUR");
    let (relay_url, mode) = relay(&slow.served.base).await;
    let gateway = Gateway::new(&db, dir.path());
    gateway.add_channel(
        "slow",
        "collect-upstream",
        &relay_url,
        &slow,
        &["--priority", "1"],
    );
    gateway.add_channel(
        "spare",
        "collect-upstream",
        &spare.served.base,
        &spare,
        &["--priority", "2"],
    );
    let served = gateway.serve(&[]);
    let (notify_url, mut merchant) = merchant_endpoint().await;

    mode.send_replace(HOLD);
    let (order_no, pay_url) = gateway.collect_order(&served, "U-1", &notify_url).await;
    let page = gateway.open_page(&served, &pay_url).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Confirming your payment")
    );
    let order = gateway.show(&order_no);
    assert_eq!(attempts(&order), [("slow".into(), "unknown".into())]);
    assert_eq!(spare.order_count().await, 0, "no second live order");
    mode.send_replace(PASS);
    let deadline = tokio::time::Instant::now() + WAIT;
    let found = loop {
        let order = gateway.show(&order_no);
        if order["routing"]["upstream"]["upstreamOrderNo"].is_string() {
            break order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reconciled: {order}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(slow.order_count().await, 1);
    slow.pay(&upstream_order_no(&found), None);
    gateway.until_status(&order_no, "succeeded").await;
    assert_eq!(
        json(&next(&mut merchant).await)["orderNo"],
        order_no.as_str()
    );

    // 502s: with the unanswered create above, two failures in a row open the circuit; the
    // next order is not even offered to it.
    mode.send_replace(BAD_GATEWAY);
    for (i, expected) in [(2, true), (3, false)] {
        let (no, url) = gateway
            .collect_order(&served, &format!("U-{i}"), &notify_url)
            .await;
        assert_eq!(gateway.open_page(&served, &url).await.status(), 303);
        let tried: Vec<String> = attempts(&gateway.show(&no))
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(
            tried.contains(&"slow".to_string()),
            expected,
            "order {i}: {tried:?}"
        );
        assert_eq!(tried.last().unwrap(), "spare");
    }
    // After the cool-down one probe goes through, and the circuit closes.
    mode.send_replace(PASS);
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let (no, url) = gateway.collect_order(&served, "U-4", &notify_url).await;
    assert_eq!(gateway.open_page(&served, &url).await.status(), 303);
    assert_eq!(
        attempts(&gateway.show(&no)),
        [("slow".into(), "created".into())]
    );
    // A redirect is never followed: the next channel takes the order.
    mode.send_replace(REDIRECT);
    let (no, url) = gateway.collect_order(&served, "U-5", &notify_url).await;
    assert_eq!(gateway.open_page(&served, &url).await.status(), 303);
    assert_eq!(
        attempts(&gateway.show(&no)),
        [
            ("slow".into(), "unavailable".into()),
            ("spare".into(), "created".into())
        ]
    );
}

/// A PSP without a report endpoint: the upstream behind it, answering 404 in the collect
/// envelope for any `/report` path (as an upstream that is not a kassa does).
async fn without_reports(target: &str) -> String {
    let target = target.to_string();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(axum::routing::post(
        move |uri: axum::http::Uri, body: String| {
            let (client, target) = (client.clone(), target.clone());
            async move {
                if uri.path().ends_with("/report") {
                    let refused = r#"{"status":"0","error":"40400000","msg":"no such endpoint"}"#;
                    return (axum::http::StatusCode::NOT_FOUND, refused.to_string());
                }
                let url = format!("{target}{}", uri.path());
                let sent = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body);
                let answer = sent.send().await.unwrap();
                let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
                (status, answer.text().await.unwrap())
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// `kassa reconcile`: a channel's day against the upstream's report (or, where it has none,
/// order by order): a short payment the upstream's operator settled as paid while kassa's still
/// waits for its own, and a payment kassa never heard of, are differences; agreeing orders are
/// not; kassa's operator settling the order for another amount is one; the metrics show them.
async fn days_are_reconciled_with_the_upstream(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let psp = upstream(dir.path(), "psp", "EUR");
    let gateway = Gateway::new(&db, dir.path());
    gateway.add_channel(
        "psp",
        "collect-upstream",
        &psp.served.base,
        &psp,
        &["--priority", "1"],
    );
    let older = without_reports(&psp.served.base).await;
    gateway.add_channel(
        "older",
        "collect-upstream",
        &older,
        &psp,
        &["--priority", "2"],
    );
    let served = gateway.serve(&[]);
    let (notify_url, _merchant) = merchant_endpoint().await;
    let pay = |gateway: &Gateway, order_no: &str, amount: Option<&str>| {
        psp.pay(&upstream_order_no(&gateway.show(order_no)), amount);
    };
    let mut orders = Vec::new();
    for (id, amount) in [("A", None), ("B", Some("24.00"))] {
        let (order_no, url) = gateway.collect_order(&served, id, &notify_url).await;
        assert_eq!(gateway.open_page(&served, &url).await.status(), 303);
        pay(&gateway, &order_no, amount);
        orders.push(order_no);
    }
    // A payment to kassa's account at the upstream that kassa did not ask for.
    let mut stray = json!({
        "appId": psp.app_id, "orderId": "kassa-9000000000000001", "name": "Jane Doe",
        "phone": "+31612345678", "email": "jane@example.com", "amount": "7.00",
        "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
        "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
        "partnerUserId": "u1",
    });
    let key = SigningKey::parse(&std::fs::read_to_string(&psp.key_path).unwrap()).unwrap();
    sign_map(&key, stray.as_object_mut().unwrap());
    let created = gateway
        .post(&psp.served, "/eur/collect/apply", stray.to_string(), &[])
        .await;
    psp.pay(created["data"]["orderNo"].as_str().unwrap(), None);
    // Later orders through the upstream without reports.
    run_ok(&mut kassa(&[
        "channel",
        "disable",
        "psp",
        "--database-url",
        &gateway.db,
    ]));
    tokio::time::sleep(Duration::from_millis(600)).await; // the channel book's refresh
    for (id, amount) in [("C", None), ("D", Some("20.00"))] {
        let (order_no, url) = gateway.collect_order(&served, id, &notify_url).await;
        assert_eq!(gateway.open_page(&served, &url).await.status(), 303);
        assert_eq!(attempts(&gateway.show(&order_no))[0].0, "older");
        pay(&gateway, &order_no, amount);
        orders.push(order_no);
    }
    gateway.until_status(&orders[0], "succeeded").await;
    gateway.until_status(&orders[1], "exception").await;
    gateway.until_status(&orders[2], "succeeded").await;
    gateway.until_status(&orders[3], "exception").await;
    // A short payment waits for an operator on both sides; the upstream's settles it as paid.
    for order_no in [&orders[1], &orders[3]] {
        let upstream_no = upstream_order_no(&gateway.show(order_no));
        run_ok(&mut kassa(&[
            "order",
            "resolve",
            &upstream_no,
            "--succeed",
            "--database-url",
            &psp.db,
        ]));
    }

    let today = kassa_core::time::format_datetime(kassa_server::now_ms(), 0)[..10].to_string();
    let reconcile = |channel: &str| {
        let mut command = kassa(&["reconcile", "--channel", channel, "--date", &today]);
        let out = command
            .args(["--database-url", &gateway.db])
            .output()
            .unwrap();
        let found = json(&String::from_utf8(out.stdout).unwrap());
        let mut kinds: Vec<(String, String)> = (found["differences"].as_array().unwrap().iter())
            .map(|d| {
                (
                    d["kind"].as_str().unwrap().into(),
                    d["upstreamOrderId"].as_str().unwrap().into(),
                )
            })
            .collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        (
            out.status.success(),
            found["mode"].as_str().unwrap().to_string(),
            kinds,
        )
    };
    let kassa_id = |order_no: &str| format!("kassa-{order_no}");
    let (clean, mode, found) = reconcile("psp");
    assert_eq!((clean, mode.as_str()), (false, "report"));
    assert_eq!(
        found,
        [
            (
                "missing_at_kassa".to_string(),
                "kassa-9000000000000001".to_string()
            ),
            ("status_differs".to_string(), kassa_id(&orders[1])),
        ]
    );
    let (clean, mode, found) = reconcile("older");
    assert_eq!((clean, mode.as_str()), (false, "query"));
    assert_eq!(
        found,
        [("status_differs".to_string(), kassa_id(&orders[3]))]
    );

    // kassa's operator settles the order without looking: as paid in full (kassa heard of no
    // amount), which is not what the upstream received.
    run_ok(&mut kassa(&[
        "order",
        "resolve",
        &orders[1],
        "--succeed",
        "--database-url",
        &gateway.db,
    ]));
    let (_, _, found) = reconcile("psp");
    assert_eq!(
        found,
        [
            ("amount_differs".to_string(), kassa_id(&orders[1])),
            (
                "missing_at_kassa".to_string(),
                "kassa-9000000000000001".to_string()
            ),
        ]
    );
    let metrics = reqwest::get(format!("{}/metrics", served.admin))
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    for line in [
        r#"kassa_reconciliation_differences{channel="psp",kind="missing_at_kassa"} 1"#,
        r#"kassa_reconciliation_differences{channel="psp",kind="amount_differs"} 1"#,
        r#"kassa_reconciliation_differences{channel="older",kind="status_differs"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let mut refused = kassa(&["reconcile", "--channel", "psp", "--date", "2999-01-01"]);
    refused.args(["--database-url", &gateway.db]);
    assert!(!refused.output().unwrap().status.success());
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    orders_are_paid_through_upstreams,
    lost_callbacks_are_reconciled_and_forged_ones_refused,
    unknown_outcomes_are_reconciled_and_circuits_open_and_close,
    days_are_reconciled_with_the_upstream,
);
