//! Callback delivery end to end: a real dispatcher, a real HTTP receiver on loopback, and the
//! store on SQLite and PostgreSQL. Covers retries, the acknowledgement rule, the maximum age and
//! resend, two dispatchers sharing one database, SSRF at delivery, and both signatures — the
//! Standard Webhooks one checked by an independent implementation.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kassa_core::RetryPolicy;
use kassa_core::{
    AmountMinor, App, Currency, NewOrder, Order, OrderEvent, OrderIds, PaymentMethod, Secret,
};
use kassa_server::dialect::Dialects;
use kassa_server::dispatcher::{Dispatcher, DispatcherConfig};
use kassa_server::lifecycle::Lifecycle;
use kassa_server::notary::Notary;
use kassa_server::{ids, now_ms};
use kassa_signature::{SigningKey, verify_json};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{CallbackState, NewApp, SqlStore};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

fn dialects() -> &'static Dialects {
    static DIALECTS: OnceLock<Dialects> = OnceLock::new();
    DIALECTS.get_or_init(Dialects::standard)
}

/// Changes orders as the server does, signing callbacks with [`notary`].
fn lifecycle(store: &dyn kassa_store::Store) -> Lifecycle<'_> {
    Lifecycle {
        store,
        notary: notary(),
        dialects: dialects(),
    }
}

fn notary() -> &'static Notary {
    static NOTARY: OnceLock<Notary> = OnceLock::new();
    NOTARY.get_or_init(|| Notary::utc(SigningKey::generate().unwrap()))
}

/// What the receiver answers: for the n-th request (0-based) of a callback id.
type Script = Arc<dyn Fn(usize) -> (u16, &'static str, u64) + Send + Sync>;

#[derive(Clone, Debug)]
struct Received {
    id: String,
    at: Instant,
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct Log {
    requests: Vec<Received>,
    in_flight: HashSet<String>,
    overlaps: Vec<String>,
    /// The most requests this receiver answered at once.
    most_at_once: usize,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    log: Arc<Mutex<Log>>,
}

impl Receiver {
    async fn start(script: Script) -> Receiver {
        let log: Arc<Mutex<Log>> = Arc::default();
        let state = (log.clone(), script);
        async fn handle(
            State((log, script)): State<(Arc<Mutex<Log>>, Script)>,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, &'static str) {
            let id = headers["webhook-id"].to_str().unwrap().to_string();
            let n = {
                let mut log = log.lock().unwrap();
                if !log.in_flight.insert(id.clone()) {
                    log.overlaps.push(id.clone());
                }
                log.most_at_once = log.most_at_once.max(log.in_flight.len());
                let n = log.requests.iter().filter(|r| r.id == id).count();
                log.requests.push(Received {
                    id: id.clone(),
                    at: Instant::now(),
                    headers,
                    body,
                });
                n
            };
            let (status, reply, delay_ms) = script(n);
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            log.lock().unwrap().in_flight.remove(&id);
            (StatusCode::from_u16(status).unwrap(), reply)
        }
        let app = axum::Router::new()
            .route("/notify", post(handle))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, log }
    }

    fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().requests.clone()
    }
}

struct Setup {
    store: Arc<SqlStore>,
    app: App,
    _db: TestDatabase,
}

async fn setup(db: TestDatabase) -> Setup {
    let store = Arc::new(db.store().await);
    let created = store
        .create_merchant(
            "Shop",
            &[NewApp {
                currency: Currency::Eur,
                webhook_secret: Secret::new(kassa_signature::webhook::generate_secret()),
            }],
            None,
            1,
            None,
        )
        .await
        .unwrap();
    Setup {
        store,
        app: created.apps[0].clone(),
        _db: db,
    }
}

