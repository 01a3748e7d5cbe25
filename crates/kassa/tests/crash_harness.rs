//! Crash consistency: the real binary runs a mixed workload — merchants creating orders,
//! replaying creates, querying, payers paying and failing on the sandbox bank's page,
//! callbacks to a merchant endpoint that often fails — and is killed with SIGKILL at random
//! moments (at least 20 times) and restarted. At the end:
//! - every order acknowledged to a client exists with the same data, under one number;
//! - no order id exists twice, and replays always got the original order;
//! - no final state observed by a client ever changed;
//! - every order that reached a final state has its callback delivered and acknowledged, and
//!   the acknowledged callback says what the order says;
//! - amounts and fees agree: received = ordered for payments, fee = the app's rule.
//!
//! On SQLite and on PostgreSQL. The seed of the random moments is printed; set
//! KASSA_CRASH_SEED to replay a run's choices (timing still varies).

mod common;

use axum::http::StatusCode;
use common::{create_shop, kassa, run_ok, serve};
use kassa_core::fee::FeeRule;
use kassa_core::{AmountMinor, AppId, OrderStatus};
use kassa_signature::{SigningKey, sign_map};
use kassa_store::testing::TestDatabase;
use kassa_store::{CallbackState, SqlStore, Store};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILLS: usize = 20;
const WORKERS: usize = 4;
const FEE_BASIS_POINTS: u32 = 150;
const FEE_FIXED: &str = "0.30";

/// A small deterministic generator (xorshift64*), so a failing run's choices can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What clients were told, and anything that broke a promise.
#[derive(Default)]
struct Ledger {
    /// orderId → the order a create (or replay) acknowledged.
    acknowledged: HashMap<String, Acknowledged>,
    /// Creates that got no answer (the server died): maybe stored, maybe not.
    unanswered: HashMap<String, String>,
    /// orderId → the final state a query first showed: (status, actualAmount, fee).
    final_seen: HashMap<String, (i64, String, String)>,
    violations: Vec<String>,
    creates: u64,
    replays: u64,
    queries: u64,
    payments: u64,
    transport_errors: u64,
}

#[derive(Clone)]
struct Acknowledged {
    order_no: String,
    amount: String,
    pay_url: String,
    /// The signed request, for replays.
    body: String,
}

/// The merchant's endpoint: refuses about a third of deliveries, acknowledges the rest, and
/// remembers what it acknowledged per order number.
#[derive(Default)]
struct Receiver {
    acknowledged: Mutex<HashMap<String, Vec<Value>>>,
    refused: AtomicU64,
    counter: AtomicU64,
}

async fn start_receiver() -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    let state = receiver.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |body: String| {
            let state = state.clone();
            async move {
                let n = state.counter.fetch_add(1, Ordering::Relaxed);
                if n % 3 == 1 {
                    state.refused.fetch_add(1, Ordering::Relaxed);
                    return (StatusCode::INTERNAL_SERVER_ERROR, "try later");
                }
                let data: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let order_no = data["orderNo"].as_str().unwrap_or("").to_string();
                state
                    .acknowledged
                    .lock()
                    .unwrap()
                    .entry(order_no)
                    .or_default()
                    .push(data);
                (StatusCode::OK, "success")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver)
}

struct Shop {
    base: String,
    app_id: i64,
    key: SigningKey,
    notify_url: String,
    client: reqwest::Client,
    ledger: Mutex<Ledger>,
}

impl Shop {
    fn signed(&self, body: Value) -> String {
        let mut map = body.as_object().unwrap().clone();
        sign_map(&self.key, &mut map);
        serde_json::to_string(&map).unwrap()
    }

