//! Crash consistency: the real binary runs a mixed workload in both dialects — merchants
//! creating orders, replaying creates, querying; payers paying, failing or ending in an
//! exception on the sandbox bank's pages; the operator resolving exceptions from the command
//! line; callbacks to a merchant endpoint that often refuses them — and is killed with SIGKILL
//! at random moments (at least 20 times) and restarted. At the end:
//! - every order acknowledged to a client exists with the same data, under one number;
//! - no order id exists twice, and replays always got the original order;
//! - no final state observed by a client ever changed;
//! - every status change that calls back has its callback delivered and acknowledged, with the
//!   body the merchant acknowledged, and the last one says what the order says; nothing else
//!   called back;
//! - amounts and fees agree: received = ordered, fee = the app's rule (0 unless succeeded).
//!
//! On SQLite and on PostgreSQL. The seed of the random choices is printed; set
//! KASSA_CRASH_SEED to replay a run's choices (timing still varies).

mod common;

use axum::http::StatusCode;
use common::{Random, crash, create_shop, kassa, run_ok, serve};
use kassa_core::fee::FeeRule;
use kassa_core::{AmountMinor, Order, OrderStatus};
use kassa_signature::{SigningKey, parse_signed_object, sign_map};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{CallbackState, SqlStore};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILLS: usize = 20;
const WORKERS: usize = 4;
const FEE_BASIS_POINTS: u32 = 150;
const FEE_FIXED: &str = "0.30";
/// The BRL app's receiving key: a random (EVP) key that belongs to nobody.
const PIX_KEY: &str = "00000000-0000-4000-8000-00000000c4a5";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dialect {
    Collect,
    Pix,
}

impl Dialect {
    /// Order ids carry their dialect: `C…` for collect, `P…` for pix.
    fn of(order_id: &str) -> Dialect {
        if order_id.starts_with('P') {
            Dialect::Pix
        } else {
            Dialect::Collect
        }
    }
}

/// What clients were told, and anything that broke a promise.
#[derive(Default)]
struct Ledger {
    /// orderId → the order a create (or replay) acknowledged.
    acknowledged: HashMap<String, Acknowledged>,
    /// Creates that got no answer (the server died): maybe stored, maybe not. orderId → body.
    unanswered: HashMap<String, String>,
    /// orderId → the final state a query first showed: (state, amount received, fee).
    final_seen: HashMap<String, (i64, String, String)>,
    /// Collect orders a query showed in exception: the operator may resolve them.
    exceptions_seen: HashSet<String>,
    violations: Vec<String>,
    creates: u64,
    replays: u64,
    queries: u64,
    payments: u64,
    resolutions: u64,
    transport_errors: u64,
}

#[derive(Clone)]
struct Acknowledged {
    order_no: String,
    amount: String,
    pay_url: String,
    /// The request, for replays.
    body: String,
}

/// The merchant's endpoint: refuses every third delivery, acknowledges the rest, and
/// remembers the bodies it acknowledged per order number.
#[derive(Default)]
struct Receiver {
    acknowledged: Mutex<HashMap<String, Vec<String>>>,
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
                if state.counter.fetch_add(1, Ordering::Relaxed) % 3 == 1 {
                    state.refused.fetch_add(1, Ordering::Relaxed);
                    return (StatusCode::INTERNAL_SERVER_ERROR, "try later");
                }
                let data: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let order_no = data["orderNo"].as_str().unwrap_or("").to_string();
                let mut acknowledged = state.acknowledged.lock().unwrap();
                acknowledged.entry(order_no).or_default().push(body);
                (StatusCode::OK, "success")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver)
}

/// A merchant with a EUR app (collect) and a BRL app (pix), each with its own key.
struct Shop {
    base: String,
    database_url: String,
    eur_app: i64,
    eur_key: SigningKey,
    brl_app: i64,
    brl_key: SigningKey,
    notify_url: String,
    client: reqwest::Client,
    ledger: Mutex<Ledger>,
}

impl Shop {
    fn violation(&self, what: String) {
        self.ledger.lock().unwrap().violations.push(what);
    }

    fn note_transport_error(&self) {
        self.ledger.lock().unwrap().transport_errors += 1;
    }

