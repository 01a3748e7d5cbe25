//! The payer's path in a real browser: headless Chromium (Debian's package, driven through
//! chromedriver's WebDriver protocol) opens `payUrl` of a cashier-mode order on a phone-sized
//! screen, picks a method, chooses *paid*, and lands on the shop's `callBackUrl`; the order then
//! queries as status 2. A second payer does the same with the keyboard alone. Screenshots of the
//! pages are kept in `target/test-artifacts/`.
//!
//! Without chromium and chromedriver the test is skipped with a printed reason; `.ci/run`
//! installs them, and under `CI=true` a missing browser fails the test instead.

mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use common::*;
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use serde_json::json;
use webdriver::{Browser, browser_available};

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
