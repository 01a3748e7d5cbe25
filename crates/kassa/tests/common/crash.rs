//! What the crash harnesses share: the replayable seed, a fixed listening address for servers
//! that are killed and restarted, the kill loop, reading back every order, and the books check.

use super::{Random, Served, serve};
use kassa_core::{AppId, Order};
use kassa_store::SqlStore;
use kassa_store::prelude::*;
use std::path::Path;
use std::time::Duration;

/// The seed of a run's random choices: `KASSA_CRASH_SEED` to replay one, else the clock.
pub fn seed(harness: &str) -> u64 {
    let seed = std::env::var("KASSA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| kassa_server::now_ms() as u64 | 1);
    println!("{harness} seed {seed} (KASSA_CRASH_SEED={seed} to replay its choices)");
    seed
}

/// A fixed loopback address, so clients find each restarted server where the last one was;
/// below the ephemeral range, so no outgoing connection takes it while the server is down.
pub fn fixed_listen(random: &mut Random) -> String {
    let port = (0..1_000)
        .map(|_| 20_000 + random.below(12_000) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range");
    format!("127.0.0.1:{port}")
}

/// Kills the server with SIGKILL `kills` times, each after `up_ms` plus up to `jitter_ms`, and
/// restarts it after up to `down_ms`; the last one started.
pub async fn kill_and_restart(
    mut server: Served,
    (kills, random): (usize, &mut Random),
    (up_ms, jitter_ms, down_ms): (u64, u64, u64),
    (args, dir): (&[&str], &Path),
) -> Served {
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(up_ms + random.below(jitter_ms))).await;
        drop(server); // SIGKILL, then reap
        tokio::time::sleep(Duration::from_millis(random.below(down_ms))).await;
        server = tokio::task::block_in_place(|| serve(args, dir));
    }
    server
}

/// Every order of an app, page by page.
pub async fn all_orders(store: &SqlStore, app_id: i64) -> Vec<Order> {
    let mut orders: Vec<Order> = Vec::new();
    loop {
        let after = orders.last().map(|o| o.order_no.clone());
        let page = store
            .orders_of_app(AppId(app_id), after.as_ref(), 500)
            .await
            .unwrap();
        if page.is_empty() {
            return orders;
        }
        orders.extend(page);
    }
}
