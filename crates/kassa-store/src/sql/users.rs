//! The back office's users and the audit log: each change to a user written in one
//! transaction with its audit entry.

use super::SqlStore;
use crate::error::corrupt;
use crate::{AuditEntry, Invitation, Session, StoreResult, User, UserStore};
use async_trait::async_trait;
use kassa_core::user::{NewUser, Role};
use kassa_core::{MerchantId, Secret};
use sqlx::Row;
use sqlx::any::AnyRow;

const USER_COLUMNS: &str = "user_id, email, role, merchant_id, password_hash, disabled, \
    failed_sign_ins, locked_until_ms, totp_secret, totp_last_step, created_at_ms, updated_at_ms";

fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("user role {role:?}")))?,
        merchant_id: row
            .try_get::<Option<i64>, _>("merchant_id")?
            .map(MerchantId),
        password_hash: Secret::new(row.try_get::<String, _>("password_hash")?),
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        failed_sign_ins: row.try_get("failed_sign_ins")?,
        locked_until_ms: row.try_get("locked_until_ms")?,
        totp_secret: row
            .try_get::<Option<String>, _>("totp_secret")?
            .map(Secret::new),
        totp_last_step: row.try_get("totp_last_step")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// Appends `entry` inside `tx`.
pub(super) async fn audit(tx: &mut super::WriteTransaction, entry: &AuditEntry) -> StoreResult<()> {
    let step = audit_step(entry);
    super::bound(&step.sql, step.values)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The statement that appends `entry`.
pub(super) fn audit_step(entry: &AuditEntry) -> super::Step<'_> {
    use super::Value::{Int, Text};
    super::Step {
        sql: "INSERT INTO audit_log (at_ms, actor, action, target, before_state, after_state, \
              source) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            .into(),
        values: vec![
            Int(Some(entry.at_ms)),
            Text(Some(&entry.actor)),
            Text(Some(&entry.action)),
            Text(Some(&entry.target)),
            Text(entry.before.as_deref()),
            Text(entry.after.as_deref()),
            Text(Some(&entry.source)),
        ],
    }
}

/// Inserts a user and its audit entry (its target the new user) inside `tx`.
async fn insert_user(
    tx: &mut super::WriteTransaction,
    user: &NewUser,
    password_hash: &str,
    entry: &AuditEntry,
) -> StoreResult<User> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (email, role, merchant_id, password_hash, disabled, \
         failed_sign_ins, locked_until_ms, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, 0, 0, 0, $5, $5) RETURNING {USER_COLUMNS}"
    )))
    .bind(&user.email)
    .bind(user.role.as_str())
    .bind(user.merchant_id.map(|m| m.0))
    .bind(password_hash)
    .bind(entry.at_ms)
    .fetch_one(&mut **tx)
    .await?;
    let added = user_from_row(&row)?;
    let entry = AuditEntry {
        target: format!("user:{}", added.user_id),
        ..entry.clone()
    };
    audit(tx, &entry).await?;
    Ok(added)
}

fn invitation_from_row(row: &AnyRow) -> StoreResult<Invitation> {
    let role: String = row.try_get("role")?;
    Ok(Invitation {
        token_hash: row.try_get("token_hash")?,
        user: NewUser {
            email: row.try_get("email")?,
            role: Role::parse(&role).ok_or_else(|| corrupt(format!("invitation role {role:?}")))?,
            merchant_id: row
                .try_get::<Option<i64>, _>("merchant_id")?
                .map(MerchantId),
        },
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
    })
}

/// Appends `entry`, if there is one, inside `tx`.
pub(super) async fn audit_maybe(
    tx: &mut super::WriteTransaction,
    entry: Option<&AuditEntry>,
) -> StoreResult<()> {
    match entry {
        Some(entry) => audit(tx, entry).await,
        None => Ok(()),
    }
}