impl Setup {
    /// A paid order whose callback is queued to `url`.
    async fn settled_order(&self, merchant_order_id: &str, url: &str, event: OrderEvent) -> Order {
        let new = NewOrder {
            app_id: self.app.app_id,
            merchant_order_id: merchant_order_id.into(),
            amount_minor: AmountMinor(2_500),
            method: PaymentMethod::by_code("IDEAL_EUR").unwrap(),
            country: None,
            payer: None,
            subject: None,
            body: None,
            callback_url: None,
            callback_fail_url: None,
            notify_url: Some(url.into()),
            language: None,
            request_fingerprint: "fp".into(),
            dialect: "collect",
        };
        let now = now_ms();
        let ids: OrderIds = ids::new_order_ids(now);
        let mut order = Order::create(&self.app, new, ids, now, 60_000).unwrap();
        order.route_to("sandbox", "sandbox");
        self.store.insert_order(&order).await.unwrap();
        let event = match event {
            OrderEvent::Paid { received, .. } => OrderEvent::Paid {
                requested: order.amount_minor,
                received,
            },
            other => other,
        };
        lifecycle(self.store.as_ref())
            .apply_event(&order.order_no, &event, now_ms())
            .await
            .unwrap()
    }

    fn dispatcher(
        &self,
        config: DispatcherConfig,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let dispatcher =
            Arc::new(Dispatcher::new(self.store.clone(), config, Arc::new(Notify::new())).unwrap());
        let (stop, stopped) = watch::channel(false);
        // As `kassa serve` runs it: on a thread of its own with SQLite.
        let own_thread = !self.store.backend().calls_bound_to_runtime();
        let task = dispatcher.start(stopped, own_thread).unwrap();
        if own_thread {
            assert!(thread_named(kassa_server::dispatcher::THREAD));
            for lane in 1..kassa_server::dispatcher::lane_count() {
                assert!(thread_named(&lane_thread(lane)), "lane {lane}");
            }
        }
        (stop, task)
    }

    async fn state_of(&self, order: &Order) -> (CallbackState, Vec<kassa_store::Attempt>) {
        let mut history = self
            .store
            .callbacks_of_order(&order.order_no)
            .await
            .unwrap();
        assert_eq!(history.len(), 1);
        let h = history.remove(0);
        (h.callback.state, h.attempts)
    }

    /// Waits until every given order's callback reached `state` (or panics after `limit`).
    async fn wait_for(&self, orders: &[&Order], state: CallbackState, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let mut done = true;
            for order in orders {
                done &= self.state_of(order).await.0 == state;
            }
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "callbacks did not reach {state:?} in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `count` paid orders notifying `url`, their merchant ids `prefix` and a number.
    async fn paid_orders(&self, prefix: &str, count: usize, url: &str) -> Vec<Order> {
        let mut orders = Vec::with_capacity(count);
        for i in 0..count {
            let merchant_order_id = format!("{prefix}{i}");
            orders.push(self.settled_order(&merchant_order_id, url, paid()).await);
        }
        orders
    }

    /// Runs a dispatcher with `config` until every one of `orders`' callbacks is delivered
    /// (or panics after `limit`), then stops it.
    async fn deliver_all(&self, config: DispatcherConfig, orders: &[Order], limit: Duration) {
        let (stop, task) = self.dispatcher(config);
        let refs: Vec<&Order> = orders.iter().collect();
        self.wait_for(&refs, CallbackState::Delivered, limit).await;
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}

/// Whether this process has a thread called `name` (within a second: a new thread names
/// itself as it starts).
fn thread_named(name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    while kassa_store::scheduling::thread_dir(std::process::id(), name).is_none() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn lane_thread(lane: usize) -> String {
    format!("{}-{lane}", kassa_server::dispatcher::LANE_THREAD)
}

/// How long this process's thread called `name` has run, in nanoseconds (its scheduler's
/// count, exact where the CPU time in `stat` counts ticks); `None` where the kernel keeps no
/// such count.
fn ran_ns(name: &str) -> Option<u64> {
    let task = kassa_store::scheduling::thread_dir(std::process::id(), name).expect("thread");
    let schedstat = std::fs::read_to_string(task.join("schedstat")).ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

fn fast(allow_private: bool) -> DispatcherConfig {
    DispatcherConfig {
        retry: RetryPolicy {
            retry_interval_ms: 300,
            max_age_ms: 60_000,
        },
        request_timeout_ms: 2_000,
        idle_poll_ms: 50,
        allow_private_targets: allow_private,
        ..DispatcherConfig::default()
    }
}

fn paid() -> OrderEvent {
    OrderEvent::Paid {
        requested: AmountMinor(2_500),
        received: AmountMinor(2_500),
    }
}

async fn retries_until_acknowledged_then_stops(setup: Setup) {
    let failures = 3;
    let receiver = Receiver::start(Arc::new(move |n| match n {
        0 => (500, "boom", 0),
        1 => (200, "ok", 0),
        2 => (404, "success", 0),
        _ => (200, "success", 0),
    }))
    .await;
    let order = setup.settled_order("M1", &receiver.url, paid()).await;
    let (stop, task) = setup.dispatcher(fast(true));
    setup
        .wait_for(&[&order], CallbackState::Delivered, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await; // nothing more may arrive
    stop.send(true).unwrap();
    task.await.unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), failures + 1, "exactly N+1 attempts");
    for pair in requests.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(280),
            "retried after {gap:?}, before the interval"
        );
    }
    let ids: HashSet<&str> = requests.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "webhook-id is stable across retries");
    let (state, attempts) = setup.state_of(&order).await;
    assert_eq!(state, CallbackState::Delivered);
    let seen: Vec<(Option<i64>, bool)> = attempts
        .iter()
        .map(|a| (a.http_status, a.acknowledged))
        .collect();
    assert_eq!(
        seen,
        [
            (Some(500), false),
            (Some(200), false),
            (Some(404), false),
            (Some(200), true)
        ]
    );
    assert_eq!(attempts[0].response_excerpt.as_deref(), Some("boom"));

