//! The store conformance suite: every behaviour the server relies on, run against SQLite and
//! PostgreSQL alike. A new backend is done when this passes on it.

use kassa_core::{
    AmountLimits, AmountMinor, AppId, Currency, Order, OrderEvent, OrderNo, OrderStatus, Payer,
    PaymentMethod, Personal, Secret,
};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{
    AfterAttempt, Attempt, Backlog, CallbackState, FinishedAttempt, InsertOutcome, NewApp,
    NewCallback, OrderFilter, RoutingAttempt, SqlStore, Store, StoreError, UpstreamOrder,
};
use std::sync::Arc;

fn order(app_id: AppId, merchant_order_id: &str, order_no: u64) -> Order {
    Order {
        order_no: OrderNo::from_random(order_no),
        app_id,
        merchant_order_id: merchant_order_id.to_string(),
        currency: Currency::Eur,
        amount_minor: AmountMinor(5_000),
        method: PaymentMethod::by_code("CASHIER").unwrap(),
        chosen_method: None,
        country: Some("528".into()),
        payer: Some(Payer {
            name: Personal::new("Maria Jansen"),
            phone: Personal::new("+31612345678"),
            email: Personal::new("maria@example.nl"),
            partner_user_id: "u-1".into(),
        }),
        subject: Some("Order ✓ 42".into()),
        body: None,
        callback_url: Some("https://shop.example/ok".into()),
        callback_fail_url: Some("https://shop.example/fail".into()),
        notify_url: None,
        // Stored and read back as the tag kassa speaks.
        language: Some(kassa_core::Locale::PtBr),
        status: OrderStatus::Created,
        actual_amount_minor: AmountMinor::ZERO,
        fee_minor: AmountMinor::ZERO,
        paid_at_ms: None,
        error_msg: None,
        request_fingerprint: format!("fp-{merchant_order_id}"),
        create_reply: r#"{"orderId":"x"}"#.into(),
        cashier_token: format!("tok-{order_no}"),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_001_800_000,
        pix_code: None,
        dialect: "collect".into(),
        rail: "sandbox".into(),
        channel: "sandbox".into(),
    }
}

fn apps(currencies: &[Currency]) -> Vec<NewApp> {
    currencies
        .iter()
        .map(|&currency| NewApp {
            currency,
            webhook_secret: Secret::new(format!("whsec_{}", currency.code())),
        })
        .collect()
}

async fn eur_app(store: &SqlStore) -> AppId {
    let created = store
        .create_merchant("Shop", &apps(&[Currency::Eur]), None, 1, None)
        .await
        .unwrap();
    created.apps[0].app_id
}

async fn migrations_are_idempotent_and_concurrent(db: TestDatabase) {
    let a = SqlStore::connect(&db.url).await.unwrap();
    let b = SqlStore::connect(&db.url).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    a.migrate().await.unwrap();
    assert!(a.list_merchants().await.unwrap().is_empty());
}

async fn first_setting_wins(db: TestDatabase) {
    let store = db.store().await;
    assert_eq!(store.setting("k").await.unwrap(), None);
    assert_eq!(store.setting_or_insert("k", "one", 1).await.unwrap(), "one");
    assert_eq!(store.setting_or_insert("k", "two", 2).await.unwrap(), "one");
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("one"));
}

async fn settings_can_be_replaced(db: TestDatabase) {
    let store = db.store().await;
    store.set_setting("zone", "UTC", 1, None).await.unwrap();
    store
        .set_setting("zone", "Europe/Amsterdam", 2, None)
        .await
        .unwrap();
    assert_eq!(
        store.setting("zone").await.unwrap().as_deref(),
        Some("Europe/Amsterdam")
    );
    assert_eq!(
        store.setting_or_insert("zone", "x", 3).await.unwrap(),
        "Europe/Amsterdam"
    );
}

async fn merchants_are_listed_with_their_own_apps(db: TestDatabase) {
    let store = db.store().await;
    let a = store
        .create_merchant("A", &apps(&[Currency::Eur, Currency::Usd]), None, 1, None)
        .await
        .unwrap();
    let b = store
        .create_merchant("B", &apps(&[Currency::Brl]), None, 2, None)
        .await
        .unwrap();
    let c = store
        .create_merchant("C", &[], None, 3, None)
        .await
        .unwrap();
    let listed = store.list_merchants().await.unwrap();
    assert_eq!(listed, vec![a, b, c]);
}

