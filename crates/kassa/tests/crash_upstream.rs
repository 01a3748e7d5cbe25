//! Crash consistency across the upstream hop: the gateway (SQLite or PostgreSQL) routes a mixed
//! workload — `collect` and `pix` creates and their replays, payers starting payments on the
//! gateway's pages and paying or failing at the upstreams — to two upstream `kassa serve`
//! processes, and the gateway alone is killed with SIGKILL at random moments (at least 10 times)
//! and restarted. The upstreams keep running: their callbacks to the dead gateway fail and are
//! retried, and the gateway's reconciliation asks them about whatever it missed. At the end:
//! - every order acknowledged to the merchant exists under the number it was told;
//! - every gateway order opened upstream ends in the same state as its upstream order, with the
//!   same amount received;
//! - no gateway order has more than one upstream order, and no upstream order that a payer could
//!   pay belongs to no acknowledged order;
//! - every callback the gateway owes the merchant is delivered.
//!
//! The seed is printed; KASSA_CRASH_SEED replays a run's choices (timing still varies).

mod common;

use common::upstreams::{Upstream, add_channel, upstream};
use common::{Random, crash, create_shop, kassa, serve};
use kassa_core::{Order, OrderNo, OrderStatus};
use kassa_signature::{SigningKey, parse_signed_object, sign_map};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{CallbackState, SqlStore};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILLS: usize = 10;
const WORKERS: usize = 3;

/// What the merchant was told: orderId → (orderNo, page), and how many requests kills cut.
#[derive(Default)]
struct Ledger {
    acknowledged: HashMap<String, (String, String)>,
    creates: u64,
    starts: u64,
    payments: u64,
    lost: u64,
}

struct Shop {
    base: String,
    /// The gateway's database, read as a payer's bank would learn the upstream's order number.
    gateway_store: SqlStore,
    eur: (i64, SigningKey),
    brl: (i64, SigningKey),
    notify_url: String,
    eur_psp: Upstream,
    brl_psp: Upstream,
    client: reqwest::Client,
    ledger: Mutex<Ledger>,
}

impl Shop {
    fn lost(&self) {
        self.ledger.lock().unwrap().lost += 1;
    }

    /// A create (`C…` collect, `P…` pix) or, one time in four, a replay of an earlier one.
    async fn create(&self, worker: usize, serial: u64, random: &mut Random) {
        let pix = random.below(2) == 0;
        let order_id = if random.below(4) == 0 && serial > 1 {
            format!(
                "{}{worker}-{}",
                if pix { 'P' } else { 'C' },
                random.below(serial - 1) + 1
            )
        } else {
            format!("{}{worker}-{serial}", if pix { 'P' } else { 'C' })
        };
        let amount = format!("{}.{:02}", 5 + random.below(90), random.below(100));
        self.ledger.lock().unwrap().creates += 1;
        let reply = if pix {
            self.post_pix(&order_id, &amount).await
        } else {
            self.post_collect(&order_id, &amount).await
        };
        let Some(reply) = reply else {
            return self.lost();
        };
        let (order_no, page) = if pix {
            (&reply["data"]["orderNo"], &reply["data"]["url"])
        } else {
            (&reply["data"]["orderNo"], &reply["data"]["payUrl"])
        };
        let (Some(order_no), Some(page)) = (order_no.as_str(), page.as_str()) else {
            return; // refused (a replay with other fields) or 503 while starting
        };
        let mut ledger = self.ledger.lock().unwrap();
        let told = (order_no.to_string(), page.to_string());
        let earlier = ledger
            .acknowledged
            .entry(order_id.clone())
            .or_insert(told.clone());
        assert_eq!(*earlier, told, "{order_id} acknowledged twice differently");
    }

    async fn post_collect(&self, order_id: &str, amount: &str) -> Option<Value> {
        let mut body = json!({
            "appId": self.eur.0, "orderId": order_id, "name": "Jane Doe",
            "phone": "+31612345678", "email": "jane@example.com", "amount": amount,
            "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
            "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
            "notifyUrl": self.notify_url, "partnerUserId": "u1",
        });
        sign_map(&self.eur.1, body.as_object_mut().unwrap());
        let request = self.client.post(format!("{}/eur/collect/apply", self.base));
        let response = request.json(&body).send().await.ok()?;
        response.json().await.ok()
    }

    async fn post_pix(&self, order_id: &str, amount: &str) -> Option<Value> {
        let body = json!({
            "userOrderNumber": order_id, "submitAmount": amount, "paymentType": "PIX",
            "currencyType": "BRL", "notifyUrl": self.notify_url,
        })
        .to_string();
        let canonical = parse_signed_object(&body).unwrap().canonical;
        let request = (self.client)
            .post(format!("{}/accountProxyCollect/initCollect", self.base))
            .header("content-type", "application/json")
            .header("x-app-id", self.brl.0.to_string())
            .header("x-sign", self.brl.1.sign_base64(canonical.as_bytes()));
        let response = request.body(body).send().await.ok()?;
        response.json().await.ok()
    }