    // Both signatures verify: RSA by the platform key over the body, Standard Webhooks by an
    // independent implementation with the app's secret.
    let last = requests.last().unwrap();
    verify_json(notary().key().verifying_key(), &last.body).unwrap();
    let body: serde_json::Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(body["orderNo"], order.order_no.as_str());
    assert_eq!(body["status"], 2);
    assert_eq!(body["actualAmount"], "25.00");
    assert!(body["payTime"].is_string());
    let verifier = standardwebhooks::Webhook::new(setup.app.webhook_secret.expose()).unwrap();
    for request in &requests {
        verifier
            .verify(request.body.as_bytes(), &request.headers)
            .unwrap();
    }
    let wrong =
        standardwebhooks::Webhook::new(&kassa_signature::webhook::generate_secret()).unwrap();
    assert!(wrong.verify(last.body.as_bytes(), &last.headers).is_err());
}

async fn acknowledgement_rule(setup: Setup) {
    for (reply, status, acknowledged) in [
        ("SUCCESS ", 200, true),
        (" success\n", 201, true),
        ("Success", 204, false), // 204 carries no body, so no `success`
        ("ok", 200, false),
        ("success!", 200, false),
        ("success", 500, false),
        ("success", 302, false),
    ] {
        let receiver = Receiver::start(Arc::new(move |_| (status, reply, 0))).await;
        let order = setup
            .settled_order(
                &format!("M-{status}-{}", reply.trim()),
                &receiver.url,
                paid(),
            )
            .await;
        let (stop, task) = setup.dispatcher(DispatcherConfig {
            retry: RetryPolicy {
                retry_interval_ms: 60_000,
                max_age_ms: 600_000,
            },
            ..fast(true)
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while setup.state_of(&order).await.1.is_empty() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        let (state, attempts) = setup.state_of(&order).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].acknowledged, acknowledged, "{status} {reply:?}");
        let expected = if acknowledged {
            CallbackState::Delivered
        } else {
            CallbackState::Pending
        };
        assert_eq!(state, expected, "{status} {reply:?}");
    }
}

