//! kassa's storage port. The core and the server see only the [`Store`] trait, made of one
//! trait per aggregate ([`SettingStore`], [`MerchantStore`], [`OrderStore`], [`CallbackStore`]);
//! one SQL implementation ([`SqlStore`]) serves SQLite (the embedded default) and PostgreSQL.
//!
//! Timestamps are integer milliseconds since the Unix epoch (`*_ms`), money is integer minor
//! units (`*_minor`), so both databases hold exactly the same values. No database type leaks
//! through the port: errors are [`StoreError`]s.

#[cfg(feature = "bench")]
pub mod bench;
mod error;
pub mod scheduling;
mod sql;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use kassa_core::{
    AmountLimits, App, AppId, Currency, FeeRule, Merchant, Order, OrderNo, OrderStatus,
    OrderVersion,
};

pub use error::{StoreError, StoreResult};
pub use kassa_core::AfterAttempt;
pub use sql::page_cache as sqlite_page_cache;
pub use sql::{Backend, SQLITE_WRITER_THREAD, SqlStore, sqlite_path, sqlite_writer_thread_dir};

/// The traits of the port, to bring their methods into scope at once.
pub mod prelude {
    pub use crate::{
        CallbackStore, ChannelStore, LedgerStore, MerchantStore, OrderStore, RetentionStore,
        SettingStore, Store, UpstreamStore, UserStore,
    };
}

/// What happened to an order that was offered for insertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The app already has an order with this merchant order id; here it is.
    Existing(Box<Order>),
}

/// An app to create: its currency and its webhook secret (drawn by the caller).
#[derive(Clone, Debug)]
pub struct NewApp {
    pub currency: Currency,
    pub webhook_secret: kassa_core::Secret,
}

/// A callback to deliver, as rendered by a dialect: the store and the dispatcher only see
/// bytes and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCallback {
    /// The Standard Webhooks `webhook-id`, stable across attempts.
    pub callback_id: String,
    pub order_no: OrderNo,
    pub app_id: AppId,
    pub url: String,
    pub body: String,
    /// Headers of the dialect (such as `X-Sign`), besides the Standard Webhooks ones.
    pub headers: Vec<(String, String)>,
    pub created_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackState {
    /// Waiting for its next attempt.
    Pending,
    /// Acknowledged by the merchant. Final until resent.
    Delivered,
    /// Given up after the maximum age. Final until resent.
    Dead,
}

impl CallbackState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Pending => "pending",
            CallbackState::Delivered => "delivered",
            CallbackState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<CallbackState> {
        [
            CallbackState::Pending,
            CallbackState::Delivered,
            CallbackState::Dead,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A stored callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    pub callback_id: String,
    pub order_no: OrderNo,
    pub app_id: AppId,
    pub url: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub state: CallbackState,
    pub attempts: i64,
    pub created_at_ms: i64,
    /// When delivery started (again, after a resend); the maximum age counts from here.
    pub first_due_at_ms: i64,
    pub next_attempt_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub dead_at_ms: Option<i64>,
}

/// One delivery attempt, as the dispatcher records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub attempt_no: i64,
    pub started_at_ms: i64,
    pub latency_ms: i64,
    /// The HTTP status, when a response came.
    pub http_status: Option<i64>,
    /// The network or policy error, when no response came.
    pub error: Option<String>,
    /// The first 1 KiB of the response body.
    pub response_excerpt: Option<String>,
    pub acknowledged: bool,
    /// Which node made the attempt.
    pub node: String,
}

/// An attempt to record with what follows it (see [`Store::finish_attempts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedAttempt {
    pub callback_id: String,
    pub attempt: Attempt,
    pub after: AfterAttempt,
}

/// A callback with its attempt history, for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackHistory {
    pub callback: Callback,
    pub attempts: Vec<Attempt>,
}

/// A merchant with its apps, as the operator lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantWithApps {
    pub merchant: Merchant,
    pub apps: Vec<App>,
}

