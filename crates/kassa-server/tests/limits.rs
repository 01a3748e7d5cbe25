//! Limits under load and against slow or greedy clients: past its budgets kassa sheds load with
//! 503 and `Retry-After` in the dialect's envelope (an HTML page for payers); slow uploads hold
//! no request slot and one address gets a bounded share of uploads and connections; slow
//! headers, idle connections and slow bodies are cut off by their timeouts; oversized headers
//! are refused; an app over its rate limit gets 429 with `Retry-After` while other apps go on.

mod common;

use common::*;
use kassa_store::testing::TestDatabase;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a connection from another loopback address than the tests' own 127.0.0.1.
async fn connect_from(source: &str, server: &Server) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket
        .connect(address(server).parse().unwrap())
        .await
        .unwrap()
}

/// Starts an upload that never finishes: headers, then one byte of a 100-byte body.
async fn start_slow_upload(stream: &mut TcpStream, path: &str) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: kassa\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_retry_after() {
    let server = Server::start_configured(TestDatabase::sqlite().await, |c| {
        c.max_uploads_per_address = 1
    })
    .await;
    // A slow client: headers sent, body withheld; it holds its address's only upload.
    let mut slow = TcpStream::connect(address(&server)).await.unwrap();
    start_slow_upload(&mut slow, "/eur/collect/apply").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (path, field, code) in [
        ("/eur/collect/query", "error", Value::from("90000002")),
        ("/proxyCollectQuery/query", "code", Value::from(9002)),
    ] {
        let response = server
            .client
            .post(format!("{}{path}", server.base))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body[field], code, "{path}: {body}");
    }
    // A payer's form is told in a page, not in a merchant API's JSON.
    let page = server
        .client
        .post(format!("{}/pay/{}/outcome", server.base, "t".repeat(43)))
        .form(&[("outcome", "paid")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = server.post_raw("/eur/collect/query", "{}").await;
    assert_eq!(status, 400, "served again once the upload is gone");
}

/// Slow uploads from one address hold no request slot: with a single slot and hundreds of
/// stalled uploads, a merchant's request, the payer's pages and the health check are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_hold_no_request_slot() {
    let server = Server::start_configured(TestDatabase::sqlite().await, |c| {
        c.max_in_flight = 1;
        c.max_uploads_per_address = 8;
    })
    .await;
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut stream = connect_from("127.0.0.2", &server).await;
        let path = if i % 2 == 0 {
            "/eur/collect/apply"
        } else {
            "/accountProxyCollect/initCollect"
        };
        start_slow_upload(&mut stream, path).await;
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let body = json!({"appId": server.eur.0, "orderId": "none"});
    let (status, reply) = server.post("/eur/collect/query", &body).await;
    assert_eq!(status, 404, "a fast, signed request is answered: {reply}");
    let health = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let page = server
        .client
        .get(format!("{}/pay/{}", server.base, "t".repeat(43)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404, "the payer's pages answer");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// One address gets a bounded share of the connections; others are still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_address_leaves_room_for_others() {
    let server = Server::start_full(
        TestDatabase::sqlite().await,
        |_| {},
        jiff::tz::TimeZone::UTC,
        ConnectionLimits {
            max_connections_per_address: 20,
            ..ConnectionLimits::default()
        },
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(connect_from("127.0.0.2", &server).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past its share, the flooding address's connections were closed at once.
    let mut closed = 0;
    for stream in &mut flood[20..] {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, 180, "every connection past the share is closed");
    let started = std::time::Instant::now();
    let (status, _) = server.post_raw("/eur/collect/query", "{}").await;
    assert_eq!(status, 400, "another address is served");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection, with a deadline; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(deadline, stream.read_to_end(&mut received))
        .await
        .expect("the server should have closed the connection")
        .ok();
    String::from_utf8_lossy(&received).into_owned()
}

async fn server_with_header_timeout(header_read_timeout_ms: u64) -> Server {
    Server::start_full(
        TestDatabase::sqlite().await,
        |_| {},
        jiff::tz::TimeZone::UTC,
        ConnectionLimits {
            header_read_timeout_ms,
            ..ConnectionLimits::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let server = server_with_header_timeout(300).await;
    let started = std::time::Instant::now();
    // Half a request head, then nothing.
    let mut slow = TcpStream::connect(address(&server)).await.unwrap();
    slow.write_all(b"POST /eur/collect/query HTTP/1.1\r\nHost: kassa\r\n")
        .await
        .unwrap();
    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(address(&server)).await.unwrap();
    for stream in [&mut slow, &mut silent] {
        let sent = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(!sent.contains("200 OK"), "{sent}");
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // A kept-alive connection is closed once idle for as long.
    let mut kept = TcpStream::connect(address(&server)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: kassa\r\n\r\n")
        .await
        .unwrap();
    let sent = read_until_closed(&mut kept, Duration::from_secs(5)).await;
    assert!(sent.starts_with("HTTP/1.1 200 OK"), "{sent}");
    assert!(sent.ends_with("ok\n"), "{sent}");

    // Clients that send their requests in time are served as before.
    let (status, _) = server.post_raw("/eur/collect/query", "{}").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let server = server_with_header_timeout(5_000).await;
    // Sent whole before reading, as a client that ignores the server does; hyper answers 431
    // once its header buffer is full and closes.
    let mut greedy = TcpStream::connect(address(&server)).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: kassa\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    greedy.write_all(head.as_bytes()).await.unwrap();
    let sent = read_until_closed(&mut greedy, Duration::from_secs(5)).await;
    assert!(sent.starts_with("HTTP/1.1 431"), "{sent}");
    let ok = server
        .client
        .get(format!("{}/healthz", server.base))
        .header("x-padding", "a".repeat(4 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_by_the_request_timeout() {
    let server =
        Server::start_configured(TestDatabase::sqlite().await, |c| c.request_timeout_ms = 300)
            .await;
    for (path, field, code) in [
        ("/eur/collect/apply", "error", Value::from("90000002")),
        (
            "/accountProxyCollect/initCollect",
            "code",
            Value::from(9002),
        ),
    ] {
        let mut slow = TcpStream::connect(address(&server)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: kassa\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{"
        );
        slow.write_all(head.as_bytes()).await.unwrap();
        let sent = read_until_closed(&mut slow, Duration::from_secs(5)).await;
        assert!(sent.starts_with("HTTP/1.1 503"), "{sent}");
        assert!(
            sent.to_ascii_lowercase().contains("retry-after: 1"),
            "{sent}"
        );
        let body: Value = serde_json::from_str(sent.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body[field], code, "{body}");
        assert!(body["msg"].as_str().unwrap().contains("300 ms"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_over_its_rate_limit_gets_429_and_others_go_on() {
    let server =
        Server::start_configured(TestDatabase::sqlite().await, |c| c.app_rate_limit_per_s = 3)
            .await;
    let query = |app: kassa_core::AppId| json!({"appId": app.0, "orderId": "none"});
    for _ in 0..3 {
        let (status, body) = server.post("/eur/collect/query", &query(server.eur)).await;
        assert_eq!(status, 404, "within the budget: {body}");
    }
    let response = server
        .client
        .post(format!("{}/eur/collect/query", server.base))
        .body(signed(&query(server.eur), merchant_key()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (&body["status"], &body["error"]),
        (&json!("0"), &json!("90000003"))
    );

    // Another app of the same merchant has its own budget.
    let (status, _) = server.post("/usd/collect/query", &query(server.usd)).await;
    assert_eq!(status, 404);
    // Budgets count only verified requests: unsigned ones in the app's name are refused for
    // their signature, whatever the budget.
    let (status, body) = server
        .post_json("/eur/collect/query", query(server.eur).to_string())
        .await;
    assert_eq!((status, &body["error"]), (401, &json!("20000001")));

    // The pix dialect answers in its own envelope.
    let pix_body = json!({"userOrderNumber": "none"}).to_string();
    let canonical = kassa_signature::parse_signed_object(&pix_body)
        .unwrap()
        .canonical;
    let x_sign = merchant_key().sign_base64(canonical.as_bytes());
    let mut codes = Vec::new();
    for _ in 0..4 {
        let response = server
            .client
            .post(format!("{}/proxyCollectQuery/query", server.base))
            .header("x-app-id", server.brl.0.to_string())
            .header("x-sign", &x_sign)
            .body(pix_body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        codes.push((status, body["code"].clone()));
    }
    assert_eq!(
        codes,
        [
            (404, json!(4001)),
            (404, json!(4001)),
            (404, json!(4001)),
            (429, json!(9003))
        ]
    );

    // A second later the budget has refilled.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _) = server.post("/eur/collect/query", &query(server.eur)).await;
    assert_eq!(status, 404);
}
