//! The schema and its migrations, applied in order and recorded in `kassa_migrations`.
//!
//! One text serves both databases; identity columns are filled in per backend, and the few
//! rules only a backend's own language can state (triggers) come from [`BACKEND_MIGRATIONS`].
//! A migration is never edited once released: add a new one.

use super::Backend;

/// `(version, SQL)`. `{id}` becomes the backend's identity-column type.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE merchants (
    merchant_id {id_from_1},
    name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE apps (
    app_id {id_from_1001},
    merchant_id BIGINT NOT NULL REFERENCES merchants (merchant_id),
    currency TEXT NOT NULL,
    public_key TEXT,
    webhook_secret TEXT NOT NULL,
    min_amount_minor BIGINT,
    max_amount_minor BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX apps_by_merchant ON apps (merchant_id);

CREATE TABLE orders (
    order_no TEXT PRIMARY KEY,
    app_id BIGINT NOT NULL REFERENCES apps (app_id),
    merchant_order_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    method TEXT NOT NULL,
    country TEXT,
    payer_name TEXT,
    payer_phone TEXT,
    payer_email TEXT,
    partner_user_id TEXT,
    subject TEXT,
    body TEXT,
    callback_url TEXT,
    callback_fail_url TEXT,
    notify_url TEXT,
    status TEXT NOT NULL,
    actual_amount_minor BIGINT NOT NULL,
    fee_minor BIGINT NOT NULL,
    paid_at_ms BIGINT,
    error_msg TEXT,
    request_fingerprint TEXT NOT NULL,
    create_reply TEXT NOT NULL,
    cashier_token TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    UNIQUE (app_id, merchant_order_id)
);
CREATE INDEX orders_by_status_expiry ON orders (status, expires_at_ms);

-- The transactional outbox: a callback is written in the same transaction as the status
-- change that causes it. `webhook-id` is callback_id, stable across attempts.
CREATE TABLE callbacks (
    callback_id TEXT PRIMARY KEY,
    order_no TEXT NOT NULL REFERENCES orders (order_no),
    app_id BIGINT NOT NULL REFERENCES apps (app_id),
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    first_due_at_ms BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    delivered_at_ms BIGINT,
    dead_at_ms BIGINT
);
CREATE INDEX callbacks_due ON callbacks (state, next_attempt_at_ms);
CREATE INDEX callbacks_by_order ON callbacks (order_no);

CREATE TABLE callback_attempts (
    callback_id TEXT NOT NULL REFERENCES callbacks (callback_id),
    attempt_no BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    http_status BIGINT,
    error TEXT,
    response_excerpt TEXT,
    acknowledged BIGINT NOT NULL,
    node TEXT NOT NULL,
    PRIMARY KEY (callback_id, attempt_no)
);
"#,
    ),
    (
        2,
        r#"
-- The method the payer picked on the cashier page.
ALTER TABLE orders ADD COLUMN chosen_method TEXT;

-- Fees per app and method ('*' = every method without its own rule).
CREATE TABLE app_fees (
    app_id BIGINT NOT NULL REFERENCES apps (app_id),
    method TEXT NOT NULL,
    basis_points BIGINT NOT NULL,
    fixed_minor BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, method)
);
"#,
    ),
    (
        3,
        r#"
-- Who receives an app's PIX payments, as its BR Codes say.
ALTER TABLE apps ADD COLUMN pix_key TEXT;
ALTER TABLE apps ADD COLUMN pix_name TEXT;
ALTER TABLE apps ADD COLUMN pix_city TEXT;
-- The BR Code handed out for a PIX order, kept as it was given.
ALTER TABLE orders ADD COLUMN pix_code TEXT;
"#,
    ),
    (
        4,
        r#"
-- Which dialect received each order (its callbacks speak it), and which rail and channel move
-- its money. Orders from before were all the sandbox's; PIX orders came through the pix dialect.
ALTER TABLE orders ADD COLUMN dialect TEXT NOT NULL DEFAULT 'collect';
UPDATE orders SET dialect = 'pix' WHERE method = 'PIX';
ALTER TABLE orders ADD COLUMN rail TEXT NOT NULL DEFAULT 'sandbox';
ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL DEFAULT 'sandbox';
"#,
    ),
    (
        5,
        r#"
-- The channels rails move money through: the sandbox or an upstream PSP account. The upstream
-- private key is sealed by kassa before it gets here. Currencies: ISO codes, comma-separated.
CREATE TABLE channels (
    channel_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    base_url TEXT,
    upstream_app_id BIGINT,
    merchant_key TEXT,
    platform_public_key TEXT,
    currencies TEXT NOT NULL,
    min_minor BIGINT,
    max_minor BIGINT,
    priority BIGINT NOT NULL,
    weight BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    connect_timeout_ms BIGINT NOT NULL,
    request_timeout_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Which of kassa's methods a channel serves, and how its upstream names each.
CREATE TABLE channel_methods (
    channel_id TEXT NOT NULL REFERENCES channels (channel_id),
    method TEXT NOT NULL,
    upstream_in_bank_code TEXT NOT NULL,
    upstream_pay_type TEXT NOT NULL,
    PRIMARY KEY (channel_id, method)
);
"#,
    ),
    (
        6,
        r#"
-- An order's account at an upstream channel. Written before the upstream is called (its
-- upstream order number unknown until it answers), so that a crash between the two is found by
-- reconciliation, which queries the upstream for every row of an order not yet final whose
-- next check is due.
CREATE TABLE upstream_orders (
    order_no TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    upstream_order_no TEXT,
    next_check_at_ms BIGINT NOT NULL,
    checks BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX upstream_orders_due ON upstream_orders (next_check_at_ms);

-- How each order was routed: every channel tried, in order, with what came of it.
CREATE TABLE routing_attempts (
    order_no TEXT NOT NULL,
    attempt_no BIGINT NOT NULL,
    channel_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (order_no, attempt_no)
);
"#,
    ),
    (
        7,
        r#"
-- The books (kassa-core::ledger): journals, each a balanced set of entries, never changed.
-- Amounts in minor units, debits positive, credits negative. An order's success journal is
-- `success:ORDER_NO`: the key makes a second posting for one order impossible.
CREATE TABLE ledger_journals (
    journal_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    order_no TEXT,
    app_id BIGINT NOT NULL,
    currency TEXT NOT NULL,
    posted_at_ms BIGINT NOT NULL
);
CREATE INDEX ledger_journals_by_app ON ledger_journals (app_id, posted_at_ms);

CREATE TABLE ledger_entries (
    journal_id TEXT NOT NULL REFERENCES ledger_journals (journal_id),
    entry_no BIGINT NOT NULL,
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor <> 0),
    PRIMARY KEY (journal_id, entry_no)
);
CREATE INDEX ledger_entries_by_account ON ledger_entries (account, currency);

-- Orders that succeeded before the books existed get their success journals now.
INSERT INTO ledger_journals (journal_id, kind, order_no, app_id, currency, posted_at_ms)
SELECT 'success:' || order_no, 'success', order_no, app_id, currency, COALESCE(paid_at_ms, updated_at_ms)
FROM orders WHERE status = 'succeeded' AND actual_amount_minor > 0;
INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor)
SELECT 'success:' || order_no, 1, 'channel:' || channel || ':receivable', currency, actual_amount_minor
FROM orders WHERE status = 'succeeded' AND actual_amount_minor > 0;
INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor)
SELECT 'success:' || order_no, 2, 'app:' || CAST(app_id AS TEXT) || ':pending', currency, -actual_amount_minor
FROM orders WHERE status = 'succeeded' AND actual_amount_minor > 0;
INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor)
SELECT 'success:' || order_no, 3, 'app:' || CAST(app_id AS TEXT) || ':pending', currency,
    CASE WHEN fee_minor < actual_amount_minor THEN fee_minor ELSE actual_amount_minor END