/// What an operator watches of the stored state, read when metrics are scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Callbacks waiting whose next attempt is due (those being attempted now included).
    pub callbacks_due: i64,
    /// Callbacks given up after their maximum age (until an operator resends them).
    pub callbacks_dead: i64,
    /// When the oldest callback not yet delivered was queued (its order's status change).
    pub oldest_pending_callback_ms: Option<i64>,
    /// Orders waiting for the operator (status exception).
    pub orders_in_exception: i64,
}

/// The connection pool as it is now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// The storage port: every aggregate's trait, and the schema. Implementations must pass
/// `tests/conformance.rs`.
#[async_trait]
pub trait Store:
    SettingStore
    + MerchantStore
    + OrderStore
    + CallbackStore
    + ChannelStore
    + UpstreamStore
    + LedgerStore
    + UserStore
    + RetentionStore
{
    /// Brings the schema up to date. Safe to run from several nodes at once.
    async fn migrate(&self) -> StoreResult<()>;

    /// How many migrations this build knows that the database has not applied (a node that
    /// runs ahead of its database is not ready).
    async fn pending_migrations(&self) -> StoreResult<usize>;

    /// The backlog at `now_ms`, in one round trip.
    async fn backlog(&self, now_ms: i64) -> StoreResult<Backlog>;

    fn pool_status(&self) -> PoolStatus;
}

/// Retention: what would grow without bound leaves the hot tables, one small batch at a time,
/// each batch one short transaction that locks only the rows it moves.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Moves at most `limit` orders to the archive: final, created before `before_ms`, and
    /// without a callback still to deliver. Their status events, routing attempts, callbacks and
    /// the callbacks' attempts are deleted with them; their journals and their account at an
    /// upstream stay (the books and reconciliation read them). How many moved.
    async fn archive_orders(&self, before_ms: i64, limit: i64) -> StoreResult<u64>;

    /// Deletes at most `limit` callbacks delivered or given up before `before_ms`, with their
    /// attempts. How many.
    async fn delete_callbacks(&self, before_ms: i64, limit: i64) -> StoreResult<u64>;
}

/// Named settings every node shares (platform keys, the operator's time zone).
#[async_trait]
pub trait SettingStore: Send + Sync + 'static {
    /// Stores `value` under `name` unless a value exists, and returns the stored value.
    /// The first writer wins, so every node ends up with the same value (platform key).
    async fn setting_or_insert(&self, name: &str, value: &str, now_ms: i64) -> StoreResult<String>;

    /// Stores `value` under `name`, replacing any earlier value.
    /// Sets a setting, with the audit entry of whoever changed it (in one transaction).
    async fn set_setting(
        &self,
        name: &str,
        value: &str,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()>;

    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;
}

