//! Callbacks survive a crash: `kassa serve` is killed with SIGKILL while callbacks are due and
//! in flight, more become due while it is down, and after a restart every callback is delivered
//! and acknowledged; the attempt history shows on the command line.

mod common;

use axum::http::HeaderMap;
use common::{create_shop, eur_order_body, json, kassa, post_signed, run_ok, serve};
use kassa_core::{OrderEvent, OrderNo};
use kassa_server::dialect::Dialects;
use kassa_server::keys::load_or_create_platform_key;
use kassa_server::lifecycle::Lifecycle;
use kassa_server::notary::Notary;
use kassa_server::now_ms;

use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{CallbackState, SqlStore};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A merchant's endpoint that acknowledges slowly, so deliveries are in flight at the kill.
async fn slow_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap()
                    .push(headers["webhook-id"].to_str().unwrap().to_string());
                tokio::time::sleep(Duration::from_millis(400)).await;
                "success"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn callbacks_survive_sigkill(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let (app_id, merchant_key) = create_shop(&db.url, "EUR", dir.path());
    let (notify_url, seen) = slow_receiver().await;
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--allow-private-callbacks",
        "--callback-retry-interval",
        "1s",
        "--callback-timeout",
        "1s",
    ];
    let server = serve(&args, dir.path());

    // Orders created over HTTP, as a merchant does.
    let client = reqwest::Client::new();
    let mut order_nos = Vec::new();
    for i in 0..30 {
        let body = eur_order_body(app_id, &format!("K{i}"), "12.50", Some(&notify_url));
        let create = format!("{}/eur/collect/apply", server.base);
        let reply = post_signed(&client, &create, &merchant_key, body).await;
        order_nos.push(OrderNo::parse(reply["data"]["orderNo"].as_str().unwrap()).unwrap());
    }

    // Settle the first 20 while the server runs: two with the sandbox command, the rest
    // through the core directly.
    let store = SqlStore::connect(&db.url).await.unwrap();
    let kek = kassa_server::sealing::Kek::parse(common::TEST_KEK).unwrap();
    let notary = Notary::utc(
        load_or_create_platform_key(&store, &kek, now_ms())
            .await
            .unwrap(),
    );
    let dialects = Dialects::standard();
    let lifecycle = Lifecycle {
        store: &store,
        notary: &notary,
        dialects: &dialects,
    };
    for order_no in &order_nos[..2] {
        let paid = json(&run_ok(&mut kassa(&[
            "sandbox",
            "pay",
            order_no.as_str(),
            "--outcome",
            "paid",
            "--database-url",
            &db.url,
        ])));
        assert_eq!(paid["status"], "succeeded");
    }
    for order_no in &order_nos[2..20] {
        let event = OrderEvent::Failed {
            reason: "declined".into(),
        };
        lifecycle
            .apply_event(order_no, &event, now_ms())
            .await
            .unwrap();
    }

    // Kill it while deliveries are in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "no callback was attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pending_at_kill = store.callback_counts().await.unwrap();
    drop(server); // SIGKILL, then reap
    assert!(
        pending_at_kill
            .iter()
            .any(|(s, n)| *s == CallbackState::Pending && *n > 0),
        "callbacks must still be due at the kill: {pending_at_kill:?}"
    );

    // More become due while it is down.
    for order_no in &order_nos[20..] {
        lifecycle
            .apply_event(order_no, &OrderEvent::Expired, now_ms())
            .await
            .unwrap();
    }

    let _restarted = serve(&args, dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = store.callback_counts().await.unwrap();
        if counts == [(CallbackState::Delivered, 30)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered after the restart: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
    for order_no in &order_nos {
        let history = store.callbacks_of_order(order_no).await.unwrap();
        assert_eq!(history.len(), 1);
        assert!(delivered.contains(&history[0].callback.callback_id));
        assert!(history[0].attempts.last().unwrap().acknowledged);
    }

    // The history on the command line, and a manual resend.
    let listed = json(&run_ok(&mut kassa(&[
        "callback",
        "list",
        "--order",
        order_nos[0].as_str(),
        "--database-url",
        &db.url,
    ])));
    let callback = &listed["callbacks"][0];
    assert_eq!(callback["state"], "delivered");
    assert_eq!(
        callback["history"].as_array().unwrap().last().unwrap()["acknowledged"],
        true
    );
    assert_eq!(callback["history"][0]["httpStatus"], 200);
    let resent = json(&run_ok(&mut kassa(&[
        "callback",
        "resend",
        order_nos[0].as_str(),
        "--database-url",
        &db.url,
    ])));
    assert_eq!(resent["queued"], callback["callbackId"]);
    let unknown = kassa(&[
        "callback",
        "resend",
        "1234567890123456",
        "--database-url",
        &db.url,
    ])
    .output()
    .unwrap();
    assert!(!unknown.status.success());
}

kassa_store::on_both_databases!(kassa_store::testing::database; callbacks_survive_sigkill);