    fn pick(&self, random: &mut Random) -> Option<(String, String, String)> {
        let ledger = self.ledger.lock().unwrap();
        let index = random.below(ledger.acknowledged.len() as u64) as usize;
        let (id, (no, page)) = ledger.acknowledged.iter().nth(index)?;
        Some((id.clone(), no.clone(), page.clone()))
    }

    /// A payer opens a `collect` order's page on the gateway: the payment starts upstream.
    async fn start(&self, random: &mut Random) {
        let Some((order_id, _, page)) = self.pick(random) else {
            return;
        };
        if order_id.starts_with('C') {
            self.ledger.lock().unwrap().starts += 1;
            if self.client.get(&page).send().await.is_err() {
                self.lost();
            }
        }
    }

    /// A payer pays (or fails) at the upstream an order the gateway opened there.
    async fn pay(&self, random: &mut Random) {
        let Some((order_id, order_no, _)) = self.pick(random) else {
            return;
        };
        let order_no = OrderNo::parse(&order_no).unwrap();
        let found = self.gateway_store.upstream_order(&order_no).await;
        let Some(upstream_no) = found.ok().flatten().and_then(|u| u.upstream_order_no) else {
            return; // not opened upstream yet (or the database is busy)
        };
        let psp = if order_id.starts_with('P') {
            &self.brl_psp
        } else {
            &self.eur_psp
        };
        let outcome = if random.below(4) == 0 {
            "failed"
        } else {
            "paid"
        };
        let db = psp.db.clone();
        self.ledger.lock().unwrap().payments += 1;
        // Refused once the order is final there: a payer who pays twice is turned away.
        tokio::task::spawn_blocking(move || {
            kassa(&[
                "sandbox",
                "pay",
                &upstream_no,
                "--outcome",
                outcome,
                "--database-url",
                &db,
            ])
            .output()
            .unwrap()
        })
        .await
        .unwrap();
    }
}

