//! kassa's storage port. The core and the server see only the [`Store`] trait; one SQL
//! implementation ([`SqlStore`]) serves SQLite (the embedded default) and PostgreSQL.
//!
//! Timestamps are integer milliseconds since the Unix epoch (`*_ms`), money is integer minor
//! units (`*_minor`), so both databases hold exactly the same values.

mod schema;
mod sql;
pub mod testing;

use async_trait::async_trait;
use kassa_core::{AmountLimits, App, AppId, Currency, Merchant, Order, OrderNo};

pub use sql::{Backend, SqlStore, sqlite_path};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row that kassa cannot read back; never expected, reported loudly.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The drawn order number exists already; draw another.
    #[error("order number already taken")]
    OrderNoTaken,
    #[error("unsupported database URL {0}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot prepare the database file: {0}")]
    File(String),
}

impl StoreError {
    /// Whether retrying later may succeed: the database is unreachable, overloaded or busy.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout.
                matches!(db.code().as_deref(), Some("5" | "6"))
            }
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What happened to an order that was offered for insertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The app already has an order with this merchant order id; here it is.
    Existing(Box<Order>),
}

/// A merchant with its apps, as the operator lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantWithApps {
    pub merchant: Merchant,
    pub apps: Vec<App>,
}

/// The storage port. Implementations must pass `tests/conformance.rs`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is, for logs and operator output.
    fn backend(&self) -> Backend;

    /// Brings the schema up to date. Safe to run from several nodes at once.
    async fn migrate(&self) -> StoreResult<()>;

    /// Stores `value` under `name` unless a value exists, and returns the stored value.
    /// The first writer wins, so every node ends up with the same value (platform key).
    async fn setting_or_insert(&self, name: &str, value: &str, now_ms: i64) -> StoreResult<String>;

    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;

    /// Creates a merchant and one app per currency, all or nothing.
    async fn create_merchant(
        &self,
        name: &str,
        currencies: &[Currency],
        public_key: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<MerchantWithApps>;

    async fn list_merchants(&self) -> StoreResult<Vec<MerchantWithApps>>;

    async fn app(&self, app_id: AppId) -> StoreResult<Option<App>>;

    /// Registers the merchant's public key of an app. False if the app does not exist.
    async fn set_app_public_key(
        &self,
        app_id: AppId,
        public_key: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;

    /// Sets or clears the operator's limits of an app. False if the app does not exist.
    async fn set_app_limits(
        &self,
        app_id: AppId,
        limits: Option<AmountLimits>,
        now_ms: i64,
    ) -> StoreResult<bool>;

    /// Inserts a new order unless the app has one with the same merchant order id, in which
    /// case that one is returned. Atomic: concurrent identical requests create one order.
    async fn insert_order(&self, order: &Order) -> StoreResult<InsertOutcome>;

    async fn order_by_merchant_order_id(
        &self,
        app_id: AppId,
        merchant_order_id: &str,
    ) -> StoreResult<Option<Order>>;

    async fn order_by_no(&self, order_no: &OrderNo) -> StoreResult<Option<Order>>;

    async fn order_by_cashier_token(&self, token: &str) -> StoreResult<Option<Order>>;
}