async fn max_age_marks_dead_and_resend_revives(setup: Setup) {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    let receiver = Receiver::start(Arc::new(move |_| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            (200, "success", 0)
        } else {
            (503, "down", 0)
        }
    }))
    .await;
    let order = setup
        .settled_order("M-dead", &receiver.url, OrderEvent::Expired)
        .await;
    let config = DispatcherConfig {
        retry: RetryPolicy {
            retry_interval_ms: 200,
            max_age_ms: 700,
        },
        ..fast(true)
    };
    let (stop, task) = setup.dispatcher(config.clone());
    setup
        .wait_for(&[&order], CallbackState::Dead, Duration::from_secs(10))
        .await;
    let (_, attempts) = setup.state_of(&order).await;
    assert!(
        (3..=6).contains(&attempts.len()),
        "{} attempts within 700 ms at 200 ms",
        attempts.len()
    );
    let before = receiver.requests().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.requests().len(),
        before,
        "a dead callback is not retried"
    );

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        setup
            .store
            .resend_latest_callback(&order.order_no, now_ms(), None)
            .await
            .unwrap()
            .is_some()
    );
    setup
        .wait_for(&[&order], CallbackState::Delivered, Duration::from_secs(10))
        .await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&receiver.requests().last().unwrap().body).unwrap();
    assert_eq!(
        (body["status"].as_i64(), body["errorMsg"].as_str()),
        (Some(3), Some("the order expired"))
    );
}

async fn two_dispatchers_share_the_work(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 30))).await;
    let orders = setup.paid_orders("M", 60, &receiver.url).await;
    let config = |node: &str| DispatcherConfig {
        node_id: node.into(),
        max_concurrency: 8,
        ..fast(true)
    };
    let (stop_a, task_a) = setup.dispatcher(config("node-a"));
    let (stop_b, task_b) = setup.dispatcher(config("node-b"));
    let refs: Vec<&Order> = orders.iter().collect();
    setup
        .wait_for(&refs, CallbackState::Delivered, Duration::from_secs(30))
        .await;
    stop_a.send(true).unwrap();
    stop_b.send(true).unwrap();
    task_a.await.unwrap();
    task_b.await.unwrap();

    let (requests, overlaps) = {
        let log = receiver.log.lock().unwrap();
        (log.requests.clone(), log.overlaps.clone())
    };
    assert!(
        overlaps.is_empty(),
        "sent concurrently by both: {overlaps:?}"
    );
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for r in &requests {
        *per_id.entry(r.id.as_str()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 60, "none lost");
    assert!(per_id.values().all(|&n| n == 1), "none sent twice");
    let mut nodes = HashSet::new();
    for order in &orders {
        let (_, attempts) = setup.state_of(order).await;
        nodes.insert(attempts[0].node.clone());
    }
    assert_eq!(nodes.len(), 2, "both nodes delivered: {nodes:?}");
}

/// With SQLite and more than one core, deliveries run on the dispatcher's lanes too: slots
/// take its thread and each lane in turn.
async fn deliveries_run_on_every_lane(setup: Setup) {
    let lanes = kassa_server::dispatcher::lane_count();
    if setup.store.backend().calls_bound_to_runtime() || lanes < 2 {
        eprintln!("skipped: the dispatcher has no lanes here ({lanes} core(s), or PostgreSQL)");
        return;
    }
    let (stop, task) = setup.dispatcher(fast(true));
    // The lanes started and, with nothing to deliver, sleep.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: Option<Vec<u64>> = (1..lanes).map(|lane| ran_ns(&lane_thread(lane))).collect();
    let Some(before) = before else {
        eprintln!("skipped: this kernel keeps no per-thread scheduler counts (schedstat)");
        stop.send(true).unwrap();
        task.await.unwrap();
        return;
    };
    // Slow answers: the slots are all busy at once, one per lane and more.
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 20))).await;
    let orders = setup.paid_orders("M-lane-", 40, &receiver.url).await;
    let refs: Vec<&Order> = orders.iter().collect();
    setup
        .wait_for(&refs, CallbackState::Delivered, Duration::from_secs(30))
        .await;
    for (lane, before) in (1..lanes).zip(before) {
        // An idle lane's thread sleeps (no timer, no connection): any time it ran is deliveries'.
        let ran = ran_ns(&lane_thread(lane)).unwrap_or(before) - before;
        assert!(ran > 0, "lane {lane} delivered nothing");
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(receiver.log.lock().unwrap().requests.len(), 40);
}

