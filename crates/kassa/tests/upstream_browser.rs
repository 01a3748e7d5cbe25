//! A payer in a real browser across two hosts: headless Chromium opens the gateway's page of a
//! cashier order, picks iDEAL (the one method a channel serves), is sent on to the upstream PSP's
//! page — another `kassa serve` — and pays there on its sandbox bank; the upstream sends the payer
//! back to the gateway's page, which waits for the upstream's word and then sends the payer to the
//! shop. The gateway's order is then paid, and the shop heard so.
//!
//! Skipped with a printed reason without chromium and chromedriver (`.ci/run` installs them;
//! under `CI=true` a missing browser fails the test).

mod common;
#[path = "../../kassa-server/tests/support/webdriver.rs"]
mod webdriver;

use common::upstreams::{add_channel, upstream};
use common::{create_shop, json, kassa, run_ok, serve};
use kassa_signature::sign_map;
use webdriver::{Browser, browser_available};

/// The shop the payer returns to, and its notification endpoint.
async fn shop() -> String {
    let app = axum::Router::new()
        .route(
            "/paid",
            axum::routing::get(|| async { axum::response::Html("<h1>Thank you</h1>") }),
        )
        .route("/notify", axum::routing::post(|| async { "success" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payer_pays_at_an_upstream_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let psp = upstream(dir.path(), "psp", "EUR");
    let db = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let (app_id, key) = create_shop(&db, "EUR", &dir.path().join("shop"));
    add_channel(
        &db,
        ("psp", "collect-upstream", &psp.served.base),
        &psp,
        &[],
    );
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db,
        "--allow-private-callbacks",
    ];
    let gateway = serve(&args, dir.path());
    let shop = shop().await;

    let mut body = serde_json::json!({
        "appId": app_id, "orderId": "X-1", "name": "Maria Jansen", "phone": "+31612345678",
        "email": "maria@example.nl", "amount": "25.00", "payType": "CASHIER",
        "inBankCode": "CASHIER", "country": "528", "callBackUrl": format!("{shop}/paid"),
        "callBackFailUrl": format!("{shop}/failed"), "notifyUrl": format!("{shop}/notify"),
        "partnerUserId": "u1",
    });
    sign_map(&key, body.as_object_mut().unwrap());
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/eur/collect/apply", gateway.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pay_url = reply["data"]["payUrl"].as_str().unwrap().to_string();
    let order_no = reply["data"]["orderNo"].as_str().unwrap().to_string();

    let browser = Browser::start().await;
    browser.open(&pay_url).await;
    assert_eq!(
        browser.count("button[name=method]", 1).await,
        1,
        "only the method a channel serves is offered"
    );
    browser.screenshot("gateway-methods.png").await;
    browser.click(r#"button[value="IDEAL_EUR"]"#).await;
    browser.wait_for_url(&psp.served.base).await;
    browser.screenshot("upstream-bank.png").await;
    browser.click(r#"button[value="paid"]"#).await;
    browser.wait_for_url(&format!("{shop}/paid")).await;
    browser.quit().await;

    let shown = json(&run_ok(&mut kassa(&[
        "order",
        "show",
        &order_no,
        "--database-url",
        &db,
    ])));
    assert_eq!(shown["status"], "succeeded", "{shown}");
    assert_eq!(shown["routing"]["channel"], "psp");
}