/// Merchants, their apps (one per currency) and the apps' fee rules. A change takes the audit
/// entry of whoever made it (none for the system's own), written in its transaction.
#[async_trait]
pub trait MerchantStore: Send + Sync + 'static {
    /// Creates a merchant and its apps, all or nothing.
    async fn create_merchant(
        &self,
        name: &str,
        apps: &[NewApp],
        public_key: Option<&str>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<MerchantWithApps>;

    async fn list_merchants(&self) -> StoreResult<Vec<MerchantWithApps>>;

    async fn app(&self, app_id: AppId) -> StoreResult<Option<App>>;

    /// A merchant's apps, by id (none for an unknown merchant).
    async fn apps_of_merchant(&self, merchant_id: kassa_core::MerchantId) -> StoreResult<Vec<App>>;

    /// The merchant that owns an app.
    async fn merchant_of_app(&self, app_id: AppId) -> StoreResult<Option<Merchant>>;

    /// Registers the merchant's public key of an app. False if the app does not exist.
    async fn set_app_public_key(
        &self,
        app_id: AppId,
        public_key: &str,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Sets or clears who receives an app's PIX payments. False if the app does not exist.
    async fn set_app_pix(
        &self,
        app_id: AppId,
        receiver: Option<&kassa_core::pix::PixReceiver>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Sets or clears the merchant's logo (its version is `now_ms`). False if the app does not
    /// exist.
    async fn set_app_logo(
        &self,
        app_id: AppId,
        logo: Option<&kassa_core::Logo>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// The merchant's logo of an app, with its version; `None` if it has none.
    async fn app_logo(&self, app_id: AppId) -> StoreResult<Option<(kassa_core::Logo, i64)>>;

    /// Sets or clears the merchant's colour on the payer's pages. False if the app does not exist.
    async fn set_app_brand(
        &self,
        app_id: AppId,
        colour: Option<&kassa_core::BrandColour>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Sets or clears the operator's limits of an app. False if the app does not exist.
    async fn set_app_limits(
        &self,
        app_id: AppId,
        limits: Option<AmountLimits>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Replaces an app's webhook secret. False if the app does not exist.
    async fn set_webhook_secret(
        &self,
        app_id: AppId,
        secret: &kassa_core::Secret,
        now_ms: i64,
    ) -> StoreResult<bool>;

    /// Suspends a merchant (from `suspended_at_ms`) or, with `None`, reinstates it; its apps
    /// with it, in one transaction. False if there is no such merchant.
    async fn set_merchant_suspended(
        &self,
        merchant_id: kassa_core::MerchantId,
        suspended_at_ms: Option<i64>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Replaces an app's webhook secret, the old one kept to sign callbacks too until
    /// `retiring_until_ms`. False if the app does not exist.
    async fn rotate_webhook_secret(
        &self,
        app_id: AppId,
        secret: &kassa_core::Secret,
        retiring_until_ms: i64,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Sets (or with `None` removes) the fee rule of an app for a method code, or for
    /// [`FeeRule::ANY_METHOD`]. False if the app does not exist.
    async fn set_fee_rule(
        &self,
        app_id: AppId,
        method: &str,
        rule: Option<FeeRule>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// The fee rules of an app, by method code.
    async fn fee_rules(&self, app_id: AppId) -> StoreResult<Vec<(String, FeeRule)>>;

    /// The rule for one method, as [`FeeRule::select`] chooses it.
    async fn fee_rule_for(&self, app_id: AppId, method: &str) -> StoreResult<Option<FeeRule>> {
        Ok(FeeRule::select(&self.fee_rules(app_id).await?, method))
    }
}

/// Most order numbers one [`OrderStore::order_statuses`] call takes (a bound on the query's
/// parameters).
pub const MAX_STATUSES_AT_ONCE: usize = 500;

/// Orders, and the transactional outbox their status changes write callbacks into.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Inserts a new order unless the app has one with the same merchant order id, in which
    /// case that one is returned. Atomic: concurrent identical requests create one order.
    async fn insert_order(&self, order: &Order) -> StoreResult<InsertOutcome>;

    async fn order_by_merchant_order_id(
        &self,
        app_id: AppId,
        merchant_order_id: &str,
    ) -> StoreResult<Option<Order>>;

    async fn order_by_no(&self, order_no: &OrderNo) -> StoreResult<Option<Order>>;

    /// The [`OrderVersion`] of the order [`OrderStore::order_by_merchant_order_id`] finds, and
    /// nothing more of it: a query whose reply is cached needs no more.
    async fn order_version_by_merchant_order_id(
        &self,
        app_id: AppId,
        merchant_order_id: &str,
    ) -> StoreResult<Option<OrderVersion>>;

    /// The [`OrderVersion`] of the order [`OrderStore::order_by_no`] finds.
    async fn order_version_by_no(&self, order_no: &OrderNo) -> StoreResult<Option<OrderVersion>>;

    async fn order_by_cashier_token(&self, token: &str) -> StoreResult<Option<Order>>;

    /// The statuses of these orders (at most [`MAX_STATUSES_AT_ONCE`]; unknown numbers are
    /// left out): one query for the pages that wait on many orders.
    async fn order_statuses(
        &self,
        order_nos: &[OrderNo],
    ) -> StoreResult<Vec<(OrderNo, kassa_core::OrderStatus)>>;

    /// An app's orders in order-number order, at most `limit` of them after `after` (a page;
    /// pass the last number seen to get the next).
    async fn orders_of_app(
        &self,
        app_id: AppId,
        after: Option<&OrderNo>,
        limit: i64,
    ) -> StoreResult<Vec<Order>>;

    /// An app's orders that succeeded (were paid) in `[from_ms, to_ms)`, by payment time and
    /// order number, after `after` (the payment time and number of the last order of the
    /// previous page), at most `limit`: a report's pages.
    async fn orders_paid_between(
        &self,
        app_id: AppId,
        between_ms: (i64, i64),
        after: Option<(i64, &OrderNo)>,
        limit: i64,
    ) -> StoreResult<Vec<Order>>;

    /// The totals of those orders by payment method (the method the payer paid with).
    async fn paid_totals_between(
        &self,
        app_id: AppId,
        between_ms: (i64, i64),
    ) -> StoreResult<Vec<MethodTotals>>;

    /// Stores an order's new state if it is still in state `from`, together with the callback
    /// the change causes, its journal and (for a person's change) its audit entry, in one
    /// transaction. False (and nothing written) if the order moved on in the meantime.
    async fn transition_order(
        &self,
        order: &Order,
        from: OrderStatus,
        callback: Option<&NewCallback>,
        journal: Option<&kassa_core::ledger::Journal>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Orders matching `filter`, newest first (by creation time, then order number), after
    /// `before` (the creation time and number of the last order of the previous page), at most
    /// `limit`: the back office's list, one keyset page at a time.
    async fn search_orders(
        &self,
        filter: &OrderFilter,
        before: Option<(i64, &OrderNo)>,
        limit: i64,
    ) -> StoreResult<Vec<Order>>;

    /// How many orders match `filter`, counted up to `at_most` (a figure to show, not a scan of
    /// every order).
    async fn count_orders(&self, filter: &OrderFilter, at_most: i64) -> StoreResult<i64>;

    /// Every status change of an order, oldest first (written with the change itself).
    async fn order_events(&self, order_no: &OrderNo) -> StoreResult<Vec<OrderEventRecord>>;

    /// Orders created in `[from_ms, to_ms)` of the apps in `app_ids` (all with `None`), counted
    /// by dialect, method paid with, currency and status.
    async fn order_stats(
        &self,
        app_ids: Option<&[AppId]>,
        between_ms: (i64, i64),
    ) -> StoreResult<Vec<OrderStats>>;

    /// Orders that can still expire ([`OrderStatus::EXPIRABLE`]) whose time ran out by
    /// `now_ms`, soonest first, at most `limit`. Orders opened at an upstream
    /// ([`UpstreamStore`]) are not listed: reconciliation settles them.
    async fn expired_orders(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OrderNo>>;
}

/// What the back office's order list asks for; every part optional. `app_ids` is the caller's
/// scope (a merchant's apps) and any app filter, already intersected; `Some(empty)` matches
/// nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub app_ids: Option<Vec<AppId>>,
    pub status: Option<OrderStatus>,
    /// The method asked for or paid with.
    pub method: Option<String>,
    pub currency: Option<String>,
    /// Created in `[from, to)`.
    pub created_from_ms: Option<i64>,
    pub created_to_ms: Option<i64>,
    pub amount_min_minor: Option<i64>,
    pub amount_max_minor: Option<i64>,
    /// An order number, a merchant's `orderId` or a payer's e-mail, matched exactly.
    pub search: Option<String>,
}

/// One status change of an order, as its timeline shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEventRecord {
    pub at_ms: i64,
    pub from: OrderStatus,
    pub to: OrderStatus,
    /// The reason given with the change (a failure's message), if any.
    pub detail: Option<String>,
}

/// Orders of one dialect, method, currency and status: how many, what they asked and what was
/// paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderStats {
    pub dialect: String,
    pub method: String,
    pub currency: String,
    pub status: OrderStatus,
    pub orders: i64,
    pub amount_minor: i64,
    pub paid_minor: i64,
}

/// The channels rails route orders to. Every node reads them from here, so a change takes
/// effect everywhere without a restart.
#[async_trait]
pub trait ChannelStore: Send + Sync + 'static {
    /// Adds a channel with its methods; false (and nothing written) if its id is taken.
    async fn insert_channel(&self, channel: &kassa_core::Channel) -> StoreResult<bool>;

    /// Replaces a channel's settings and methods in one transaction (its creation time is
    /// kept); false if no channel has its id.
    async fn update_channel(
        &self,
        channel: &kassa_core::Channel,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// A channel, its methods by method code.
    async fn channel(&self, channel_id: &str) -> StoreResult<Option<kassa_core::Channel>>;

    /// Every channel, by priority, then id.
    async fn channels(&self) -> StoreResult<Vec<kassa_core::Channel>>;
}

/// One app's books in one currency against its orders (see [`LedgerStore::ledger_check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppBooks {
    pub app_id: AppId,
    pub currency: String,
    /// What the books say kassa owes the merchant, not yet settled and settled.
    pub pending_minor: i64,
    pub available_minor: i64,
    /// What its succeeded orders say: their gross less their fees (less payouts: none yet).
    pub expected_owed_minor: i64,
    pub succeeded_orders: i64,
}

impl AppBooks {
    fn new(app_id: i64, currency: &str) -> AppBooks {
        AppBooks {
            app_id: AppId(app_id),
            currency: currency.to_string(),
            pending_minor: 0,
            available_minor: 0,
            expected_owed_minor: 0,
            succeeded_orders: 0,
        }
    }

    pub fn agrees(&self) -> bool {
        self.pending_minor + self.available_minor == self.expected_owed_minor
    }
}

/// The ledger's invariants, as found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerCheck {
    /// Currencies whose entries do not sum to zero, with their sums.
    pub currencies_unbalanced: Vec<(String, i64)>,
    /// Journals whose entries do not sum to zero (the first 100).
    pub journals_unbalanced: Vec<String>,
    /// Success journals of orders that have not succeeded (the first 100).
    pub journals_without_success: Vec<String>,
    pub apps: Vec<AppBooks>,
}

impl LedgerCheck {
    pub fn holds(&self) -> bool {
        self.currencies_unbalanced.is_empty()
            && self.journals_unbalanced.is_empty()
            && self.journals_without_success.is_empty()
            && self.apps.iter().all(AppBooks::agrees)
    }

    /// How many breaks were found: unbalanced currencies and journals, stray success
    /// journals, apps whose books disagree with their orders.
    pub fn breaks(&self) -> usize {
        self.currencies_unbalanced.len()
            + self.journals_unbalanced.len()
            + self.journals_without_success.len()
            + self.apps.iter().filter(|b| !b.agrees()).count()
    }
}

/// The books: balances and invariants. Journals are written by the changes they record
/// ([`OrderStore::transition_order`]).
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// Sums per account and currency: `(account key, currency code, sum)`, of one app's accounts
    /// or of all.
    async fn balances(&self, app_id: Option<AppId>) -> StoreResult<Vec<(String, String, i64)>>;

    /// Verifies the invariants: entries sum to zero per currency and per journal; success
    /// journals only for succeeded orders; each app's pending + available equal the gross of
    /// its succeeded orders less their fees.
    async fn ledger_check(&self) -> StoreResult<LedgerCheck>;

    /// The fees an app's orders paid the platform, per currency code.
    async fn fees_of_app(&self, app_id: AppId) -> StoreResult<Vec<(String, i64)>>;

    /// What an order's success needs of its app, in one read: its fee rules and its
    /// settlement delay in days (T+N).
    async fn success_terms(&self, app_id: AppId) -> StoreResult<SuccessTerms>;

    /// Sets an app's settlement delay; false if the app does not exist. Checked by the caller.
    async fn set_settlement_delay_days(
        &self,
        app_id: AppId,
        days: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    /// Success journals due to settle at `now_ms` and not settled yet, soonest first.
    async fn settlements_due(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<DueSettlement>>;

    /// Posts a journal on its own; false (nothing written) if its id is taken — by another
    /// node's sweep, say.
    async fn post_journal(&self, journal: &kassa_core::ledger::Journal) -> StoreResult<bool>;

    /// The journals of an order, with their entries, in posting order.
    async fn journals_of_order(
        &self,
        order_no: &OrderNo,
    ) -> StoreResult<Vec<kassa_core::ledger::Journal>>;

    /// An app's journals posted in `[from_ms, to_ms)`, with their entries, by posting time and
    /// id after `after` (those of the last journal of the previous page), at most `limit`.
    async fn journals_between(
        &self,
        app_id: AppId,
        between_ms: (i64, i64),
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<kassa_core::ledger::Journal>>;
}

/// An app's fee rules and settlement delay, as a success reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessTerms {
    pub fee_rules: Vec<(String, kassa_core::FeeRule)>,
    pub settlement_delay_days: i64,
}

/// Succeeded orders of one payment method: how many, what was paid, the fees booked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodTotals {
    pub method: String,
    pub orders: i64,
    pub gross_minor: i64,
    pub fee_minor: i64,
}

/// A success journal whose funds are due to become available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueSettlement {
    pub journal_id: String,
    pub app_id: AppId,
    pub currency: Currency,
    /// What the journal left owed to the merchant (gross less fee).
    pub net_minor: i64,
}

/// An order's account at an upstream channel (see [`UpstreamStore`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamOrder {
    pub order_no: OrderNo,
    pub channel_id: String,
    /// The upstream's number for the order; `None` until it has answered a create (or a query
    /// found the order there).
    pub upstream_order_no: Option<String>,
    /// When reconciliation next asks the upstream about the order.
    pub next_check_at_ms: i64,
    /// How many times reconciliation has asked (its backoff grows with it).
    pub checks: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One channel tried for an order, as routing records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingAttempt {
    pub attempt_no: i64,
    pub channel_id: String,
    /// `created`, `unreachable`, `unavailable`, `refused`, `malformed`, `bad_signature`,
    /// `skipped` (circuit open) …
    pub outcome: String,
    /// Why, in a sentence (bounded by the caller).
    pub detail: String,
    pub latency_ms: i64,
    pub at_ms: i64,
}

/// Orders at upstream channels: which channel holds each, its number there, when
/// reconciliation asks next; and the routing record of every order.
#[async_trait]
pub trait UpstreamStore: Send + Sync + 'static {
    /// Writes the row (inserted or replaced) and moves the order, if it exists, to `rail` and
    /// the row's channel — with `attempt`, if given — in one transaction. Written before each
    /// upstream is called, so that a crash mid-call leaves a row for reconciliation, and again
    /// with the upstream's number and the attempt that got it.
    async fn save_upstream(
        &self,
        upstream: &UpstreamOrder,
        rail: &str,
        attempt: Option<&RoutingAttempt>,
    ) -> StoreResult<()>;

    async fn upstream_order(&self, order_no: &OrderNo) -> StoreResult<Option<UpstreamOrder>>;

    /// Rows whose next check is due at `now_ms` and whose order is not final, soonest first.
    async fn upstream_orders_due(&self, now_ms: i64, limit: i64)
    -> StoreResult<Vec<UpstreamOrder>>;

    /// Sets when reconciliation asks next and how often it has asked.
    async fn reschedule_upstream(
        &self,
        order_no: &OrderNo,
        next_check_at_ms: i64,
        checks: i64,
        now_ms: i64,
    ) -> StoreResult<()>;

    /// Appends one routing attempt (numbered by the caller, from 1).
    async fn add_routing_attempt(
        &self,
        order_no: &OrderNo,
        attempt: &RoutingAttempt,
    ) -> StoreResult<()>;

    /// An order's routing attempts, in order.
    async fn routing_attempts(&self, order_no: &OrderNo) -> StoreResult<Vec<RoutingAttempt>>;

    /// Orders at upstream channels that are not final (reconciliation's backlog).
    async fn upstream_orders_open(&self) -> StoreResult<i64>;

    /// A channel's orders of a day: opened there in `[from_ms, to_ms)` (or the day before and
    /// paid in it), by number after `after`, at most `limit`.
    async fn channel_orders_between(
        &self,
        channel_id: &str,
        between_ms: (i64, i64),
        after: Option<&OrderNo>,
        limit: i64,
    ) -> StoreResult<Vec<Order>>;

    /// Stores a reconciliation run of a channel's day and its differences, replacing the last
    /// run of that channel and day.
    async fn save_reconciliation(
        &self,
        run: &ReconciliationRun,
        differences: &[ReconciliationDifference],
    ) -> StoreResult<()>;

    /// The differences of every channel's last runs: `(channel, kind, count)`.
    async fn reconciliation_differences(&self) -> StoreResult<Vec<(String, String, i64)>>;
}

/// One reconciliation of a channel's day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconciliationRun {
    pub channel_id: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    /// `report` (the upstream's day report) or `query` (order by order).
    pub mode: String,
    pub orders_compared: i64,
    pub ran_at_ms: i64,
}

/// One order on which kassa and a channel disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconciliationDifference {
    pub upstream_order_id: String,
    pub order_no: Option<OrderNo>,
    pub kind: kassa_core::reconciliation::DifferenceKind,
    /// What each side says (`succeeded 20.00`, `failed`, `no such order`).
    pub kassa: String,
    pub upstream: String,
}

