//! Merchants, their apps and the apps' fee rules: statements, bindings and row mapping.

use super::users::audit_maybe;
use super::{Columns, SqlStore, statement};
use crate::error::corrupt;
use crate::{AuditEntry, MerchantStore, MerchantWithApps, NewApp, StoreResult};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kassa_core::pix::{CodeKind, PixReceiver};
use kassa_core::{
    AmountLimits, AmountMinor, App, AppId, BrandColour, Currency, FeeRule, Logo, Merchant,
    MerchantId, Secret,
};
use sqlx::Row;
use sqlx::any::AnyRow;

const APP_COLUMNS: &str = "app_id, merchant_id, currency, public_key, webhook_secret, \
    min_amount_minor, max_amount_minor, created_at_ms, pix_key, pix_name, pix_city, \
    retiring_webhook_secret, retiring_secret_until_ms, suspended, brand_colour, pix_codes, \
    logo_version";

statement!(
    SELECT_APP,
    "SELECT {APP_COLUMNS} FROM apps WHERE app_id = $1"
);
statement!(
    INSERT_APP,
    "INSERT INTO apps (merchant_id, currency, public_key, webhook_secret, created_at_ms, \
     updated_at_ms) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {APP_COLUMNS}"
);
// Every merchant with its apps in one query (a merchant without apps has one row of NULLs).
statement!(
    SELECT_APPS_OF_MERCHANT,
    "SELECT {APP_COLUMNS} FROM apps WHERE merchant_id = $1 ORDER BY app_id"
);
statement!(
    SELECT_MERCHANTS_WITH_APPS,
    "SELECT m.merchant_id AS owner_id, m.name AS owner_name, \
     m.created_at_ms AS owner_created_at_ms, m.suspended_at_ms AS owner_suspended_at_ms, {} \
     FROM merchants m \
     LEFT JOIN apps a ON a.merchant_id = m.merchant_id ORDER BY m.merchant_id, a.app_id",
    APP_COLUMNS
        .split(", ")
        .map(|column| format!("a.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
);

pub(super) fn currency_of(code: &str) -> StoreResult<Currency> {
    Currency::parse(code).ok_or_else(|| corrupt(format!("unknown currency {code}")))
}

fn pix_from_row(row: &(impl Columns + ?Sized)) -> StoreResult<Option<PixReceiver>> {
    match (
        row.text("pix_key")?,
        row.text("pix_name")?,
        row.text("pix_city")?,
    ) {
        (Some(key), Some(name), Some(city)) => {
            let codes = match row.text("pix_codes")? {
                None => CodeKind::Static,
                Some(text) => CodeKind::parse(&text)
                    .ok_or_else(|| corrupt(format!("unknown PIX code kind {text}")))?,
            };
            Ok(Some(
                PixReceiver::new(&key, &name, &city)
                    .map_err(|e| corrupt(e.to_string()))?
                    .with_codes(codes),
            ))
        }
        _ => Ok(None),
    }
}

/// The columns of [`APP_COLUMNS`] in their order, for reading a row by position.
static APP_COLUMN_NAMES: super::ColumnNames =
    super::ColumnNames::new(|| super::names_of(APP_COLUMNS));

/// A row of `SELECT {APP_COLUMNS}` (both drivers).
fn app_from_row(row: &(impl Columns + ?Sized)) -> StoreResult<App> {
    let min = row.int("min_amount_minor")?;
    let max = row.int("max_amount_minor")?;
    Ok(App {
        app_id: AppId(row.need_int("app_id")?),
        merchant_id: MerchantId(row.need_int("merchant_id")?),
        currency: currency_of(&row.need_text("currency")?)?,
        public_key: row.text("public_key")?,
        webhook_secret: Secret::new(row.need_text("webhook_secret")?),
        retiring_webhook_secret: row
            .text("retiring_webhook_secret")?
            .map(Secret::new)
            .zip(row.int("retiring_secret_until_ms")?),
        suspended: row.need_int("suspended")? != 0,
        pix: pix_from_row(row)?,
        brand_colour: row
            .text("brand_colour")?
            .map(|c| BrandColour::parse(&c).map_err(|e| corrupt(e.to_string())))
            .transpose()?,
        logo_version: row.int("logo_version")?,
        limits_override: min
            .zip(max)
            .map(|(min, max)| AmountLimits::new(AmountMinor(min), AmountMinor(max))),
        created_at_ms: row.need_int("created_at_ms")?,
    })
}

pub(super) fn fee_from_row(row: &AnyRow) -> StoreResult<(String, FeeRule)> {
    let basis_points: i64 = row.try_get("basis_points")?;
    let rule = FeeRule::new(
        u32::try_from(basis_points).map_err(|_| corrupt("fee basis points"))?,
        AmountMinor(row.try_get("fixed_minor")?),
    )
    .map_err(|e| corrupt(e.to_string()))?;
    Ok((row.try_get("method")?, rule))
}

impl SqlStore {
    /// Runs an app update whose parameters are `$1…$n` = `values`, then `updated_at_ms`, then
    /// the app id; false if no app has that id.
    async fn update_app(
        &self,
        sql: &'static str,
        app_id: AppId,
        values: &[Option<&str>],
        (now_ms, audit): (i64, Option<&AuditEntry>),
    ) -> StoreResult<bool> {
        let mut query = sqlx::query(sql);
        for value in values {
            query = query.bind(*value);
        }
        let Some(mut tx) = self.begin_app_update(query, app_id, now_ms).await? else {
            return Ok(false);
        };
        audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Begins a write with an app update (its own values bound; `updated_at_ms` and the app id
    /// bound here, last); the open transaction, or `None` if no app has that id.
    async fn begin_app_update<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        app_id: AppId,
        now_ms: i64,
    ) -> StoreResult<Option<super::WriteTransaction>> {
        let mut tx = self.begin_write().await?;
        let done = query.bind(now_ms).bind(app_id.0).execute(&mut *tx).await?;
        Ok((done.rows_affected() == 1).then_some(tx))
    }
}

#[async_trait]
impl MerchantStore for SqlStore {
    async fn create_merchant(
        &self,
        name: &str,
        new_apps: &[NewApp],
        public_key: Option<&str>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
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
        if let Some(entry) = audit {
            // The new merchant's number is known only now.
            let listed: Vec<String> = apps
                .iter()
                .map(|a| format!("{} {}", a.app_id.0, a.currency.code()))
                .collect();
            let entry = AuditEntry {
                target: format!("merchant:{merchant_id}"),
                after: Some(format!("{name}: {}", listed.join(", "))),
                ..entry.clone()
            };
            super::users::audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(MerchantWithApps {
            merchant: Merchant {
                id: MerchantId(merchant_id),
                name: name.to_string(),
                created_at_ms: now_ms,
                suspended_at_ms: None,
            },
            apps,
        })
    }

    async fn list_merchants(&self) -> StoreResult<Vec<MerchantWithApps>> {
        let rows = sqlx::query(SELECT_MERCHANTS_WITH_APPS.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut merchants: Vec<MerchantWithApps> = Vec::new();
        for row in &rows {
            let id = MerchantId(row.try_get("owner_id")?);
            if merchants.last().is_none_or(|m| m.merchant.id != id) {
                merchants.push(MerchantWithApps {
                    merchant: Merchant {
                        id,
                        name: row.try_get("owner_name")?,
                        created_at_ms: row.try_get("owner_created_at_ms")?,
                        suspended_at_ms: row.try_get("owner_suspended_at_ms")?,
                    },
                    apps: Vec::new(),
                });
            }
            if row.try_get::<Option<i64>, _>("app_id")?.is_some() {
                let merchant = merchants.last_mut().expect("pushed above");
                merchant.apps.push(app_from_row(row)?);
            }
        }
        Ok(merchants)
    }

    async fn app(&self, app_id: AppId) -> StoreResult<Option<App>> {
        crate::telemetry::timed("app", async move {
            let args = [super::Value::Int(Some(app_id.0))];
            let read = |row: &dyn Columns| app_from_row(row);
            self.one_row(SELECT_APP.as_str(), &args, &APP_COLUMN_NAMES, read)
                .await
        })
        .await
    }

    async fn apps_of_merchant(&self, merchant_id: MerchantId) -> StoreResult<Vec<App>> {
        let rows = sqlx::query(SELECT_APPS_OF_MERCHANT.as_str())
            .bind(merchant_id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(app_from_row).collect()
    }

    async fn merchant_of_app(&self, app_id: AppId) -> StoreResult<Option<Merchant>> {
        let row = sqlx::query(
            "SELECT m.merchant_id, m.name, m.created_at_ms, m.suspended_at_ms FROM merchants m \
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
                suspended_at_ms: row.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn set_app_public_key(
        &self,
        app_id: AppId,
        public_key: &str,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        self.update_app(
            "UPDATE apps SET public_key = $1, updated_at_ms = $2 WHERE app_id = $3",
            app_id,
            &[Some(public_key)],
            (now_ms, audit),
        )
        .await
    }

    async fn set_app_pix(
        &self,
        app_id: AppId,
        receiver: Option<&PixReceiver>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        self.update_app(
            "UPDATE apps SET pix_key = $1, pix_name = $2, pix_city = $3, pix_codes = $4, \
             updated_at_ms = $5 WHERE app_id = $6",
            app_id,
            &[
                receiver.map(|r| r.key.as_str()),
                receiver.map(|r| r.name.as_str()),
                receiver.map(|r| r.city.as_str()),
                receiver.map(|r| r.codes.as_str()),
            ],
            (now_ms, audit),
        )
        .await
    }

    async fn set_app_logo(
        &self,
        app_id: AppId,
        logo: Option<&Logo>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let query =
            sqlx::query("UPDATE apps SET logo_version = $1, updated_at_ms = $2 WHERE app_id = $3")
                .bind(logo.map(|_| now_ms));
        let Some(mut tx) = self.begin_app_update(query, app_id, now_ms).await? else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM app_logos WHERE app_id = $1")
            .bind(app_id.0)
            .execute(&mut *tx)
            .await?;
        if let Some(logo) = logo {
            sqlx::query(
                "INSERT INTO app_logos (app_id, content_type, image_base64, updated_at_ms) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(app_id.0)
            .bind(logo.format.content_type())
            .bind(STANDARD.encode(&logo.bytes))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn app_logo(&self, app_id: AppId) -> StoreResult<Option<(Logo, i64)>> {
        let row =
            sqlx::query("SELECT image_base64, updated_at_ms FROM app_logos WHERE app_id = $1")
                .bind(app_id.0)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let logo = STANDARD
            .decode(row.try_get::<String, _>("image_base64")?)
            .map_err(|e| e.to_string())
            .and_then(|bytes| Logo::parse(bytes).map_err(|e| e.to_string()))
            .map_err(|e| corrupt(format!("the logo of app {app_id}: {e}")))?;
        Ok(Some((logo, row.try_get("updated_at_ms")?)))
    }

    async fn set_app_brand(
        &self,
        app_id: AppId,
        colour: Option<&BrandColour>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        self.update_app(
            "UPDATE apps SET brand_colour = $1, updated_at_ms = $2 WHERE app_id = $3",
            app_id,
            &[colour.map(BrandColour::as_str)],
            (now_ms, audit),
        )
        .await
    }

    async fn set_app_limits(
        &self,
        app_id: AppId,
        limits: Option<AmountLimits>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE apps SET min_amount_minor = $1, max_amount_minor = $2, updated_at_ms = $3 \
             WHERE app_id = $4",
        )
        .bind(limits.map(|l| l.min_minor.0))
        .bind(limits.map(|l| l.max_minor.0))
        .bind(now_ms)
        .bind(app_id.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_webhook_secret(
        &self,
        app_id: AppId,
        secret: &Secret,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.update_app(
            "UPDATE apps SET webhook_secret = $1, updated_at_ms = $2 WHERE app_id = $3",
            app_id,
            &[Some(secret.expose())],
            (now_ms, None),
        )
        .await
    }

    async fn set_merchant_suspended(
        &self,
        merchant_id: MerchantId,
        suspended_at_ms: Option<i64>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        // The merchant and each of its apps together: requests read only the app.
        let mut tx = self.begin_write().await?;
        let changed =
            sqlx::query("UPDATE merchants SET suspended_at_ms = $1 WHERE merchant_id = $2")
                .bind(suspended_at_ms)
                .bind(merchant_id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE apps SET suspended = $1, updated_at_ms = $2 WHERE merchant_id = $3")
            .bind(i64::from(suspended_at_ms.is_some()))
            .bind(now_ms)
            .bind(merchant_id.0)
            .execute(&mut *tx)
            .await?;
        audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_webhook_secret(
        &self,
        app_id: AppId,
        secret: &Secret,
        retiring_until_ms: i64,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE apps SET retiring_webhook_secret = webhook_secret, \
             retiring_secret_until_ms = $2, webhook_secret = $1, updated_at_ms = $3 \
             WHERE app_id = $4",
        )
        .bind(secret.expose())
        .bind(retiring_until_ms)
        .bind(now_ms)
        .bind(app_id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_fee_rule(
        &self,
        app_id: AppId,
        method: &str,
        rule: Option<FeeRule>,
        now_ms: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        if self.app(app_id).await?.is_none() {
            return Ok(false);
        }
        let query = match rule {
            Some(rule) => sqlx::query(
                "INSERT INTO app_fees (app_id, method, basis_points, fixed_minor, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, method) DO UPDATE SET \
                 basis_points = excluded.basis_points, fixed_minor = excluded.fixed_minor, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(app_id.0)
            .bind(method)
            .bind(i64::from(rule.basis_points))
            .bind(rule.fixed_minor.0)
            .bind(now_ms),
            None => sqlx::query("DELETE FROM app_fees WHERE app_id = $1 AND method = $2")
                .bind(app_id.0)
                .bind(method),
        };
        let mut tx = self.begin_write().await?;
        query.execute(&mut *tx).await?;
        audit_maybe(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn fee_rules(&self, app_id: AppId) -> StoreResult<Vec<(String, FeeRule)>> {
        let rows = sqlx::query(
            "SELECT method, basis_points, fixed_minor FROM app_fees WHERE app_id = $1 ORDER BY method",
        )
        .bind(app_id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(fee_from_row).collect()
    }
}