    async fn post(&self, path: &str, body: String) -> Option<(u16, Value)> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let reply = response.json().await.ok()?;
        Some((status, reply))
    }

    fn note_transport_error(&self) {
        self.ledger.lock().unwrap().transport_errors += 1;
    }

    fn violation(&self, what: String) {
        self.ledger.lock().unwrap().violations.push(what);
    }

    /// A create (or a replay of one): what the answer means for the ledger.
    fn record_create_reply(&self, order_id: &str, body: &str, amount: &str, reply: (u16, Value)) {
        let (status, reply) = reply;
        let mut ledger = self.ledger.lock().unwrap();
        if status != 200 {
            // 503 while starting or shedding is fine; anything else is a broken promise.
            if status != 503 {
                ledger
                    .violations
                    .push(format!("create {order_id}: HTTP {status} {reply}"));
            }
            return;
        }
        let data = &reply["data"];
        let answered = Acknowledged {
            order_no: data["orderNo"].as_str().unwrap_or("").to_string(),
            amount: amount.to_string(),
            pay_url: data["payUrl"].as_str().unwrap_or("").to_string(),
            body: body.to_string(),
        };
        ledger.unanswered.remove(order_id);
        match ledger.acknowledged.get(order_id) {
            Some(earlier) if earlier.order_no != answered.order_no => {
                let what = format!(
                    "order {order_id} acknowledged as {} and later as {}",
                    earlier.order_no, answered.order_no
                );
                ledger.violations.push(what);
            }
            Some(_) => {}
            None => {
                ledger.acknowledged.insert(order_id.to_string(), answered);
            }
        }
    }

    async fn create(&self, worker: usize, serial: u64, random: &mut Random) {
        let order_id = format!("W{worker}-{serial}");
        let amount = AmountMinor(100 + random.below(49_900) as i64).to_decimal_string();
        let body = self.signed(json!({
            "appId": self.app_id, "orderId": order_id, "name": "Jane Doe",
            "phone": "+31612345678", "email": "jane@example.com", "amount": amount,
            "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
            "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
            "notifyUrl": self.notify_url, "partnerUserId": "u1",
        }));
        self.ledger.lock().unwrap().creates += 1;
        match self.post("/eur/collect/apply", body.clone()).await {
            Some(reply) => self.record_create_reply(&order_id, &body, &amount, reply),
            None => {
                self.note_transport_error();
                let mut ledger = self.ledger.lock().unwrap();
                ledger.unanswered.insert(order_id, body);
            }
        }
    }

    /// Sends an earlier create again, byte for byte: acknowledged or never answered.
    async fn replay(&self, random: &mut Random) {
        let picked = {
            let ledger = self.ledger.lock().unwrap();
            let unanswered = ledger.unanswered.len() as u64;
            let total = ledger.acknowledged.len() as u64 + unanswered;
            if total == 0 {
                return;
            }
            let index = random.below(total);
            if index < unanswered {
                ledger
                    .unanswered
                    .iter()
                    .nth(index as usize)
                    .map(|(id, body)| (id.clone(), body.clone()))
            } else {
                ledger
                    .acknowledged
                    .iter()
                    .nth((index - unanswered) as usize)
                    .map(|(id, acked)| (id.clone(), acked.body.clone()))
            }
        };
        let Some((order_id, body)) = picked else {
            return;
        };
        let amount = serde_json::from_str::<Value>(&body).unwrap()["amount"]
            .as_str()
            .unwrap()
            .to_string();
        self.ledger.lock().unwrap().replays += 1;
        match self.post("/eur/collect/apply", body.clone()).await {
            Some(reply) => self.record_create_reply(&order_id, &body, &amount, reply),
            None => self.note_transport_error(),
        }
    }

    fn pick_acknowledged(&self, random: &mut Random) -> Option<(String, Acknowledged)> {
        let ledger = self.ledger.lock().unwrap();
        let n = ledger.acknowledged.len() as u64;
        if n == 0 {
            return None;
        }
        let index = random.below(n) as usize;
        ledger
            .acknowledged
            .iter()
            .nth(index)
            .map(|(id, acked)| (id.clone(), acked.clone()))
    }

    async fn query(&self, random: &mut Random) {
        let Some((order_id, acked)) = self.pick_acknowledged(random) else {
            return;
        };
        let body = self.signed(json!({"appId": self.app_id, "orderId": order_id}));
        self.ledger.lock().unwrap().queries += 1;
        let Some((status, reply)) = self.post("/eur/collect/query", body).await else {
            self.note_transport_error();
            return;
        };
        if status == 503 {
            return;
        }
        let data = &reply["data"];
        if status != 200
            || data["orderNo"] != acked.order_no.as_str()
            || data["amount"] != acked.amount.as_str()
        {
            self.violation(format!(
                "query {order_id} (acknowledged as {} for {}): HTTP {status} {reply}",
                acked.order_no, acked.amount
            ));
            return;
        }
        let order_status = data["status"].as_i64().unwrap_or(99);
        if order_status == 2 || order_status == 3 {
            let seen = (
                order_status,
                data["actualAmount"].as_str().unwrap_or("").to_string(),
                data["fee"].as_str().unwrap_or("").to_string(),
            );
            let mut ledger = self.ledger.lock().unwrap();
            match ledger.final_seen.get(&order_id) {
                Some(first) if *first != seen => {
                    let what = format!("final order {order_id} changed from {first:?} to {seen:?}");
                    ledger.violations.push(what);
                }
                Some(_) => {}
                None => {
                    ledger.final_seen.insert(order_id, seen);
                }
            }
        }
    }

    /// A payer on the sandbox bank's page: open it, then pay or fail.
    async fn pay(&self, random: &mut Random) {
        let Some((_, acked)) = self.pick_acknowledged(random) else {
            return;
        };
        self.ledger.lock().unwrap().payments += 1;
        let page = match self.client.get(&acked.pay_url).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => return self.note_transport_error(),
        };
        let Some(csrf) = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            return; // already final: the result page has no form
        };
        let outcome = if random.below(4) == 0 {
            "failed"
        } else {
            "paid"
        };
        let form = [("csrf", csrf), ("outcome", outcome)];
        if self
            .client
            .post(format!("{}/outcome", acked.pay_url))
            .form(&form)
            .send()
            .await
            .is_err()
        {
            self.note_transport_error();
        }
    }
}