    /// Posts a request of `dialect`, signed as that dialect signs; `None` if no answer came.
    async fn post(&self, dialect: Dialect, path: &str, body: &str) -> Option<(u16, Value)> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        let body = match dialect {
            Dialect::Collect => {
                let mut map = serde_json::from_str::<Value>(body).unwrap();
                sign_map(&self.eur_key, map.as_object_mut().unwrap());
                map.to_string()
            }
            Dialect::Pix => {
                let canonical = parse_signed_object(body).unwrap().canonical;
                request = request
                    .header("x-app-id", self.brl_app.to_string())
                    .header("x-sign", self.brl_key.sign_base64(canonical.as_bytes()));
                body.to_string()
            }
        };
        let response = request.body(body).send().await.ok()?;
        let status = response.status().as_u16();
        let reply = response.json().await.ok()?;
        Some((status, reply))
    }

    /// What an answer to a create (or a replay of one) means for the ledger.
    fn record_create_reply(&self, order_id: &str, body: &str, amount: &str, reply: (u16, Value)) {
        let (status, reply) = reply;
        let mut ledger = self.ledger.lock().unwrap();
        if status != 200 {
            // 503 while starting or shedding is fine; anything else is a broken promise.
            if status != 503 {
                let what = format!("create {order_id}: HTTP {status} {reply}");
                ledger.violations.push(what);
            }
            return;
        }
        let data = &reply["data"];
        let page = if Dialect::of(order_id) == Dialect::Pix {
            "url"
        } else {
            "payUrl"
        };
        let answered = Acknowledged {
            order_no: data["orderNo"].as_str().unwrap_or("").to_string(),
            amount: amount.to_string(),
            pay_url: data[page].as_str().unwrap_or("").to_string(),
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

    fn create_path(order_id: &str) -> &'static str {
        match Dialect::of(order_id) {
            Dialect::Collect => "/eur/collect/apply",
            Dialect::Pix => "/accountProxyCollect/initCollect",
        }
    }

    async fn create(&self, worker: usize, serial: u64, random: &mut Random) {
        let dialect = if random.below(2) == 0 {
            Dialect::Collect
        } else {
            Dialect::Pix
        };
        let amount = AmountMinor(100 + random.below(49_900) as i64).to_decimal_string();
        let (order_id, body) = match dialect {
            Dialect::Collect => {
                let order_id = format!("C{worker}-{serial}");
                let body = json!({
                    "appId": self.eur_app, "orderId": order_id, "name": "Jane Doe",
                    "phone": "+31612345678", "email": "jane@example.com", "amount": amount,
                    "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
                    "callBackUrl": "https://shop.example/ok",
                    "callBackFailUrl": "https://shop.example/fail",
                    "notifyUrl": self.notify_url, "partnerUserId": "u1",
                });
                (order_id, body)
            }
            Dialect::Pix => {
                let order_id = format!("P{worker}-{serial}");
                let body = json!({
                    "userOrderNumber": order_id, "submitAmount": amount, "paymentType": "PIX",
                    "currencyType": "BRL", "notifyUrl": self.notify_url,
                });
                (order_id, body)
            }
        };
        let body = body.to_string();
        self.ledger.lock().unwrap().creates += 1;
        let path = Shop::create_path(&order_id);
        match self.post(dialect, path, &body).await {
            Some(reply) => self.record_create_reply(&order_id, &body, &amount, reply),
            None => {
                self.note_transport_error();
                let mut ledger = self.ledger.lock().unwrap();
                ledger.unanswered.insert(order_id, body);
            }
        }
    }

    /// Sends an earlier create again, unchanged: acknowledged or never answered.
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
                let mut all = ledger.unanswered.iter();
                all.nth(index as usize)
                    .map(|(id, body)| (id.clone(), body.clone()))
            } else {
                let mut all = ledger.acknowledged.iter();
                all.nth((index - unanswered) as usize)
                    .map(|(id, acked)| (id.clone(), acked.body.clone()))
            }
        };
        let Some((order_id, body)) = picked else {
            return;
        };
        let fields: Value = serde_json::from_str(&body).unwrap();
        let amount = fields["amount"]
            .as_str()
            .or(fields["submitAmount"].as_str())
            .unwrap()
            .to_string();
        self.ledger.lock().unwrap().replays += 1;
        let path = Shop::create_path(&order_id);
        match self.post(Dialect::of(&order_id), path, &body).await {
            Some(reply) => self.record_create_reply(&order_id, &body, &amount, reply),
            None => self.note_transport_error(),
        }
    }

    fn pick_acknowledged(&self, random: &mut Random) -> Option<(String, Acknowledged)> {
        let ledger = self.ledger.lock().unwrap();
        let index = random.below(ledger.acknowledged.len() as u64) as usize;
        let mut all = ledger.acknowledged.iter();
        all.nth(index)
            .map(|(id, acked)| (id.clone(), acked.clone()))
    }

    async fn query(&self, random: &mut Random) {
        let Some((order_id, acked)) = self.pick_acknowledged(random) else {
            return;
        };
        let dialect = Dialect::of(&order_id);
        let (path, body) = match dialect {
            Dialect::Collect => (
                "/eur/collect/query",
                json!({"appId": self.eur_app, "orderId": order_id}),
            ),
            Dialect::Pix => (
                "/proxyCollectQuery/query",
                json!({"userOrderNumber": order_id}),
            ),
        };
        self.ledger.lock().unwrap().queries += 1;
        let Some((status, reply)) = self.post(dialect, path, &body.to_string()).await else {
            return self.note_transport_error();
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
        let text = |field: &str| data[field].as_str().unwrap_or("").to_string();
        let (state, is_final, seen) = match dialect {
            Dialect::Collect => {
                let state = data["status"].as_i64().unwrap_or(99);
                let seen = (state, text("actualAmount"), text("fee"));
                (state, state == 2 || state == 3, seen)
            }
            Dialect::Pix => {
                let state = data["orderState"].as_i64().unwrap_or(99);
                let seen = (state, text("arrivalAmount"), String::new());
                (state, state == 20 || state == 30, seen)
            }
        };
        let mut ledger = self.ledger.lock().unwrap();
        if dialect == Dialect::Collect && state == -1 {
            ledger.exceptions_seen.insert(order_id.clone());
        }
        if is_final {
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

    /// A payer on the sandbox bank's page: open it, then pay, fail, or (collect) leave the
    /// bank unable to confirm.
    async fn pay(&self, random: &mut Random) {
        let Some((order_id, acked)) = self.pick_acknowledged(random) else {
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
        let outcome = match (Dialect::of(&order_id), random.below(8)) {
            (_, 0..=4) => "paid",
            (Dialect::Collect, 5) => "exception",
            _ => "failed",
        };
        let form = [("csrf", csrf), ("outcome", outcome)];
        let url = format!("{}/outcome", acked.pay_url);
        if self.client.post(url).form(&form).send().await.is_err() {
            self.note_transport_error();
        }
    }

    /// The operator settles an exception from the command line (whether or not the server
    /// is up: the command writes to the database itself).
    async fn resolve(&self, random: &mut Random) {
        let picked = {
            let ledger = self.ledger.lock().unwrap();
            let index = random.below(ledger.exceptions_seen.len() as u64) as usize;
            let order_id = ledger.exceptions_seen.iter().nth(index).cloned();
            order_id.and_then(|id| {
                ledger
                    .acknowledged
                    .get(&id)
                    .map(|a| (id, a.order_no.clone()))
            })
        };
        let Some((order_id, order_no)) = picked else {
            return;
        };
        let verdict = if random.below(2) == 0 {
            "--succeed"
        } else {
            "--fail"
        };
        let database_url = self.database_url.clone();
        let resolved = tokio::task::spawn_blocking(move || {
            kassa(&[
                "order",
                "resolve",
                &order_no,
                verdict,
                "--database-url",
                &database_url,
            ])
            .output()
            .unwrap()
        })
        .await
        .unwrap();
        let mut ledger = self.ledger.lock().unwrap();
        ledger.resolutions += 1;
        // Refused only because another worker resolved it first; anything else is a failure.
        let why = String::from_utf8_lossy(&resolved.stderr);
        let lost_the_race = why.contains("cannot take event") || why.contains("not in exception");
        if !resolved.status.success() && !lost_the_race {
            ledger.violations.push(format!("resolve {order_id}: {why}"));
        }
        ledger.exceptions_seen.remove(&order_id);
    }
}

async fn worker(shop: Arc<Shop>, index: usize, seed: u64, stop: Arc<AtomicBool>) {
    let mut random = Random(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut serial = 0;
    while !stop.load(Ordering::Relaxed) {
        let lost_before = shop.ledger.lock().unwrap().transport_errors;
        match random.below(20) {
            0..=7 => {
                serial += 1;
                shop.create(index, serial, &mut random).await;
            }
            8..=9 => shop.replay(&mut random).await,
            10..=13 => shop.query(&mut random).await,
            14..=18 => shop.pay(&mut random).await,
            _ => shop.resolve(&mut random).await,
        }
        if shop.ledger.lock().unwrap().transport_errors > lost_before {
            // The server is down: wait a little instead of spinning on refused connections.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The state a dialect reports for an order (collect `status`, pix `orderState`).
fn wire_state(order: &Order) -> i64 {
    match Dialect::of(&order.merchant_order_id) {
        Dialect::Collect => kassa_server::collect::status_code(order.status).into(),
        Dialect::Pix => kassa_server::pix::order_state(order.status).into(),
    }
}

/// Whether an order's latest callback body says what the order says.
fn check_callback_body(order: &Order, body: &str) {
    let data: Value = serde_json::from_str(body).unwrap();
    let order_no = order.order_no.as_str();
    let amount = |a: AmountMinor| Value::from(a.to_decimal_string());
    assert_eq!(data["amount"], amount(order.amount_minor), "{order_no}");
    match Dialect::of(&order.merchant_order_id) {
        Dialect::Collect => {
            assert_eq!(data["status"], wire_state(order), "{order_no}");
            assert_eq!(
                data["actualAmount"],
                amount(order.actual_amount_minor),
                "{order_no}"
            );
            assert_eq!(data["fee"], amount(order.fee_minor), "{order_no}");
        }
        Dialect::Pix => {
            assert_eq!(data["orderState"], wire_state(order), "{order_no}");
            assert_eq!(
                data["arrivalAmount"],
                amount(order.actual_amount_minor),
                "{order_no}"
            );
        }
    }
}

/// Whether an order in `status` has told its merchant (each dialect's rule).
fn calls_back(order: &Order) -> bool {
    match Dialect::of(&order.merchant_order_id) {
        Dialect::Collect => kassa_server::collect::notifies(order.status),
        Dialect::Pix => kassa_server::pix::notifies(order.status),
    }
}

async fn survives_sigkill_under_load(db: TestDatabase) {
    let seed = crash::seed("crash harness");
    let mut random = Random(seed);

    let dir = tempfile::tempdir().unwrap();
    let (eur_app, eur_key) = create_shop(&db.url, "EUR", &dir.path().join("eur"));
    let (brl_app, brl_key) = create_shop(&db.url, "BRL", &dir.path().join("brl"));
    let (brl_text, url) = (brl_app.to_string(), db.url.as_str());
    let set_pix = [
        "app", "set-pix", &brl_text, "--key", PIX_KEY, "--name", "Loja", "--city", "Recife",
    ];
    run_ok(kassa(&set_pix).args(["--database-url", url]));
    for app in [eur_app, brl_app] {
        let app = app.to_string();
        let basis_points = FEE_BASIS_POINTS.to_string();
        let set_fee = [
            "app",
            "set-fee",
            &app,
            "--basis-points",
            &basis_points,
            "--fixed",
            FEE_FIXED,
        ];
        run_ok(kassa(&set_fee).args(["--database-url", url]));
    }
    let fee_rule = FeeRule::new(FEE_BASIS_POINTS, AmountMinor::parse(FEE_FIXED).unwrap()).unwrap();
    let (notify_url, receiver) = start_receiver().await;

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
    ];
    let shop = Arc::new(Shop {
        base: format!("http://{listen}"),
        database_url: db.url.clone(),
        eur_app,
        eur_key,
        brl_app,
        brl_key,
        notify_url,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
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
        (250, 750, 200),
        (&args, dir.path()),
    )
    .await;
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
    let heard = std::mem::take(&mut *receiver.acknowledged.lock().unwrap());
    println!(
        "{KILLS} kills; {} creates, {} replays, {} queries, {} payment attempts, {} operator \
         resolutions, {} requests lost to kills; {} orders acknowledged, {} final states seen; \
         the merchant refused {} callbacks",
        ledger.creates,
        ledger.replays,
        ledger.queries,
        ledger.payments,
        ledger.resolutions,
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

    let mut orders = crash::all_orders(&store, eur_app).await;
    orders.extend(crash::all_orders(&store, brl_app).await);
    let mut by_id = HashMap::new();
    let mut numbers = HashSet::new();
    for order in &orders {
        assert!(
            numbers.insert(order.order_no.clone()),
            "{} twice",
            order.order_no
        );
        let id = order.merchant_order_id.clone();
        assert!(
            by_id.insert(id, order).is_none(),
            "order id {} twice",
            order.merchant_order_id
        );
    }
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
        if let Some((state, received, fee)) = ledger.final_seen.get(order_id) {
            assert_eq!(wire_state(order), *state, "{order_id} changed after final");
            let actual = order.actual_amount_minor.to_decimal_string();
            assert_eq!(actual, *received, "{order_id}");
            if Dialect::of(order_id) == Dialect::Collect {
                assert_eq!(order.fee_minor.to_decimal_string(), *fee, "{order_id}");
            }
        }
    }

    let mut counts: HashMap<(Dialect, OrderStatus), usize> = HashMap::new();
    let mut resolved_exceptions = 0;
    for order in &orders {
        let order_no = order.order_no.as_str();
        *counts
            .entry((Dialect::of(&order.merchant_order_id), order.status))
            .or_default() += 1;
        match order.status {
            OrderStatus::Succeeded => {
                assert_eq!(order.actual_amount_minor, order.amount_minor, "{order_no}");
                assert_eq!(order.fee_minor, fee_rule.fee_for(order.actual_amount_minor));
            }
            _ => assert_eq!(order.fee_minor, AmountMinor::ZERO, "{order_no}"),
        }
        let callbacks = store.callbacks_of_order(&order.order_no).await.unwrap();
        if !calls_back(order) {
            // Created, in progress, or (pix) an exception: the merchant has heard nothing
            // — unless a collect order went through an exception the operator resolved.
            assert!(
                callbacks.is_empty(),
                "{order_no} is {:?} but called back",
                order.status
            );
            continue;
        }
        assert!(!callbacks.is_empty(), "{order_no}: no callback");
        assert!(
            callbacks.len() <= 2,
            "{order_no}: {} callbacks",
            callbacks.len()
        );
        let acknowledged_bodies = heard.get(order_no).cloned().unwrap_or_default();
        for history in &callbacks {
            assert_eq!(
                history.callback.state,
                CallbackState::Delivered,
                "{order_no}"
            );
            assert!(
                history.attempts.iter().any(|a| a.acknowledged),
                "{order_no}"
            );
            assert!(
                acknowledged_bodies.contains(&history.callback.body),
                "{order_no}: the merchant never acknowledged {}",
                history.callback.body
            );
        }
        check_callback_body(order, &callbacks.last().unwrap().callback.body);
        if callbacks.len() == 2 {
            resolved_exceptions += 1;
        }
    }
    let count = |dialect, status| counts.get(&(dialect, status)).copied().unwrap_or(0);
    println!("{} orders stored: {counts:?}", orders.len());
    for dialect in [Dialect::Collect, Dialect::Pix] {
        assert!(
            count(dialect, OrderStatus::Succeeded) >= 5,
            "{dialect:?}: too few paid"
        );
        assert!(
            count(dialect, OrderStatus::Failed) >= 2,
            "{dialect:?}: too few failed"
        );
    }
    assert!(resolved_exceptions > 0, "no exception was resolved");
    // The books agree with the orders after every kill.
    common::assert_books_hold(&db.url);
    println!("{resolved_exceptions} exceptions resolved by the operator, each called back twice");
}

kassa_store::on_both_databases!(kassa_store::testing::database; survives_sigkill_under_load);
