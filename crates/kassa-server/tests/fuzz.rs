//! Fuzzing on stable Rust: proptest feeds arbitrary bytes and near-valid inputs to every parser
//! that reads untrusted text — request bodies and their canonical strings, amounts, keys, BR
//! Codes, PIX keys — and checks that none panics and that what is accepted is well-formed.
//! `PROPTEST_CASES` raises the number of cases (CI runs the default of each test; a longer
//! fuzzing session is `PROPTEST_CASES=100000 cargo test --test fuzz`).

use kassa_core::AmountMinor;
use kassa_core::brcode;
use kassa_core::pix::PixKey;
use kassa_server::wire::Fields;
use kassa_signature::{VerifyingKey, parse_signed_object};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Bytes that look like JSON often enough to get past the first character.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        "[{}\\[\\]\":,0-9a-zA-Z \\\\ntrue-falsenul.eE+]{0,200}".prop_map(String::into_bytes),
        (proptest::collection::btree_map("[a-zA-Z]{1,8}", "[ -~]{0,20}", 0..8))
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
    ]
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn request_bodies_never_panic(bytes in jsonish()) {
        if let Ok(text) = std::str::from_utf8(&bytes)
            && let Ok(object) = parse_signed_object(text)
        {
            // The canonical string never holds a sign field, and every field reads cleanly.
            prop_assert!(!object.canonical.split('&').any(|kv| kv.starts_with("sign=")));
            let fields = Fields::new(&object.fields);
            for name in ["appId", "orderId", "amount", "email", "phone", "notifyUrl", "sign"] {
                let _ = fields.string(name);
                let _ = fields.positive_integer(name);
                let _ = fields.required(name, 48);
            }
        }
    }

    #[test]
    fn amounts_never_panic_and_accept_only_the_wire_format(text in "[-+0-9.,eE ]{0,20}|.{0,20}") {
        if let Ok(amount) = AmountMinor::parse(&text) {
            prop_assert!(amount.0 >= 0 && amount <= AmountMinor::MAX_WIRE);
            prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
            prop_assert_eq!(AmountMinor::parse(&amount.to_decimal_string()), Ok(amount));
        }
    }

    #[test]
    fn keys_never_panic(text in "(-----BEGIN (RSA )?PUBLIC KEY-----\n)?[A-Za-z0-9+/=\n]{0,600}(-----END PUBLIC KEY-----)?") {
        let _ = VerifyingKey::parse(&text);
    }

    #[test]
    fn key_bytes_never_panic(der in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = VerifyingKey::from_der(&der);
    }

    #[test]
    fn br_codes_never_panic(text in "(000201)?([0-9]{2}[0-9]{2}[ -~]{0,12}){0,12}(6304[0-9A-F]{4})?|[ -~]{0,120}") {
        match brcode::parse(&text) {
            Ok(parsed) => {
                prop_assert!(text.starts_with("000201"));
                // What parses re-encodes to a payload that decodes to the same fields.
                let again = brcode::decode(&brcode::encode(&parsed.fields));
                prop_assert_eq!(again.map(|p| p.fields), Ok(parsed.fields));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn pix_keys_never_panic(text in "[+0-9.\\-/@a-zA-Z]{0,80}") {
        if let Ok(key) = PixKey::parse(&text) {
            prop_assert!(!key.as_str().is_empty() && key.as_str().len() <= 77);
        }
    }
}
