//! The merchant developer's tools against a real `kassa serve --demo`: `kassa listen` receives,
//! checks and answers callbacks (success, a chosen failure, or its forward target's answer),
//! and `kassa verify` checks pix replies by their `X-Sign` header, given apart or in a saved
//! HTTP exchange, and a callback's Standard Webhooks signature.

mod common;

use common::{KASSA, TEST_KEK, json, kassa, run_ok};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// A running `kassa listen` and the lines it printed.
struct Listening {
    child: Child,
    lines: Receiver<String>,
    url: String,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Listening {
    fn start(database_url: &str, extra: &[&str]) -> Listening {
        let mut child = Command::new(KASSA)
            .args(["listen", "--port", "0", "--database-url", database_url])
            .args(extra)
            .env("KASSA_KEK", TEST_KEK)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (send, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(30)).unwrap();
        let url = first
            .split("\"notifyUrl\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no notifyUrl in {first:?}"))
            .to_string();
        Listening { child, lines, url }
    }

    /// The printed block of the next callback, up to its `answered` line.
    fn next_block(&self) -> String {
        let mut block = String::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no callback printed within 30 s: {block}"));
            block.push_str(&line);
            block.push('\n');
            if line.trim_start().starts_with("answered") {
                return block;
            }
        }
    }
}

struct Demo {
    served: common::Served,
    dir: tempfile::TempDir,
    database_url: String,
}

fn demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let (served, database_url) = common::serve_demo(dir.path());
    Demo {
        served,
        dir,
        database_url,
    }
}

/// Creates a signed EUR order of app 1001 notifying `notify_url`; its order number.
async fn order(demo: &Demo, order_id: &str, notify_url: &str) -> String {
    let key = std::fs::read_to_string(demo.dir.path().join("data/demo/merchant.key.pem")).unwrap();
    let body = format!(
        r#"{{"appId":1001,"orderId":"{order_id}","name":"Jane Doe","phone":"+31612345678","email":"jane@example.com","amount":"25.00","payType":"CASHIER","inBankCode":"CASHIER","country":"000","callBackUrl":"https://shop.example/paid","callBackFailUrl":"https://shop.example/failed","notifyUrl":"{notify_url}","partnerUserId":"dev"}}"#
    );
    let mut map = json(&body).as_object().unwrap().clone();
    kassa_signature::sign_map(&kassa_signature::SigningKey::parse(&key).unwrap(), &mut map);
    let reply = reqwest::Client::new()
        .post(format!("{}/eur/collect/apply", demo.served.base))
        .json(&map)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    json(&reply)["data"]["orderNo"]
        .as_str()
        .unwrap()
        .to_string()
}

fn pay(demo: &Demo, order_no: &str) {
    run_ok(&mut kassa(&[
        "trigger",
        order_no,
        "--outcome",
        "paid",
        "--database-url",
        &demo.database_url,
    ]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_checks_both_signatures_and_answers() {
    let demo = demo();
    let listening = Listening::start(&demo.database_url, &[]);
    let order_no = order(&demo, "listen-1", &listening.url).await;
    pay(&demo, &order_no);
    let block = listening.next_block();
    assert!(block.contains(&order_no), "{block}");
    assert!(
        block.contains("RSA          valid (sign, platform key)"),
        "{block}"
    );
    assert!(block.contains("webhooks     valid"), "{block}");
    assert!(block.contains("appId        1001"), "{block}");
    assert!(block.contains("answered     HTTP 200 success"), "{block}");
    let delivered = json(&run_ok(&mut kassa(&[
        "callback",
        "list",
        "--order",
        &order_no,
        "--database-url",
        &demo.database_url,
    ])));
    assert_eq!(
        delivered["callbacks"][0]["state"], "delivered",
        "{delivered}"
    );

    // A wrong secret is reported, not hidden.
    let wrong = Listening::start(
        &demo.database_url,
        &["--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    );
    let order_no = order(&demo, "listen-2", &wrong.url).await;
    pay(&demo, &order_no);
    let block = wrong.next_block();
    assert!(block.contains("webhooks     INVALID"), "{block}");
    assert!(block.contains("RSA          valid"), "{block}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_fails_on_purpose_and_forwards() {
    let demo = demo();
    // A chosen failure: kassa records it and retries.
    let failing = Listening::start(&demo.database_url, &["--fail-with", "503"]);
    let order_no = order(&demo, "listen-fail", &failing.url).await;
    pay(&demo, &order_no);
    let first = failing.next_block();
    assert!(first.contains("answered     HTTP 503"), "{first}");
    let retried = failing.next_block();
    assert!(retried.contains(&order_no), "kassa retries: {retried}");
    let list = json(&run_ok(&mut kassa(&[
        "callback",
        "list",
        "--order",
        &order_no,
        "--database-url",
        &demo.database_url,
    ])));
    let attempt = &list["callbacks"][0]["history"][0];
    assert_eq!(attempt["httpStatus"], 503, "{list}");
    drop(failing);

    // Forwarding: the developer's endpoint gets body and headers; its answer is kassa's.
    let (target, inbox) = common::callback_receiver("not success").await;
    let forwarding = Listening::start(
        &demo.database_url,
        &["--forward-to", &target, "--exit-after", "1"],
    );
    let order_no = order(&demo, "listen-forward", &forwarding.url).await;
    pay(&demo, &order_no);
    let block = forwarding.next_block();
    assert!(
        block.contains(&format!("forwarded    {target}: HTTP 200")),
        "{block}"
    );
    assert!(
        block.contains("answered     HTTP 200 not success"),
        "{block}"
    );
    let (headers, body) = inbox.lock().unwrap().first().cloned().expect("forwarded");
    assert!(String::from_utf8_lossy(&body).contains(&order_no));
    assert!(headers.contains_key("webhook-signature") && headers.contains_key("webhook-id"));
    let mut forwarding = forwarding;
    let exited = forwarding.child.wait().unwrap();
    assert!(exited.success(), "--exit-after 1 ends it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_pix_replies_by_their_x_sign() {
    let demo = demo();
    let reply =
        common::demo_pix_order(&demo.served.base, demo.dir.path(), "verify-1", "12.34").await;
    let x_sign = reply.headers()["x-sign"].to_str().unwrap().to_string();
    let text = reply.text().await.unwrap();
    let platform = demo.dir.path().join("data/demo/platform.pub.pem");
    let verify = |args: &[String], input: &str| {
        let mut command = kassa(&["verify", "--key"]);
        command.arg(&platform).args(args);
        common::run_with_stdin(&mut command, input)
    };
    // The header given apart, and a saved exchange (as `curl -si` writes it).
    let given = verify(&[format!("--header=X-Sign: {x_sign}")], &text);
    assert!(
        given.status.success(),
        "{}",
        String::from_utf8_lossy(&given.stderr)
    );
    let exchange = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-sign: {x_sign}\r\n\r\n{text}"
    );
    let saved = verify(&[], &exchange);
    assert_eq!(
        String::from_utf8_lossy(&saved.stdout).trim(),
        "signature valid"
    );
    // Without the header, or with the data changed, it fails and says why.
    let bare = verify(&[], &text);
    assert!(!bare.status.success());
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("X-Sign"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    let tampered = verify(&[], &exchange.replace("verify-1", "verify-2"));
    assert!(!tampered.status.success());
}
