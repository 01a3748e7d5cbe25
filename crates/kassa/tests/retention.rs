//! Retention end to end, on SQLite and PostgreSQL: a node started with --order-retention and
//! --callback-retention moves paid orders older than the retention to the archive and deletes
//! old delivered callbacks by itself; merchants still query the archived orders as they were,
//! the day's settlement report and `kassa ledger check` still count them, and `kassa prune`
//! does the same at once from the command line (refusing a retention too short).

mod common;

use common::{
    assert_books_hold, callback_receiver, create_shop, eur_order_body, json, kassa, post_signed,
    query_eur_order, run_ok, serve, todays_settlement_report,
};

use kassa_store::testing::TestDatabase;
use serde_json::json;
use std::time::Duration;

/// Every wait of this test ends by itself.
const WAIT: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 86_400_000;

/// Moves an order's creation, and its callbacks' last attempt, `days` into the past: the
/// test's stand-in for the months that retention waits for.
async fn age(url: &str, order_no: &str, days: i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for sql in [
        "UPDATE orders SET created_at_ms = created_at_ms - $1 WHERE order_no = $2",
        "UPDATE callbacks SET next_attempt_at_ms = next_attempt_at_ms - $1 WHERE order_no = $2",
    ] {
        let query = sqlx::query(sql).bind(days * DAY_MS).bind(order_no);
        query.execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn count(url: &str, sql: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    found
}

async fn retention_archives_what_is_old(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.as_str();
    let (app_id, key) = create_shop(url, "EUR", dir.path());
    let (notify_url, inbox) = callback_receiver("success").await;
    let node = serve(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--allow-private-callbacks",
            "--expiry-sweep-interval",
            "200ms",
            "--order-retention",
            "30d",
            "--callback-retention",
            "1d",
            "--database-url",
            url,
        ],
        dir.path(),
    );
    let client = reqwest::Client::new();
    let mut orders = Vec::new();
    for i in 0..3 {
        let body = eur_order_body(app_id, &format!("R-{i}"), "25.00", Some(&notify_url));
        let create = format!("{}/eur/collect/apply", node.base);
        let reply = post_signed(&client, &create, &key, body).await;
        let order_no = reply["data"]["orderNo"].as_str().unwrap().to_string();
        let mut pay = kassa(&["sandbox", "pay", &order_no, "--outcome", "paid"]);
        run_ok(pay.args(["--database-url", url]));
        orders.push(order_no);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while inbox.lock().unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "callbacks not delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two orders a month and more old, the third a week: the node archives the two.
    age(url, &orders[0], 45).await;
    age(url, &orders[1], 31).await;
    age(url, &orders[2], 7).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(url, "SELECT COUNT(*) FROM orders_archive").await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "nothing archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Their callbacks went with them; the third's (delivered a week ago) went by itself.
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(url, "SELECT COUNT(*) FROM callbacks").await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "callbacks kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(url, "SELECT COUNT(*) FROM callback_attempts").await,
        0
    );
    assert_eq!(count(url, "SELECT COUNT(*) FROM orders").await, 1);
    let metrics = reqwest::get(format!("{}/metrics", node.admin))
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(r#"kassa_retention_removed_total{kind="orders_archived"} 2"#),
        "{metrics}"
    );

    // The merchant still finds every order as it was told.
    for (i, order_no) in orders.iter().enumerate() {
        let reply = query_eur_order(&client, &node.base, (app_id, &key), &format!("R-{i}")).await;
        assert_eq!(reply["data"]["orderNo"], order_no.as_str(), "{reply}");
        assert_eq!(reply["data"]["status"], 2, "{reply}");
        assert_eq!(reply["data"]["amount"], "25.00", "{reply}");
    }
    // The books and the day's report count the archived orders.
    assert_books_hold(url);
    let report = todays_settlement_report(url, app_id);
    assert_eq!(report["total"]["orders"], 3, "{report}");
    drop(node);

    // From the command line: a retention too short is refused; the third order, aged past
    // the retention, is archived at once.
    let short = kassa(&["prune", "--order-retention", "29d", "--database-url", url])
        .output()
        .unwrap();
    assert!(!short.status.success());
    let said = String::from_utf8_lossy(&short.stderr);
    assert!(said.contains("from 30 to 3650 days"), "{said}");
    age(url, &orders[2], 30).await;
    let mut prune = kassa(&[
        "prune",
        "--order-retention",
        "30d",
        "--callback-retention",
        "1d",
    ]);
    let pruned = json(&run_ok(prune.args(["--database-url", url])));
    assert_eq!(pruned, json!({"ordersArchived": 1, "callbacksDeleted": 0}));
    assert_eq!(count(url, "SELECT COUNT(*) FROM orders").await, 0);
    assert_books_hold(url);
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    retention_archives_what_is_old,
);