async fn merchants_and_apps(db: TestDatabase) {
    let store = db.store().await;
    let created = store
        .create_merchant(
            "Shop",
            &apps(&[Currency::Eur, Currency::Usd]),
            Some("PEM"),
            7,
            None,
        )
        .await
        .unwrap();
    assert_eq!(created.apps.len(), 2);
    let (eur, usd) = (&created.apps[0], &created.apps[1]);
    assert!(
        eur.app_id.0 >= 1001,
        "app ids start at 1001: {:?}",
        eur.app_id
    );
    assert_ne!(eur.app_id, usd.app_id);
    assert_eq!((eur.currency, usd.currency), (Currency::Eur, Currency::Usd));
    assert_eq!(eur.public_key.as_deref(), Some("PEM"));
    assert_eq!(eur.webhook_secret.expose(), "whsec_EUR");
    assert!(
        store
            .set_webhook_secret(eur.app_id, &Secret::new("whsec_NEW"), 9)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .app(eur.app_id)
            .await
            .unwrap()
            .unwrap()
            .webhook_secret
            .expose(),
        "whsec_NEW"
    );
    assert!(
        !store
            .set_webhook_secret(AppId(999_999), &Secret::new("x"), 9)
            .await
            .unwrap()
    );
    let second = store
        .create_merchant("Other", &apps(&[Currency::Eur]), None, 8, None)
        .await
        .unwrap();
    assert_ne!(second.merchant.id, created.merchant.id);

    let listed = store.list_merchants().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].merchant, created.merchant);
    assert_eq!(listed[0].apps.len(), 2);

    assert!(
        store
            .set_app_public_key(usd.app_id, "NEW", 9, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .app(usd.app_id)
            .await
            .unwrap()
            .unwrap()
            .public_key
            .as_deref(),
        Some("NEW")
    );
    assert!(
        !store
            .set_app_public_key(AppId(999_999), "X", 9, None)
            .await
            .unwrap()
    );
    assert_eq!(store.app(AppId(999_999)).await.unwrap(), None);
    let owner = store.merchant_of_app(usd.app_id).await.unwrap().unwrap();
    assert_eq!(
        (owner.id, owner.name.as_str()),
        (created.merchant.id, "Shop")
    );
    assert_eq!(store.merchant_of_app(AppId(999_999)).await.unwrap(), None);

    let receiver = kassa_core::pix::PixReceiver::new("+5511987654321", "Loja", "Rio").unwrap();
    assert!(
        store
            .set_app_pix(eur.app_id, Some(&receiver), 9, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.app(eur.app_id).await.unwrap().unwrap().pix,
        Some(receiver)
    );
    assert!(store.set_app_pix(eur.app_id, None, 9, None).await.unwrap());
    assert_eq!(store.app(eur.app_id).await.unwrap().unwrap().pix, None);

    let navy = kassa_core::BrandColour::parse("#1F2A44").unwrap();
    assert!(
        store
            .set_app_brand(eur.app_id, Some(&navy), 9, None)
            .await
            .unwrap()
    );
    let colour = store.app(eur.app_id).await.unwrap().unwrap().brand_colour;
    assert_eq!(colour.as_ref().map(|c| c.as_str()), Some("#1f2a44"));
    assert!(
        store
            .set_app_brand(eur.app_id, None, 9, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.app(eur.app_id).await.unwrap().unwrap().brand_colour,
        None
    );
    assert!(
        !store
            .set_app_brand(AppId(999_999), None, 9, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_app_pix(AppId(999_999), None, 9, None)
            .await
            .unwrap()
    );

    let limits = AmountLimits::new(AmountMinor(500), AmountMinor(9_000));
    assert!(
        store
            .set_app_limits(eur.app_id, Some(limits), 10, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .app(eur.app_id)
            .await
            .unwrap()
            .unwrap()
            .limits_override,
        Some(limits)
    );
    assert!(
        store
            .set_app_limits(eur.app_id, None, 11, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .app(eur.app_id)
            .await
            .unwrap()
            .unwrap()
            .limits_override,
        None
    );
}

async fn orders_round_trip(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let original = order(app, "M1", 1);
    assert_eq!(
        store.insert_order(&original).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        store
            .order_by_no(&original.order_no)
            .await
            .unwrap()
            .as_ref(),
        Some(&original)
    );
    assert_eq!(
        store
            .order_by_merchant_order_id(app, "M1")
            .await
            .unwrap()
            .as_ref(),
        Some(&original)
    );
    assert_eq!(
        store
            .order_by_cashier_token("tok-1")
            .await
            .unwrap()
            .as_ref(),
        Some(&original)
    );
    assert_eq!(
        store.order_by_merchant_order_id(app, "M2").await.unwrap(),
        None
    );
    assert_eq!(
        store.order_by_no(&OrderNo::from_random(99)).await.unwrap(),
        None
    );
    // The version alone, by both keys, as the whole order has it.
    let version = Some(original.version());
    let by_no = store.order_version_by_no(&original.order_no).await.unwrap();
    assert_eq!(by_no, version);
    let by_id = store.order_version_by_merchant_order_id(app, "M1").await;
    assert_eq!(by_id.unwrap(), version);
    let unknown = store.order_version_by_merchant_order_id(app, "M2").await;
    assert_eq!(unknown.unwrap(), None);
    let unknown = store.order_version_by_no(&OrderNo::from_random(99)).await;
    assert_eq!(unknown.unwrap(), None);

    let mut bare = order(app, "M-bare", 2);
    bare.payer = None;
    bare.country = None;
    bare.subject = None;
    bare.method = PaymentMethod::by_code("IDEAL_EUR").unwrap();
    store.insert_order(&bare).await.unwrap();
    assert_eq!(store.order_by_no(&bare.order_no).await.unwrap(), Some(bare));
}

async fn orders_of_an_app_come_in_pages(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    for (id, number) in [("M3", 30), ("M1", 10), ("M2", 20)] {
        store.insert_order(&order(app, id, number)).await.unwrap();
    }
    let ids = |orders: Vec<Order>| -> Vec<String> {
        orders.into_iter().map(|o| o.merchant_order_id).collect()
    };
    let first = store.orders_of_app(app, None, 2).await.unwrap();
    let last_seen = first.last().unwrap().order_no.clone();
    assert_eq!(ids(first), ["M1", "M2"]);
    let rest = store.orders_of_app(app, Some(&last_seen), 2).await.unwrap();
    assert_eq!(ids(rest), ["M3"]);
    let other = AppId(app.0 + 1000);
    assert!(
        store
            .orders_of_app(other, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn duplicate_merchant_order_id_returns_the_original(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let original = order(app, "M1", 1);
    store.insert_order(&original).await.unwrap();
    let mut retry = order(app, "M1", 2);
    retry.amount_minor = AmountMinor(1);
    match store.insert_order(&retry).await.unwrap() {
        InsertOutcome::Existing(existing) => assert_eq!(*existing, original),
        other => panic!("expected the existing order, got {other:?}"),
    }
    assert_eq!(store.order_by_no(&retry.order_no).await.unwrap(), None);
    // The same merchant order id in another app is another order.
    let other_app = eur_app(&store).await;
    assert_eq!(
        store
            .insert_order(&order(other_app, "M1", 3))
            .await
            .unwrap(),
        InsertOutcome::Inserted
    );
}

async fn taken_order_number_is_reported(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    store.insert_order(&order(app, "M1", 1)).await.unwrap();
    let mut clash = order(app, "M2", 1);
    clash.cashier_token = "other".into();
    assert!(matches!(
        store.insert_order(&clash).await,
        Err(StoreError::OrderNoTaken)
    ));
    assert_eq!(
        store.order_by_merchant_order_id(app, "M2").await.unwrap(),
        None
    );
    // A taken page token is drawn again too: both ids are drawn together.
    let mut token_clash = order(app, "M3", 2);
    token_clash.cashier_token = store
        .order_by_merchant_order_id(app, "M1")
        .await
        .unwrap()
        .unwrap()
        .cashier_token;
    assert!(matches!(
        store.insert_order(&token_clash).await,
        Err(StoreError::OrderNoTaken)
    ));
}

async fn concurrent_inserts_create_one_order(db: TestDatabase) {
    let store = Arc::new(db.store().await);
    let app = eur_app(&store).await;
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_order(&order(app, "SAME", 100 + i)).await })
        })
        .collect();
    let mut inserted = 0;
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap().unwrap() {
            InsertOutcome::Inserted => inserted += 1,
            InsertOutcome::Existing(o) => winners.push(o.order_no),
        }
    }
    assert_eq!(inserted, 1);
    let stored = store
        .order_by_merchant_order_id(app, "SAME")
        .await
        .unwrap()
        .unwrap();
    assert!(winners.iter().all(|no| *no == stored.order_no));
}

/// Many inserts at once (on SQLite they share commits, in one statement each): new orders,
/// retries of one order id, and one taken order number each get their own right answer.
async fn mixed_concurrent_inserts_each_get_their_answer(db: TestDatabase) {
    let store = Arc::new(db.store().await);
    let app = eur_app(&store).await;
    store
        .insert_order(&order(app, "TAKEN-BY", 1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    let mut with_others = None;
    for round in 0..4u64 {
        for i in 0..40u64 {
            let store = store.clone();
            let mut new = match i {
                // One order number that is already taken, under a fresh order id.
                0 if round == 0 => order(app, "CLASH", 1),
                // Four retries of one order id, each with its own number.
                1..=4 => order(app, "TWICE", 1_000 + round * 100 + i),
                _ => order(app, &format!("N{round}-{i}"), 10_000 + round * 100 + i),
            };
            if new.order_no == OrderNo::from_random(1) {
                new.cashier_token = "clash-token".into();
            }
            if (round, i) == (2, 5) {
                // Read back below: written with others (one statement on PostgreSQL, one
                // commit on SQLite), every field as given.
                with_others = Some(new.clone());
            }
            tasks.push(tokio::spawn(async move {
                let id = new.merchant_order_id.clone();
                (id, store.insert_order(&new).await)
            }));
        }
    }
    let mut twice_inserted = 0;
    for task in tasks {
        let (id, outcome) = task.await.unwrap();
        match id.as_str() {
            "CLASH" => assert!(
                matches!(outcome, Err(StoreError::OrderNoTaken)),
                "{outcome:?}"
            ),
            "TWICE" => {
                if matches!(outcome.unwrap(), InsertOutcome::Inserted) {
                    twice_inserted += 1;
                }
            }
            _ => assert!(
                matches!(outcome, Ok(InsertOutcome::Inserted)),
                "{id}: {outcome:?}"
            ),
        }
    }
    assert_eq!(twice_inserted, 1);
    let with_others = with_others.unwrap();
    assert_eq!(
        store.order_by_no(&with_others.order_no).await.unwrap(),
        Some(with_others)
    );
    assert_eq!(
        store
            .order_by_merchant_order_id(app, "CLASH")
            .await
            .unwrap(),
        None
    );
    let all = store.orders_of_app(app, None, 1_000).await.unwrap();
    // The taken number's owner, one TWICE, 35 new orders per round and 3 more where the first
    // round had its clash.
    assert_eq!(all.len(), 1 + 1 + 35 * 4 + 3);
}

/// `order` paid in full at `at_ms`, with a fee of `fee_minor`.
fn paid_in_full(order: &Order, at_ms: i64, fee_minor: i64) -> Order {
    let mut paid = order.clone();
    let received = paid.amount_minor;
    paid.apply(
        &OrderEvent::Paid {
            requested: received,
            received,
        },
        at_ms,
    )
    .unwrap();
    paid.fee_minor = AmountMinor(fee_minor);
    paid
}

/// Payments, refused changes and creates at the same moment: SQLite's writer commits them in
/// shared transactions, and each must still be all or nothing and get its own answer.
async fn concurrent_changes_each_get_their_answer(db: TestDatabase) {
    use kassa_core::ledger::Journal;
    let store = Arc::new(db.store().await);
    let app = eur_app(&store).await;
    let mut paid_orders = Vec::new();
    for i in 0..60u64 {
        let created = order(app, &format!("C-{i}"), 100 + i);
        store.insert_order(&created).await.unwrap();
        paid_orders.push(paid_in_full(&created, 20, 100));
    }
    // Every third order's success journal is in the books already: its change must fail
    // whole, amid the others' changes.
    let mut refused = Vec::new();
    for paid in paid_orders.iter().step_by(3) {
        let journal = Journal::of_success(paid, 20, 25).unwrap();
        assert!(store.post_journal(&journal).await.unwrap());
        refused.push(paid.order_no.clone());
    }
    let mut tasks = Vec::new();
    for (i, paid) in paid_orders.iter().enumerate() {
        let (paying, paid) = (store.clone(), paid.clone());
        tasks.push(tokio::spawn(async move {
            let journal = Journal::of_success(&paid, 20, 25).unwrap();
            let callback = callback_for(&paid, &format!("cb-{i}"), 20);
            let changed = paying
                .transition_order(
                    &paid,
                    OrderStatus::Created,
                    Some(&callback),
                    Some(&journal),
                    None,
                )
                .await;
            (paid.order_no.clone(), changed.map_err(|e| e.to_string()))
        }));
        // Creates in the same batches, one of them for an app that does not exist.
        let creating = store.clone();
        let app = if i == 30 { AppId(999_999) } else { app };
        let new = order(app, &format!("N-{i}"), 1_000 + i as u64);
        tasks.push(tokio::spawn(async move {
            let outcome = creating.insert_order(&new).await;
            (
                new.order_no.clone(),
                outcome.map(|_| true).map_err(|e| e.to_string()),
            )
        }));
    }
    for task in tasks {
        let (order_no, answer) = task.await.unwrap();
        let stored = store.order_by_no(&order_no).await.unwrap();
        if refused.contains(&order_no) {
            assert!(answer.is_err(), "{order_no:?}: {answer:?}");
            let stored = stored.unwrap();
            assert_eq!(stored.status, OrderStatus::Created);
            assert!(store.order_events(&order_no).await.unwrap().is_empty());
            assert!(
                store
                    .callbacks_of_order(&order_no)
                    .await
                    .unwrap()
                    .is_empty()
            );
        } else if order_no == OrderNo::from_random(1_030) {
            assert!(answer.is_err(), "an order of no app: {answer:?}");
            assert_eq!(stored, None);
        } else if order_no.as_str() < OrderNo::from_random(1_000).as_str() {
            assert_eq!(answer, Ok(true), "{order_no:?}");
            assert_eq!(stored.unwrap().status, OrderStatus::Succeeded);
            assert_eq!(store.order_events(&order_no).await.unwrap().len(), 1);
            assert_eq!(store.callbacks_of_order(&order_no).await.unwrap().len(), 1);
            assert_eq!(store.journals_of_order(&order_no).await.unwrap().len(), 1);
        } else {
            assert_eq!(answer, Ok(true), "{order_no:?}");
            assert_eq!(stored.unwrap().status, OrderStatus::Created);
        }
    }
}

async fn orders_need_an_existing_app(db: TestDatabase) {
    let store = db.store().await;
    assert!(
        store
            .insert_order(&order(AppId(424_242), "M1", 1))
            .await
            .is_err()
    );
}

fn callback_for(order: &Order, id: &str, at_ms: i64) -> NewCallback {
    NewCallback {
        callback_id: id.to_string(),
        order_no: order.order_no.clone(),
        app_id: order.app_id,
        url: "https://shop.example/notify".into(),
        body: format!(r#"{{"orderNo":"{}"}}"#, order.order_no),
        headers: vec![("X-Sign".into(), "abc".into())],
        created_at_ms: at_ms,
    }
}

fn attempt(node: &str, acknowledged: bool) -> Attempt {
    Attempt {
        attempt_no: 0,
        started_at_ms: 1,
        latency_ms: 12,
        http_status: Some(if acknowledged { 200 } else { 500 }),
        error: None,
        response_excerpt: Some(if acknowledged { "success" } else { "boom" }.into()),
        acknowledged,
        node: node.into(),
    }
}

/// Moves a stored order through an event and writes its callback; returns the new order.
async fn settle(store: &SqlStore, order: &Order, event: OrderEvent, id: &str, at_ms: i64) -> Order {
    let mut next = order.clone();
    next.apply(&event, at_ms).unwrap();
    assert!(
        store
            .transition_order(
                &next,
                order.status,
                Some(&callback_for(&next, id, at_ms)),
                None,
                None
            )
            .await
            .unwrap()
    );
    next
}

async fn transitions_write_their_callback_atomically(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let created = order(app, "M1", 1);
    store.insert_order(&created).await.unwrap();
    let failed = settle(
        &store,
        &created,
        OrderEvent::Failed {
            reason: "declined".into(),
        },
        "msg_1",
        100,
    )
    .await;
    let stored = store.order_by_no(&created.order_no).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Failed);
    assert_eq!(stored.error_msg.as_deref(), Some("declined"));
    let history = store.callbacks_of_order(&created.order_no).await.unwrap();
    assert_eq!(history.len(), 1);
    let callback = &history[0].callback;
    assert_eq!(
        (
            callback.state,
            callback.attempts,
            callback.next_attempt_at_ms
        ),
        (CallbackState::Pending, 0, 100)
    );
    assert_eq!(
        callback.headers,
        vec![("X-Sign".to_string(), "abc".to_string())]
    );

    // A stale writer (still believing the order is Created) changes nothing, callback included.
    let mut stale = created.clone();
    stale
        .apply(
            &OrderEvent::Paid {
                requested: created.amount_minor,
                received: created.amount_minor,
            },
            200,
        )
        .unwrap();
    assert!(
        !store
            .transition_order(
                &stale,
                OrderStatus::Created,
                Some(&callback_for(&stale, "msg_2", 200)),
                None,
                None
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.order_by_no(&created.order_no).await.unwrap().unwrap(),
        {
            let mut expected = failed.clone();
            expected.create_reply = created.create_reply.clone();
            expected
        }
    );
    assert_eq!(
        store
            .callbacks_of_order(&created.order_no)
            .await
            .unwrap()
            .len(),
        1
    );
    // A transition without a callback (no notifyUrl, or not a notifying state).
    let another = order(app, "M2", 2);
    store.insert_order(&another).await.unwrap();
    let mut started = another.clone();
    started.apply(&OrderEvent::PayerStarted, 300).unwrap();
    assert!(
        store
            .transition_order(&started, OrderStatus::Created, None, None, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .callbacks_of_order(&another.order_no)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The bench's backlog (one statement per database) holds the very bodies its plain client
/// posts, each the size of a real callback's.
async fn the_bench_backlog_holds_the_plain_clients_bodies(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let (url, now_ms) = ("http://127.0.0.1:9/unused", 1_000);
    store
        .bench_queue_callbacks(app, url, 3, now_ms)
        .await
        .unwrap();
    let mut claimed = store
        .claim_due_callbacks(now_ms, 10, "node", now_ms + 60_000)
        .await
        .unwrap();
    claimed.sort_by(|a, b| a.order_no.as_str().cmp(b.order_no.as_str()));
    assert_eq!(claimed.len(), 3);
    for (i, callback) in claimed.iter().enumerate() {
        let expected = kassa_store::bench::bench_callback_body(i as i64);
        assert_eq!(callback.body, expected);
        let data: serde_json::Value = serde_json::from_str(&callback.body).unwrap();
        assert_eq!(data["orderNo"], format!("8{i:015}"));
        assert_eq!(data["orderId"], format!("backlog-{i}"));
        assert_eq!(data["sign"].as_str().unwrap().len(), 344);
        assert!(callback.body.len() > 450, "{}", callback.body.len());
    }
}

/// What the metrics read at each scrape: due, dead and the oldest undelivered callback, and
/// orders in exception.
async fn the_backlog_counts_what_waits(db: TestDatabase) {
    let store = db.store().await;
    assert_eq!(store.backlog(0).await.unwrap(), Backlog::default());
    let app = eur_app(&store).await;
    let first = order(app, "M1", 1);
    store.insert_order(&first).await.unwrap();
    settle(&store, &first, OrderEvent::Expired, "msg_1", 100).await;
    let second = order(app, "M2", 2);
    store.insert_order(&second).await.unwrap();
    let reason = "unconfirmed".to_string();
    settle(
        &store,
        &second,
        OrderEvent::RailException { reason },
        "msg_2",
        300,
    )
    .await;
    let seen = store.backlog(200).await.unwrap();
    let expected = Backlog {
        callbacks_due: 1, // msg_2 is due only at 300
        callbacks_dead: 0,
        oldest_pending_callback_ms: Some(100),
        orders_in_exception: 1,
    };
    assert_eq!(seen, expected);
    assert_eq!(store.backlog(300).await.unwrap().callbacks_due, 2);
    // msg_1 given up: dead, no longer pending or due.
    assert_eq!(claim(&store, 300, "a", 1_000).await, 2);
    assert!(finish(&store, "a", false, AfterAttempt::Dead { at_ms: 400 }).await);
    let seen = store.backlog(500).await.unwrap();
    // msg_2 is being attempted (leased): still due until it is acknowledged.
    assert_eq!((seen.callbacks_due, seen.callbacks_dead), (1, 1));
    assert_eq!(
        seen.oldest_pending_callback_ms,
        Some(300),
        "msg_2, leased, is still undelivered"
    );
    let pool = store.pool_status();
    assert!(
        pool.max >= 1 && pool.open <= pool.max && pool.idle <= pool.open,
        "{pool:?}"
    );
}

fn upstream_channel(id: &str, priority: i32) -> kassa_core::Channel {
    use kassa_core::{Channel, ChannelKind, MethodRoute, Upstream};
    Channel {
        channel_id: id.into(),
        kind: ChannelKind::CollectUpstream,
        upstream: Some(Upstream {
            base_url: "https://psp.example".into(),
            app_id: 1001,
            merchant_key: Secret::new("sealed:v1:AAAA"),
            platform_public_key: "-----BEGIN PUBLIC KEY-----".into(),
        }),
        // In the order the store gives them back: by method code.
        methods: vec![
            MethodRoute {
                method: PaymentMethod::by_code("CASHIER").unwrap(),
                upstream_in_bank_code: "CASHIER".into(),
                upstream_pay_type: "CASHIER".into(),
            },
            MethodRoute {
                method: PaymentMethod::by_code("IDEAL_EUR").unwrap(),
                upstream_in_bank_code: "IDEAL".into(),
                upstream_pay_type: "BANK_TRANSFER".into(),
            },
        ],
        currencies: vec![Currency::Eur, Currency::Usd],
        limits: Some(AmountLimits::new(AmountMinor(100), AmountMinor(50_000))),
        priority,
        weight: 70,
        enabled: true,
        connect_timeout_ms: 2_000,
        request_timeout_ms: 10_000,
        created_at_ms: 5,
        updated_at_ms: 5,
    }
}

/// Channels round-trip with their methods; an id is taken once; an update replaces settings
/// and methods together and keeps the creation time.
async fn channels_round_trip(db: TestDatabase) {
    let store = db.store().await;
    assert!(store.channels().await.unwrap().is_empty());
    let second = upstream_channel("acme-b", 20);
    let first = upstream_channel("acme-a", 10);
    assert!(store.insert_channel(&second).await.unwrap());
    assert!(store.insert_channel(&first).await.unwrap());
    assert!(
        !store.insert_channel(&first).await.unwrap(),
        "the id is taken"
    );
    assert_eq!(store.channel("acme-a").await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.channels().await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    let mut sandbox = upstream_channel("sandbox", 0);
    sandbox.kind = kassa_core::ChannelKind::Sandbox;
    sandbox.upstream = None;
    sandbox.methods.clear();
    sandbox.limits = None;
    assert!(store.insert_channel(&sandbox).await.unwrap());
    assert_eq!(store.channel("sandbox").await.unwrap(), Some(sandbox));

    let mut changed = first.clone();
    changed.enabled = false;
    changed.methods.truncate(1);
    changed.methods[0].upstream_in_bank_code = "IDEAL2".into();
    changed.updated_at_ms = 9;
    changed.created_at_ms = 999; // not written by an update
    assert!(store.update_channel(&changed, None).await.unwrap());
    let read = store.channel("acme-a").await.unwrap().unwrap();
    assert_eq!(read.created_at_ms, 5);
    changed.created_at_ms = 5;
    assert_eq!(read, changed);
    assert!(
        !store
            .update_channel(&upstream_channel("nobody", 1), None)
            .await
            .unwrap()
    );
    assert_eq!(store.channel("nobody").await.unwrap(), None);
}

/// How many callbacks `owner` leases at `now_ms` (until `until_ms`).
async fn claim(store: &SqlStore, now_ms: i64, owner: &str, until_ms: i64) -> usize {
    store
        .claim_due_callbacks(now_ms, 10, owner, until_ms)
        .await
        .unwrap()
        .len()
}

/// Records an attempt of `msg_1` by `owner`; whether it still held the lease.
async fn finish(store: &SqlStore, owner: &str, acknowledged: bool, after: AfterAttempt) -> bool {
    let attempt = attempt(owner, acknowledged);
    store
        .finish_attempt("msg_1", owner, &attempt, after)
        .await
        .unwrap()
}

/// A lease given back without an attempt: offered again at the given time, no attempt counted,
/// and only by the node that holds it.
async fn released_callbacks_come_back_later_without_an_attempt(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let created = order(app, "M1", 1);
    store.insert_order(&created).await.unwrap();
    settle(&store, &created, OrderEvent::Expired, "msg_1", 100).await;
    assert_eq!(claim(&store, 100, "a", 1_000).await, 1);
    // Another node cannot release what it does not hold.
    store
        .release_callbacks("b", &[("msg_1".to_string(), 150)])
        .await
        .unwrap();
    assert_eq!(claim(&store, 200, "c", 2_000).await, 0, "still leased to a");
    store
        .release_callbacks("a", &[("msg_1".to_string(), 400)])
        .await
        .unwrap();
    assert_eq!(
        claim(&store, 399, "c", 2_000).await,
        0,
        "not before its new time"
    );
    let again = store
        .claim_due_callbacks(400, 10, "c", 2_000)
        .await
        .unwrap();
    assert_eq!(
        (again.len(), again[0].attempts),
        (1, 0),
        "no attempt was counted"
    );
}

async fn leases_attempts_and_retries(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let created = order(app, "M1", 1);
    store.insert_order(&created).await.unwrap();
    settle(&store, &created, OrderEvent::Expired, "msg_1", 100).await;

    assert_eq!(claim(&store, 99, "a", 1_000).await, 0, "not due yet");
    assert_eq!(claim(&store, 100, "a", 1_000).await, 1);
    assert_eq!(claim(&store, 500, "b", 2_000).await, 0, "leased to a");
    // a fails; the retry is due at 700.
    assert!(finish(&store, "a", false, AfterAttempt::RetryAt { at_ms: 700 }).await);
    assert_eq!(claim(&store, 699, "b", 2_000).await, 0);
    let again = store
        .claim_due_callbacks(700, 10, "b", 2_000)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    // b dies holding the lease; after it expires, c takes over and delivers.
    assert_eq!(claim(&store, 1_999, "c", 5_000).await, 0);
    assert_eq!(claim(&store, 2_000, "c", 5_000).await, 1);
    assert!(finish(&store, "c", true, AfterAttempt::Delivered { at_ms: 2_100 }).await);
    // b wakes up late: its attempt is recorded, the state it wanted is not.
    assert!(!finish(&store, "b", false, AfterAttempt::RetryAt { at_ms: 9_000 }).await);

    let history = store.callbacks_of_order(&created.order_no).await.unwrap();
    let callback = &history[0].callback;
    assert_eq!(
        (callback.state, callback.delivered_at_ms, callback.attempts),
        (CallbackState::Delivered, Some(2_100), 3)
    );
    let nodes: Vec<(i64, &str, bool)> = history[0]
        .attempts
        .iter()
        .map(|a| (a.attempt_no, a.node.as_str(), a.acknowledged))
        .collect();
    assert_eq!(nodes, [(1, "a", false), (2, "c", true), (3, "b", false)]);
    assert_eq!(
        history[0].attempts[1].response_excerpt.as_deref(),
        Some("success")
    );
    assert!(
        store
            .claim_due_callbacks(100_000, 10, "d", 200_000)
            .await
            .unwrap()
            .is_empty(),
        "delivered is final"
    );
}

/// A batch of attempts: each recorded, a callback's second attempt numbered after its first,
/// states written only where the lease is still held; a batch that cannot be recorded whole
/// leaves nothing behind.
async fn attempts_are_recorded_in_batches(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    for (i, id) in ["msg_1", "msg_2", "msg_3"].into_iter().enumerate() {
        let created = order(app, &format!("M{i}"), i as u64 + 1);
        store.insert_order(&created).await.unwrap();
        settle(&store, &created, OrderEvent::Expired, id, 100).await;
    }
    assert_eq!(claim(&store, 100, "a", 1_000).await, 3);
    let finished = |id: &str, acknowledged, after| FinishedAttempt {
        callback_id: id.to_string(),
        attempt: attempt("a", acknowledged),
        after,
    };
    let batch = [
        finished("msg_1", true, AfterAttempt::Delivered { at_ms: 200 }),
        finished("msg_2", false, AfterAttempt::RetryAt { at_ms: 700 }),
        // msg_1's lease went with its first attempt: recorded, its state left alone.
        finished("msg_1", false, AfterAttempt::RetryAt { at_ms: 900 }),
    ];
    let kept = store.finish_attempts("a", &batch).await.unwrap();
    assert_eq!(kept, [true, true, false]);
    let history = |order_no: u64| {
        let store = &store;
        async move {
            let order_no = OrderNo::from_random(order_no);
            store.callbacks_of_order(&order_no).await.unwrap().remove(0)
        }
    };
    let first = history(1).await;
    let numbers: Vec<(i64, bool)> = first
        .attempts
        .iter()
        .map(|a| (a.attempt_no, a.acknowledged))
        .collect();
    assert_eq!(numbers, [(1, true), (2, false)]);
    assert_eq!(
        (first.callback.state, first.callback.delivered_at_ms),
        (CallbackState::Delivered, Some(200))
    );
    let second = history(2).await.callback;
    assert_eq!(
        (second.state, second.next_attempt_at_ms, second.attempts),
        (CallbackState::Pending, 700, 1)
    );
    // An unknown callback fails the batch: msg_3's attempt is not kept either.
    let broken = [
        finished("msg_3", true, AfterAttempt::Delivered { at_ms: 300 }),
        finished("nope", true, AfterAttempt::Delivered { at_ms: 300 }),
    ];
    assert!(store.finish_attempts("a", &broken).await.is_err());
    let third = history(3).await;
    assert_eq!(
        (
            third.callback.state,
            third.callback.attempts,
            third.attempts.len()
        ),
        (CallbackState::Pending, 0, 0)
    );
    assert_eq!(
        store.finish_attempts("a", &broken[..1]).await.unwrap(),
        [true]
    );
}

async fn dead_callbacks_can_be_resent(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let created = order(app, "M1", 1);
    store.insert_order(&created).await.unwrap();
    settle(&store, &created, OrderEvent::Expired, "msg_1", 100).await;
    store
        .claim_due_callbacks(100, 10, "a", 1_000)
        .await
        .unwrap();
    store
        .finish_attempt(
            "msg_1",
            "a",
            &attempt("a", false),
            AfterAttempt::Dead { at_ms: 150 },
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_due_callbacks(10_000, 10, "a", 20_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.callback_counts().await.unwrap(),
        [(CallbackState::Dead, 1)]
    );

    assert_eq!(
        store
            .resend_latest_callback(&created.order_no, 5_000, None)
            .await
            .unwrap()
            .as_deref(),
        Some("msg_1")
    );
    let claimed = store
        .claim_due_callbacks(5_000, 10, "a", 6_000)
        .await
        .unwrap();
    assert_eq!(
        (
            claimed[0].state,
            claimed[0].first_due_at_ms,
            claimed[0].dead_at_ms
        ),
        (CallbackState::Pending, 5_000, None)
    );
    let none = order(app, "M2", 2);
    store.insert_order(&none).await.unwrap();
    assert_eq!(
        store
            .resend_latest_callback(&none.order_no, 5_000, None)
            .await
            .unwrap(),
        None
    );
}

async fn concurrent_claims_are_disjoint(db: TestDatabase) {
    let store = Arc::new(db.store().await);
    let app = eur_app(&store).await;
    for i in 0..40u64 {
        let o = order(app, &format!("M{i}"), i);
        store.insert_order(&o).await.unwrap();
        settle(&store, &o, OrderEvent::Expired, &format!("msg_{i}"), 100).await;
    }
    let tasks: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..10 {
                    let batch = store
                        .claim_due_callbacks(100, 3, &format!("node{n}"), 1_000)
                        .await
                        .unwrap();
                    mine.extend(batch.into_iter().map(|c| c.callback_id));
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "a callback was claimed by two nodes");
    assert_eq!(total, 40, "every due callback is claimed");
}

async fn expiry_scan_and_chosen_method(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let mut due = Vec::new();
    for (i, expires_at_ms) in [(1u64, 1_000i64), (2, 2_000), (3, 9_000)] {
        let mut o = order(app, &format!("M{i}"), i);
        o.expires_at_ms = expires_at_ms;
        store.insert_order(&o).await.unwrap();
        due.push(o);
    }
    // A started order expires too; a final one never shows up.
    let mut started = due[1].clone();
    started
        .choose_method(PaymentMethod::by_code("IDEAL_EUR").unwrap(), 10)
        .unwrap();
    assert!(
        store
            .transition_order(&started, OrderStatus::Created, None, None, None)
            .await
            .unwrap()
    );
    let stored = store.order_by_no(&started.order_no).await.unwrap().unwrap();
    assert_eq!(stored.chosen_method.map(|m| m.code), Some("IDEAL_EUR"));
    settle(
        &store,
        &due[0],
        OrderEvent::Failed { reason: "x".into() },
        "msg_0",
        20,
    )
    .await;

    let expired = store.expired_orders(2_000, 10).await.unwrap();
    assert_eq!(expired, [due[1].order_no.clone()]);
    assert_eq!(store.expired_orders(10_000, 10).await.unwrap().len(), 2);
    assert_eq!(store.expired_orders(10_000, 1).await.unwrap().len(), 1);
}

async fn fee_rules(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    assert_eq!(store.fee_rule_for(app, "IDEAL_EUR").await.unwrap(), None);
    let any = kassa_core::FeeRule::new(100, AmountMinor(10)).unwrap();
    let ideal = kassa_core::FeeRule::new(250, AmountMinor(0)).unwrap();
    assert!(
        store
            .set_fee_rule(app, "*", Some(any), 1, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_fee_rule(app, "IDEAL_EUR", Some(any), 1, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_fee_rule(app, "IDEAL_EUR", Some(ideal), 2, None)
            .await
            .unwrap(),
        "replaces"
    );
    assert_eq!(
        store.fee_rule_for(app, "IDEAL_EUR").await.unwrap(),
        Some(ideal)
    );
    assert_eq!(store.fee_rule_for(app, "EPS_EUR").await.unwrap(), Some(any));
    assert_eq!(store.fee_rules(app).await.unwrap().len(), 2);
    assert!(
        store
            .set_fee_rule(app, "IDEAL_EUR", None, 3, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.fee_rule_for(app, "IDEAL_EUR").await.unwrap(),
        Some(any)
    );
    assert!(
        !store
            .set_fee_rule(AppId(999_999), "*", Some(any), 1, None)
            .await
            .unwrap()
    );
}

/// An order's upstream row is saved (and replaced) with the order's rail and channel, listed for
/// reconciliation while the order is open and due, and hides the order from the expiry scan;
/// routing attempts come back in order.
async fn upstream_orders_and_routing_attempts(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let mut placed = order(app, "M-up", 1);
    placed.expires_at_ms = 1_000;
    let local = order(app, "M-local", 2);
    store.insert_order(&placed).await.unwrap();
    store.insert_order(&local).await.unwrap();
    let mut upstream = UpstreamOrder {
        order_no: placed.order_no.clone(),
        channel_id: "acme-a".into(),
        upstream_order_no: None,
        next_check_at_ms: 5_000,
        checks: 0,
        created_at_ms: 10,
        updated_at_ms: 10,
    };
    store
        .save_upstream(&upstream, "collect-upstream", None)
        .await
        .unwrap();
    assert_eq!(
        store
            .expired_orders(1_000_000_000_000_000, 10)
            .await
            .unwrap(),
        std::slice::from_ref(&local.order_no),
        "reconciliation, not the expiry scan, settles upstream orders"
    );
    let attempt = |attempt_no: i64, channel_id: &str, outcome: &str| RoutingAttempt {
        attempt_no,
        channel_id: channel_id.into(),
        outcome: outcome.into(),
        detail: format!("{outcome} at {channel_id}"),
        latency_ms: 12,
        at_ms: 40 + attempt_no,
    };
    let second = attempt(2, "acme-b", "created");
    let first = attempt(1, "acme-a", "unavailable");
    upstream.channel_id = "acme-b".into();
    upstream.upstream_order_no = Some("U-1".into());
    store
        .save_upstream(&upstream, "collect-upstream", Some(&second))
        .await
        .unwrap();
    let moved = store.order_by_no(&placed.order_no).await.unwrap().unwrap();
    assert_eq!(
        (moved.rail.as_str(), moved.channel.as_str()),
        ("collect-upstream", "acme-b")
    );
    assert_eq!(
        store.upstream_order(&placed.order_no).await.unwrap(),
        Some(upstream.clone())
    );
    assert!(
        store
            .upstream_orders_due(4_999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.upstream_orders_due(5_000, 10).await.unwrap(),
        [upstream.clone()]
    );
    assert_eq!(store.upstream_orders_open().await.unwrap(), 1);
    store
        .reschedule_upstream(&placed.order_no, 9_000, 1, 20)
        .await
        .unwrap();
    assert!(
        store
            .upstream_orders_due(8_999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.upstream_orders_due(9_000, 10).await.unwrap()[0].checks,
        1
    );
    // A final order is no longer followed.
    settle(
        &store,
        &moved,
        OrderEvent::Failed { reason: "x".into() },
        "msg_up",
        30,
    )
    .await;
    assert!(
        store
            .upstream_orders_due(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.upstream_orders_open().await.unwrap(), 0);

    store
        .add_routing_attempt(&placed.order_no, &first)
        .await
        .unwrap();
    store
        .add_routing_attempt(&placed.order_no, &first)
        .await
        .unwrap();
    assert_eq!(
        store.routing_attempts(&placed.order_no).await.unwrap(),
        [first, second]
    );
    assert!(
        store
            .routing_attempts(&local.order_no)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A success journal is written with the change it records, only once per order; the books then
/// hold and show what the merchant is owed; a journal that cannot be written takes the change
/// with it.
async fn journals_post_with_their_change(db: TestDatabase) {
    use kassa_core::ledger::Journal;
    let store = db.store().await;
    let app = eur_app(&store).await;
    let created = order(app, "L-1", 1);
    store.insert_order(&created).await.unwrap();
    let mut started = created.clone();
    started.apply(&OrderEvent::PayerStarted, 10).unwrap();
    assert!(
        store
            .transition_order(&started, OrderStatus::Created, None, None, None)
            .await
            .unwrap()
    );
    let paid = paid_in_full(&started, 20, 105);
    let journal = Journal::of_success(&paid, 20, 25).unwrap();
    assert!(
        store
            .transition_order(&paid, OrderStatus::InProgress, None, Some(&journal), None)
            .await
            .unwrap()
    );
    let check = store.ledger_check().await.unwrap();
    assert!(check.holds(), "{check:?}");
    assert_eq!(check.apps[0].pending_minor, 5_000 - 105);
    assert_eq!(
        store.fees_of_app(app).await.unwrap(),
        [("EUR".to_string(), 105)]
    );
    let balances = store.balances(Some(app)).await.unwrap();
    assert_eq!(
        balances,
        [(
            format!("app:{}:pending", app.0),
            "EUR".to_string(),
            -(5_000 - 105)
        )]
    );

    // The same journal again (a second success of one order) cannot be written: the change it
    // came with is not made either.
    let second = order(app, "L-2", 2);
    store.insert_order(&second).await.unwrap();
    let mut failed = second.clone();
    failed
        .apply(&OrderEvent::Failed { reason: "x".into() }, 30)
        .unwrap();
    assert!(
        store
            .transition_order(&failed, OrderStatus::Created, None, Some(&journal), None)
            .await
            .is_err()
    );
    let still = store.order_by_no(&second.order_no).await.unwrap().unwrap();
    assert_eq!(still.status, OrderStatus::Created);
    assert!(store.ledger_check().await.unwrap().holds());

    // Settlement: due from its time on, posted once however many nodes race for it.
    assert!(store.settlements_due(24, 10).await.unwrap().is_empty());
    let due = store.settlements_due(25, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].app_id, due[0].net_minor), (app, 5_000 - 105));
    let settlement = Journal::settlement(
        &due[0].journal_id,
        (app, due[0].currency),
        due[0].net_minor,
        30,
    )
    .unwrap();
    let other_node = SqlStore::connect(&db.url).await.unwrap();
    let (a, b) = tokio::join!(
        store.post_journal(&settlement),
        other_node.post_journal(&settlement)
    );
    let posted = [a, b].into_iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(posted, 1, "exactly one node settles it");
    assert!(
        store
            .settlements_due(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let check = store.ledger_check().await.unwrap();
    assert!(check.holds(), "{check:?}");
    assert_eq!(
        (check.apps[0].pending_minor, check.apps[0].available_minor),
        (0, 5_000 - 105)
    );
    assert_eq!(
        store
            .success_terms(app)
            .await
            .unwrap()
            .settlement_delay_days,
        1
    );
    assert!(store.set_settlement_delay_days(app, 3, None).await.unwrap());
    assert_eq!(
        store
            .success_terms(app)
            .await
            .unwrap()
            .settlement_delay_days,
        3
    );
}

/// The database holds the books too, whatever writes to it: a journal that does not balance,
/// an entry added to a written journal, a change or a removal are all refused.
async fn the_database_refuses_to_break_the_books(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let entry = |journal: &str, no: i64, account: &str, currency: &str, amount: i64| {
        format!(
            "INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor) \
             VALUES ('{journal}', {no}, '{account}', '{currency}', {amount});"
        )
    };
    let journal = |journal: &str| {
        format!(
            "INSERT INTO ledger_journals (journal_id, kind, app_id, currency, posted_at_ms) \
             VALUES ('{journal}', 'success', {}, 'EUR', 1);",
            app.0
        )
    };
    let write = |statements: Vec<String>| {
        let pool = pool.clone();
        async move {
            // No pragma: the entries' key to their journal is declared deferred, on SQLite too.
            let mut tx = pool.begin().await.unwrap();
            for statement in statements {
                if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                {
                    return Err(e.to_string());
                }
            }
            tx.commit().await.map_err(|e| e.to_string())
        }
    };
    let pending = format!("app:{}:pending", app.0);
    let refused = [
        (
            "unbalanced",
            vec![
                entry("j1", 1, "platform:fees", "EUR", 5),
                entry("j1", 2, &pending, "EUR", -4),
                journal("j1"),
            ],
        ),
        (
            "one entry",
            vec![entry("j2", 1, "platform:fees", "EUR", 1), journal("j2")],
        ),
        (
            "two currencies",
            vec![
                entry("j3", 1, "platform:fees", "EUR", 5),
                entry("j3", 2, &pending, "USD", -5),
                journal("j3"),
            ],
        ),
        (
            "no journal",
            vec![
                entry("j4", 1, "platform:fees", "EUR", 5),
                entry("j4", 2, &pending, "EUR", -5),
            ],
        ),
    ];
    for (case, statements) in refused {
        let error = write(statements).await.expect_err(case);
        assert!(
            error.contains("ledger")
                || error.contains("FOREIGN KEY")
                || error.contains("foreign key"),
            "{case}: {error}"
        );
    }
    write(vec![
        entry("ok", 1, "platform:fees", "EUR", 5),
        entry("ok", 2, &pending, "EUR", -5),
        journal("ok"),
    ])
    .await
    .unwrap();
    for (case, statement) in [
        ("a third entry", entry("ok", 3, "platform:fees", "EUR", 1)),
        (
            "a change",
            "UPDATE ledger_entries SET amount_minor = 6 WHERE journal_id = 'ok' AND entry_no = 1"
                .to_string(),
        ),
        (
            "a removal",
            "DELETE FROM ledger_entries WHERE journal_id = 'ok'".to_string(),
        ),
        (
            "a changed journal",
            "UPDATE ledger_journals SET app_id = 1 WHERE journal_id = 'ok'".to_string(),
        ),
        (
            "a removed journal",
            "DELETE FROM ledger_journals WHERE journal_id = 'ok'".to_string(),
        ),
    ] {
        let error = write(vec![statement]).await.expect_err(case);
        assert!(error.contains("ledger"), "{case}: {error}");
    }
    let check = store.ledger_check().await.unwrap();
    assert!(
        check.currencies_unbalanced.is_empty() && check.journals_unbalanced.is_empty(),
        "{check:?}"
    );
}

/// A channel's orders of a day (opened that day, or the day before and paid in it), and the
/// reconciliation runs that replace each other.
async fn channel_days_and_reconciliation_runs(db: TestDatabase) {
    use kassa_core::reconciliation::DifferenceKind;
    use kassa_store::{ReconciliationDifference, ReconciliationRun};
    let store = db.store().await;
    let app = eur_app(&store).await;
    let day_ms = 86_400_000;
    let (from, to) = (10 * day_ms, 11 * day_ms);
    let mut opened = Vec::new();
    for (i, (channel, created_at_ms, paid_at_ms)) in [
        ("acme", from + 5, None),           // opened that day
        ("acme", from - 5, Some(from + 1)), // the day before, paid that day
        ("acme", from - 5, None),           // the day before, not paid
        ("acme", to, None),                 // the next day
        ("other", from + 5, None),          // another channel
    ]
    .into_iter()
    .enumerate()
    {
        let mut placed = order(app, &format!("C-{i}"), 100 + i as u64);
        if let Some(paid_at_ms) = paid_at_ms {
            placed.status = OrderStatus::Succeeded;
            placed.actual_amount_minor = placed.amount_minor;
            placed.paid_at_ms = Some(paid_at_ms);
        }
        store.insert_order(&placed).await.unwrap();
        let row = UpstreamOrder {
            order_no: placed.order_no.clone(),
            channel_id: channel.into(),
            upstream_order_no: None,
            next_check_at_ms: i64::MAX,
            checks: 0,
            created_at_ms,
            updated_at_ms: created_at_ms,
        };
        store
            .save_upstream(&row, "collect-upstream", None)
            .await
            .unwrap();
        opened.push(placed.order_no);
    }
    let day = store
        .channel_orders_between("acme", (from, to), None, 10)
        .await
        .unwrap();
    let mut expected = vec![opened[0].clone(), opened[1].clone()];
    expected.sort();
    assert_eq!(
        day.iter().map(|o| o.order_no.clone()).collect::<Vec<_>>(),
        expected
    );
    let paged = store
        .channel_orders_between("acme", (from, to), Some(&expected[0]), 10)
        .await
        .unwrap();
    assert_eq!(paged.len(), 1);

    let run = |day: &str| ReconciliationRun {
        channel_id: "acme".into(),
        day: day.into(),
        mode: "report".into(),
        orders_compared: 2,
        ran_at_ms: 1,
    };
    let difference = |id: &str, kind| ReconciliationDifference {
        upstream_order_id: id.into(),
        order_no: None,
        kind,
        kassa: "no such order".into(),
        upstream: "succeeded 7.00".into(),
    };
    let two = [
        difference("x-1", DifferenceKind::MissingAtKassa),
        difference("x-2", DifferenceKind::MissingAtKassa),
    ];
    store
        .save_reconciliation(&run("2026-11-20"), &two)
        .await
        .unwrap();
    store
        .save_reconciliation(&run("2026-11-21"), &two[..1])
        .await
        .unwrap();
    let counts = store.reconciliation_differences().await.unwrap();
    assert_eq!(
        counts,
        [("acme".to_string(), "missing_at_kassa".to_string(), 3)]
    );
    // A run again replaces the day's last one.
    store
        .save_reconciliation(&run("2026-11-20"), &[])
        .await
        .unwrap();
    let counts = store.reconciliation_differences().await.unwrap();
    assert_eq!(
        counts,
        [("acme".to_string(), "missing_at_kassa".to_string(), 1)]
    );
}

/// Users and the audit log: one e-mail per user, every change with its audit entry, and an
/// audit log nobody can edit.
async fn users_and_their_audit_log(db: TestDatabase) {
    use kassa_core::user::{NewUser, Role};
    use kassa_store::AuditEntry;
    let store = db.store().await;
    let merchant = store
        .create_merchant("Shop", &[], None, 1, None)
        .await
        .unwrap()
        .merchant
        .id;
    let entry = |action: &str| AuditEntry {
        at_ms: 5,
        actor: "cli:ops".into(),
        action: action.into(),
        target: String::new(),
        before: None,
        after: Some("{}".into()),
        source: "cli".into(),
    };
    let admin = NewUser::new("Ops@PSP.example", Role::OperatorAdmin, None).unwrap();
    let added = store
        .add_user(&admin, "$argon2id$hash", &entry("user.add"))
        .await
        .unwrap();
    assert_eq!(
        (added.email.as_str(), added.role, added.disabled),
        ("ops@psp.example", Role::OperatorAdmin, false)
    );
    let again = store
        .add_user(&admin, "$argon2id$other", &entry("user.add"))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let dev = NewUser::new("dev@shop.example", Role::MerchantDeveloper, Some(merchant)).unwrap();
    store
        .add_user(&dev, "$argon2id$dev", &entry("user.add"))
        .await
        .unwrap();
    assert!(
        store
            .set_user_disabled(added.user_id, true, &entry("user.disable"))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_password_hash(
                added.user_id,
                "$argon2id$new",
                &entry("user.reset-password")
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_user_disabled(999, true, &entry("user.disable"))
            .await
            .unwrap()
    );
    let found = store
        .user_by_email(" OPS@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.disabled, found.password_hash.expose()),
        (true, "$argon2id$new")
    );
    assert!(
        !format!("{found:?}").contains("ops@psp"),
        "the e-mail is masked in Debug"
    );
    assert_eq!(store.users().await.unwrap().len(), 2);
    let log = store.audit_entries(10).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.reset-password",
            "user.disable",
            "user.add",
            "user.add"
        ]
    );
    assert_eq!(log[3].target, format!("user:{}", added.user_id));

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    for statement in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let refused = sqlx::raw_sql(statement).execute(&pool).await;
        assert!(
            refused.unwrap_err().to_string().contains("audit"),
            "{statement}"
        );
    }
    assert_eq!(store.audit_entries(10).await.unwrap(), log);
}

/// Sessions live until idle too long or past their end, not for a disabled user, and end when
/// signed out or when their user is disabled or given a new password.
async fn sessions_end_when_they_should(db: TestDatabase) {
    use kassa_core::user::{NewUser, Role};
    use kassa_store::{AuditEntry, Session};
    let store = db.store().await;
    let entry = AuditEntry {
        at_ms: 1,
        actor: "cli:ops".into(),
        action: "user.add".into(),
        target: String::new(),
        before: None,
        after: None,
        source: "cli".into(),
    };
    let new = NewUser::new("ops@psp.example", Role::OperatorAdmin, None).unwrap();
    let user = store.add_user(&new, "$argon2id$h", &entry).await.unwrap();
    let session = |token: &str| Session {
        token_hash: token.into(),
        user_id: user.user_id,
        created_at_ms: 1_000,
        last_seen_at_ms: 1_000,
        idle_ms: 100,
        ends_at_ms: 1_250,
        source: "127.0.0.1".into(),
    };
    for token in ["a", "b", "c"] {
        store
            .sign_in(&session(token), Some(7), &entry)
            .await
            .unwrap();
    }
    let signed_in = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signed_in.totp_last_step, Some(7));
    store
        .sign_in_failed(user.user_id, (6, 5_000), &entry)
        .await
        .unwrap();
    let failed = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((failed.failed_sign_ins, failed.locked_until_ms), (6, 5_000));
    assert!(
        store
            .set_totp_secret(user.user_id, Some("sealed"), &entry)
            .await
            .unwrap()
    );
    let enrolled = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            enrolled.totp_secret.as_ref().map(|s| s.expose()),
            enrolled.totp_last_step
        ),
        (Some("sealed"), None)
    );
    let (alive, owner) = store.live_session("a", 1_090).await.unwrap().unwrap();
    assert_eq!(
        (alive.last_seen_at_ms, owner.user_id),
        (1_090, user.user_id)
    );
    assert!(
        store.live_session("a", 1_180).await.unwrap().is_some(),
        "the idle clock restarted"
    );
    assert!(
        store.live_session("b", 1_100).await.unwrap().is_none(),
        "idle too long"
    );
    assert!(
        store.live_session("a", 1_250).await.unwrap().is_none(),
        "past its end"
    );
    assert!(store.live_session("nobody", 1_001).await.unwrap().is_none());
    assert!(store.end_session("c").await.unwrap());
    assert!(!store.end_session("c").await.unwrap());
    store.sign_in(&session("d"), None, &entry).await.unwrap();
    assert!(
        store
            .set_user_disabled(user.user_id, true, &entry)
            .await
            .unwrap()
    );
    assert!(store.live_session("d", 1_001).await.unwrap().is_none());
    assert_eq!(
        store.end_sessions_of(user.user_id).await.unwrap(),
        0,
        "disabling ended them"
    );
}

/// The back office's reads: filters, search, keyset pages newest first, the timeline, the
/// day's counts, and callbacks that need a look.
async fn the_back_office_finds_orders(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let mut made = Vec::new();
    for i in 0..7u64 {
        let mut new = order(app, &format!("B{i}"), 100 + i);
        // Two orders per millisecond: pages must cut between equal times too.
        new.created_at_ms += (i / 2) as i64;
        new.amount_minor = AmountMinor(1_000 * (i as i64 + 1));
        store.insert_order(&new).await.unwrap();
        made.push(new);
    }
    let everything = OrderFilter::default();
    let mut seen = Vec::new();
    let mut before: Option<(i64, OrderNo)> = None;
    loop {
        let key = before.as_ref().map(|(ms, no)| (*ms, no));
        let page = store.search_orders(&everything, key, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|o| (o.created_at_ms, o.order_no.clone()));
        seen.extend(page.into_iter().map(|o| o.merchant_order_id));
    }
    let mut expected: Vec<&Order> = made.iter().collect();
    expected.sort_by(|a, b| (b.created_at_ms, &b.order_no).cmp(&(a.created_at_ms, &a.order_no)));
    let expected: Vec<&str> = expected
        .iter()
        .map(|o| o.merchant_order_id.as_str())
        .collect();
    assert_eq!(seen, expected, "newest first, each once");
    assert_eq!(seen.len(), 7);
    assert_eq!(store.count_orders(&everything, 100).await.unwrap(), 7);
    assert_eq!(
        store.count_orders(&everything, 3).await.unwrap(),
        3,
        "counted up to its bound"
    );
    let find = |filter: OrderFilter| {
        let store = &store;
        async move {
            let found = store.search_orders(&filter, None, 100).await.unwrap();
            found
                .into_iter()
                .map(|o| o.merchant_order_id)
                .collect::<Vec<_>>()
        }
    };
    let by_amount = OrderFilter {
        amount_min_minor: Some(2_000),
        amount_max_minor: Some(3_000),
        ..OrderFilter::default()
    };
    assert_eq!(find(by_amount).await, ["B2", "B1"]);
    for search in ["B3", made[3].order_no.as_str()] {
        let filter = OrderFilter {
            search: Some(search.into()),
            ..OrderFilter::default()
        };
        assert_eq!(find(filter).await, ["B3"], "{search}");
    }
    let by_email = OrderFilter {
        search: Some("maria@example.nl".into()),
        ..OrderFilter::default()
    };
    assert_eq!(find(by_email).await.len(), 7);
    let nobody = OrderFilter {
        app_ids: Some(Vec::new()),
        ..OrderFilter::default()
    };
    assert!(
        find(nobody).await.is_empty(),
        "an empty scope reaches nothing"
    );
    let elsewhere = OrderFilter {
        app_ids: Some(vec![AppId(app.0 + 999)]),
        ..OrderFilter::default()
    };
    assert!(find(elsewhere).await.is_empty());
    let within = OrderFilter {
        created_from_ms: Some(made[2].created_at_ms),
        created_to_ms: Some(made[4].created_at_ms),
        currency: Some("EUR".into()),
        ..OrderFilter::default()
    };
    let mut within = find(within).await;
    within.sort();
    assert_eq!(within, ["B2", "B3"]);

    // A status change is on the timeline, and the order is found by its new status.
    let failed = OrderEvent::Failed {
        reason: "card declined".into(),
    };
    let started = settle(
        &store,
        &made[0],
        OrderEvent::PayerStarted,
        "cb-b0",
        1_700_000_001_000,
    )
    .await;
    settle(&store, &started, failed, "cb-b0-2", 1_700_000_002_000).await;
    let events = store.order_events(&made[0].order_no).await.unwrap();
    let steps: Vec<_> = events
        .iter()
        .map(|e| (e.from, e.to, e.detail.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (OrderStatus::Created, OrderStatus::InProgress, None),
            (
                OrderStatus::InProgress,
                OrderStatus::Failed,
                Some("card declined".into())
            ),
        ]
    );
    let failed = OrderFilter {
        status: Some(OrderStatus::Failed),
        ..OrderFilter::default()
    };
    assert_eq!(find(failed).await, ["B0"]);
    let day = (1_699_999_000_000, 1_700_001_000_000);
    let stats = store.order_stats(Some(&[app]), day).await.unwrap();
    let count = |status| {
        stats
            .iter()
            .filter(|s| s.status == status)
            .map(|s| s.orders)
            .sum::<i64>()
    };
    assert_eq!(
        (count(OrderStatus::Created), count(OrderStatus::Failed)),
        (6, 1)
    );
    assert!(store.order_stats(Some(&[]), day).await.unwrap().is_empty());
    // Its callbacks have not failed yet: nothing needs a look.
    assert!(store.troubled_callbacks(None, 10).await.unwrap().is_empty());
    assert_eq!(
        store.count_troubled_callbacks(None, 10).await.unwrap(),
        (0, 0)
    );
    assert!(
        store
            .journals_of_order(&made[0].order_no)
            .await
            .unwrap()
            .is_empty()
    );
    let apps = store
        .apps_of_merchant(kassa_core::MerchantId(1))
        .await
        .unwrap();
    assert!(apps.iter().any(|a| a.app_id == app));
}

/// A person's change and its audit entry are one write: both or neither.
async fn changes_carry_their_audit_entry(db: TestDatabase) {
    let store = db.store().await;
    let app = eur_app(&store).await;
    let entry = |action: &str| kassa_store::AuditEntry {
        at_ms: 7,
        actor: "user:1".into(),
        action: action.into(),
        target: "app".into(),
        before: None,
        after: None,
        source: "192.0.2.1".into(),
    };
    let limits = AmountLimits::new(AmountMinor(100), AmountMinor(900));
    let set = entry("limits");
    assert!(
        store
            .set_app_limits(app, Some(limits), 7, Some(&set))
            .await
            .unwrap()
    );
    let missing = AppId(app.0 + 999);
    let none = entry("limits-of-nobody");
    assert!(
        !store
            .set_app_limits(missing, None, 7, Some(&none))
            .await
            .unwrap()
    );
    let rule = kassa_core::FeeRule::new(10, AmountMinor(0)).unwrap();
    let fee = entry("fee");
    assert!(
        store
            .set_fee_rule(app, "*", Some(rule), 7, Some(&fee))
            .await
            .unwrap()
    );
    let merchant = store.merchant_of_app(app).await.unwrap().unwrap().id;
    let suspend = entry("suspend");
    let suspended = store.set_merchant_suspended(merchant, Some(7), 7, Some(&suspend));
    assert!(suspended.await.unwrap());
    assert!(store.app(app).await.unwrap().unwrap().suspended);
    let created = store
        .create_merchant(
            "Audited",
            &apps(&[Currency::Eur]),
            None,
            7,
            Some(&entry("create")),
        )
        .await
        .unwrap();
    let actions: Vec<(String, String)> = store
        .audit_entries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.target))
        .collect();
    let merchant_target = format!("merchant:{}", created.merchant.id.0);
    for (action, target) in [
        ("limits", "app"),
        ("fee", "app"),
        ("suspend", "app"),
        ("create", merchant_target.as_str()),
    ] {
        assert!(
            actions.iter().any(|(a, t)| a == action && t == target),
            "{action}: {actions:?}"
        );
    }
    assert!(
        !actions.iter().any(|(a, _)| a == "limits-of-nobody"),
        "no change, no entry"
    );
}

/// `order` created at `created_at_ms`, stored and moved through `events` (each its callback,
/// `msg_{merchant id}_{n}`, when `with_callbacks`).
async fn stored_at(
    store: &SqlStore,
    mut order: Order,
    created_at_ms: i64,
    events: &[OrderEvent],
    with_callbacks: bool,
) -> Order {
    order.created_at_ms = created_at_ms;
    order.updated_at_ms = created_at_ms;
    order.expires_at_ms = created_at_ms + 1_800_000;
    store.insert_order(&order).await.unwrap();
    for (n, event) in events.iter().enumerate() {
        let at_ms = created_at_ms + 1_000 * (n as i64 + 1);
        if with_callbacks {
            let id = format!("msg_{}_{n}", order.merchant_order_id);
            order = settle(store, &order, event.clone(), &id, at_ms).await;
        } else {
            let mut next = order.clone();
            next.apply(event, at_ms).unwrap();
            let changed = store.transition_order(&next, order.status, None, None, None);
            assert!(changed.await.unwrap());
            order = next;
        }
    }
    order
}

/// Delivers every callback due at `now_ms`, as delivered at `now_ms`.
async fn deliver_due(store: &SqlStore, now_ms: i64) {
    for callback in store
        .claim_due_callbacks(now_ms, 100, "node-r", now_ms + 60_000)
        .await
        .unwrap()
    {
        let delivered = AfterAttempt::Delivered { at_ms: now_ms };
        let attempt = attempt("node-r", true);
        let finished = store.finish_attempt(&callback.callback_id, "node-r", &attempt, delivered);
        assert!(finished.await.unwrap());
    }
}

/// Retention: final orders past the cut-off move to the archive, oldest first, in batches of
/// the size asked; those still open, newer, or with a callback to deliver stay. Archived orders
/// are still found by number and merchant id, counted by reports and the books; their id can be
/// used again. Delivered and dead callbacks past the cut-off are deleted with their attempts.
async fn retention_archives_orders_and_deletes_callbacks(db: TestDatabase) {
    use kassa_core::ledger::Journal;
    let store = db.store().await;
    let app = eur_app(&store).await;
    let paid_event = OrderEvent::Paid {
        requested: AmountMinor(5_000),
        received: AmountMinor(5_000),
    };
    let failed = [OrderEvent::Failed { reason: "x".into() }];
    // July and November 2023: on PostgreSQL the archive gets a partition for each, none for the
    // months between.
    let july = stored_at(
        &store,
        order(app, "R-july", 1),
        1_690_000_000_000,
        &failed,
        false,
    )
    .await;
    let created = stored_at(
        &store,
        order(app, "R-paid", 2),
        1_700_000_000_000,
        &[],
        false,
    )
    .await;
    let mut paid = created.clone();
    paid.apply(&paid_event, 1_700_000_060_000).unwrap();
    paid.fee_minor = AmountMinor(105);
    let journal = Journal::of_success(&paid, 1_700_000_060_000, 1_700_100_000_000).unwrap();
    let posted = store.transition_order(&paid, OrderStatus::Created, None, Some(&journal), None);
    assert!(posted.await.unwrap());
    let waiting = stored_at(
        &store,
        order(app, "R-wait", 3),
        1_700_000_100_000,
        &failed,
        true,
    )
    .await;
    let open = stored_at(
        &store,
        order(app, "R-open", 4),
        1_700_000_200_000,
        &[],
        false,
    )
    .await;
    let recent = stored_at(
        &store,
        order(app, "R-new", 5),
        1_800_000_000_000,
        &failed,
        false,
    )
    .await;
    let cutoff_ms = 1_750_000_000_000;

    // Oldest first, at most the batch asked for; then what is left of the final ones.
    assert_eq!(store.archive_orders(cutoff_ms, 1).await.unwrap(), 1);
    let live = store.orders_of_app(app, None, 100).await.unwrap();
    assert!(live.iter().all(|o| o.order_no != july.order_no));
    assert_eq!(store.archive_orders(cutoff_ms, 100).await.unwrap(), 1);
    assert_eq!(store.archive_orders(cutoff_ms, 100).await.unwrap(), 0);
    if db.backend == kassa_store::Backend::Postgres {
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'orders_archive' AND p.relnamespace = current_schema()::regnamespace \
             ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            partitions,
            ["orders_archive_y2023m07", "orders_archive_y2023m11"]
        );
        pool.close().await;
    }
    let live: Vec<String> = store
        .orders_of_app(app, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.merchant_order_id)
        .collect();
    assert_eq!(live.len(), 3, "{live:?}");
    for stays in [&waiting, &open, &recent] {
        assert!(live.contains(&stays.merchant_order_id), "{live:?}");
    }

    // Found as the merchant knew it, by number and by id; not by its page token.
    let archived = store.order_by_no(&paid.order_no).await.unwrap().unwrap();
    assert_eq!(archived, paid);
    let by_id = store
        .order_by_merchant_order_id(app, "R-paid")
        .await
        .unwrap();
    assert_eq!(by_id.unwrap().order_no, paid.order_no);
    // Its version too, for a query's reply.
    let version = store.order_version_by_no(&paid.order_no).await.unwrap();
    assert_eq!(version, Some(paid.version()));
    let version = store
        .order_version_by_merchant_order_id(app, "R-paid")
        .await;
    assert_eq!(version.unwrap(), Some(paid.version()));
    assert!(
        store
            .order_by_cashier_token(&paid.cashier_token)
            .await
            .unwrap()
            .is_none()
    );
    // Reports and the books count it.
    let day = (1_699_990_000_000, 1_700_010_000_000);
    let reported = store.orders_paid_between(app, day, None, 10).await.unwrap();
    assert_eq!(reported, [paid.clone()]);
    let totals = store.paid_totals_between(app, day).await.unwrap();
    assert_eq!(
        (totals[0].orders, totals[0].gross_minor, totals[0].fee_minor),
        (1, 5_000, 105)
    );
    let check = store.ledger_check().await.unwrap();
    assert!(check.holds(), "{check:?}");
    assert_eq!(check.apps[0].succeeded_orders, 1);

    // The order whose callback waited goes once the callback is delivered, callback and all.
    deliver_due(&store, 1_700_000_300_000).await;
    assert_eq!(store.archive_orders(cutoff_ms, 100).await.unwrap(), 1);
    assert!(
        store
            .callbacks_of_order(&waiting.order_no)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .order_by_no(&waiting.order_no)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Failed
    );

    // An archived order's id can be used again; the live order is the one found.
    let again = order(app, "R-paid", 6);
    assert_eq!(
        store.insert_order(&again).await.unwrap(),
        InsertOutcome::Inserted
    );
    let found = store
        .order_by_merchant_order_id(app, "R-paid")
        .await
        .unwrap();
    assert_eq!(found.unwrap().order_no, again.order_no);

    // Callbacks: delivered before the cut-off go with their attempts; pending ones stay.
    let late = stored_at(
        &store,
        order(app, "R-cb", 7),
        1_700_000_400_000,
        &failed,
        true,
    )
    .await;
    let pending = stored_at(
        &store,
        order(app, "R-cb2", 8),
        1_800_000_000_000,
        &failed,
        true,
    )
    .await;
    deliver_due(&store, 1_700_000_500_000).await;
    assert_eq!(
        store
            .callbacks_of_order(&late.order_no)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.delete_callbacks(cutoff_ms, 100).await.unwrap(), 1);
    assert!(
        store
            .callbacks_of_order(&late.order_no)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .callbacks_of_order(&pending.order_no)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.delete_callbacks(cutoff_ms, 100).await.unwrap(), 0);
    assert!(store.ledger_check().await.unwrap().holds());
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    orders_of_an_app_come_in_pages,
    mixed_concurrent_inserts_each_get_their_answer,
    concurrent_changes_each_get_their_answer,
    migrations_are_idempotent_and_concurrent,
    first_setting_wins,
    settings_can_be_replaced,
    merchants_are_listed_with_their_own_apps,
    merchants_and_apps,
    orders_round_trip,
    duplicate_merchant_order_id_returns_the_original,
    taken_order_number_is_reported,
    concurrent_inserts_create_one_order,
    orders_need_an_existing_app,
    transitions_write_their_callback_atomically,
    leases_attempts_and_retries,
    attempts_are_recorded_in_batches,
    released_callbacks_come_back_later_without_an_attempt,
    dead_callbacks_can_be_resent,
    concurrent_claims_are_disjoint,
    expiry_scan_and_chosen_method,
    fee_rules,
    the_backlog_counts_what_waits,
    the_bench_backlog_holds_the_plain_clients_bodies,
    channels_round_trip,
    upstream_orders_and_routing_attempts,
    journals_post_with_their_change,
    the_database_refuses_to_break_the_books,
    channel_days_and_reconciliation_runs,
    users_and_their_audit_log,
    sessions_end_when_they_should,
    the_back_office_finds_orders,
    changes_carry_their_audit_entry,
    retention_archives_orders_and_deletes_callbacks,
);
