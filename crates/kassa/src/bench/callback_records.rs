//! The store's share of a delivery, without HTTP: `--backlog` due callbacks claimed and their
//! attempts recorded, in batches of a drain's sizes, on a fresh database, timed by this
//! process's CPU (the SQLite writer's thread included; on PostgreSQL the database's own CPU is
//! not). Nothing else runs meanwhile, so two builds' figures compare where a drain's, which
//! share the machine with a receiver and a client, move with the noise.

use super::{BenchArgs, BenchDatabase, set_up_shop};
use crate::Failure;
use kassa_server::now_ms;
use kassa_store::prelude::*;
use kassa_store::{AfterAttempt, Attempt, Callback, FinishedAttempt, SqlStore};

/// Callbacks a claim asks for: as many as a node with the default 32 slots holds (its own
/// claims ask for at least a quarter of its slots and at most what brings it to that).
const CLAIM_BATCH: i64 = 128;
/// Attempts recorded together (the dispatcher records what finished since its last record).
const RECORD_BATCH: usize = 32;

/// The store's CPU per callback, in µs: its claim's share and its record's.
pub struct StoreCost {
    pub claim_us: f64,
    pub record_us: f64,
}

pub async fn measure(args: &BenchArgs, base_url: Option<&str>) -> Result<StoreCost, Failure> {
    let db = BenchDatabase::fresh(base_url).await?;
    let store = SqlStore::connect(&db.url).await?;
    store.migrate().await?;
    let shop = set_up_shop(&store).await?;
    let now = now_ms();
    let receiver = "http://127.0.0.1:9/unused";
    store
        .bench_queue_callbacks(shop.app_id, receiver, args.backlog, now)
        .await?;
    let node = "bench-node";
    // Claims and records take turns, as in a drain: a recorded callback leaves the due ones,
    // so each claim finds its rows at the front of the index.
    let (mut claim_s, mut record_s, mut callbacks) = (0.0, 0.0, 0);
    loop {
        let started = process_cpu_s();
        let claimed = store
            .claim_due_callbacks(now, CLAIM_BATCH, node, now + 600_000)
            .await?;
        claim_s += process_cpu_s() - started;
        if claimed.is_empty() {
            break;
        }
        callbacks += claimed.len();
        for batch in claimed.chunks(RECORD_BATCH) {
            let finished: Vec<FinishedAttempt> =
                batch.iter().map(|c| delivered(c, now, node)).collect();
            let started = process_cpu_s();
            store.finish_attempts(node, &finished).await?;
            record_s += process_cpu_s() - started;
        }
    }
    store.close().await;
    db.drop_schema().await;
    let per = |seconds: f64| seconds * 1e6 / callbacks.max(1) as f64;
    Ok(StoreCost {
        claim_us: per(claim_s),
        record_us: per(record_s),
    })
}

/// An acknowledged attempt of `callback`, as the dispatcher records one.
fn delivered(callback: &Callback, now_ms: i64, node: &str) -> FinishedAttempt {
    FinishedAttempt {
        callback_id: callback.callback_id.clone(),
        attempt: Attempt {
            attempt_no: 0,
            started_at_ms: now_ms,
            latency_ms: 1,
            http_status: Some(200),
            error: None,
            response_excerpt: Some("success".into()),
            acknowledged: true,
            node: node.into(),
        },
        after: AfterAttempt::Delivered { at_ms: now_ms },
    }
}

/// This process's CPU seconds (user and system, every thread), to the microsecond: `/proc`'s
/// ticks are 10 ms, too coarse for phases of a fraction of a second.
fn process_cpu_s() -> f64 {
    // SAFETY: `getrusage` writes into the zeroed struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