/// Callbacks given back because their endpoint was busy go when they are due again, not at the
/// next poll: a node whose last claim found nothing due has no other reason to look.
async fn callbacks_given_back_go_when_due_again(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 300))).await;
    let orders = setup.paid_orders("M-back-", 3, &receiver.url).await;
    // One at a time to the endpoint: two of the three wait, then go back; the poll is a minute.
    let config = DispatcherConfig {
        max_per_endpoint: 1,
        idle_poll_ms: 60_000,
        ..fast(true)
    };
    setup
        .deliver_all(config, &orders, Duration::from_secs(20))
        .await;
    assert_eq!(receiver.log.lock().unwrap().requests.len(), 3);
}

async fn private_targets_are_refused_at_delivery(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 0))).await;
    let literal = setup
        .settled_order("M-literal", &receiver.url, paid())
        .await;
    let by_name = setup
        .settled_order(
            "M-name",
            &receiver.url.replace("127.0.0.1", "localhost"),
            paid(),
        )
        .await;
    let (stop, task) = setup.dispatcher(DispatcherConfig {
        retry: RetryPolicy {
            retry_interval_ms: 60_000,
            max_age_ms: 600_000,
        },
        ..fast(false)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.state_of(&literal).await.1.is_empty() || setup.state_of(&by_name).await.1.is_empty()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    for order in [&literal, &by_name] {
        let (state, attempts) = setup.state_of(order).await;
        assert_eq!(state, CallbackState::Pending);
        let error = attempts[0].error.as_deref().unwrap();
        assert!(error.contains("loopback"), "{error}");
    }
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the private address"
    );

    // The same callbacks go through once private targets are allowed.
    setup
        .store
        .resend_latest_callback(&literal.order_no, now_ms(), None)
        .await
        .unwrap();
    setup
        .store
        .resend_latest_callback(&by_name.order_no, now_ms(), None)
        .await
        .unwrap();
    let (stop, task) = setup.dispatcher(fast(true));
    setup
        .wait_for(
            &[&literal, &by_name],
            CallbackState::Delivered,
            Duration::from_secs(10),
        )
        .await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// A port outside the operator's allowlist is refused at delivery too: nothing is sent.
async fn ports_outside_the_allowlist_are_refused_at_delivery(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 0))).await;
    let order = setup.settled_order("M-port", &receiver.url, paid()).await;
    let (stop, task) = setup.dispatcher(DispatcherConfig {
        allowed_ports: vec![443],
        ..fast(true)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.state_of(&order).await.1.is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    let (_, attempts) = setup.state_of(&order).await;
    let error = attempts[0].error.as_deref().unwrap();
    assert!(error.contains("port") && error.contains("443"), "{error}");
    assert!(receiver.requests().is_empty(), "nothing was sent");
}

/// A responsive endpoint with more callbacks than a node holds: each slot that finishes sends
/// the next one itself, and the node claims more while it does, yet the endpoint never gets
/// more than its share at once and every callback goes out once.
async fn a_busy_endpoint_gets_its_share_and_no_more(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 15))).await;
    let orders = setup.paid_orders("M-busy-", 90, &receiver.url).await;
    let config = DispatcherConfig {
        max_concurrency: 8,
        max_per_endpoint: 3,
        ..fast(true)
    };
    setup
        .deliver_all(config, &orders, Duration::from_secs(30))
        .await;
    let log = receiver.log.lock().unwrap();
    assert!(log.most_at_once <= 3, "{} at once", log.most_at_once);
    let ids: HashSet<&str> = log.requests.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((log.requests.len(), ids.len()), (90, 90), "each sent once");
}

