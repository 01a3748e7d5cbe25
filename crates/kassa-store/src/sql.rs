//! The SQL implementation of [`Store`] for SQLite and PostgreSQL, through sqlx's `Any` driver.
//!
//! Both databases run the same statements (`$N` placeholders work on both). SQLite is opened
//! in WAL mode with `synchronous=FULL`, so an acknowledged write survives power loss.

use crate::{
    AfterAttempt, Attempt, Callback, CallbackHistory, CallbackState, FinishedAttempt,
    InsertOutcome, MerchantWithApps, NewApp, NewCallback, Store, StoreError, StoreResult, schema,
};
use async_trait::async_trait;
use kassa_core::pix::PixReceiver;
use kassa_core::{
    AmountLimits, AmountMinor, App, AppId, Currency, FeeRule, Merchant, MerchantId, Order, OrderNo,
    OrderStatus, Payer, PaymentMethod, Personal, Secret,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Upper bound on the pool. SQLite has one writer anyway and readers share WAL snapshots, so a
/// few connections serve it; PostgreSQL gets more, to overlap round trips.
const MAX_CONNECTIONS_POSTGRES: u32 = 16;
const MAX_CONNECTIONS_SQLITE: u32 = 8;
/// SQLite's page cache per connection (KiB, as `PRAGMA cache_size` takes it negative): the
/// index of a million orders stays in memory; 8 connections bound it to 64 MiB.
const SQLITE_CACHE_KIB: u32 = 8 * 1024;
/// How long a statement waits for SQLite's write lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's group commit of new orders (PostgreSQL commits them concurrently).
    batcher: Option<InsertBatcher>,
}

/// For a `sqlite://PATH[?…]` URL, the file's path (`None` for in-memory databases).
pub fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// Creates the SQLite file (and its folder) readable by its owner only: it holds the
/// platform's private key and payers' personal data.
fn prepare_sqlite_file(path: &Path) -> StoreResult<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::File(e.to_string()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::File(format!("{}: {e}", path.display())))
}