impl SqlStore {
    /// Runs one update of a user (`$1` is its id, then `values`) with its audit entry, ending
    /// the user's sessions; false (nothing written) if there is no such user.
    async fn update_user(
        &self,
        sql: &'static str,
        user_id: i64,
        values: (Option<&str>, i64, i64),
        entry: &AuditEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let mut query = sqlx::query(sql).bind(user_id);
        if let Some(text) = values.0 {
            query = query.bind(text);
        }
        let changed = query
            .bind(values.1)
            .bind(values.2)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        // A user disabled or given a new password signs in again, everywhere.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn add_user(
        &self,
        user: &NewUser,
        password_hash: &str,
        entry: &AuditEntry,
    ) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        let added = insert_user(&mut tx, user, password_hash, entry).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn add_invitation(&self, invitation: &Invitation, entry: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO invitations (token_hash, email, role, merchant_id, created_at_ms, \
             expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&invitation.token_hash)
        .bind(&invitation.user.email)
        .bind(invitation.user.role.as_str())
        .bind(invitation.user.merchant_id.map(|m| m.0))
        .bind(invitation.created_at_ms)
        .bind(invitation.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn open_invitation(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Invitation>> {
        let row = sqlx::query(
            "SELECT token_hash, email, role, merchant_id, created_at_ms, expires_at_ms \
             FROM invitations WHERE token_hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        entry: &AuditEntry,
    ) -> StoreResult<Option<User>> {
        let mut tx = self.begin_write().await?;
        // Taken once: the first to mark it used gets the account; expired ones are not taken.
        let row = sqlx::query(
            "UPDATE invitations SET used_at_ms = $2 WHERE token_hash = $1 AND used_at_ms IS NULL \
             AND expires_at_ms > $2 \
             RETURNING token_hash, email, role, merchant_id, created_at_ms, expires_at_ms",
        )
        .bind(token_hash)
        .bind(entry.at_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(invitation) = row.as_ref().map(invitation_from_row).transpose()? else {
            return Ok(None);
        };
        let added = insert_user(&mut tx, &invitation.user, password_hash, entry).await?;
        tx.commit().await?;
        Ok(Some(added))
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email.trim().to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY user_id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_disabled(
        &self,
        user_id: i64,
        disabled: bool,
        entry: &AuditEntry,
    ) -> StoreResult<bool> {
        let sql = "UPDATE users SET disabled = $2, updated_at_ms = $3 WHERE user_id = $1";
        let values = (None, i64::from(disabled), entry.at_ms);
        self.update_user(sql, user_id, values, entry).await
    }

    async fn set_password_hash(
        &self,
        user_id: i64,
        password_hash: &str,
        entry: &AuditEntry,
    ) -> StoreResult<bool> {
        let sql = "UPDATE users SET password_hash = $2, failed_sign_ins = $3, \
                   locked_until_ms = 0, updated_at_ms = $4 WHERE user_id = $1";
        let values = (Some(password_hash), 0, entry.at_ms);
        self.update_user(sql, user_id, values, entry).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_entries(&self, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at_ms, actor, action, target, before_state, after_state, source \
             FROM audit_log ORDER BY audit_id DESC LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    at_ms: row.try_get("at_ms")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    before: row.try_get("before_state")?,
                    after: row.try_get("after_state")?,
                    source: row.try_get("source")?,
                })
            })
            .collect()
    }

    async fn sign_in(
        &self,
        session: &Session,
        totp_step: Option<i64>,
        entry: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at_ms, last_seen_at_ms, idle_ms, \
             ends_at_ms, source) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.token_hash)
        .bind(session.user_id)
        .bind(session.created_at_ms)
        .bind(session.last_seen_at_ms)
        .bind(session.idle_ms)
        .bind(session.ends_at_ms)
        .bind(&session.source)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET failed_sign_ins = 0, locked_until_ms = 0, \
             totp_last_step = COALESCE($2, totp_last_step) WHERE user_id = $1",
        )
        .bind(session.user_id)
        .bind(totp_step)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_failed(
        &self,
        user_id: i64,
        (failures, locked_until_ms): (i64, i64),
        entry: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE users SET failed_sign_ins = $2, locked_until_ms = $3 WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(failures)
        .bind(locked_until_ms)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_totp_secret(
        &self,
        user_id: i64,
        sealed_secret: Option<&str>,
        entry: &AuditEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE users SET totp_secret = $2, totp_last_step = NULL, updated_at_ms = $3 \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(sealed_secret)
        .bind(entry.at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn live_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(Session, User)>> {
        let columns: Vec<String> = USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect();
        let sql = format!(
            "SELECT s.token_hash, s.created_at_ms AS session_created_at_ms, s.last_seen_at_ms, \
             s.idle_ms, s.ends_at_ms, s.source, {} FROM sessions s \
             JOIN users u ON u.user_id = s.user_id WHERE s.token_hash = $1",
            columns.join(", ")
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let user = user_from_row(&row)?;
        let session = Session {
            token_hash: row.try_get("token_hash")?,
            user_id: user.user_id,
            created_at_ms: row.try_get("session_created_at_ms")?,
            last_seen_at_ms: row.try_get("last_seen_at_ms")?,
            idle_ms: row.try_get("idle_ms")?,
            ends_at_ms: row.try_get("ends_at_ms")?,
            source: row.try_get("source")?,
        };
        if !session.is_alive(now_ms) || user.disabled {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sessions SET last_seen_at_ms = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((
            Session {
                last_seen_at_ms: now_ms,
                ..session
            },
            user,
        )))
    }

    async fn end_session(&self, token_hash: &str) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended == 1)
    }

    async fn end_sessions_of(&self, user_id: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }
}