/// One merchant's endpoint that never answers does not delay another's callbacks: each endpoint
/// gets a bounded share of the delivery slots (the rest of its backlog waits its turn).
async fn a_hanging_endpoint_does_not_delay_others(setup: Setup) {
    let hanging = Receiver::start(Arc::new(|_| (200, "success", 60_000))).await;
    let healthy = Receiver::start(Arc::new(|_| (200, "success", 0))).await;
    for i in 0..200 {
        setup
            .settled_order(&format!("M-hang-{i}"), &hanging.url, paid())
            .await;
    }
    let order = setup.settled_order("M-healthy", &healthy.url, paid()).await;
    let started = Instant::now();
    let (stop, task) = setup.dispatcher(fast(true));
    setup
        .wait_for(&[&order], CallbackState::Delivered, Duration::from_secs(10))
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the healthy callback took {took:?}"
    );
    let at_once = hanging.log.lock().unwrap().requests.len();
    assert!(
        at_once <= 8,
        "{at_once} requests hung at once at one endpoint"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Every forbidden class is refused at delivery too (the guard refuses before connecting, so no
/// packet leaves for these addresses). Creation-time refusal is tested in `collect_api.rs`.
async fn every_forbidden_class_is_refused_at_delivery(setup: Setup) {
    let targets = [
        ("http://127.0.0.2:9/n", "loopback"),
        ("http://[::1]:9/n", "loopback"),
        ("http://10.1.2.3/n", "private"),
        ("http://172.16.5.4/n", "private"),
        ("http://192.168.0.10/n", "private"),
        ("http://100.64.1.1/n", "shared"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("http://169.254.7.7/n", "link-local"),
        ("http://[fe80::1]/n", "link-local"),
        ("http://[fd00::1]/n", "unique-local"),
        ("http://224.0.0.1/n", "multicast"),
        ("http://[ff02::1]/n", "multicast"),
        ("http://0.0.0.0/n", "unspecified"),
        ("http://[::ffff:10.0.0.1]/n", "private"),
    ];
    let mut orders = Vec::new();
    for (i, (url, class)) in targets.iter().enumerate() {
        orders.push((
            setup.settled_order(&format!("F{i}"), url, paid()).await,
            *class,
        ));
    }
    let config = DispatcherConfig {
        retry: RetryPolicy {
            retry_interval_ms: 60_000,
            max_age_ms: 600_000,
        },
        ..fast(false)
    };
    let (stop, task) = setup.dispatcher(config);
    let deadline = Instant::now() + Duration::from_secs(10);
    for (order, class) in &orders {
        let attempts = loop {
            let (_, attempts) = setup.state_of(order).await;
            if !attempts.is_empty() {
                break attempts;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let error = attempts[0].error.as_deref().unwrap_or("");
        assert!(error.contains(class), "{class}: {error}");
        assert_eq!(attempts[0].http_status, None);
    }
    stop.send(true).unwrap();
    task.await.unwrap();
}

async fn orders_without_notify_url_or_not_settled_send_nothing(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 0))).await;
    let started = setup
        .settled_order("M-started", &receiver.url, OrderEvent::PayerStarted)
        .await;
    assert!(
        setup
            .store
            .callbacks_of_order(&started.order_no)
            .await
            .unwrap()
            .is_empty()
    );
    let exception = setup
        .settled_order(
            "M-exc",
            &receiver.url,
            OrderEvent::Paid {
                requested: AmountMinor(0),
                received: AmountMinor(100),
            },
        )
        .await;
    let (state, _) = setup.state_of(&exception).await;
    assert_eq!(
        state,
        CallbackState::Pending,
        "collect notifies exceptions too"
    );
}

/// A PIX order's callback arrives with the seed's body, `X-Sign` by the platform key over it,
/// and the Standard Webhooks headers.
async fn pix_callbacks_carry_x_sign(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 0))).await;
    let brl = setup
        .store
        .create_merchant(
            "Loja",
            &[NewApp {
                currency: Currency::Brl,
                webhook_secret: Secret::new(kassa_signature::webhook::generate_secret()),
            }],
            None,
            1,
            None,
        )
        .await
        .unwrap()
        .apps
        .remove(0);
    let new = NewOrder {
        app_id: brl.app_id,
        merchant_order_id: "PIX-1".into(),
        amount_minor: AmountMinor(1_234),
        method: PaymentMethod::by_code("PIX").unwrap(),
        country: None,
        payer: None,
        subject: None,
        body: None,
        callback_url: None,
        callback_fail_url: None,
        notify_url: Some(receiver.url.clone()),
        language: None,
        request_fingerprint: "fp".into(),
        dialect: "pix",
    };
    let mut order =
        Order::create(&brl, new, ids::new_order_ids(now_ms()), now_ms(), 60_000).unwrap();
    order.route_to("sandbox", "sandbox");
    setup.store.insert_order(&order).await.unwrap();
    let paid = OrderEvent::Paid {
        requested: AmountMinor(1_234),
        received: AmountMinor(1_234),
    };
    lifecycle(setup.store.as_ref())
        .apply_event(&order.order_no, &paid, now_ms())
        .await
        .unwrap();
    let limit = Duration::from_secs(10);
    setup
        .deliver_all(fast(true), std::slice::from_ref(&order), limit)
        .await;

    let request = receiver.requests().remove(0);
    let body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&request.body).unwrap();
    assert_eq!(
        serde_json::Value::Object(body.clone()),
        serde_json::json!({"appId": order.app_id.0, "serialNo": "PIX-1", "orderNo": order.order_no.as_str(), "amount": "12.34", "arrivalAmount": "12.34", "orderState": 20})
    );
    let x_sign = request.headers["x-sign"].to_str().unwrap();
    let canonical = kassa_signature::canonical_of_map(&body).unwrap();
    notary()
        .key()
        .verifying_key()
        .verify_base64(canonical.as_bytes(), x_sign)
        .unwrap();
    let verifier = standardwebhooks::Webhook::new(brl.webhook_secret.expose()).unwrap();
    verifier
        .verify(request.body.as_bytes(), &request.headers)
        .unwrap();
}

