//! Secrets at rest. kassa's secrets in the database (the platform private key, the key of the
//! payer's forms) are sealed with AES-256-GCM under a key-encryption key (KEK) that never enters
//! the database: a copy of the database alone gives away no key. Each sealed value names what it
//! is (the purpose is the authenticated data), so one sealed value cannot stand in for another.
//!
//! A database remembers its KEK by a sealed check value: a different KEK is a clear error at
//! start, not a garbled key later. Values stored in clear by earlier versions are sealed in place
//! the first time they are read.

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kassa_store::{SettingStore, StoreError};

/// How a sealed value starts; anything else is a value from before sealing.
const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 12;
/// What an app's webhook secret is sealed as.
pub const WEBHOOK_SECRET: &str = "webhook_secret";
/// What kassa's private key at an upstream channel is sealed as.
pub const CHANNEL_MERCHANT_KEY: &str = "channel_merchant_key";
/// The setting holding the check value, and what it seals.
const CHECK_SETTING: &str = "kek_check";
const CHECK_TEXT: &[u8] = b"kassa key-encryption key";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "a key-encryption key is 32 random bytes written in base64 (44 characters); `openssl rand -base64 32` makes one"
    )]
    BadKek,
    #[error(
        "the key-encryption key is not the one this database's secrets were sealed with (a {0} sealed with another key, or changed)"
    )]
    WrongKek(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key-encryption key. Its `Debug` shows nothing of it.
pub struct Kek(RandomizedNonceKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(…)")
    }
}

impl Kek {
    /// A KEK from its base64 text (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Kek, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKek)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKek);
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKek)?;
        Ok(Kek(key))
    }

    /// A new random KEK and its base64 text, to be kept apart from the database.
    pub fn generate() -> (Kek, String) {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the operating system's random source failed");
        let text = STANDARD.encode(bytes);
        (Kek::parse(&text).expect("32 bytes"), text)
    }

    /// `plaintext` sealed for `purpose`, as text for the database.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(purpose.as_bytes()), &mut in_out)
            .expect("AES-GCM sealing does not fail on in-memory data");
        let mut raw = nonce.as_ref().to_vec();
        raw.extend_from_slice(&in_out);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(raw))
    }

    /// The plaintext of a value sealed for `purpose`; a value sealed under another key or for
    /// another purpose, or altered, is refused.
    pub fn unseal(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let wrong = || SealError::WrongKek(purpose.to_string());
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(wrong)?;
        let mut raw = STANDARD.decode(encoded).map_err(|_| wrong())?;
        if raw.len() < NONCE_BYTES {
            return Err(wrong());
        }
        let mut in_out = raw.split_off(NONCE_BYTES);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| wrong())?;
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut in_out)
            .map_err(|_| wrong())?;
        Ok(plaintext.to_vec())
    }
}

impl Kek {
    /// A stored text secret in clear: unsealed, or as it is if an earlier version stored it in
    /// clear.
    pub fn open(&self, purpose: &str, stored: &str) -> Result<String, SealError> {
        if !is_sealed(stored) {
            return Ok(stored.to_string());
        }
        let plaintext = self.unseal(purpose, stored)?;
        String::from_utf8(plaintext).map_err(|_| SealError::WrongKek(purpose.to_string()))
    }
}

/// Whether a stored value is sealed (rather than left in clear by an earlier version).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// Whether this database has sealed anything yet (it then needs its KEK to be used at all).
pub async fn database_is_sealed(store: &dyn SettingStore) -> Result<bool, StoreError> {
    Ok(store.setting(CHECK_SETTING).await?.is_some())
}

/// Makes sure `kek` is this database's KEK: the first KEK seen is remembered by a check value;
/// any other is refused.
pub async fn check_kek(store: &dyn SettingStore, kek: &Kek, now_ms: i64) -> Result<(), SealError> {
    let fresh = kek.seal(CHECK_SETTING, CHECK_TEXT);
    let stored = store
        .setting_or_insert(CHECK_SETTING, &fresh, now_ms)
        .await?;
    match kek.unseal(CHECK_SETTING, &stored) {
        Ok(text) if text == CHECK_TEXT => Ok(()),
        _ => Err(SealError::WrongKek("check value".into())),
    }
}

/// A secret setting in clear: the stored one unsealed (sealing a value stored in clear by an
/// earlier version in place), else `fresh()` sealed and stored — the first node to store wins.
pub async fn secret_setting(
    store: &dyn SettingStore,
    kek: &Kek,
    name: &str,
    fresh: impl FnOnce() -> String,
    now_ms: i64,
) -> Result<String, SealError> {
    let stored = match store.setting(name).await? {
        Some(stored) => stored,
        None => {
            let sealed = kek.seal(name, fresh().as_bytes());
            store.setting_or_insert(name, &sealed, now_ms).await?
        }
    };
    if !is_sealed(&stored) {
        store
            .set_setting(name, &kek.seal(name, stored.as_bytes()), now_ms, None)
            .await?;
        tracing::info!(setting = name, "a secret stored in clear was sealed");
        return Ok(stored);
    }
    let plaintext = kek.unseal(name, &stored)?;
    String::from_utf8(plaintext).map_err(|_| SealError::WrongKek(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_purpose() {
        let (kek, text) = Kek::generate();
        assert_eq!(text.len(), 44);
        let sealed = kek.seal("platform_signing_key", b"secret pem");
        assert!(is_sealed(&sealed) && !sealed.contains("secret"));
        assert_ne!(
            sealed,
            kek.seal("platform_signing_key", b"secret pem"),
            "fresh nonces"
        );
        assert_eq!(
            kek.unseal("platform_signing_key", &sealed).unwrap(),
            b"secret pem"
        );
        assert!(
            kek.unseal("cashier_form_key", &sealed).is_err(),
            "another purpose"
        );
        let (other, _) = Kek::generate();
        assert!(
            other.unseal("platform_signing_key", &sealed).is_err(),
            "another key"
        );
        let mut altered = sealed.clone();
        altered.replace_range(20..21, if &sealed[20..21] == "A" { "B" } else { "A" });
        assert!(
            kek.unseal("platform_signing_key", &altered).is_err(),
            "altered"
        );
        assert!(
            kek.unseal("platform_signing_key", "sealed:v1:AAAA")
                .is_err()
        );
        assert!(kek.unseal("platform_signing_key", "plain text").is_err());
    }

    #[test]
    fn only_32_bytes_of_base64_make_a_kek() {
        assert!(Kek::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(Kek::parse(&format!("  {}\n", STANDARD.encode([7u8; 32]))).is_ok());
        for bad in [
            STANDARD.encode([7u8; 16]),
            "not base64!".into(),
            String::new(),
        ] {
            assert!(matches!(Kek::parse(&bad), Err(SealError::BadKek)), "{bad}");
        }
        assert_eq!(format!("{:?}", Kek::generate().0), "Kek(…)");
    }
}