impl SqlStore {
    /// Connects to `sqlite://PATH` (file created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> StoreResult<SqlStore> {
        let backend =
            Backend::of_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_string()))?;
        sqlx::any::install_default_drivers();
        let max_connections = match backend {
            Backend::Sqlite => MAX_CONNECTIONS_SQLITE,
            Backend::Postgres => MAX_CONNECTIONS_POSTGRES,
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if backend == Backend::Sqlite {
            if let Some(path) = sqlite_path(url) {
                prepare_sqlite_file(path)?;
            }
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    let pragmas = format!(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                         PRAGMA cache_size = -{SQLITE_CACHE_KIB};"
                    );
                    sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas))
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        let batcher = (backend == Backend::Sqlite).then(|| InsertBatcher::start(pool.clone()));
        Ok(SqlStore {
            pool,
            backend,
            batcher,
        })
    }

    /// Closes every pooled connection (waits for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction. SQLite takes its write lock up front (`IMMEDIATE`), so
    /// two writers never deadlock upgrading read locks.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    async fn apps_of(&self, merchant_id: MerchantId) -> StoreResult<Vec<App>> {
        let rows = sqlx::query(SELECT_APPS_OF_MERCHANT.as_str())
            .bind(merchant_id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(app_from_row).collect()
    }

    /// Runs one of the app updates that set a text column (`$1`), `updated_at_ms` (`$2`) for
    /// an app (`$3`); false if no app has that id.
    async fn update_app_text(
        &self,
        sql: &'static str,
        app_id: AppId,
        value: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(sql)
            .bind(value)
            .bind(now_ms)
            .bind(app_id.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn one_order(&self, sql: &'static str, arg: &str) -> StoreResult<Option<Order>> {
        let row = sqlx::query(sql)
            .bind(arg)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }
}

const APP_COLUMNS: &str = "app_id, merchant_id, currency, public_key, webhook_secret, \
    min_amount_minor, max_amount_minor, created_at_ms, pix_key, pix_name, pix_city";

const ORDER_COLUMNS: &str = "order_no, app_id, merchant_order_id, currency, amount_minor, method, \
    country, payer_name, payer_phone, payer_email, partner_user_id, subject, body, callback_url, \
    callback_fail_url, notify_url, status, actual_amount_minor, fee_minor, paid_at_ms, error_msg, \
    request_fingerprint, create_reply, cashier_token, created_at_ms, updated_at_ms, expires_at_ms, \
    chosen_method, pix_code";

/// Statements built from the column lists, once per process.
macro_rules! statement {
    ($name:ident, $($format:tt)+) => {
        static $name: LazyLock<String> = LazyLock::new(|| format!($($format)+));
    };
}
statement!(
    SELECT_APPS_OF_MERCHANT,
    "SELECT {APP_COLUMNS} FROM apps WHERE merchant_id = $1 ORDER BY app_id"
);
statement!(
    SELECT_APP,
    "SELECT {APP_COLUMNS} FROM apps WHERE app_id = $1"
);
statement!(
    INSERT_APP,
    "INSERT INTO apps (merchant_id, currency, public_key, webhook_secret, created_at_ms, \
     updated_at_ms) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {APP_COLUMNS}"
);
const CALLBACK_COLUMNS: &str = "callback_id, order_no, app_id, url, body, headers, state, \
    attempts, created_at_ms, first_due_at_ms, next_attempt_at_ms, delivered_at_ms, dead_at_ms";
statement!(
    SELECT_CALLBACKS_OF_ORDER,
    "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE order_no = $1 ORDER BY created_at_ms, callback_id"
);
/// The due, unleased callbacks, oldest first. PostgreSQL skips rows another node is claiming
/// right now; SQLite has one writer, so the statement alone is enough.
const DUE_CALLBACKS: &str = "SELECT callback_id FROM callbacks WHERE state = 'pending' \
    AND next_attempt_at_ms <= $3 AND (lease_until_ms IS NULL OR lease_until_ms <= $3) \
    ORDER BY next_attempt_at_ms LIMIT $4";
statement!(
    CLAIM_CALLBACKS_SQLITE,
    "UPDATE callbacks SET lease_owner = $1, lease_until_ms = $2 \
     WHERE callback_id IN ({DUE_CALLBACKS}) RETURNING {CALLBACK_COLUMNS}"
);
statement!(
    CLAIM_CALLBACKS_POSTGRES,
    "UPDATE callbacks SET lease_owner = $1, lease_until_ms = $2 \
     WHERE callback_id IN ({DUE_CALLBACKS} FOR UPDATE SKIP LOCKED) RETURNING {CALLBACK_COLUMNS}"
);
statement!(
    INSERT_ORDER,
    "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({}) ON CONFLICT (app_id, merchant_order_id) DO NOTHING",
    // One placeholder per column, so the list and the statement cannot drift apart.
    (1..=ORDER_COLUMNS.split(',').count())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
);
statement!(
    SELECT_ORDER_BY_MERCHANT_ID,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND merchant_order_id = $2"
);
statement!(
    SELECT_ORDER_BY_NO,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE order_no = $1"
);
statement!(
    SELECT_ORDERS_OF_APP,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE app_id = $1 AND order_no > $2 \
     ORDER BY order_no LIMIT $3"
);
statement!(
    SELECT_ORDER_BY_TOKEN,
    "SELECT {ORDER_COLUMNS} FROM orders WHERE cashier_token = $1"
);

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn currency_of(code: &str) -> StoreResult<Currency> {
    Currency::parse(code).ok_or_else(|| corrupt(format!("unknown currency {code}")))
}

fn app_from_row(row: &AnyRow) -> StoreResult<App> {
    let min: Option<i64> = row.try_get("min_amount_minor")?;
    let max: Option<i64> = row.try_get("max_amount_minor")?;
    Ok(App {
        app_id: AppId(row.try_get("app_id")?),
        merchant_id: MerchantId(row.try_get("merchant_id")?),
        currency: currency_of(&row.try_get::<String, _>("currency")?)?,
        public_key: row.try_get("public_key")?,
        webhook_secret: Secret::new(row.try_get::<String, _>("webhook_secret")?),
        pix: match (
            row.try_get::<Option<String>, _>("pix_key")?,
            row.try_get::<Option<String>, _>("pix_name")?,
            row.try_get::<Option<String>, _>("pix_city")?,
        ) {
            (Some(key), Some(name), Some(city)) => {
                Some(PixReceiver::new(&key, &name, &city).map_err(|e| corrupt(e.to_string()))?)
            }
            _ => None,
        },
        limits_override: min
            .zip(max)
            .map(|(min, max)| AmountLimits::new(AmountMinor(min), AmountMinor(max))),
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn order_from_row(row: &AnyRow) -> StoreResult<Order> {
    let order_no: String = row.try_get("order_no")?;
    let method: String = row.try_get("method")?;
    let status: String = row.try_get("status")?;
    let name: Option<String> = row.try_get("payer_name")?;
    let payer = match name {
        Some(name) => Some(Payer {
            name: Personal::new(name),
            phone: Personal::new(
                row.try_get::<Option<String>, _>("payer_phone")?
                    .unwrap_or_default(),
            ),
            email: Personal::new(
                row.try_get::<Option<String>, _>("payer_email")?
                    .unwrap_or_default(),
            ),
            partner_user_id: row
                .try_get::<Option<String>, _>("partner_user_id")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Order {
        order_no: OrderNo::parse(&order_no)
            .ok_or_else(|| corrupt(format!("order no {order_no}")))?,
        app_id: AppId(row.try_get("app_id")?),
        merchant_order_id: row.try_get("merchant_order_id")?,
        currency: currency_of(&row.try_get::<String, _>("currency")?)?,
        amount_minor: AmountMinor(row.try_get("amount_minor")?),
        method: PaymentMethod::by_code(&method)
            .ok_or_else(|| corrupt(format!("unknown method {method}")))?,
        chosen_method: match row.try_get::<Option<String>, _>("chosen_method")? {
            None => None,
            Some(code) => Some(
                PaymentMethod::by_code(&code)
                    .ok_or_else(|| corrupt(format!("unknown method {code}")))?,
            ),
        },
        country: row.try_get("country")?,
        payer,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        callback_url: row.try_get("callback_url")?,
        callback_fail_url: row.try_get("callback_fail_url")?,
        notify_url: row.try_get("notify_url")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown status {status}")))?,
        actual_amount_minor: AmountMinor(row.try_get("actual_amount_minor")?),
        fee_minor: AmountMinor(row.try_get("fee_minor")?),
        paid_at_ms: row.try_get("paid_at_ms")?,
        error_msg: row.try_get("error_msg")?,
        request_fingerprint: row.try_get("request_fingerprint")?,
        create_reply: row.try_get("create_reply")?,
        cashier_token: row.try_get("cashier_token")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        pix_code: row.try_get("pix_code")?,
    })
}

/// Headers are stored one `name: value` per line (names and values never hold line breaks).
fn encode_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\n"))
        .collect()
}

fn decode_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn callback_from_row(row: &AnyRow) -> StoreResult<Callback> {
    let order_no: String = row.try_get("order_no")?;
    let state: String = row.try_get("state")?;
    Ok(Callback {
        callback_id: row.try_get("callback_id")?,
        order_no: OrderNo::parse(&order_no)
            .ok_or_else(|| corrupt(format!("order no {order_no}")))?,
        app_id: AppId(row.try_get("app_id")?),
        url: row.try_get("url")?,
        body: row.try_get("body")?,
        headers: decode_headers(&row.try_get::<String, _>("headers")?),
        state: CallbackState::parse(&state)
            .ok_or_else(|| corrupt(format!("callback state {state}")))?,
        attempts: row.try_get("attempts")?,
        created_at_ms: row.try_get("created_at_ms")?,
        first_due_at_ms: row.try_get("first_due_at_ms")?,
        next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
        delivered_at_ms: row.try_get("delivered_at_ms")?,
        dead_at_ms: row.try_get("dead_at_ms")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        attempt_no: row.try_get("attempt_no")?,
        started_at_ms: row.try_get("started_at_ms")?,
        latency_ms: row.try_get("latency_ms")?,
        http_status: row.try_get("http_status")?,
        error: row.try_get("error")?,
        response_excerpt: row.try_get("response_excerpt")?,
        acknowledged: row.try_get::<i64, _>("acknowledged")? != 0,
        node: row.try_get("node")?,
    })
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The insert of a new order (`ON CONFLICT (app_id, merchant_order_id) DO NOTHING`).
fn insert_statement(order: &Order) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    let payer = order.payer.as_ref();
    sqlx::query(INSERT_ORDER.as_str())
        .bind(order.order_no.as_str())
        .bind(order.app_id.0)
        .bind(&order.merchant_order_id)
        .bind(order.currency.code())
        .bind(order.amount_minor.0)
        .bind(order.method.code)
        .bind(order.country.as_deref())
        .bind(payer.map(|p| p.name.expose()))
        .bind(payer.map(|p| p.phone.expose()))
        .bind(payer.map(|p| p.email.expose()))
        .bind(payer.map(|p| p.partner_user_id.as_str()))
        .bind(order.subject.as_deref())
        .bind(order.body.as_deref())
        .bind(order.callback_url.as_deref())
        .bind(order.callback_fail_url.as_deref())
        .bind(order.notify_url.as_deref())
        .bind(order.status.as_str())
        .bind(order.actual_amount_minor.0)
        .bind(order.fee_minor.0)
        .bind(order.paid_at_ms)
        .bind(order.error_msg.as_deref())
        .bind(&order.request_fingerprint)
        .bind(&order.create_reply)
        .bind(&order.cashier_token)
        .bind(order.created_at_ms)
        .bind(order.updated_at_ms)
        .bind(order.expires_at_ms)
        .bind(order.chosen_method.map(|m| m.code))
        .bind(order.pix_code.as_deref())
}

/// Only the order number and the page token are unique besides the merchant order id.
fn classify_insert_error(error: sqlx::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::OrderNoTaken
    } else {
        error.into()
    }
}

/// Most inserts waiting for the writer; a full queue makes callers wait (back-pressure).
const INSERT_QUEUE: usize = 1_024;
/// Most inserts in one commit.
const MAX_BATCH: usize = 128;

struct InsertJob {
    order: Order,
    done: tokio::sync::oneshot::Sender<StoreResult<u64>>,
}

/// Group commit for SQLite: one writer task takes whatever inserts are waiting and commits
/// them in one transaction, so concurrent creates share one fsync instead of paying one each.
/// Every caller gets its answer only after the commit that holds its row is durable.
struct InsertBatcher {
    jobs: tokio::sync::mpsc::Sender<InsertJob>,
}

impl InsertBatcher {
    fn start(pool: AnyPool) -> InsertBatcher {
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<InsertJob>(INSERT_QUEUE);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                Self::commit(&pool, batch).await;
            }
        });
        InsertBatcher { jobs }
    }

    async fn commit(pool: &AnyPool, batch: Vec<InsertJob>) {
        let written = async {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let mut results = Vec::with_capacity(batch.len());
            for job in &batch {
                // A failing statement (a taken order number) is undone alone; the rest commit.
                let result = insert_statement(&job.order)
                    .execute(&mut *tx)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(classify_insert_error);
                results.push(result);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(results)
        }
        .await;
        match written {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.done.send(result);
                }
            }
            Err(e) => {
                let why = e.to_string();
                for job in batch {
                    let _ = job.done.send(Err(StoreError::Batch(why.clone())));
                }
            }
        }
    }

    async fn insert(&self, order: Order) -> StoreResult<u64> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let closed = || StoreError::Batch("the writer stopped".into());
        self.jobs
            .send(InsertJob { order, done })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Records one attempt inside a transaction (see [`Store::finish_attempts`]).
async fn record_attempt(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    owner: &str,
    finished: &FinishedAttempt,
) -> StoreResult<bool> {
    // Numbering through the row itself serialises concurrent finishers of one callback.
    let attempt_no: i64 = sqlx::query(
        "UPDATE callbacks SET attempts = attempts + 1 WHERE callback_id = $1 RETURNING attempts",
    )
    .bind(&finished.callback_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| corrupt(format!("callback {} vanished", finished.callback_id)))?
    .try_get(0)?;
    sqlx::query(
        "INSERT INTO callback_attempts (callback_id, attempt_no, started_at_ms, latency_ms, \
             http_status, error, response_excerpt, acknowledged, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&finished.callback_id)
    .bind(attempt_no)
    .bind(finished.attempt.started_at_ms)
    .bind(finished.attempt.latency_ms)
    .bind(finished.attempt.http_status)
    .bind(finished.attempt.error.as_deref())
    .bind(finished.attempt.response_excerpt.as_deref())
    .bind(i64::from(finished.attempt.acknowledged))
    .bind(&finished.attempt.node)
    .execute(&mut **tx)
    .await?;
    let (state, next_at, delivered_at, dead_at) = match finished.after {
        AfterAttempt::Delivered { at_ms } => (CallbackState::Delivered, at_ms, Some(at_ms), None),
        AfterAttempt::RetryAt { at_ms } => (CallbackState::Pending, at_ms, None, None),
        AfterAttempt::Dead { at_ms } => (CallbackState::Dead, at_ms, None, Some(at_ms)),
    };
    Ok(sqlx::query(
        "UPDATE callbacks SET state = $1, next_attempt_at_ms = $2, delivered_at_ms = $3, \
             dead_at_ms = $4, lease_owner = NULL, lease_until_ms = NULL \
             WHERE callback_id = $5 AND lease_owner = $6",
    )
    .bind(state.as_str())
    .bind(next_at)
    .bind(delivered_at)
    .bind(dead_at)
    .bind(&finished.callback_id)
    .bind(owner)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// Serialises migrations across PostgreSQL nodes (an arbitrary, fixed lock id).
const MIGRATION_LOCK_ID: i64 = 0x006b_6173_7361; // "kassa" in ASCII

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK_ID)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS kassa_migrations (\
             version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM kassa_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        for (version, sql) in schema::migrations(self.backend) {
            if applied.contains(&version) {
                continue;
            }
            tracing::info!(version, backend = self.backend.name(), "applying migration");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO kassa_migrations (version, applied_at_ms) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn setting_or_insert(&self, name: &str, value: &str, now_ms: i64) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO settings (name, value, created_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        self.setting(name)
            .await?
            .ok_or_else(|| corrupt(format!("setting {name} vanished")))
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn create_merchant(
        &self,
        name: &str,
        new_apps: &[NewApp],
        public_key: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<MerchantWithApps> {
        let mut tx = self.begin_write().await?;
        let merchant_id: i64 = sqlx::query(
            "INSERT INTO merchants (name, created_at_ms) VALUES ($1, $2) RETURNING merchant_id",
        )
        .bind(name)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let mut apps = Vec::with_capacity(new_apps.len());
        for new_app in new_apps {
            let row = sqlx::query(INSERT_APP.as_str())
                .bind(merchant_id)
                .bind(new_app.currency.code())
                .bind(public_key)
                .bind(new_app.webhook_secret.expose())
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
            apps.push(app_from_row(&row)?);
        }
        tx.commit().await?;
        Ok(MerchantWithApps {
            merchant: Merchant {
                id: MerchantId(merchant_id),
                name: name.to_string(),
                created_at_ms: now_ms,
            },
            apps,
        })
    }

    async fn list_merchants(&self) -> StoreResult<Vec<MerchantWithApps>> {
        let rows = sqlx::query(
            "SELECT merchant_id, name, created_at_ms FROM merchants ORDER BY merchant_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut merchants = Vec::with_capacity(rows.len());
        for row in rows {
            let merchant = Merchant {
                id: MerchantId(row.try_get("merchant_id")?),
                name: row.try_get("name")?,
                created_at_ms: row.try_get("created_at_ms")?,
            };
            let apps = self.apps_of(merchant.id).await?;
            merchants.push(MerchantWithApps { merchant, apps });
        }
        Ok(merchants)
    }

    async fn app(&self, app_id: AppId) -> StoreResult<Option<App>> {
        let row = sqlx::query(SELECT_APP.as_str())
            .bind(app_id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn merchant_of_app(&self, app_id: AppId) -> StoreResult<Option<Merchant>> {
        let row = sqlx::query(
            "SELECT m.merchant_id, m.name, m.created_at_ms FROM merchants m \
             JOIN apps a ON a.merchant_id = m.merchant_id WHERE a.app_id = $1",
        )
        .bind(app_id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Merchant {
                id: MerchantId(row.try_get(0)?),
                name: row.try_get(1)?,
                created_at_ms: row.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn set_app_public_key(
        &self,
        app_id: AppId,
        public_key: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.update_app_text(
            "UPDATE apps SET public_key = $1, updated_at_ms = $2 WHERE app_id = $3",
            app_id,
            public_key,
            now_ms,
        )
        .await
    }

    async fn set_app_pix(
        &self,
        app_id: AppId,
        receiver: Option<&PixReceiver>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE apps SET pix_key = $1, pix_name = $2, pix_city = $3, updated_at_ms = $4 \
             WHERE app_id = $5",
        )
        .bind(receiver.map(|r| r.key.as_str()))
        .bind(receiver.map(|r| r.name.as_str()))
        .bind(receiver.map(|r| r.city.as_str()))
        .bind(now_ms)
        .bind(app_id.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_app_limits(
        &self,
        app_id: AppId,
        limits: Option<AmountLimits>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE apps SET min_amount_minor = $1, max_amount_minor = $2, updated_at_ms = $3 \
             WHERE app_id = $4",
        )
        .bind(limits.map(|l| l.min_minor.0))
        .bind(limits.map(|l| l.max_minor.0))
        .bind(now_ms)
        .bind(app_id.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_order(&self, order: &Order) -> StoreResult<InsertOutcome> {
        let inserted = match &self.batcher {
            Some(batcher) => batcher.insert(order.clone()).await,
            None => insert_statement(order)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected())
                .map_err(classify_insert_error),
        };
        if inserted? == 1 {
            return Ok(InsertOutcome::Inserted);
        }
        let existing = self
            .order_by_merchant_order_id(order.app_id, &order.merchant_order_id)
            .await?
            .ok_or_else(|| corrupt("conflicting order vanished"))?;
        Ok(InsertOutcome::Existing(Box::new(existing)))
    }

    async fn order_by_merchant_order_id(
        &self,
        app_id: AppId,
        merchant_order_id: &str,
    ) -> StoreResult<Option<Order>> {
        let row = sqlx::query(SELECT_ORDER_BY_MERCHANT_ID.as_str())
            .bind(app_id.0)
            .bind(merchant_order_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn order_by_no(&self, order_no: &OrderNo) -> StoreResult<Option<Order>> {
        self.one_order(SELECT_ORDER_BY_NO.as_str(), order_no.as_str())
            .await
    }

    async fn order_by_cashier_token(&self, token: &str) -> StoreResult<Option<Order>> {
        self.one_order(SELECT_ORDER_BY_TOKEN.as_str(), token).await
    }

    async fn orders_of_app(
        &self,
        app_id: AppId,
        after: Option<&OrderNo>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        // Order numbers are 16 digits, so "" sorts before every one of them.
        let rows = sqlx::query(SELECT_ORDERS_OF_APP.as_str())
            .bind(app_id.0)
            .bind(after.map_or("", |n| n.as_str()))
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    async fn set_webhook_secret(
        &self,
        app_id: AppId,
        secret: &Secret,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.update_app_text(
            "UPDATE apps SET webhook_secret = $1, updated_at_ms = $2 WHERE app_id = $3",
            app_id,
            secret.expose(),
            now_ms,
        )
        .await
    }

    async fn transition_order(
        &self,
        order: &Order,
        from: OrderStatus,
        callback: Option<&NewCallback>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE orders SET status = $1, actual_amount_minor = $2, fee_minor = $3, \
             paid_at_ms = $4, error_msg = $5, updated_at_ms = $6, chosen_method = $9 \
             WHERE order_no = $7 AND status = $8",
        )
        .bind(order.status.as_str())
        .bind(order.actual_amount_minor.0)
        .bind(order.fee_minor.0)
        .bind(order.paid_at_ms)
        .bind(order.error_msg.as_deref())
        .bind(order.updated_at_ms)
        .bind(order.order_no.as_str())
        .bind(from.as_str())
        .bind(order.chosen_method.map(|m| m.code))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(callback) = callback {
            sqlx::query(
                "INSERT INTO callbacks (callback_id, order_no, app_id, url, body, headers, state, \
                 attempts, created_at_ms, first_due_at_ms, next_attempt_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)",
            )
            .bind(&callback.callback_id)
            .bind(callback.order_no.as_str())
            .bind(callback.app_id.0)
            .bind(&callback.url)
            .bind(&callback.body)
            .bind(encode_headers(&callback.headers))
            .bind(callback.created_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_due_callbacks(
        &self,
        now_ms: i64,
        limit: i64,
        owner: &str,
        lease_until_ms: i64,
    ) -> StoreResult<Vec<Callback>> {
        let sql = match self.backend {
            Backend::Sqlite => CLAIM_CALLBACKS_SQLITE.as_str(),
            Backend::Postgres => CLAIM_CALLBACKS_POSTGRES.as_str(),
        };
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(lease_until_ms)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut claimed: Vec<Callback> = rows
            .iter()
            .map(callback_from_row)
            .collect::<Result<_, _>>()?;
        claimed.sort_by_key(|c| c.next_attempt_at_ms);
        Ok(claimed)
    }

    async fn finish_attempts(
        &self,
        owner: &str,
        finished: &[FinishedAttempt],
    ) -> StoreResult<Vec<bool>> {
        // One lock order for every node, so two batches never deadlock on PostgreSQL.
        let mut order: Vec<usize> = (0..finished.len()).collect();
        order.sort_by(|a, b| finished[*a].callback_id.cmp(&finished[*b].callback_id));
        let mut kept = vec![false; finished.len()];
        let mut tx = self.begin_write().await?;
        for i in order {
            kept[i] = record_attempt(&mut tx, owner, &finished[i]).await?;
        }
        tx.commit().await?;
        Ok(kept)
    }

    async fn callbacks_of_order(&self, order_no: &OrderNo) -> StoreResult<Vec<CallbackHistory>> {
        let rows = sqlx::query(SELECT_CALLBACKS_OF_ORDER.as_str())
            .bind(order_no.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut histories = Vec::with_capacity(rows.len());
        for row in rows {
            let callback = callback_from_row(&row)?;
            let attempts = sqlx::query(
                "SELECT attempt_no, started_at_ms, latency_ms, http_status, error, \
                 response_excerpt, acknowledged, node FROM callback_attempts \
                 WHERE callback_id = $1 ORDER BY attempt_no",
            )
            .bind(&callback.callback_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(attempt_from_row)
            .collect::<Result<_, _>>()?;
            histories.push(CallbackHistory { callback, attempts });
        }
        Ok(histories)
    }

    async fn resend_latest_callback(
        &self,
        order_no: &OrderNo,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "UPDATE callbacks SET state = 'pending', first_due_at_ms = $1, next_attempt_at_ms = $1, \
             delivered_at_ms = NULL, dead_at_ms = NULL, lease_owner = NULL, lease_until_ms = NULL \
             WHERE callback_id = (SELECT callback_id FROM callbacks WHERE order_no = $2 \
             ORDER BY created_at_ms DESC, callback_id DESC LIMIT 1) RETURNING callback_id",
        )
        .bind(now_ms)
        .bind(order_no.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn expired_orders(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<OrderNo>> {
        let rows = sqlx::query(
            "SELECT order_no FROM orders WHERE status IN ('created', 'in_progress') \
             AND expires_at_ms <= $1 ORDER BY expires_at_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get(0)?;
                OrderNo::parse(&text).ok_or_else(|| corrupt(format!("order no {text}")))
            })
            .collect()
    }

    async fn set_fee_rule(
        &self,
        app_id: AppId,
        method: &str,
        rule: Option<FeeRule>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        if self.app(app_id).await?.is_none() {
            return Ok(false);
        }
        match rule {
            Some(rule) => {
                sqlx::query(
                    "INSERT INTO app_fees (app_id, method, basis_points, fixed_minor, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, method) DO UPDATE SET \
                     basis_points = excluded.basis_points, fixed_minor = excluded.fixed_minor, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(app_id.0)
                .bind(method)
                .bind(i64::from(rule.basis_points))
                .bind(rule.fixed_minor.0)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM app_fees WHERE app_id = $1 AND method = $2")
                    .bind(app_id.0)
                    .bind(method)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(true)
    }

    async fn fee_rules(&self, app_id: AppId) -> StoreResult<Vec<(String, FeeRule)>> {
        let rows = sqlx::query(
            "SELECT method, basis_points, fixed_minor FROM app_fees WHERE app_id = $1 ORDER BY method",
        )
        .bind(app_id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let basis_points: i64 = row.try_get(1)?;
                let rule = FeeRule::new(
                    u32::try_from(basis_points).map_err(|_| corrupt("fee basis points"))?,
                    AmountMinor(row.try_get(2)?),
                )
                .map_err(|e| corrupt(e.to_string()))?;
                Ok((row.try_get(0)?, rule))
            })
            .collect()
    }

    async fn callback_counts(&self) -> StoreResult<Vec<(CallbackState, i64)>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM callbacks GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get(0)?;
                let count: i64 = row.try_get(1)?;
                let state = CallbackState::parse(&state)
                    .ok_or_else(|| corrupt(format!("callback state {state}")))?;
                Ok((state, count))
            })
            .collect()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