/// Delivering callbacks: leases, attempts, resends.
#[async_trait]
pub trait CallbackStore: Send + Sync + 'static {
    /// Leases up to `limit` callbacks that are due at `now_ms` and not leased by a live
    /// node, to `owner` until `lease_until_ms`. Each due callback goes to one node at a time.
    async fn claim_due_callbacks(
        &self,
        now_ms: i64,
        limit: i64,
        owner: &str,
        lease_until_ms: i64,
    ) -> StoreResult<Vec<Callback>>;

    /// Records attempts (numbered by the store) in one transaction and, for each callback whose
    /// lease `owner` still holds, its next state; the leases are released. Per attempt: false
    /// if the lease was lost.
    async fn finish_attempts(
        &self,
        owner: &str,
        finished: &[FinishedAttempt],
    ) -> StoreResult<Vec<bool>>;

    /// Gives back leases of `owner` without an attempt, each callback offered again at its
    /// given time (fair delivery: its endpoint or app is at its share, or suspended).
    async fn release_callbacks(&self, owner: &str, released: &[(String, i64)]) -> StoreResult<()>;

    /// [`CallbackStore::finish_attempts`] for one attempt.
    async fn finish_attempt(
        &self,
        callback_id: &str,
        owner: &str,
        attempt: &Attempt,
        after: AfterAttempt,
    ) -> StoreResult<bool> {
        let finished = FinishedAttempt {
            callback_id: callback_id.to_string(),
            attempt: attempt.clone(),
            after,
        };
        Ok(self.finish_attempts(owner, &[finished]).await?[0])
    }

    /// The callbacks of an order, oldest first, each with its attempts.
    async fn callbacks_of_order(&self, order_no: &OrderNo) -> StoreResult<Vec<CallbackHistory>>;

    /// Queues the order's latest callback for a fresh delivery, whatever its state; the
    /// maximum age counts anew; with the audit entry of whoever asked, in one transaction. The
    /// id of that callback, or `None` (nothing written) if the order has none.
    async fn resend_latest_callback(
        &self,
        order_no: &OrderNo,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Option<String>>;

    /// Callbacks that need a look, newest first: dead ones, and waiting ones that have failed
    /// at least once; of the apps in `app_ids` (all with `None`), at most `limit`.
    async fn troubled_callbacks(
        &self,
        app_ids: Option<&[AppId]>,
        limit: i64,
    ) -> StoreResult<Vec<Callback>>;

    /// How many of those [`CallbackStore::troubled_callbacks`] lists are still tried and how
    /// many were given up, counted up to `at_most` together.
    async fn count_troubled_callbacks(
        &self,
        app_ids: Option<&[AppId]>,
        at_most: i64,
    ) -> StoreResult<(i64, i64)>;

    /// How many callbacks are in each state.
    async fn callback_counts(&self) -> StoreResult<Vec<(CallbackState, i64)>>;
}

