//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): every callback carries
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, keyed by the app's secret `whsec_<base64 key>`.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub const SECRET_PREFIX: &str = "whsec_";
/// Random key bytes of a new secret (the specification asks for 24 to 64).
const SECRET_KEY_BYTES: usize = 32;

/// How far a callback's `webhook-timestamp` may be from the receiver's clock: the
/// specification's five minutes, which stops a captured callback from being replayed later.
pub const TIMESTAMP_TOLERANCE_S: i64 = 5 * 60;
/// The most signatures one `webhook-signature` header may list (two during a rotation).
const MAX_SIGNATURES: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("a webhook secret is whsec_ followed by a base64 key")]
    Malformed,
}

/// Why a received callback's Standard Webhooks signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookVerifyError {
    #[error("a webhook secret is whsec_ followed by a base64 key")]
    MalformedSecret,
    #[error("webhook-timestamp is not a number of seconds")]
    MalformedTimestamp,
    #[error("webhook-timestamp is more than five minutes from now")]
    StaleTimestamp,
    #[error("no v1 signature in webhook-signature matches the secret")]
    NoMatch,
}

fn hmac_key(secret: &str) -> Result<hmac::Key, WebhookSecretError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(WebhookSecretError::Malformed)?;
    let key_bytes = STANDARD
        .decode(encoded)
        .map_err(|_| WebhookSecretError::Malformed)?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &key_bytes))
}

fn tag(key: &hmac::Key, id: &str, timestamp: &str, body: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    context.sign()
}

/// A fresh `whsec_…` secret from the operating system's random source.
pub fn generate_secret() -> String {
    let mut key = [0u8; SECRET_KEY_BYTES];
    SystemRandom::new()
        .fill(&mut key)
        .expect("the operating system's random source failed");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header value for one delivery attempt.
pub fn signature_header(
    secret: &str,
    id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> Result<String, WebhookSecretError> {
    Ok(WebhookSigner::new(secret)?.header(id, timestamp_s, body))
}

/// A secret's HMAC key, derived once for the many callbacks one app's secret signs (the
/// dispatcher keeps one per app and claim). Its `Debug` shows nothing of the key.
pub struct WebhookSigner {
    key: hmac::Key,
}

impl WebhookSigner {
    pub fn new(secret: &str) -> Result<WebhookSigner, WebhookSecretError> {
        Ok(WebhookSigner {
            key: hmac_key(secret)?,
        })
    }

    /// The `webhook-signature` header value (`v1,…`) for one delivery attempt.
    pub fn header(&self, id: &str, timestamp_s: i64, body: &[u8]) -> String {
        let tag = tag(&self.key, id, &timestamp_s.to_string(), body);
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }
}

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSigner(…)")
    }
}

/// Checks a received callback's `webhook-signature` (one or more space-separated `v1,…`
/// entries; any may match) and that `webhook-timestamp` is within
/// [`TIMESTAMP_TOLERANCE_S`] of `now_s`. The comparison is constant-time.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_s: i64,
) -> Result<(), WebhookVerifyError> {
    let key = hmac_key(secret).map_err(|_| WebhookVerifyError::MalformedSecret)?;
    let sent_s: i64 = timestamp
        .parse()
        .map_err(|_| WebhookVerifyError::MalformedTimestamp)?;
    if (now_s - sent_s).abs() > TIMESTAMP_TOLERANCE_S {
        return Err(WebhookVerifyError::StaleTimestamp);
    }
    let expected = tag(&key, id, timestamp, body);
    let matches = signature_header
        .split(' ')
        .take(MAX_SIGNATURES)
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|sent| {
            aws_lc_rs::constant_time::verify_slices_are_equal(&sent, expected.as_ref()).is_ok()
        });
    if matches {
        Ok(())
    } else {
        Err(WebhookVerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signer_signs_as_the_secret_does_and_shows_nothing_of_it() {
        let secret = generate_secret();
        let signer = WebhookSigner::new(&secret).unwrap();
        let header = signature_header(&secret, "msg_1", 1_700_000_000, b"{}").unwrap();
        assert_eq!(signer.header("msg_1", 1_700_000_000, b"{}"), header);
        let shown = format!("{signer:?}");
        let key = secret.strip_prefix(SECRET_PREFIX).unwrap();
        assert!(!shown.contains(&key[..8]), "{shown}");
    }

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_reference_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let header =
            signature_header(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).unwrap();
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verifies_what_it_signs_within_the_tolerance() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let now = 1_614_265_330;
        let header = signature_header(secret, "msg_1", now, body).unwrap();
        let check = |header: &str, timestamp: &str, now_s: i64| {
            verify(secret, "msg_1", timestamp, header, body, now_s)
        };
        assert_eq!(check(&header, "1614265330", now + 300), Ok(()));
        // A rotation lists two signatures: either one passes.
        let other = signature_header(&generate_secret(), "msg_1", now, body).unwrap();
        assert_eq!(
            check(&format!("{other} {header}"), "1614265330", now),
            Ok(())
        );
        assert_eq!(
            check(&other, "1614265330", now),
            Err(WebhookVerifyError::NoMatch)
        );
        assert_eq!(
            check(&header, "1614265330", now + 301),
            Err(WebhookVerifyError::StaleTimestamp)
        );
        assert_eq!(
            check(&header, "soon", now),
            Err(WebhookVerifyError::MalformedTimestamp)
        );
        assert_eq!(
            verify(secret, "msg_2", "1614265330", &header, body, now),
            Err(WebhookVerifyError::NoMatch)
        );
    }

    #[test]
    fn secrets_are_fresh_and_well_formed() {
        let a = generate_secret();
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(
            STANDARD.decode(&a[SECRET_PREFIX.len()..]).unwrap().len(),
            32
        );
        assert_ne!(a, generate_secret());
        assert_eq!(
            signature_header("nope", "id", 1, b""),
            Err(WebhookSecretError::Malformed)
        );
    }
}
