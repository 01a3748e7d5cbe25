//! Onboarding a merchant: its name checked, an app per currency, each with a fresh webhook
//! secret sealed for the database. One way for `kassa merchant create`, the demo and the back
//! office.

use crate::now_ms;
use crate::sealing::{Kek, WEBHOOK_SECRET};
use kassa_core::{Currency, Secret};
use kassa_signature::webhook;
use kassa_store::{AuditEntry, MerchantWithApps, NewApp, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error("the merchant's name must be 1 to 100 characters without control characters")]
    Name,
    #[error("give one currency or more, each once")]
    Currencies,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a replaced webhook secret keeps signing callbacks beside the new one.
pub const RETIRING_SECRET_MS: i64 = 24 * 3_600_000;

/// A new webhook secret, sealed for the database.
pub fn sealed_webhook_secret(kek: &Kek) -> Secret {
    new_webhook_secret(kek).1
}

/// A new webhook secret: in clear (to show the merchant once) and sealed for the database.
pub fn new_webhook_secret(kek: &Kek) -> (Secret, Secret) {
    let secret = webhook::generate_secret();
    let sealed = Secret::new(kek.seal(WEBHOOK_SECRET, secret.as_bytes()));
    (Secret::new(secret), sealed)
}

/// Creates a merchant with an app per currency (and the merchant's public key, if given), with
/// the audit entry of whoever asked (its target and outcome filled in by the store).
pub async fn create_merchant(
    store: &dyn Store,
    kek: &Kek,
    name: &str,
    currencies: &[Currency],
    public_key_pem: Option<&str>,
    audit: Option<&AuditEntry>,
) -> Result<MerchantWithApps, OnboardingError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(OnboardingError::Name);
    }
    let distinct = currencies
        .iter()
        .enumerate()
        .all(|(i, c)| !currencies[..i].contains(c));
    if currencies.is_empty() || !distinct {
        return Err(OnboardingError::Currencies);
    }
    let apps: Vec<NewApp> = currencies
        .iter()
        .map(|&currency| NewApp {
            currency,
            webhook_secret: sealed_webhook_secret(kek),
        })
        .collect();
    Ok(store
        .create_merchant(name, &apps, public_key_pem, now_ms(), audit)
        .await?)
}
