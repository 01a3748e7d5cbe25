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

/// The null gateway as a child process; killed on drop.
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
                let _ = child.kill();
                let _ = child.wait();
                Err(Failure("the null gateway did not start".into()))
            }
        }
    }
}

impl Drop for NullGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
                match runs.iter_mut().find(|(key, _)| *key == (phase, side)) {
                    Some((_, reports)) => reports.push(report),
                    None => runs.push(((phase, side), vec![report])),
                }
            }
        }
    }
    store.close().await;
    db.drop_schema().await;
    Ok(medians(&runs))
}

/// The sorted values of a field over the rounds.
fn values(reports: &[Report], field: &str) -> Vec<f64> {
    let mut values: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.fields[field].as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

/// Each (phase, side)'s median run with min and max; on kassa's lines, its ratios to the null
/// gateway's medians.
fn medians(runs: &[((&str, Side), Vec<Report>)]) -> Vec<Report> {
    let median = |v: &[f64]| v.get(v.len() / 2).copied();
    let ratio =
        |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a / b * 1000.0).round() / 1000.0);
    let mut out = Vec::new();
    for ((phase, side), reports) in runs {
        let rps = values(reports, "requests_per_second");
        let cpu = values(reports, "server_cpu_us_per_request");
        let Some(median_rps) = median(&rps) else {
            continue;
        };
        let index = reports
            .iter()
            .position(|r| r.fields["requests_per_second"].as_f64() == Some(median_rps))
            .unwrap_or(0);
        let mut line = reports[index].clone();
        line.fields["server_cpu_us_per_request"] = json!(median(&cpu));
        line.fields["requests_per_second_min_max"] = json!([rps.first(), rps.last()]);
        line.fields["server_cpu_us_min_max"] = json!([cpu.first(), cpu.last()]);
        line.fields["rounds"] = json!(reports.len());
        if *side == Side::Kassa
            && let Some((_, null)) = runs.iter().find(|(key, _)| *key == (*phase, Side::Null))
        {
            let null_rps = median(&values(null, "requests_per_second"));
            let null_cpu = median(&values(null, "server_cpu_us_per_request"));
            line.fields["rps_to_null"] = json!(ratio(Some(median_rps), null_rps));
            line.fields["cpu_to_null"] = json!(ratio(median(&cpu), null_cpu));
        }
        out.push(line);
    }
    out
}
