//! Channels and the methods each maps, written and replaced together in one transaction.

use super::{SqlStore, statement};
use crate::error::corrupt;
use crate::{ChannelStore, StoreResult};
use async_trait::async_trait;
use kassa_core::{
    AmountLimits, AmountMinor, Channel, ChannelKind, Currency, MethodRoute, PaymentMethod, Secret,
    Upstream,
};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

const CHANNEL_COLUMNS: &str = "channel_id, kind, base_url, upstream_app_id, merchant_key, \
    platform_public_key, currencies, min_minor, max_minor, priority, weight, enabled, \
    connect_timeout_ms, request_timeout_ms, created_at_ms, updated_at_ms";

statement!(
    INSERT_CHANNEL,
    "INSERT INTO channels ({CHANNEL_COLUMNS}) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
     ON CONFLICT (channel_id) DO NOTHING"
);
statement!(
    SELECT_CHANNELS,
    "SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY priority, channel_id"
);
statement!(
    SELECT_CHANNEL,
    "SELECT {CHANNEL_COLUMNS} FROM channels WHERE channel_id = $1"
);

type Tx = super::WriteTransaction;

fn currencies_text(currencies: &[Currency]) -> String {
    let codes: Vec<&str> = currencies.iter().map(|c| c.code()).collect();
    codes.join(",")
}

fn channel_from_row(row: &AnyRow, methods: Vec<MethodRoute>) -> StoreResult<Channel> {
    let kind_text: String = row.try_get("kind")?;
    let kind = ChannelKind::parse(&kind_text)
        .ok_or_else(|| corrupt(format!("channel kind {kind_text}")))?;
    let currencies = row
        .try_get::<String, _>("currencies")?
        .split(',')
        .map(|code| Currency::parse(code).ok_or_else(|| corrupt(format!("currency {code}"))))
        .collect::<StoreResult<Vec<_>>>()?;
    let base_url: Option<String> = row.try_get("base_url")?;
    let upstream = match base_url {
        None => None,
        Some(base_url) => Some(Upstream {
            base_url,
            app_id: row
                .try_get::<Option<i64>, _>("upstream_app_id")?
                .unwrap_or_default(),
            merchant_key: Secret::new(
                row.try_get::<Option<String>, _>("merchant_key")?
                    .unwrap_or_default(),
            ),
            platform_public_key: row
                .try_get::<Option<String>, _>("platform_public_key")?
                .unwrap_or_default(),
        }),
    };
    let min: Option<i64> = row.try_get("min_minor")?;
    let max: Option<i64> = row.try_get("max_minor")?;
    Ok(Channel {
        channel_id: row.try_get("channel_id")?,
        kind,
        upstream,
        methods,
        currencies,
        limits: min
            .zip(max)
            .map(|(min, max)| AmountLimits::new(AmountMinor(min), AmountMinor(max))),
        priority: row.try_get::<i64, _>("priority")? as i32,
        weight: row.try_get::<i64, _>("weight")? as u32,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        connect_timeout_ms: row.try_get::<i64, _>("connect_timeout_ms")? as u64,
        request_timeout_ms: row.try_get::<i64, _>("request_timeout_ms")? as u64,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

const UPDATE_CHANNEL: &str = "UPDATE channels SET kind = $2, base_url = $3, \
    upstream_app_id = $4, merchant_key = $5, platform_public_key = $6, currencies = $7, \
    min_minor = $8, max_minor = $9, priority = $10, weight = $11, enabled = $12, \
    connect_timeout_ms = $13, request_timeout_ms = $14, updated_at_ms = $15 \
    WHERE channel_id = $1";

use super::Query;

/// Binds the id and the settings ($1…$14, in `CHANNEL_COLUMNS` order): inserts and updates
/// share them.
fn bind_settings<'q>(query: Query<'q>, channel: &'q Channel) -> Query<'q> {
    let upstream = channel.upstream.as_ref();
    query
        .bind(&channel.channel_id)
        .bind(channel.kind.code())
        .bind(upstream.map(|u| u.base_url.as_str()))
        .bind(upstream.map(|u| u.app_id))
        .bind(upstream.map(|u| u.merchant_key.expose()))
        .bind(upstream.map(|u| u.platform_public_key.as_str()))
        .bind(currencies_text(&channel.currencies))
        .bind(channel.limits.map(|l| l.min_minor.0))
        .bind(channel.limits.map(|l| l.max_minor.0))
        .bind(i64::from(channel.priority))
        .bind(i64::from(channel.weight))
        .bind(i64::from(channel.enabled))
        .bind(channel.connect_timeout_ms as i64)
        .bind(channel.request_timeout_ms as i64)
}

async fn write_methods(tx: &mut Tx, channel: &Channel) -> StoreResult<()> {
    sqlx::query("DELETE FROM channel_methods WHERE channel_id = $1")
        .bind(&channel.channel_id)
        .execute(&mut **tx)
        .await?;
    for route in &channel.methods {
        sqlx::query(
            "INSERT INTO channel_methods (channel_id, method, upstream_in_bank_code, \
             upstream_pay_type) VALUES ($1, $2, $3, $4)",
        )
        .bind(&channel.channel_id)
        .bind(route.method.code)
        .bind(&route.upstream_in_bank_code)
        .bind(&route.upstream_pay_type)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl SqlStore {
    /// The methods of the channels named, in one query.
    async fn methods_of(
        &self,
        channel_id: Option<&str>,
    ) -> StoreResult<Vec<(String, MethodRoute)>> {
        let rows = sqlx::query(
            "SELECT channel_id, method, upstream_in_bank_code, upstream_pay_type \
             FROM channel_methods WHERE $1 = '' OR channel_id = $1 ORDER BY channel_id, method",
        )
        .bind(channel_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let code: String = row.try_get("method")?;
                let method = PaymentMethod::by_code(&code)
                    .ok_or_else(|| corrupt(format!("channel method {code}")))?;
                let route = MethodRoute {
                    method,
                    upstream_in_bank_code: row.try_get("upstream_in_bank_code")?,
                    upstream_pay_type: row.try_get("upstream_pay_type")?,
                };
                Ok((row.try_get("channel_id")?, route))
            })
            .collect()
    }
}

#[async_trait]
impl ChannelStore for SqlStore {
    async fn insert_channel(&self, channel: &Channel) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let insert = bind_settings(sqlx::query(INSERT_CHANNEL.as_str()), channel)
            .bind(channel.created_at_ms)
            .bind(channel.updated_at_ms);
        if insert.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        write_methods(&mut tx, channel).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn update_channel(
        &self,
        channel: &Channel,
        audit: Option<&crate::AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let update =
            bind_settings(sqlx::query(UPDATE_CHANNEL), channel).bind(channel.updated_at_ms);
        if update.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        write_methods(&mut tx, channel).await?;
        super::users::audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn channel(&self, channel_id: &str) -> StoreResult<Option<Channel>> {
        let Some(row) = sqlx::query(SELECT_CHANNEL.as_str())
            .bind(channel_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let methods = self.methods_of(Some(channel_id)).await?;
        let methods = methods.into_iter().map(|(_, route)| route).collect();
        Ok(Some(channel_from_row(&row, methods)?))
    }

    async fn channels(&self) -> StoreResult<Vec<Channel>> {
        let rows = sqlx::query(SELECT_CHANNELS.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut methods: HashMap<String, Vec<MethodRoute>> = HashMap::new();
        for (owner, route) in self.methods_of(None).await? {
            methods.entry(owner).or_default().push(route);
        }
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("channel_id")?;
                channel_from_row(row, methods.remove(&id).unwrap_or_default())
            })
            .collect()
    }
}
