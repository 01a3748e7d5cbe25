//! `kassa bench --scenario prune`: retention under load. The database holds `--preload`
//! succeeded orders created 40 to 400 days ago, all past a 30-day order retention. Each round
//! starts a fresh `kassa serve` with `--order-retention 30d` (it archives from its start, paced as
//! in production) and one without, alternating which goes first, and measures create and query
//! on each; the lines of the pruning server carry their ratios to the idle one and the orders it
//! archived per second meanwhile. What is left to archive is reported at the end.

use super::*;

const DAY_MS: i64 = 86_400_000;

/// Which server a run measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Pruning,
    Idle,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Pruning => "pruning",
            Side::Idle => "idle",
        }
    }
}

const COUNT_ARCHIVED: &str = "SELECT COUNT(*) FROM orders_archive";

pub(super) async fn run(args: &BenchArgs, base_url: Option<&str>) -> Result<Vec<Report>, Failure> {
    if args.target.is_some() {
        let why = "--scenario prune starts its own servers; drop --target";
        return Err(Failure(why.into()));
    }
    let (db, store, shop) = super::preloaded_shop(base_url, QUERY_ORDERS).await?;
    let loading = Instant::now();
    let now = now_ms();
    let old = (now - 400 * DAY_MS, now - 40 * DAY_MS);
    store
        .bench_preload_paid_orders(shop.app_id, args.preload, old)
        .await?;
    let preload_s = loading.elapsed().as_secs_f64();
    let floor = crypto_floor_us(&shop.key, &shop.platform);
    let mut runs: Vec<((&str, Side), Vec<Report>)> = Vec::new();
    // Orders archived per second by each pruning server, and in all (idle servers archive none).
    let (mut archive_rates, mut archived) = (Vec::new(), 0);
    for round in 0..args.rounds.max(1) {
        let sides = match round % 2 {
            0 => [Side::Pruning, Side::Idle],
            _ => [Side::Idle, Side::Pruning],
        };
        for side in sides {
            let retention: &[&str] = match side {
                Side::Pruning => &["--order-retention", "30d"],
                Side::Idle => &[],
            };
            let started = Instant::now();
            let server = Server::start_with(&db.url, true, retention)?;
            let mut reports = Vec::new();
            for (phase, share) in [("create", 100), ("query", 0)] {
                let bodies = signed_bodies(&shop, args, share).await;
                let (measured, cpu, rss) =
                    measure(Some(server.pid()), &server.base, args, bodies, share).await;
                let name = format!("{phase}-{}", side.name());
                reports.push((phase, report(&name, &db, args, measured, cpu, rss, floor)));
            }
            drop(server);
            if side == Side::Pruning {
                let now_archived = store.bench_count(COUNT_ARCHIVED).await?;
                let moved = (now_archived - archived) as f64;
                archive_rates.push(moved / started.elapsed().as_secs_f64());
                archived = now_archived;
            }
            for (phase, report) in reports {
                add_run(&mut runs, (phase, side), report);
            }
        }
    }
    store.close().await;
    db.drop_schema().await;
    let mut lines = alternated_medians(
        &runs,
        (Side::Pruning, Side::Idle),
        ("rps_to_idle", "cpu_to_idle"),
    );
    archive_rates.sort_by(f64::total_cmp);
    let archive_rate = archive_rates
        .get(archive_rates.len() / 2)
        .map(|r| r.round());
    for line in &mut lines {
        if line.scenario.ends_with(Side::Pruning.name()) {
            line.fields["orders_archived_per_second"] = json!(archive_rate);
        }
        line.fields["preloaded"] = json!(args.preload);
        line.fields["preload_s"] = json!(preload_s.round());
        line.fields["archived_in_run"] = json!(archived);
        line.fields["left_to_archive"] = json!(args.preload - archived);
    }
    Ok(lines)
}
