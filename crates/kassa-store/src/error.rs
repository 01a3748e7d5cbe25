//! The store's one error type. No database type crosses the port: each database error is
//! classified once, here, into what a caller can act on — retry later, a uniqueness rule,
//! a missing or unreadable row, or a failure to report.

use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable, overloaded, busy, or read-only after a failover: nothing
    /// was written, and the same call may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write; names the rule.
    #[error("the write conflicts with {0}")]
    Conflict(String),
    /// The drawn order number (or page token) exists already; draw new ones.
    #[error("order number already taken")]
    OrderNoTaken,
    /// A row that had to be there is not.
    #[error("not found: {0}")]
    NotFound(String),
    /// A stored row that kassa cannot read back; never expected, reported loudly.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database failure: a bug, or a database kassa cannot work with.
    #[error("database error: {0}")]
    Failed(String),
    #[error("unsupported database URL {0}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot prepare the database file: {0}")]
    File(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether retrying later may succeed: the database is unreachable, overloaded or busy.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// SQLite result codes that mean "busy, try again": BUSY, LOCKED and their extended codes
/// (recovery, snapshot, shared cache).
const SQLITE_BUSY_CODES: &[&str] = &["5", "6", "261", "517", "262"];

/// PostgreSQL SQLSTATEs of a database that moves or sheds load: serialisation failure,
/// deadlock, read-only transaction (a demoted primary), shutdown, too many connections.
const POSTGRES_TRANSIENT_STATES: &[&str] = &[
    "40001", "40P01", "25006", "57P01", "57P02", "57P03", "53300",
];

/// Whether a database error code means the operation may succeed when retried.
fn is_transient_code(code: &str) -> bool {
    SQLITE_BUSY_CODES.contains(&code)
        || POSTGRES_TRANSIENT_STATES.contains(&code)
        || code.starts_with("08") // PostgreSQL's connection exceptions
}

/// The uniqueness rule a violation names: PostgreSQL's constraint name, or SQLite's
/// `table.column` from its message (`UNIQUE constraint failed: orders.order_no`).
pub(crate) fn violated_rule(db: &dyn sqlx::error::DatabaseError) -> String {
    match db.constraint() {
        Some(constraint) => constraint.to_string(),
        None => rule_in_sqlite_message(db.message()),
    }
}

fn rule_in_sqlite_message(message: &str) -> String {
    message
        .split_once("failed: ")
        .map_or(message, |(_, rule)| rule)
        .to_string()
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let converted = Self::convert(error);
        if converted.is_transient() {
            crate::telemetry::transient_error();
        }
        converted
    }
}

/// The native SQLite path's errors (sql/native.rs), classified as sqlx's SQLite errors are.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        let text = error.to_string();
        let converted = match &error {
            E::SqliteFailure(failure, message) => {
                let code = failure.extended_code;
                if is_transient_code(&code.to_string()) {
                    StoreError::Unavailable(text)
                } else if code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                {
                    StoreError::Conflict(rule_in_sqlite_message(
                        message.as_deref().unwrap_or_default(),
                    ))
                } else {
                    StoreError::Failed(text)
                }
            }
            E::QueryReturnedNoRows => StoreError::NotFound(text),
            E::FromSqlConversionFailure(..)
            | E::InvalidColumnType(..)
            | E::InvalidColumnName(_)
            | E::InvalidColumnIndex(_)
            | E::IntegralValueOutOfRange(..) => StoreError::Corrupt(text),
            _ => StoreError::Failed(text),
        };
        if converted.is_transient() {
            crate::telemetry::transient_error();
        }
        converted
    }
}

impl StoreError {
    fn convert(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let text = error.to_string();
        match &error {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(text)
            }
            E::Database(db) => {
                let code: Option<Cow<'_, str>> = db.code();
                if code.as_deref().is_some_and(is_transient_code) {
                    StoreError::Unavailable(text)
                } else if db.is_unique_violation() {
                    StoreError::Conflict(violated_rule(db.as_ref()))
                } else {
                    StoreError::Failed(text)
                }
            }
            E::RowNotFound => StoreError::NotFound(text),
            E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) => {
                StoreError::Corrupt(text)
            }
            _ => StoreError::Failed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        for code in ["5", "517", "40001", "25006", "08006", "57P01"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["19", "2067", "23505", "42P01"] {
            assert!(!is_transient_code(code), "{code}");
        }
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_transient());
    }
}