async fn worker(shop: Arc<Shop>, index: usize, seed: u64, stop: Arc<AtomicBool>) {
    let mut random = Random(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut serial = 0;
    while !stop.load(Ordering::Relaxed) {
        let lost_before = shop.ledger.lock().unwrap().transport_errors;
        match random.below(10) {
            0..=3 => {
                serial += 1;
                shop.create(index, serial, &mut random).await;
            }
            4 => shop.replay(&mut random).await,
            5..=6 => shop.query(&mut random).await,
            _ => shop.pay(&mut random).await,
        }
        if shop.ledger.lock().unwrap().transport_errors > lost_before {
            // The server is down: wait a little instead of spinning on refused connections.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every order of the app, page by page.
async fn all_orders(store: &SqlStore, app_id: AppId) -> Vec<kassa_core::Order> {
    let mut orders = Vec::new();
    loop {
        let after = orders
            .last()
            .map(|o: &kassa_core::Order| o.order_no.clone());
        let page = store
            .orders_of_app(app_id, after.as_ref(), 500)
            .await
            .unwrap();
        if page.is_empty() {
            return orders;
        }
        orders.extend(page);
    }
}

fn wire_status(status: OrderStatus) -> i64 {
    kassa_server::collect::status_code(status).into()
}

async fn survives_sigkill_under_load(db: TestDatabase) {
    let seed = std::env::var("KASSA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| kassa_server::now_ms() as u64 | 1);
    println!("crash harness seed {seed} (KASSA_CRASH_SEED={seed} to replay its choices)");
    let mut random = Random(seed);

    let dir = tempfile::tempdir().unwrap();
    let (app_id, key) = create_shop(&db.url, "EUR", dir.path());
    run_ok(&mut kassa(&[
        "app",
        "set-fee",
        &app_id.to_string(),
        "--basis-points",
        &FEE_BASIS_POINTS.to_string(),
        "--fixed",
        FEE_FIXED,
        "--database-url",
        &db.url,
    ]));
    let fee_rule = FeeRule::new(FEE_BASIS_POINTS, AmountMinor::parse(FEE_FIXED).unwrap()).unwrap();
    let (notify_url, receiver) = start_receiver().await;

    // A fixed port, so clients find each restarted server where the last one was; below the
    // ephemeral range, so no outgoing connection takes it while the server is down.
    let port = (0..1_000)
        .map(|_| 20_000 + random.below(12_000) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range");
    let listen = format!("127.0.0.1:{port}");
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
    ];
    let shop = Arc::new(Shop {
        base: format!("http://{listen}"),
        app_id,
        key,
        notify_url,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        ledger: Mutex::default(),
    });

    let mut server = serve(&args, dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| tokio::spawn(worker(shop.clone(), i, seed, stop.clone())))
        .collect();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(250 + random.below(750))).await;
        drop(server); // SIGKILL, then reap
        tokio::time::sleep(Duration::from_millis(random.below(200))).await;
        server = tokio::task::block_in_place(|| serve(&args, dir.path()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    // Every callback due is delivered in the end (a killed node's leases expire first).
    let store = SqlStore::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let counts = store.callback_counts().await.unwrap();
        if counts
            .iter()
            .all(|(state, _)| *state == CallbackState::Delivered)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "callbacks still not delivered: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(server);

    // Workers and server are done: take what they recorded.
    let ledger = std::mem::take(&mut *shop.ledger.lock().unwrap());
    println!(
        "{KILLS} kills; {} creates, {} replays, {} queries, {} payment attempts, {} requests lost to kills; \
         {} orders acknowledged, {} final states seen; callbacks refused by the merchant {} times",
        ledger.creates,
        ledger.replays,
        ledger.queries,
        ledger.payments,
        ledger.transport_errors,
        ledger.acknowledged.len(),
        ledger.final_seen.len(),
        receiver.refused.load(Ordering::Relaxed),
    );
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    // The run must have exercised what it checks.
    assert!(ledger.acknowledged.len() >= 50, "too few orders to judge");
    assert!(
        ledger.transport_errors > 0,
        "no request was ever cut by a kill"
    );
    assert!(receiver.refused.load(Ordering::Relaxed) > 0);

    let orders = all_orders(&store, AppId(app_id)).await;
    let mut by_id = HashMap::new();
    let mut numbers = HashSet::new();
    for order in &orders {
        assert!(
            numbers.insert(order.order_no.clone()),
            "{} twice",
            order.order_no
        );
        assert!(
            by_id
                .insert(order.merchant_order_id.clone(), order)
                .is_none(),
            "order id {} twice",
            order.merchant_order_id
        );
    }
    let acknowledged_callbacks = std::mem::take(&mut *receiver.acknowledged.lock().unwrap());
    let mut settled = 0;
    for (order_id, acked) in &ledger.acknowledged {
        let order = by_id
            .get(order_id)
            .unwrap_or_else(|| panic!("acknowledged order {order_id} is gone"));
        assert_eq!(order.order_no.as_str(), acked.order_no, "{order_id}");
        assert_eq!(
            order.amount_minor.to_decimal_string(),
            acked.amount,
            "{order_id}"
        );
        assert!(acked.pay_url.ends_with(&order.cashier_token), "{order_id}");
        if let Some((status, actual, fee)) = ledger.final_seen.get(order_id) {
            assert_eq!(
                wire_status(order.status),
                *status,
                "{order_id} changed after final"
            );
            assert_eq!(
                order.actual_amount_minor.to_decimal_string(),
                *actual,
                "{order_id}"
            );
            assert_eq!(order.fee_minor.to_decimal_string(), *fee, "{order_id}");
        }
    }
    for order in &orders {
        let order_no = order.order_no.as_str();
        let callbacks = store.callbacks_of_order(&order.order_no).await.unwrap();
        match order.status {
            OrderStatus::Succeeded | OrderStatus::Failed => {
                settled += 1;
                if order.status == OrderStatus::Succeeded {
                    assert_eq!(order.actual_amount_minor, order.amount_minor, "{order_no}");
                    assert_eq!(
                        order.fee_minor,
                        fee_rule.fee_for(order.actual_amount_minor),
                        "{order_no}"
                    );
                } else {
                    assert_eq!(order.fee_minor, AmountMinor::ZERO, "{order_no}");
                }
                assert_eq!(
                    callbacks.len(),
                    1,
                    "{order_no}: one status change, one callback"
                );
                let history = &callbacks[0];
                assert_eq!(
                    history.callback.state,
                    CallbackState::Delivered,
                    "{order_no}"
                );
                assert!(
                    history.attempts.iter().any(|a| a.acknowledged),
                    "{order_no}"
                );
                let heard = acknowledged_callbacks.get(order_no).unwrap_or_else(|| {
                    panic!("{order_no}: the merchant never acknowledged its callback")
                });
                for data in heard {
                    assert_eq!(data["status"], wire_status(order.status), "{order_no}");
                    assert_eq!(
                        data["amount"],
                        order.amount_minor.to_decimal_string().as_str()
                    );
                    assert_eq!(
                        data["actualAmount"],
                        order.actual_amount_minor.to_decimal_string().as_str()
                    );
                    assert_eq!(data["fee"], order.fee_minor.to_decimal_string().as_str());
                }
            }
            _ => assert!(
                callbacks.is_empty(),
                "{order_no} is not final but called back"
            ),
        }
    }
    assert!(settled >= 10, "only {settled} orders were settled");
    println!(
        "{} orders stored, {settled} settled, all consistent",
        orders.len()
    );
}

kassa_store::on_both_databases!(kassa_store::testing::database; survives_sigkill_under_load);
