//! JSON Web Signatures (RFC 7515, compact form) with `PS256`, and the JSON Web Key (RFC 7517)
//! that checks them: how the payload behind a dynamic PIX code is signed, as the BCB's API Pix
//! asks of a receiving PSP.

use crate::keys::SigningKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The algorithm: RSASSA-PSS with SHA-256.
pub const ALGORITHM: &str = "PS256";

/// The key's id in headers and key sets: the SHA-256 fingerprint of its public key (hex), so
/// that a rotated key gets a new id by itself.
pub fn key_id(key: &SigningKey) -> String {
    key.verifying_key()
        .fingerprint()
        .replace(':', "")
        .to_ascii_lowercase()
}

/// `header.payload.signature`, each part base64url without padding. The header holds `alg`,
/// `kid` and what `extra` adds (`jku`, `typ`).
pub fn sign_compact(key: &SigningKey, extra: &[(&str, &str)], payload: &[u8]) -> String {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), ALGORITHM.into());
    header.insert("kid".into(), key_id(key).into());
    for (name, value) in extra {
        header.insert((*name).into(), (*value).into());
    }
    let header = serde_json::to_vec(&header).expect("a map of strings always serialises");
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign_pss(signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// The public half as a JWK set of one key (`{"keys":[…]}`), for the header's `jku`.
pub fn key_set(key: &SigningKey) -> Value {
    let (modulus, exponent) = key.public_components();
    json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": ALGORITHM,
            "kid": key_id(key),
            "n": URL_SAFE_NO_PAD.encode(modulus),
            "e": URL_SAFE_NO_PAD.encode(exponent),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents};

    #[test]
    fn compact_signatures_verify_with_the_published_key() {
        let key = SigningKey::generate().unwrap();
        let jws = sign_compact(
            &key,
            &[("jku", "https://pay.example/pix/jwks")],
            b"{\"a\":1}",
        );
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["jku"], "https://pay.example/pix/jwks");
        assert_eq!(header["kid"], key_id(&key).as_str());
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[1]).unwrap(), b"{\"a\":1}");

        let set = key_set(&key);
        let jwk = &set["keys"][0];
        assert_eq!(jwk["kid"], header["kid"]);
        let component = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        let public = RsaPublicKeyComponents {
            n: component("n"),
            e: component("e"),
        };
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(&RSA_PSS_2048_8192_SHA256, signed.as_bytes(), &signature)
            .unwrap();
        // A changed payload fails.
        let forged = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(b"{\"a\":2}"));
        assert!(
            public
                .verify(&RSA_PSS_2048_8192_SHA256, forged.as_bytes(), &signature)
                .is_err()
        );
    }
}