async fn worker(shop: Arc<Shop>, index: usize, seed: u64, stop: Arc<AtomicBool>) {
    let mut random = Random(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut serial = 0;
    while !stop.load(Ordering::Relaxed) {
        let lost_before = shop.ledger.lock().unwrap().lost;
        match random.below(10) {
            0..=3 => {
                serial += 1;
                shop.create(index, serial, &mut random).await;
            }
            4..=6 => shop.start(&mut random).await,
            _ => shop.pay(&mut random).await,
        }
        if shop.ledger.lock().unwrap().lost > lost_before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The merchant's endpoint: acknowledges every callback, counting them.
async fn merchant_endpoint() -> (String, Arc<AtomicU64>) {
    let heard = Arc::new(AtomicU64::new(0));
    let count = heard.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            count.fetch_add(1, Ordering::Relaxed);
            async { "success" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, heard)
}

/// Where a gateway order and its upstream order disagree, if they do (`None`: they agree).
fn disagreement(order: &Order, upstream: Option<&Order>) -> Option<String> {
    let order_no = &order.order_no;
    let Some(upstream) = upstream else {
        // Never opened upstream: it may only have failed or expired, or still wait.
        return matches!(
            order.status,
            OrderStatus::Succeeded | OrderStatus::Exception
        )
        .then(|| format!("{order_no} is {:?} without an upstream order", order.status));
    };
    let same = order.status == upstream.status
        || (!order.status.is_final()
            && !upstream.status.is_final()
            && order.status != OrderStatus::Exception
            && upstream.status != OrderStatus::Exception);
    if !same || order.actual_amount_minor != upstream.actual_amount_minor {
        return Some(format!(
            "{order_no}: gateway {:?} {}, upstream {:?} {}",
            order.status, order.actual_amount_minor, upstream.status, upstream.actual_amount_minor
        ));
    }
    None
}

/// Every gateway order of an app against its upstream order; the disagreements.
async fn compare(gateway: &SqlStore, psp: &SqlStore, app_id: i64, psp_app: i64) -> Vec<String> {
    let upstream_orders: HashMap<String, Order> = crash::all_orders(psp, psp_app)
        .await
        .into_iter()
        .map(|o| (o.merchant_order_id.clone(), o))
        .collect();
    let mut problems = Vec::new();
    for order in crash::all_orders(gateway, app_id).await {
        let upstream = upstream_orders.get(&format!("kassa-{}", order.order_no));
        problems.extend(disagreement(&order, upstream));
    }
    problems
}

async fn survives_gateway_sigkill_across_the_upstream_hop(db: TestDatabase) {
    let seed = crash::seed("upstream crash harness");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().unwrap();
    let eur_psp = upstream(dir.path(), "eur-psp", "EUR");
    let brl_psp = upstream(dir.path(), "brl-psp", "BRL");
    let eur = create_shop(&db.url, "EUR", &dir.path().join("eur"));
    let brl = create_shop(&db.url, "BRL", &dir.path().join("brl"));
    add_channel(
        &db.url,
        ("eur", "collect-upstream", &eur_psp.served.base),
        &eur_psp,
        &[],
    );
    add_channel(
        &db.url,
        ("brl", "pix-upstream", &brl_psp.served.base),
        &brl_psp,
        &[],
    );
    let (notify_url, heard) = merchant_endpoint().await;

    let listen = crash::fixed_listen(&mut random);
    let args = [
        "serve",
        "--listen",
        &listen,
        "--database-url",
        &db.url,
        "--allow-private-callbacks",
        "--callback-retry-interval",
        "1s",
        "--callback-timeout",
        "1s",
        "--reconcile-after",
        "1s",
        "--reconcile-max-interval",
        "2s",
        "--channel-refresh-interval",
        "1s",
    ];
    let shop = Arc::new(Shop {
        base: format!("http://{listen}"),
        gateway_store: SqlStore::connect(&db.url).await.unwrap(),
        eur,
        brl,
        notify_url,
        eur_psp,
        brl_psp,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        ledger: Mutex::default(),
    });
    let server = serve(&args, dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| tokio::spawn(worker(shop.clone(), i, seed, stop.clone())))
        .collect();
    let server = crash::kill_and_restart(
        server,
        (KILLS, &mut random),
        (400, 800, 300),
        (&args, dir.path()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    // Upstream callbacks are retried and reconciliation asks: the two sides come to agree, and
    // every callback the gateway owes is delivered.
    let gateway = SqlStore::connect(&db.url).await.unwrap();
    let eur_store = SqlStore::connect(&shop.eur_psp.db).await.unwrap();
    let brl_store = SqlStore::connect(&shop.brl_psp.db).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut problems = compare(&gateway, &eur_store, shop.eur.0, shop.eur_psp.app_id).await;
        problems.extend(compare(&gateway, &brl_store, shop.brl.0, shop.brl_psp.app_id).await);
        let counts = gateway.callback_counts().await.unwrap();
        let undelivered: Vec<_> = counts
            .iter()
            .filter(|(s, _)| *s != CallbackState::Delivered)
            .collect();
        if problems.is_empty() && undelivered.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {problems:#?}; callbacks {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(server);

    let ledger = std::mem::take(&mut *shop.ledger.lock().unwrap());
    let mut gateway_orders = crash::all_orders(&gateway, shop.eur.0).await;
    gateway_orders.extend(crash::all_orders(&gateway, shop.brl.0).await);
    let by_id: HashMap<&str, &Order> = gateway_orders
        .iter()
        .map(|o| (o.merchant_order_id.as_str(), o))
        .collect();
    for (order_id, (order_no, _)) in &ledger.acknowledged {
        let order = by_id
            .get(order_id.as_str())
            .unwrap_or_else(|| panic!("{order_id} is gone"));
        assert_eq!(order.order_no.as_str(), order_no, "{order_id}");
    }
    // Every upstream order that went further than created belongs to an acknowledged order.
    let numbers: HashMap<String, &Order> = gateway_orders
        .iter()
        .map(|o| (format!("kassa-{}", o.order_no), o))
        .collect();
    let mut orphans = 0;
    for (store, app) in [
        (&eur_store, shop.eur_psp.app_id),
        (&brl_store, shop.brl_psp.app_id),
    ] {
        for upstream in crash::all_orders(store, app).await {
            if !numbers.contains_key(&upstream.merchant_order_id) {
                orphans += 1;
                assert!(
                    !upstream.status.is_final(),
                    "{} was settled upstream for no gateway order",
                    upstream.merchant_order_id
                );
            }
        }
    }
    let mut counts: HashMap<OrderStatus, usize> = HashMap::new();
    for order in &gateway_orders {
        *counts.entry(order.status).or_default() += 1;
    }
    println!(
        "{KILLS} gateway kills; {} creates, {} payment starts, {} payments at upstreams, {} \
         requests cut; {} orders acknowledged; gateway orders by status {counts:?}; {} upstream \
         orders without a gateway order (created upstream, never acknowledged, never paid); {} \
         callbacks acknowledged by the merchant",
        ledger.creates,
        ledger.starts,
        ledger.payments,
        ledger.lost,
        ledger.acknowledged.len(),
        orphans,
        heard.load(Ordering::Relaxed),
    );
    assert!(ledger.acknowledged.len() >= 30, "too few orders to judge");
    assert!(ledger.lost > 0, "no request was ever cut by a kill");
    let succeeded = counts.get(&OrderStatus::Succeeded).copied().unwrap_or(0);
    assert!(succeeded >= 5, "too few paid through the upstreams");
    // The books agree with the orders after every kill.
    common::assert_books_hold(&db.url);
}

kassa_store::on_both_databases!(kassa_store::testing::database; survives_gateway_sigkill_across_the_upstream_hop);
