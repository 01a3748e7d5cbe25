//! The store conformance suite: every behaviour the server relies on, run against SQLite and
//! PostgreSQL alike. A new backend is done when this passes on it.

use kassa_core::{
    AmountLimits, AmountMinor, AppId, Currency, Order, OrderNo, OrderStatus, Payer, PaymentMethod,
    Personal,
};
use kassa_store::testing::TestDatabase;
use kassa_store::{InsertOutcome, SqlStore, Store, StoreError};
use std::sync::Arc;

fn order(app_id: AppId, merchant_order_id: &str, order_no: u64) -> Order {
    Order {
        order_no: OrderNo::from_random(order_no),
        app_id,
        merchant_order_id: merchant_order_id.to_string(),
        currency: Currency::Eur,
        amount_minor: AmountMinor(5_000),
        method: PaymentMethod::by_code("CASHIER").unwrap(),
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
    }
}

async fn eur_app(store: &SqlStore) -> AppId {
    let created = store
        .create_merchant("Shop", &[Currency::Eur], None, 1)
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

async fn merchants_and_apps(db: TestDatabase) {
    let store = db.store().await;
    let created = store
        .create_merchant("Shop", &[Currency::Eur, Currency::Usd], Some("PEM"), 7)
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
    let second = store
        .create_merchant("Other", &[Currency::Eur], None, 8)
        .await
        .unwrap();
    assert_ne!(second.merchant.id, created.merchant.id);

    let listed = store.list_merchants().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], created);

    assert!(
        store
            .set_app_public_key(usd.app_id, "NEW", 9)
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
            .set_app_public_key(AppId(999_999), "X", 9)
            .await
            .unwrap()
    );
    assert_eq!(store.app(AppId(999_999)).await.unwrap(), None);

    let limits = AmountLimits::new(AmountMinor(500), AmountMinor(9_000));
    assert!(
        store
            .set_app_limits(eur.app_id, Some(limits), 10)
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
    assert!(store.set_app_limits(eur.app_id, None, 11).await.unwrap());
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

    let mut bare = order(app, "M-bare", 2);
    bare.payer = None;
    bare.country = None;
    bare.subject = None;
    bare.method = PaymentMethod::by_code("IDEAL_EUR").unwrap();
    store.insert_order(&bare).await.unwrap();
    assert_eq!(store.order_by_no(&bare.order_no).await.unwrap(), Some(bare));
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

async fn orders_need_an_existing_app(db: TestDatabase) {
    let store = db.store().await;
    assert!(
        store
            .insert_order(&order(AppId(424_242), "M1", 1))
            .await
            .is_err()
    );
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    migrations_are_idempotent_and_concurrent,
    first_setting_wins,
    merchants_and_apps,
    orders_round_trip,
    duplicate_merchant_order_id_returns_the_original,
    taken_order_number_is_reported,
    concurrent_inserts_create_one_order,
    orders_need_an_existing_app,
);
