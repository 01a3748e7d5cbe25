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

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("a webhook secret is whsec_ followed by a base64 key")]
    Malformed,
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
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(WebhookSecretError::Malformed)?;
    let key_bytes = STANDARD
        .decode(encoded)
        .map_err(|_| WebhookSecretError::Malformed)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp_s.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    Ok(format!("v1,{}", STANDARD.encode(context.sign().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

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
