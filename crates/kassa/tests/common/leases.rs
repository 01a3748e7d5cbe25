//! Which node holds which callbacks, read from the database, for the failure tests: a node that
//! dies or is cut off with callbacks leased must see them delivered by another once the lease
//! lapses. Each node's dispatcher names itself in its log (JSON lines, `KASSA_LOG_FORMAT=json`).

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The id the node logging to `log` leases callbacks under: its latest dispatcher start (a
/// restarted node starts under a new id).
pub fn node_id(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let started = text
            .lines()
            .filter(|l| l.contains("callback dispatcher started"))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .next_back();
        if let Some(node) = started.as_ref().and_then(|l| l["fields"]["node"].as_str()) {
            return node.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} shows no dispatcher start",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_millis() as i64
}

/// The callbacks `node` has leased now and not yet recorded as delivered.
pub async fn held_by(database: &sqlx::PgPool, node: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT callback_id FROM callbacks WHERE lease_owner = $1 AND lease_until_ms > $2 \
         AND state = 'pending'",
    )
    .bind(node)
    .bind(now_ms())
    .fetch_all(database)
    .await
    .unwrap()
}

/// The node whose acknowledged attempt delivered callback `id`, waiting up to 60 s for it.
pub async fn delivered_by(database: &sqlx::PgPool, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: Option<String> = sqlx::query_scalar(
            "SELECT t.node FROM callbacks c JOIN callback_attempts t \
             ON t.callback_id = c.callback_id AND t.acknowledged = 1 \
             WHERE c.callback_id = $1 AND c.state = 'delivered' ORDER BY t.attempt_no DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(database)
        .await
        .unwrap();
        if let Some(node) = delivered {
            return node;
        }
        if Instant::now() > deadline {
            let attempts: Vec<String> = sqlx::query_scalar(
                "SELECT attempt_no || ' ' || node || ' ' || COALESCE(http_status::text, error) \
                 FROM callback_attempts WHERE callback_id = $1 ORDER BY attempt_no",
            )
            .bind(id)
            .fetch_all(database)
            .await
            .unwrap();
            panic!("callback {id}, held by the cut-off node, not delivered in 60 s: {attempts:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether a node other than `node` has an acknowledged attempt of callback `id` recorded: it
/// took the callback over. (Its latest attempt may still be `node`'s: a node cut off records
/// what it sent meanwhile once it is back, after the other's records.)
pub async fn taken_over_from(database: &sqlx::PgPool, id: &str, node: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM callback_attempts WHERE callback_id = $1 \
         AND acknowledged = 1 AND node <> $2)",
    )
    .bind(id)
    .bind(node)
    .fetch_one(database)
    .await
    .unwrap()
}
