//! kassa's signature rules, shared by the server and by merchants' code.
//!
//! - [`canonical`]: the string that is signed — every top-level field but `sign`, without
//!   null or empty values, keys in byte order, `key=value` joined by `&`.
//! - [`keys`]: SHA256withRSA (RSASSA-PKCS1-v1_5) with aws-lc-rs, keys of 2048 to 4096 bits,
//!   public keys as PEM or bare base64 DER, signatures in padded standard base64.
//! - [`webhook`]: Standard Webhooks HMAC signatures of callbacks.
//! - [`jws`]: `PS256` JSON Web Signatures and their key set (dynamic PIX payloads).
//! - [`digest_hex`]: SHA-256 fingerprints.

pub mod canonical;
pub mod jws;
pub mod keys;
pub mod webhook;

pub use canonical::{
    CanonicalError, SignedObject, ambiguous_split, canonical_of_map, parse_signed_object,
};
pub use keys::{KeyError, SigningKey, VerifyError, VerifyingKey};

/// Lowercase hex SHA-256 of `data`.
pub fn digest_hex(data: &[u8]) -> String {
    to_hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// `bytes` in lowercase hexadecimal, two digits each. A table, not `format!` per byte: request
/// ids and idempotency fingerprints are made on every request.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(DIGITS[usize::from(byte >> 4)] as char);
        hex.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    hex
}

/// Signs a JSON object in place: computes the canonical string of its fields and sets `sign`.
pub fn sign_map(key: &SigningKey, map: &mut serde_json::Map<String, serde_json::Value>) {
    map.remove(canonical::SIGN_FIELD);
    let canonical = canonical_of_map(map).expect("kassa signs only flat objects");
    map.insert(
        canonical::SIGN_FIELD.to_string(),
        serde_json::Value::String(key.sign_base64(canonical.as_bytes())),
    );
}

/// Verifies a received JSON object's `sign` over its canonical string.
pub fn verify_json(key: &VerifyingKey, json: &str) -> Result<(), VerifyError> {
    let object = parse_signed_object(json).map_err(VerifyError::Canonical)?;
    let sign = object.sign.as_deref().ok_or(VerifyError::MissingSign)?;
    key.verify_base64(object.canonical.as_bytes(), sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(to_hex(&[]), "");
    }

    #[test]
    fn digest_is_sha256() {
        assert_eq!(
            digest_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sign_map_then_verify_json() {
        let key = SigningKey::generate().unwrap();
        let mut map = serde_json::json!({"orderId":"M1","status":1,"sign":"old"})
            .as_object()
            .unwrap()
            .clone();
        sign_map(&key, &mut map);
        let text = serde_json::to_string(&map).unwrap();
        let public = VerifyingKey::parse(&key.public_key_pem()).unwrap();
        verify_json(&public, &text).unwrap();
        let tampered = text.replace("\"M1\"", "\"M2\"");
        assert!(verify_json(&public, &tampered).is_err());
    }
}
