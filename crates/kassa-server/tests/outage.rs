//! A database that goes away and comes back (PostgreSQL behind a TCP relay this test stops and
//! restarts): `/healthz` says so within a second, merchants get the dialect's 503 with
//! `Retry-After` at once instead of waiting out the pool, and everything recovers by itself.

mod common;

use common::*;
use kassa_store::testing::TestDatabase;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Relays loopback connections on one port to PostgreSQL while it runs; stopping it cuts every
/// relayed connection.
struct Relay {
    port: u16,
    accept: JoinHandle<()>,
    links: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(port: u16, upstream: String) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                kept.lock().unwrap().push(link);
            }
        });
        Relay {
            port,
            accept,
            links,
        }
    }

    fn stop(self) -> u16 {
        self.accept.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
        self.port
    }
}

async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_at_once_and_recovered_from() {
    let Some(mut db) = TestDatabase::postgres("a_database_outage").await else {
        return;
    };
    let upstream = db
        .url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let relay = Relay::start(0, upstream.clone()).await;
    db.url = db
        .url
        .replacen(&upstream, &format!("127.0.0.1:{}", relay.port), 1);
    let server = Server::start(db).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let prober = tokio::spawn(kassa_server::health::run(
        server.gateway.clone(),
        200,
        stopped,
    ));
    let query = json!({"appId": server.eur.0, "orderId": "none"});
    assert_eq!(server.post("/eur/collect/query", &query).await.0, 404);

    let port = relay.stop();
    let health = || async {
        let started = Instant::now();
        let response = server
            .client
            .get(format!("{}/healthz", server.base))
            .send()
            .await;
        (response.unwrap().status().as_u16(), started.elapsed())
    };
    until(
        "healthz reports the outage",
        Duration::from_secs(5),
        async || {
            let (status, took) = health().await;
            assert!(took < Duration::from_millis(1_500), "healthz took {took:?}");
            status == 503
        },
    )
    .await;
    let started = Instant::now();
    let (status, reply) = server.post("/eur/collect/query", &query).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (503, Some("90000002")),
        "{reply}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let relay = Relay::start(port, upstream).await;
    until(
        "the database is used again",
        Duration::from_secs(20),
        async || server.post("/eur/collect/query", &query).await.0 == 404,
    )
    .await;
    assert_eq!(health().await.0, 200);
    stop.send(true).unwrap();
    prober.await.unwrap();
    relay.stop();
}

/// `/readyz` is ready on a current schema, and not when the database lacks a migration this
/// build expects (a node deployed ahead of its database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_needs_a_current_schema() {
    let server = Server::start(TestDatabase::sqlite().await).await;
    let ready = || async {
        let response = server
            .client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(ready().await, (200, "ready\n".to_string()));
    let pool = sqlx::AnyPool::connect(&server.database_url())
        .await
        .unwrap();
    sqlx::raw_sql(
        "DELETE FROM kassa_migrations WHERE version = (SELECT MAX(version) FROM kassa_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(ready().await, (503, "migrations pending\n".to_string()));
    server.gateway.database.start_draining();
    assert_eq!(ready().await.0, 503);
}
