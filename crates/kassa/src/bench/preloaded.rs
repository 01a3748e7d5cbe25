//! `kassa bench --scenario preloaded`: create and query over a database that holds `--preload`
//! orders, against the same over an empty one (the bench's shop and the orders queries ask for),
//! in `--rounds` rounds that alternate which goes first. Both databases are loaded once and kept
//! for every round — loading ten million orders takes minutes — and each round starts a fresh
//! server on each. The preloaded lines carry their ratios to the empty ones.

use super::*;

/// Which database a run measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Preloaded,
    Empty,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Preloaded => "preloaded",
            Side::Empty => "empty",
        }
    }
}

pub(super) async fn run(args: &BenchArgs, base_url: Option<&str>) -> Result<Vec<Report>, Failure> {
    if args.target.is_some() {
        // A running server has one database: one run over whatever it holds.
        return http_run("preloaded", 100, args.preload, args, base_url).await;
    }
    let loading = Instant::now();
    let (full_db, full_store, full_shop) = preloaded_shop(base_url, args.preload).await?;
    let preload_s = loading.elapsed().as_secs_f64();
    let (empty_db, empty_store, empty_shop) = preloaded_shop(base_url, QUERY_ORDERS).await?;
    let floor = crypto_floor_us(&full_shop.key, &full_shop.platform);
    let mut runs: Vec<((&str, Side), Vec<Report>)> = Vec::new();
    for round in 0..args.rounds.max(1) {
        let sides = match round % 2 {
            0 => [Side::Preloaded, Side::Empty],
            _ => [Side::Empty, Side::Preloaded],
        };
        for side in sides {
            let (db, shop) = match side {
                Side::Preloaded => (&full_db, &full_shop),
                Side::Empty => (&empty_db, &empty_shop),
            };
            let server = Server::start(&db.url, true)?;
            for (phase, share) in [("create", 100), ("query", 0)] {
                let bodies = signed_bodies(shop, args, share).await;
                let (measured, cpu, rss) =
                    measure(Some(server.pid()), &server.base, args, bodies, share).await;
                let name = format!("{phase}-{}", side.name());
                let report = report(&name, db, args, measured, cpu, rss, floor);
                add_run(&mut runs, (phase, side), report);
            }
        }
    }
    for (store, db) in [(full_store, full_db), (empty_store, empty_db)] {
        store.close().await;
        db.drop_schema().await;
    }
    let mut lines = alternated_medians(
        &runs,
        (Side::Preloaded, Side::Empty),
        ("rps_to_empty", "cpu_to_empty"),
    );
    for line in &mut lines {
        line.fields["preloaded"] = json!(args.preload);
        line.fields["preload_s"] = json!(preload_s.round());
    }
    Ok(lines)
}
