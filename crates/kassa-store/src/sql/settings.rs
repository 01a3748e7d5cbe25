//! Settings: named values every node shares (platform keys, the operator's time zone).

use super::SqlStore;
use crate::error::corrupt;
use crate::{SettingStore, StoreResult};
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl SettingStore for SqlStore {
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

    async fn set_setting(
        &self,
        name: &str,
        value: &str,
        now_ms: i64,
        audit: Option<&crate::AuditEntry>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (name, value, created_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        super::users::audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}