FROM orders WHERE status = 'succeeded' AND actual_amount_minor > 0 AND fee_minor > 0;
INSERT INTO ledger_entries (journal_id, entry_no, account, currency, amount_minor)
SELECT 'success:' || order_no, 4, 'platform:fees', currency,
    -(CASE WHEN fee_minor < actual_amount_minor THEN fee_minor ELSE actual_amount_minor END)
FROM orders WHERE status = 'succeeded' AND actual_amount_minor > 0 AND fee_minor > 0;
"#,
    ),
    (
        8,
        r#"
-- Settlement: a success journal's funds become available to the merchant from settles_at_ms
-- (T+N days of the app, from the start of the day in the operator's zone).
ALTER TABLE ledger_journals ADD COLUMN settles_at_ms BIGINT;
CREATE INDEX ledger_journals_to_settle ON ledger_journals (settles_at_ms);
ALTER TABLE apps ADD COLUMN settlement_delay_days BIGINT NOT NULL DEFAULT 1;
-- Successes posted before: a day after they were posted.
UPDATE ledger_journals SET settles_at_ms = posted_at_ms + 86400000 WHERE kind = 'success';
"#,
    ),
    (
        10,
        r#"
-- Reconciliation of a channel's day (`kassa reconcile`): the orders opened at a channel by
-- day, the last run of each channel and day, and every difference it found (a run replaces
-- the previous one's). The metrics and the back office read them.
CREATE INDEX upstream_orders_by_channel ON upstream_orders (channel_id, created_at_ms);
CREATE TABLE reconciliation_runs (
    channel_id TEXT NOT NULL,
    day TEXT NOT NULL,
    mode TEXT NOT NULL,
    orders_compared BIGINT NOT NULL,
    differences BIGINT NOT NULL,
    ran_at_ms BIGINT NOT NULL,
    PRIMARY KEY (channel_id, day)
);
CREATE TABLE reconciliation_differences (
    channel_id TEXT NOT NULL,
    day TEXT NOT NULL,
    upstream_order_id TEXT NOT NULL,
    order_no TEXT,
    kind TEXT NOT NULL,
    kassa TEXT NOT NULL,
    upstream TEXT NOT NULL,
    PRIMARY KEY (channel_id, day, upstream_order_id)
);
"#,
    ),
    (
        12,
        r#"
-- Back-office sessions: the cookie carries a random token, the database only its SHA-256, so
-- a copy of the database opens no session. Each ends when idle too long or at its absolute
-- end, whichever comes first.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (user_id),
    created_at_ms BIGINT NOT NULL,
    last_seen_at_ms BIGINT NOT NULL,
    idle_ms BIGINT NOT NULL,
    ends_at_ms BIGINT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- A user's second factor: the TOTP secret, sealed with the key-encryption key, and the last
-- step whose code was taken (a code is never taken twice).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
"#,
    ),
    (
        13,
        r#"
-- Every status change of an order, written in the transaction of the change: the timeline the
-- back office shows. An order's creation is its own row in orders.
CREATE TABLE order_events (
    order_no TEXT NOT NULL REFERENCES orders (order_no),
    at_ms BIGINT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX order_events_by_order ON order_events (order_no, at_ms);

-- The back office's order list: newest first, over all orders or one app's, found by the
-- merchant's orderId or the payer's e-mail too.
CREATE INDEX orders_by_time ON orders (created_at_ms, order_no);
CREATE INDEX orders_by_app_time ON orders (app_id, created_at_ms, order_no);
CREATE INDEX orders_by_merchant_order_id ON orders (merchant_order_id);
CREATE INDEX orders_by_payer_email ON orders (payer_email);

-- An order's journals, on its page.
CREATE INDEX ledger_journals_by_order ON ledger_journals (order_no);
"#,
    ),
    (
        14,
        r#"
-- Invitations to the back office: the link carries a random token, the database only its
-- SHA-256; taken once (used_at_ms), before it expires.
CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    merchant_id BIGINT REFERENCES merchants (merchant_id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT
);
"#,
    ),
    (
        15,
        r#"
-- The back office's list of one status (succeeded, exception…), newest first: without it a
-- common status is read whole and sorted.
CREATE INDEX orders_by_status_time ON orders (status, created_at_ms, order_no);
"#,
    ),
    (
        16,
        r#"
-- A rotated webhook secret keeps signing callbacks (beside the new one) for a while, sealed
-- as the current one is.
ALTER TABLE apps ADD COLUMN retiring_webhook_secret TEXT;
ALTER TABLE apps ADD COLUMN retiring_secret_until_ms BIGINT;
"#,
    ),
    (
        17,
        r#"
-- A merchant suspended by the operator takes no new order. Its apps carry the mark too, since
-- requests read the app alone.
ALTER TABLE merchants ADD COLUMN suspended_at_ms BIGINT;
ALTER TABLE apps ADD COLUMN suspended BIGINT NOT NULL DEFAULT 0;
"#,
    ),
    (
        18,
        r#"
-- The payer pages' language a merchant may ask for with an order (kassa's extension).
ALTER TABLE orders ADD COLUMN language TEXT;
"#,
    ),
    (
        19,
        r#"
-- A merchant's colour on the payer's pages (#rrggbb, checked for contrast when set).
ALTER TABLE apps ADD COLUMN brand_colour TEXT;
"#,
    ),
    (
        20,
        r#"
-- How an app's PIX codes carry a payment: 'dynamic' (a location the payer's bank fetches the
-- signed charge from), else static.
ALTER TABLE apps ADD COLUMN pix_codes TEXT;
-- A merchant's logo on the payer's pages, checked when uploaded and served by kassa itself.
-- The app names its version (when it was set), so that pages link to the image for good.
ALTER TABLE apps ADD COLUMN logo_version BIGINT;
CREATE TABLE app_logos (
    app_id BIGINT PRIMARY KEY REFERENCES apps (app_id),
    content_type TEXT NOT NULL,
    image_base64 TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
"#,
    ),
];

/// SQLite's rules on the ledger's entries and their journal's balance (migration 9), written
/// again by migration 22 when it rebuilds the entries' table.
macro_rules! sqlite_ledger_entry_triggers {
    () => {
        r#"CREATE TRIGGER ledger_journals_balanced BEFORE INSERT ON ledger_journals
WHEN (SELECT COUNT(*) FROM ledger_entries WHERE journal_id = NEW.journal_id) < 2
  OR EXISTS (SELECT 1 FROM ledger_entries WHERE journal_id = NEW.journal_id AND currency <> NEW.currency)
  OR (SELECT SUM(amount_minor) FROM ledger_entries WHERE journal_id = NEW.journal_id) <> 0
BEGIN SELECT RAISE(ABORT, 'ledger: a journal must balance: two entries or more, one currency, summing to zero'); END;
CREATE TRIGGER ledger_entries_closed BEFORE INSERT ON ledger_entries
WHEN EXISTS (SELECT 1 FROM ledger_journals WHERE journal_id = NEW.journal_id)
  AND NOT EXISTS (SELECT 1 FROM ledger_entries WHERE journal_id = NEW.journal_id AND entry_no = NEW.entry_no)
BEGIN SELECT RAISE(ABORT, 'ledger: a written journal takes no more entries'); END;
CREATE TRIGGER ledger_entries_unchanged BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger: entries are never changed'); END;
CREATE TRIGGER ledger_entries_kept BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger: entries are never removed'); END;
"#
    };
}

/// `(version, SQLite, PostgreSQL)`: migrations written once per backend.
const BACKEND_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        9,
        concat!(
            r#"
-- Reports read one app's succeeded orders of a day, in pages, by payment time.
CREATE INDEX orders_paid_by_app ON orders (app_id, paid_at_ms, order_no) WHERE status = 'succeeded';

-- The books, held by the database too. Entries are written first, their journal last (the
-- foreign key waits for the commit): the journal can only be written when its entries, at
-- least two, all in its currency, sum to zero; no entry joins a journal already written;
-- nothing written is ever changed or removed. A repeated entry still fails on the key (a
-- second posting is a conflict, as before).
"#,
            sqlite_ledger_entry_triggers!(),
            r#"CREATE TRIGGER ledger_journals_unchanged BEFORE UPDATE ON ledger_journals
BEGIN SELECT RAISE(ABORT, 'ledger: journals are never changed'); END;
CREATE TRIGGER ledger_journals_kept BEFORE DELETE ON ledger_journals
BEGIN SELECT RAISE(ABORT, 'ledger: journals are never removed'); END;
"#
        ),
        r#"
CREATE INDEX orders_paid_by_app ON orders (app_id, paid_at_ms, order_no) WHERE status = 'succeeded';

-- See the SQLite text: the same rules in PL/pgSQL.
ALTER TABLE ledger_entries ALTER CONSTRAINT ledger_entries_journal_id_fkey
    DEFERRABLE INITIALLY DEFERRED;
CREATE FUNCTION kassa_ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COUNT(*) FROM ledger_entries WHERE journal_id = NEW.journal_id) < 2
       OR EXISTS (SELECT 1 FROM ledger_entries WHERE journal_id = NEW.journal_id AND currency <> NEW.currency)
       OR (SELECT SUM(amount_minor) FROM ledger_entries WHERE journal_id = NEW.journal_id) <> 0 THEN
        RAISE EXCEPTION 'ledger: journal % must balance: two entries or more, one currency, summing to zero',
            NEW.journal_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_journals_balanced BEFORE INSERT ON ledger_journals
    FOR EACH ROW EXECUTE FUNCTION kassa_ledger_balanced();
CREATE FUNCTION kassa_ledger_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger_journals WHERE journal_id = NEW.journal_id)
       AND NOT EXISTS (SELECT 1 FROM ledger_entries WHERE journal_id = NEW.journal_id AND entry_no = NEW.entry_no) THEN
        RAISE EXCEPTION 'ledger: journal % is written and takes no more entries', NEW.journal_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_entries_closed BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION kassa_ledger_closed();
