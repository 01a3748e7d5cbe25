//! The PIX page follows its order across a restart of the server: Chromium holds the page open
//! while kassa is stopped and started again on the same address, the order is paid meanwhile,
//! and the page shows the result by itself (its status polling backs off while the server is
//! away and comes back).
//!
//! Without chromium and chromedriver the test is skipped with a printed reason; under
//! `CI=true` a missing browser fails it.

mod common;
#[path = "../../kassa-server/tests/support/webdriver.rs"]
mod webdriver;

use common::{Random, crash::fixed_listen, kassa, run_ok, serve};
use webdriver::{Browser, browser_available};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pix_page_follows_its_order_across_a_restart() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/kassa.db", dir.path().display());
    let listen = fixed_listen(&mut Random(std::process::id() as u64));
    let args = [
        "serve",
        "--demo",
        "--listen",
        &listen,
        "--database-url",
        &database_url,
        "--data-dir",
        "data",
    ];
    let first = serve(&args, dir.path());
    let reply = common::demo_pix_order(&first.base, dir.path(), "restart-1", "12.34").await;
    let reply: serde_json::Value = reply.json().await.unwrap();
    let url = reply["data"]["url"].as_str().unwrap().to_string();
    let order_no = reply["data"]["orderNo"].as_str().unwrap().to_string();

    let browser = Browser::start_speaking("pt-BR").await;
    browser.open(&url).await;
    let text = || async {
        let text = browser.execute("return document.body.innerText;").await;
        text.as_str().unwrap_or_default().to_string()
    };
    assert!(text().await.contains("Pagar com Pix"));
    drop(first);
    // Away long enough for the page to fail a poll or two.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let second = serve(&args, dir.path());
    run_ok(&mut kassa(&[
        "trigger",
        &order_no,
        "--outcome",
        "paid",
        "--database-url",
        &database_url,
    ]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let shown = text().await;
        if shown.contains("Pago") && !shown.contains("Pagar com Pix") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page did not follow: {shown}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    browser.screenshot("payer-pix-after-restart.png").await;
    browser.quit().await;
    drop(second);
}
