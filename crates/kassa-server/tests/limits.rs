//! Limits under load: past `max_in_flight` requests kassa sheds load with 503 and `Retry-After`
//! in the dialect's envelope, and serves again as soon as a slot frees.

mod common;

use common::*;
use kassa_store::testing::TestDatabase;
use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_retry_after() {
    let server =
        Server::start_configured(TestDatabase::sqlite().await, |c| c.max_in_flight = 1).await;
    // A slow client: headers sent, body withheld; it holds the only slot.
    let address = server.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /eur/collect/apply HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
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

    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = server.post_raw("/eur/collect/query", "{}").await;
    assert_eq!(status, 400, "served again once the slot is free");
}
