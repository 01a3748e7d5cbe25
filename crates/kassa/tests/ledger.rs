//! The books with several nodes: two `kassa serve` processes on one database, each paying the
//! same orders at the same moment (two `kassa sandbox pay` at once per order) and each sweeping
//! settlements. Every success is booked once, every settlement posted once, and the books agree
//! with the orders — on SQLite and on PostgreSQL. A write under kassa's feet is found by the
//! nodes' periodic checks and by `kassa ledger check`.

mod common;

use common::{
    assert_books_hold, create_shop, eur_order_body, json, kassa, post_signed, run_ok, serve,
    todays_settlement_report,
};
use kassa_store::testing::TestDatabase;
use serde_json::json;
use std::time::Duration;

/// Every wait of this test ends by itself.
const WAIT: Duration = Duration::from_secs(30);
const ORDERS: usize = 12;

async fn two_nodes_pay_once_and_settle_once(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.as_str();
    let (app_id, key) = create_shop(url, "EUR", dir.path());
    let app = app_id.to_string();
    run_ok(&mut kassa(&[
        "app",
        "set-fee",
        &app,
        "--basis-points",
        "150",
        "--fixed",
        "0.30",
        "--database-url",
        url,
    ]));
    run_ok(&mut kassa(&[
        "app",
        "set-settlement",
        &app,
        "--days",
        "0",
        "--database-url",
        url,
    ]));
    let node = |name: &str| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ];
        let sweep = [
            "--expiry-sweep-interval",
            "200ms",
            "--ledger-check-interval",
            "300ms",
        ];
        let sweep = [&sweep[..], &["--database-url", url][..]].concat();
        serve(&[&args[..], &sweep[..]].concat(), &home)
    };
    let nodes = [node("a"), node("b")];
    let client = reqwest::Client::new();
    let mut orders = Vec::new();
    for i in 0..ORDERS {
        let body = eur_order_body(app_id, &format!("N-{i}"), "25.00", None);
        let create = format!("{}/eur/collect/apply", nodes[i % 2].base);
        let reply = post_signed(&client, &create, &key, body).await;
        orders.push(reply["data"]["orderNo"].as_str().unwrap().to_string());
    }
    // Each order paid twice at the same moment: one payment is taken, the other refused.
    for order_no in &orders {
        let pay = || {
            let mut command = kassa(&["sandbox", "pay", order_no, "--outcome", "paid"]);
            command
                .args(["--database-url", url])
                .stdout(std::process::Stdio::null());
            command.stderr(std::process::Stdio::null()).spawn().unwrap()
        };
        let (mut first, mut second) = (pay(), pay());
        let taken = [first.wait().unwrap(), second.wait().unwrap()];
        assert!(taken.iter().any(|s| s.success()), "{order_no} was not paid");
    }
    // Both nodes sweep: everything settles, once.
    let deadline = tokio::time::Instant::now() + WAIT;
    let net_each = 2_500 - (2_500 * 15 + 500) / 1_000 - 30; // 25.00 less 1.5 % and 0.30
    let expected = kassa_core::AmountMinor(net_each * ORDERS as i64).to_decimal_string();
    loop {
        let balance = json(&run_ok(&mut kassa(&[
            "balance",
            &app,
            "--database-url",
            url,
        ])));
        let owed = &balance["balances"][0];
        if owed["pending"] == "0.00" && owed["available"] == expected.as_str() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {balance}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_books_hold(url);
    let report = todays_settlement_report(url, app_id);
    let journals = report["journals"].as_array().unwrap();
    let kinds = |kind: &str| journals.iter().filter(|j| j["kind"] == kind).count();
    assert_eq!(
        (kinds("success"), kinds("settlement")),
        (ORDERS, ORDERS),
        "{report}"
    );
    assert_eq!(report["total"]["orders"], ORDERS);
    // A settlement after the last would be a second: none comes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = todays_settlement_report(url, app_id);
    assert_eq!(again["journals"].as_array().unwrap().len(), 2 * ORDERS);
    let breaks = |text: &str| {
        let line = text.lines().find(|l| l.starts_with("kassa_ledger_breaks "));
        line.map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    let metrics = |node: usize| {
        let url = format!("{}/metrics", nodes[node].admin);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    assert_eq!(breaks(&metrics(0).await).as_deref(), Some("0"));

    // A hand that writes under kassa: an order's success undone in the database. The nodes'
    // checks find the stray journal; so does the command, which fails.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("UPDATE orders SET status = 'failed' WHERE order_no = $1")
        .bind(&orders[0])
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while breaks(&metrics(1).await).as_deref() != Some("2") {
        // The stray success journal, and the app whose books now exceed its orders.
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            metrics(1).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let check = kassa(&["ledger", "check", "--database-url", url])
        .output()
        .unwrap();
    assert!(!check.status.success());
    let found = json(&String::from_utf8(check.stdout).unwrap());
    let stray = format!("success:{}", orders[0]);
    assert_eq!(found["journalsWithoutSuccess"], json!([stray]), "{found}");
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    two_nodes_pay_once_and_settle_once,
);
