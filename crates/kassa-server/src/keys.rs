//! Keys the server holds: the platform signing key, shared by every node through the
//! database, and a cache of merchants' parsed public keys.

use crate::sealing::{Kek, SealError, secret_setting};
use kassa_core::{App, AppId};
use kassa_signature::{KeyError, SigningKey, VerifyingKey};
use kassa_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The settings row that holds the platform private key (PKCS#8 PEM, sealed).
pub const PLATFORM_KEY_SETTING: &str = "platform_signing_key";

#[derive(Debug, thiserror::Error)]
pub enum PlatformKeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored platform key is unusable: {0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// The platform key: read from the database, or generated and stored the first time. If two
/// nodes generate at once, the first stored key wins and both use it.
pub async fn load_or_create_platform_key(
    store: &dyn Store,
    kek: &Kek,
    now_ms: i64,
) -> Result<SigningKey, PlatformKeyError> {
    let fresh = || {
        SigningKey::generate()
            .expect("the operating system's random source failed")
            .to_pkcs8_pem()
    };
    let pem = secret_setting(store, kek, PLATFORM_KEY_SETTING, fresh, now_ms).await?;
    Ok(SigningKey::parse(&pem)?)
}

/// The settings row with the key that signs the cashier pages' form tokens (CSRF).
pub const CASHIER_KEY_SETTING: &str = "cashier_form_key";

/// Signs and checks the hidden token of the payer's forms: an HMAC of the page token under a
/// key every node shares through the database.
pub struct FormKey(aws_lc_rs::hmac::Key);

impl FormKey {
    pub async fn load_or_create(
        store: &dyn Store,
        kek: &Kek,
        now_ms: i64,
    ) -> Result<FormKey, SealError> {
        let fresh = || {
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).expect("the operating system's random source failed");
            kassa_signature::to_hex(&bytes)
        };
        let stored = secret_setting(store, kek, CASHIER_KEY_SETTING, fresh, now_ms).await?;
        Ok(FormKey(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            stored.as_bytes(),
        )))
    }

    /// The form token of a page.
    pub fn token_for(&self, page_token: &str) -> String {
        use base64::Engine;
        let tag = aws_lc_rs::hmac::sign(&self.0, page_token.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// The tag that makes a dynamic PIX code's location unguessable: 64 bits of an HMAC of
    /// the order number (apart from the form tokens' by its prefix), in hexadecimal.
    pub fn location_tag(&self, order_no: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.0, format!("pix-location:{order_no}").as_bytes());
        kassa_signature::to_hex(&tag.as_ref()[..8])
    }

    /// Constant-time check of a location's tag.
    pub fn verify_location_tag(&self, order_no: &str, tag: &str) -> bool {
        let expected = self.location_tag(order_no);
        aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), tag.as_bytes())
            .is_ok()
    }

    /// Constant-time check of a submitted form token.
    pub fn verify(&self, page_token: &str, form_token: &str) -> bool {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(form_token)
            .is_ok_and(|tag| aws_lc_rs::hmac::verify(&self.0, page_token.as_bytes(), &tag).is_ok())
    }
}

/// Most apps whose parsed keys are kept; past it the cache starts over (parsing is cheap
/// enough to refill, and the bound keeps memory flat).
const MAX_CACHED_KEYS: usize = 10_000;

/// Parsed merchant keys by app. An entry is reused only while the app's stored key text is
/// unchanged, so a key replaced with `kassa app set-key` takes effect on the next request.
#[derive(Default)]
pub struct MerchantKeys {
    cache: RwLock<HashMap<AppId, (String, Arc<VerifyingKey>)>>,
}

/// The key an unknown app's request is checked against, so that it costs what a known app's
/// does and fails alike: nobody holds its private half (it is drawn once per process).
pub fn decoy_key() -> &'static VerifyingKey {
    static DECOY: std::sync::OnceLock<VerifyingKey> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        SigningKey::generate()
            .expect("the operating system's random source failed")
            .verifying_key()
            .clone()
    })
}

impl MerchantKeys {
    /// The app's key, `None` if none is registered.
    pub fn for_app(&self, app: &App) -> Result<Option<Arc<VerifyingKey>>, KeyError> {
        let Some(text) = app.public_key.as_deref() else {
            return Ok(None);
        };
        if let Some((cached_text, key)) = self
            .cache
            .read()
            .expect("key cache lock poisoned")
            .get(&app.app_id)
            && cached_text == text
        {
            return Ok(Some(key.clone()));
        }
        let key = Arc::new(VerifyingKey::parse(text)?);
        let mut cache = self.cache.write().expect("key cache lock poisoned");
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(app.app_id, (text.to_string(), key.clone()));
        Ok(Some(key))
    }
}