/// A rotated secret signs beside the new one until its time is up; then only the new one.
async fn a_rotated_secret_signs_until_it_retires(setup: Setup) {
    let receiver = Receiver::start(Arc::new(|_| (200, "success", 0))).await;
    let old = setup.app.webhook_secret.clone();
    let new = Secret::new(kassa_signature::webhook::generate_secret());
    let (app_id, now) = (setup.app.app_id, now_ms());
    let rotated = setup
        .store
        .rotate_webhook_secret(app_id, &new, now + 3_600_000, now, None);
    assert!(rotated.await.unwrap());
    let order = setup.settled_order("ROTATE-1", &receiver.url, paid()).await;
    let (stop, task) = setup.dispatcher(fast(true));
    setup
        .wait_for(&[&order], CallbackState::Delivered, Duration::from_secs(10))
        .await;
    let newest = |requests: Vec<Received>| requests.last().cloned().unwrap();
    let request = newest(receiver.requests());
    let signatures = request
        .headers
        .get("webhook-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    for secret in [&old, &new] {
        let verifier = standardwebhooks::Webhook::new(secret.expose()).unwrap();
        verifier
            .verify(request.body.as_bytes(), &request.headers)
            .unwrap();
    }
    // Retired: only the newest secret signs.
    let newer = Secret::new(kassa_signature::webhook::generate_secret());
    let retired = setup
        .store
        .rotate_webhook_secret(app_id, &newer, now - 1, now, None);
    assert!(retired.await.unwrap());
    let order = setup.settled_order("ROTATE-2", &receiver.url, paid()).await;
    setup
        .wait_for(&[&order], CallbackState::Delivered, Duration::from_secs(10))
        .await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let request = newest(receiver.requests());
    let verify = |secret: &Secret| {
        let verifier = standardwebhooks::Webhook::new(secret.expose()).unwrap();
        verifier
            .verify(request.body.as_bytes(), &request.headers)
            .is_ok()
    };
    assert!(
        verify(&newer) && !verify(&new),
        "the retired secret no longer signs"
    );
}

kassa_store::on_both_databases!(
    super::setup;
    retries_until_acknowledged_then_stops,
    acknowledgement_rule,
    max_age_marks_dead_and_resend_revives,
    two_dispatchers_share_the_work,
    deliveries_run_on_every_lane,
    callbacks_given_back_go_when_due_again,
    private_targets_are_refused_at_delivery,
    every_forbidden_class_is_refused_at_delivery,
    ports_outside_the_allowlist_are_refused_at_delivery,
    a_hanging_endpoint_does_not_delay_others,
    a_busy_endpoint_gets_its_share_and_no_more,
    orders_without_notify_url_or_not_settled_send_nothing,
    pix_callbacks_carry_x_sign,
    a_rotated_secret_signs_until_it_retires,
);
