//! SQLite's page cache behind kassa's layer (sql/page_cache.rs), in a process of its own: the
//! layer goes in before SQLite initialises, which another test in the same process could have
//! done first. Orders inserted in a random order of their numbers split the order index's pages
//! in its middle, where SQLite sorts a split's pages through the temporary page number the
//! layer renames; the database must come out whole and every order readable.

use kassa_core::{AppId, Currency, Order, Secret};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{InsertOutcome, NewApp, SqlStore, sqlite_page_cache};
use std::sync::Arc;

const ORDERS: u64 = 4_000;
const WRITERS: u64 = 40;

fn order(app_id: AppId, n: u64) -> Order {
    // A multiplicative hash of `n`: numbers in no order, all distinct.
    let number = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 8;
    let merchant_order_id = format!("m-{number:x}");
    let mut order =
        kassa_core::fixtures::order(&merchant_order_id, 100 + n as i64, number, 1_800_000);
    order.app_id = app_id;
    order.cashier_token = format!("tok-{number:x}");
    order.create_reply = format!(r#"{{"n":{n}}}"#);
    order
}

async fn insert_all(store: Arc<SqlStore>, app_id: AppId) {
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        writers.spawn(async move {
            for n in (writer..ORDERS).step_by(WRITERS as usize) {
                let inserted = store.insert_order(&order(app_id, n)).await.unwrap();
                assert!(matches!(inserted, InsertOutcome::Inserted), "order {n}");
            }
        });
    }
    writers.join_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_through_the_renamed_page_number_keep_the_database_whole() {
    let db = TestDatabase::sqlite().await;
    let store = Arc::new(db.store().await);
    assert!(
        sqlite_page_cache::installed(),
        "the layer goes in at the first store's connect"
    );
    let apps = [NewApp {
        currency: Currency::Eur,
        webhook_secret: Secret::new("whsec_eur"),
    }];
    let created = store.create_merchant("Shop", &apps, None, 1, None);
    let app_id = created.await.unwrap().apps[0].app_id;
    let renamed_before = sqlite_page_cache::temporary_pages_renamed();
    insert_all(store.clone(), app_id).await;
    let renamed = sqlite_page_cache::temporary_pages_renamed() - renamed_before;
    assert!(
        renamed > 0,
        "no split sorted its pages: the test proves nothing"
    );

    for n in 0..ORDERS {
        let expected = order(app_id, n);
        let found = store.order_by_no(&expected.order_no).await.unwrap();
        let found = found.unwrap_or_else(|| panic!("order {n} is gone"));
        assert_eq!(found.amount_minor, expected.amount_minor);
        assert_eq!(found.create_reply, expected.create_reply);
    }
    let path = kassa_store::sqlite_path(&db.url).unwrap();
    let check = rusqlite::Connection::open(path).unwrap();
    let verdict: String = check
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
    let count: i64 = check
        .query_row("SELECT count(*) FROM orders", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, ORDERS as i64);
    println!("{renamed} temporary page numbers renamed over {ORDERS} orders");
}