CREATE FUNCTION kassa_ledger_unchangeable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger: % rows are never changed or removed', TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER ledger_entries_unchangeable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION kassa_ledger_unchangeable();
CREATE TRIGGER ledger_journals_unchangeable BEFORE UPDATE OR DELETE ON ledger_journals
    FOR EACH ROW EXECUTE FUNCTION kassa_ledger_unchangeable();
"#,
    ),
    (
        11,
        r#"
-- The back office's users (kassa-core::user): signing in by e-mail with an argon2id password
-- hash; locked for a while after repeated failures.
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    merchant_id BIGINT REFERENCES merchants (merchant_id),
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    failed_sign_ins BIGINT NOT NULL,
    locked_until_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Every state-changing action of a person: who, what, on what, before and after, from where.
-- Appended only: the database refuses to change or remove an entry.
CREATE TABLE audit_log (
    audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_state TEXT,
    after_state TEXT,
    source TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at_ms);
CREATE TRIGGER audit_log_unchanged BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit: entries are never changed'); END;
CREATE TRIGGER audit_log_kept BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit: entries are never removed'); END;
"#,
        r#"
-- The back office's users (kassa-core::user): signing in by e-mail with an argon2id password
-- hash; locked for a while after repeated failures.
CREATE TABLE users (
    user_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    merchant_id BIGINT REFERENCES merchants (merchant_id),
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    failed_sign_ins BIGINT NOT NULL,
    locked_until_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Every state-changing action of a person: who, what, on what, before and after, from where.
-- Appended only: the database refuses to change or remove an entry.
CREATE TABLE audit_log (
    audit_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_state TEXT,
    after_state TEXT,
    source TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at_ms);
CREATE FUNCTION kassa_audit_unchangeable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit: entries are never changed or removed' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER audit_log_unchangeable BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION kassa_audit_unchangeable();
"#,
    ),
    (
        21,
        r#"
-- Retention (sql/retention.rs): final orders past the operator's retention move here, out of
-- the hot table, in small batches; merchants' queries, reports and the books read both. Its
-- columns are the orders' own, in their order: a migration that adds a column to orders adds
-- it here too.
CREATE TABLE orders_archive AS SELECT * FROM orders WHERE 0;
CREATE INDEX orders_archive_by_no ON orders_archive (order_no);
CREATE INDEX orders_archive_by_merchant_order_id ON orders_archive (app_id, merchant_order_id, created_at_ms);
CREATE INDEX orders_archive_paid_by_app ON orders_archive (app_id, paid_at_ms, order_no) WHERE status = 'succeeded';
"#,
        r#"
-- See the SQLite text. Here the archive is partitioned by month of creation (UTC): the
-- retention creates each month's partition before it moves the month's first orders, and an
-- archived month leaves the database as one DROP TABLE of its partition, without a vacuum.
CREATE TABLE orders_archive (LIKE orders INCLUDING DEFAULTS) PARTITION BY RANGE (created_at_ms);
CREATE INDEX orders_archive_by_no ON orders_archive (order_no);
CREATE INDEX orders_archive_by_merchant_order_id ON orders_archive (app_id, merchant_order_id, created_at_ms);
CREATE INDEX orders_archive_paid_by_app ON orders_archive (app_id, paid_at_ms, order_no) WHERE status = 'succeeded';
"#,
    ),
    (
        22,
        concat!(
            r#"
-- The entries' foreign key to their journal, deferred to the commit as PostgreSQL's is
-- (migration 9). Posting a journal used to defer it with PRAGMA defer_foreign_keys, and a flag
-- pragma expires every statement the connection has prepared: each payment made the next
-- statements be compiled again. SQLite changes a constraint only by rebuilding the table (its
-- documented procedure); the entries are copied as they are, their rules written again.
DROP TRIGGER ledger_journals_balanced;
DROP TRIGGER ledger_entries_closed;
DROP TRIGGER ledger_entries_unchanged;
DROP TRIGGER ledger_entries_kept;
CREATE TABLE ledger_entries_deferred (
    journal_id TEXT NOT NULL REFERENCES ledger_journals (journal_id) DEFERRABLE INITIALLY DEFERRED,
    entry_no BIGINT NOT NULL,
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor <> 0),
    PRIMARY KEY (journal_id, entry_no)
);
INSERT INTO ledger_entries_deferred (journal_id, entry_no, account, currency, amount_minor)
SELECT journal_id, entry_no, account, currency, amount_minor FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_deferred RENAME TO ledger_entries;
CREATE INDEX ledger_entries_by_account ON ledger_entries (account, currency);
"#,
            sqlite_ledger_entry_triggers!()
        ),
        "-- PostgreSQL's key is deferred since migration 9.\nSELECT 1;",
    ),
    (
        23,
        "-- PostgreSQL's callbacks leave room in their pages (migration 23 there).\nSELECT 1;",
        r#"
-- A claim writes only a callback's lease, which no index holds: PostgreSQL can keep the new
-- version of the row on its page and touch no index (a heap-only update), but only where the
-- page has room for it. Filled to the brim, as by default, a page had room for about one
-- claim in ten; half empty, nine in ten fit, and a delivery's log is a fifth to a third smaller
-- (docs/performance.md, "PostgreSQL's callbacks with room for their claims"). Pages written
-- from now on keep the room; a table rewrite (VACUUM FULL) gives it to the old ones.
ALTER TABLE callbacks SET (fillfactor = 50);
"#,
    ),
];

pub(crate) fn migrations(backend: Backend) -> impl Iterator<Item = (i64, String)> {
    let own = BACKEND_MIGRATIONS
        .iter()
        .map(move |(version, sqlite, postgres)| {
            let sql = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            (*version, sql.to_string())
        });
    let shared = MIGRATIONS.iter().map(move |(version, sql)| {
        let (from_1, from_1001) = match backend {
            Backend::Sqlite => (
                "INTEGER PRIMARY KEY AUTOINCREMENT",
                "INTEGER PRIMARY KEY AUTOINCREMENT",
            ),
            Backend::Postgres => (
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY (START WITH 1001) PRIMARY KEY",
            ),
        };
        let mut sql = sql
            .replace("{id_from_1001}", from_1001)
            .replace("{id_from_1}", from_1);
        if backend == Backend::Sqlite && *version == 1 {
            // AUTOINCREMENT counters live in sqlite_sequence; app ids start at 1001.
            sql.push_str("INSERT INTO sqlite_sequence (name, seq) VALUES ('apps', 1000);\n");
        }
        (*version, sql)
    });
    let mut all: Vec<(i64, String)> = shared.chain(own).collect();
    all.sort_by_key(|(version, _)| *version);
    all.into_iter()
}
