//! Random identifiers drawn from the operating system's CSPRNG: order numbers and the tokens
//! of payment pages. Both must be unguessable, so that nobody can enumerate orders.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kassa_core::{OrderIds, OrderNo};

/// Length of a page token: 32 random bytes in unpadded base64url.
pub const CASHIER_TOKEN_LEN: usize = 43;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source failed");
    bytes
}

pub fn new_order_ids() -> OrderIds {
    OrderIds {
        order_no: OrderNo::from_random(u64::from_le_bytes(random_bytes())),
        cashier_token: URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
    }
}

/// A uniform draw in `[0, 1)` for the weighted split of routing.
pub fn routing_roll() -> f64 {
    (u64::from_le_bytes(random_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}

/// A callback's `webhook-id`: `msg_` and 128 random bits.
pub fn new_callback_id() -> String {
    format!("msg_{}", URL_SAFE_NO_PAD.encode(random_bytes::<16>()))
}

/// A request id (`X-Request-Id`): 16 random hexadecimal digits.
pub fn new_request_id() -> String {
    kassa_signature::to_hex(&random_bytes::<8>())
}

/// Whether `token` could be a page token at all (checked before any database look-up).
pub fn is_cashier_token(token: &str) -> bool {
    token.len() == CASHIER_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_distinct() {
        let a = new_order_ids();
        let b = new_order_ids();
        assert!(OrderNo::parse(a.order_no.as_str()).is_some());
        assert!(is_cashier_token(&a.cashier_token));
        assert_ne!(a.order_no, b.order_no);
        assert_ne!(a.cashier_token, b.cashier_token);
        assert!(!is_cashier_token("short"));
        assert!(!is_cashier_token(&"/".repeat(CASHIER_TOKEN_LEN)));
    }
}