/// A back-office user as stored (the password only as its argon2id hash).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: i64,
    pub email: String,
    pub role: kassa_core::user::Role,
    pub merchant_id: Option<kassa_core::MerchantId>,
    pub password_hash: kassa_core::Secret,
    pub disabled: bool,
    pub failed_sign_ins: i64,
    pub locked_until_ms: i64,
    /// The TOTP secret, sealed with the key-encryption key; `None` without a second factor.
    pub totp_secret: Option<kassa_core::Secret>,
    /// The last step whose TOTP code was taken.
    pub totp_last_step: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl std::fmt::Debug for User {
    /// The e-mail is personal data and the hash a secret: neither is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("user_id", &self.user_id)
            .field("email", &kassa_core::Personal::new(self.email.clone()))
            .field("role", &self.role)
            .field("merchant_id", &self.merchant_id)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// One entry of the audit log: who did what to what, the state before and after, from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    /// `user:ID` for a signed-in user, `cli:NAME` for a command run on the server.
    pub actor: String,
    /// What was done, such as `user.add`.
    pub action: String,
    /// What it was done to, such as `user:3`.
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Where from: an address, or `cli`.
    pub source: String,
}

/// The back office's users and the audit log. Every change to a user is written together with
/// its audit entry, in one transaction.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Adds a user; [`StoreError::Conflict`] if the e-mail is taken.
    async fn add_user(
        &self,
        user: &kassa_core::user::NewUser,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> StoreResult<User>;

    /// Records an invitation (only its token's hash) with its audit entry.
    async fn add_invitation(&self, invitation: &Invitation, audit: &AuditEntry) -> StoreResult<()>;

    /// The invitation of `token_hash` if it can still be taken at `now_ms` (not used, not
    /// expired).
    async fn open_invitation(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Invitation>>;

    /// Takes an invitation at `audit.at_ms`, in one transaction: marks it used and adds its
    /// user with `password_hash`, audited. `None` (nothing written) if it was used or expired;
    /// [`StoreError::Conflict`] if the e-mail has an account by now.
    async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> StoreResult<Option<User>>;

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    async fn users(&self) -> StoreResult<Vec<User>>;

    /// Disables or enables a user; false if there is no such user.
    async fn set_user_disabled(
        &self,
        user_id: i64,
        disabled: bool,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;

    /// Replaces a user's password hash and clears their failed sign-ins and lock; false if
    /// there is no such user.
    async fn set_password_hash(
        &self,
        user_id: i64,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;

    /// Appends an audit entry of its own (an action that changes nothing else).
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// The newest audit entries first, at most `limit`.
    async fn audit_entries(&self, limit: i64) -> StoreResult<Vec<AuditEntry>>;

    /// A successful sign-in, in one transaction: the new session (by its token's hash), the
    /// user's failed sign-ins cleared, the TOTP step taken (if a code was), the audit entry.
    async fn sign_in(
        &self,
        session: &Session,
        totp_step: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// A failed sign-in: the user's count of failures in a row and the end of their lock, with
    /// the audit entry.
    async fn sign_in_failed(
        &self,
        user_id: i64,
        (failures, locked_until_ms): (i64, i64),
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Sets (or with `None` removes) a user's sealed TOTP secret.
    async fn set_totp_secret(
        &self,
        user_id: i64,
        sealed_secret: Option<&str>,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;

    /// The session of `token_hash` and its user, if it is still alive at `now_ms` (neither
    /// idle too long nor past its end) and its user not disabled; its idle clock restarts.
    async fn live_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(Session, User)>>;

    /// Ends a session (signing out); false if there was none.
    async fn end_session(&self, token_hash: &str) -> StoreResult<bool>;

    /// Ends every session of a user (disabled, password reset); how many ended.
    async fn end_sessions_of(&self, user_id: i64) -> StoreResult<u64>;
}

/// An invitation to the back office: who it is for, known by the SHA-256 of the token in its
/// link; taken once, before it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    pub token_hash: String,
    pub user: kassa_core::user::NewUser,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for Invitation {
    /// The e-mail masked, the token's hash left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("user", &self.user)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// A back-office session, known by the SHA-256 of the token its cookie carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user_id: i64,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    /// How long it may sit unused.
    pub idle_ms: i64,
    /// When it ends whatever its use.
    pub ends_at_ms: i64,
    /// Where it was opened from.
    pub source: String,
}

impl Session {
    pub fn is_alive(&self, now_ms: i64) -> bool {
        now_ms < self.ends_at_ms && now_ms < self.last_seen_at_ms.saturating_add(self.idle_ms)
    }
}
