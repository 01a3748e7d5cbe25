//! Onboarding a merchant: its name checked, an app per currency, each with a fresh webhook
//! secret sealed for the database. One way for `kassa merchant create`, the demo and the back
//! office.

use crate::now_ms;
use crate::sealing::{Kek, WEBHOOK_SECRET};
use kassa_core::{Currency, Secret};
use kassa_signature::webhook;
use kassa_store::{MerchantWithApps, NewApp, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error("the merchant's name must be 1 to 100 characters without control characters")]
    Name,
    #[error("give one currency or more, each once")]
    Currencies,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new webhook secret, sealed for the database.
pub fn sealed_webhook_secret(kek: &Kek) -> Secret {
    Secret::new(kek.seal(WEBHOOK_SECRET, webhook::generate_secret().as_bytes()))
}

/// Creates a merchant with an app per currency (and the merchant's public key, if given).
pub async fn create_merchant(
    store: &dyn Store,
    kek: &Kek,
    name: &str,
    currencies: &[Currency],
    public_key_pem: Option<&str>,
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
        .create_merchant(name, &apps, public_key_pem, now_ms())
        .await?)
}
