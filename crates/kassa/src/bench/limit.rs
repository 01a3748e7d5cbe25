//! `kassa bench --scenario limit`: kassa against the physical limit, measured in the same run.
//!
//! Each round starts a fresh `kassa serve` and a fresh null gateway (see [`super::null_gateway`])
//! and measures create and query on both, alternating which goes first (A B, B A, …) so that the
//! machine's drift falls on both. Each figure is the median over the rounds, with its min and
//! max; kassa's lines carry its ratios to the null gateway: throughput (≥ 0.85 aimed at on
//! SQLite) and CPU per request (≤ 1.2 aimed at for a create).

use super::*;
use std::path::Path;

/// Which server a run measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Kassa,
    Null,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Kassa => "kassa",
            Side::Null => "null",
        }
    }
}

/// The null gateway as a child process; stopped on drop.
struct NullGateway {
    child: Child,
    base: String,
}

impl NullGateway {
    fn start(keys_dir: &Path, shop: &Shop) -> Result<NullGateway, Failure> {
        let merchant = keys_dir.join("merchant.pub.pem");
        let platform = keys_dir.join("platform.key.pem");
        std::fs::write(&merchant, shop.key.public_key_pem())?;
        std::fs::write(&platform, shop.platform.to_pkcs8_pem())?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("null-gateway")
            .arg("--merchant-key")
            .arg(&merchant)
            .arg("--platform-key")
            .arg(&platform)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        match line.strip_prefix("null gateway listening on ") {
            Some(base) => Ok(NullGateway {
                child,
                base: base.trim().to_string(),
            }),
            None => {
                super::end_child(&mut child, super::Ending::Kill);
                Err(Failure("the null gateway did not start".into()))
            }
        }
    }
}

impl Drop for NullGateway {
    fn drop(&mut self) {
        super::end_child(&mut self.child, super::Ending::Terminate);
    }
}

pub(super) async fn run(args: &BenchArgs, base_url: Option<&str>) -> Result<Vec<Report>, Failure> {
    if args.target.is_some() {
        let why = "--scenario limit starts its own servers; drop --target";
        return Err(Failure(why.into()));
    }
    let (db, store, shop) = super::preloaded_shop(base_url, QUERY_ORDERS).await?;
    let floor = crypto_floor_us(&shop.key, &shop.platform);
    let keys_dir = tempfile::tempdir()?;
    let mut runs: Vec<((&str, Side), Vec<Report>)> = Vec::new();
    for round in 0..args.rounds.max(1) {
        let sides = match round % 2 {
            0 => [Side::Kassa, Side::Null],
            _ => [Side::Null, Side::Kassa],
        };
        let kassa = Server::start(&db.url, true)?;
        let null = NullGateway::start(keys_dir.path(), &shop)?;
        for (phase, share) in [("create", 100), ("query", 0)] {
            for side in sides {
                let (pid, base) = match side {
                    Side::Kassa => (kassa.pid(), kassa.base.as_str()),
                    Side::Null => (null.child.id(), null.base.as_str()),
                };
                let bodies = signed_bodies(&shop, args, share).await;
                let (measured, cpu, rss) = measure(Some(pid), base, args, bodies, share).await;
                let name = format!("{phase}-{}", side.name());
                let report = report(&name, &db, args, measured, cpu, rss, floor);
                add_run(&mut runs, (phase, side), report);
            }
        }
    }
    store.close().await;
    db.drop_schema().await;
    Ok(medians(&runs))
}

/// Each (phase, side)'s median run with min and max, and kassa's ratios to the null gateway.
fn medians(runs: &[((&str, Side), Vec<Report>)]) -> Vec<Report> {
    let ratios = ("rps_to_null", "cpu_to_null");
    super::alternated_medians(runs, (Side::Kassa, Side::Null), ratios)
}
