//! Random identifiers drawn from the operating system's CSPRNG: order numbers, the tokens of
//! payment pages and callbacks' ids. Order numbers and page tokens must be unguessable, so that
//! nobody can enumerate orders. Request ids only tie log lines together: they need to be
//! distinct, not unguessable, and take no draw.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kassa_core::{OrderIds, OrderNo};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Length of a page token: its creation time in 8 characters, then 26 random bytes in
/// unpadded base64url (35 characters).
pub const CASHIER_TOKEN_LEN: usize = 43;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source failed");
    bytes
}

/// An order's number and page token; `now_ms` is the order's creation time, which starts the
/// token (see [`time_first`]).
pub fn new_order_ids(now_ms: i64) -> OrderIds {
    OrderIds {
        order_no: OrderNo::from_random(u64::from_le_bytes(random_bytes())),
        cashier_token: time_first(now_ms, &random_bytes::<26>()),
    }
}

/// The base64url alphabet in ASCII order, so that numbers written with it sort as text.
const SORTED_ALPHABET: &[u8; 64] =
    b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// `now_ms` in 8 characters that sort as text in the order of time (48 bits, until the year
/// 10889), then `random` in unpadded base64url.
///
/// Why the time first: page tokens and callback ids are keys of B-tree indexes (the orders'
/// token, the callbacks' ids and their attempts' keys). A random key puts each insert on a
/// leaf of its own, so a commit of a batch wrote a page per row and index, and a checkpoint
/// copied each back. Keys made in the same moment share the index's last leaf instead. The
/// random part keeps a page token unguessable (208 bits); the time gives away only when the
/// key was made, which the payer of a page knows.
fn time_first(now_ms: i64, random: &[u8]) -> String {
    let time = u64::try_from(now_ms).unwrap_or(0);
    let mut key: String = (0..8)
        .rev()
        .map(|digit| char::from(SORTED_ALPHABET[((time >> (digit * 6)) & 63) as usize]))
        .collect();
    URL_SAFE_NO_PAD.encode_string(random, &mut key);
    key
}

/// A uniform draw in `[0, 1)` for the weighted split of routing.
pub fn routing_roll() -> f64 {
    (u64::from_le_bytes(random_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}

/// A callback's `webhook-id`: `msg_`, its creation time `now_ms` and 128 random bits.
pub fn new_callback_id(now_ms: i64) -> String {
    format!("msg_{}", time_first(now_ms, &random_bytes::<16>()))
}

/// A request id (`X-Request-Id`): 16 hexadecimal digits, distinct within the process (a
/// counter through a bijective mix) and unlike another process's (a random key drawn once).
/// A draw from the CSPRNG per request cost more than the rest of the id's handling.
pub fn new_request_id() -> String {
    static KEY: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let key = *KEY.get_or_init(|| u64::from_le_bytes(random_bytes()));
    let count = NEXT.fetch_add(1, Ordering::Relaxed);
    kassa_signature::to_hex(&mix(count ^ key).to_be_bytes())
}

/// SplitMix64's finaliser: a bijection on `u64`, so distinct counts give distinct ids, and
/// consecutive ones look unrelated.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
        let a = new_order_ids(1_000);
        let b = new_order_ids(1_000);
        assert!(OrderNo::parse(a.order_no.as_str()).is_some());
        assert!(is_cashier_token(&a.cashier_token));
        assert_ne!(a.order_no, b.order_no);
        assert_ne!(a.cashier_token, b.cashier_token);
        assert!(!is_cashier_token("short"));
        assert!(!is_cashier_token(&"/".repeat(CASHIER_TOKEN_LEN)));
    }

    #[test]
    fn keys_made_later_sort_later_as_text() {
        // Each boundary where base64url's own order differs from ASCII's: 25 'Z' | 26 'a',
        // 51 'z' | 52 '0', 61 '9' | 62 '-', 62 '-' | 63 '_', and a carry into the next character.
        let times = [
            0,
            1,
            25,
            26,
            51,
            52,
            61,
            62,
            63,
            64,
            4_095,
            4_096,
            1_764_940_000_000,
            1_764_940_000_001,
            (1 << 48) - 1,
        ];
        let keys: Vec<String> = times.iter().map(|&t| time_first(t, &[0xff; 26])).collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        // The time decides, whatever the random part: a key of the next millisecond with the
        // smallest random bytes sorts after one of this millisecond with the largest.
        assert!(time_first(1_000, &[0xff; 26]) < time_first(1_001, &[0; 26]));
        assert!(keys.iter().all(|key| is_cashier_token(key)));
    }

    #[test]
    fn page_tokens_and_callback_ids_keep_their_random_part() {
        // Made in the same millisecond: the time part agrees, the rest not.
        let a = new_order_ids(1_000).cashier_token;
        let b = new_order_ids(1_000).cashier_token;
        assert_eq!(a[..8], b[..8]);
        assert_ne!(a[8..], b[8..]);
        assert_eq!(a.len(), CASHIER_TOKEN_LEN);
        let id = new_callback_id(1_000);
        assert!(id.starts_with("msg_"));
        assert_eq!(id.len(), 4 + 8 + 22);
        assert_ne!(id[12..], new_callback_id(1_000)[12..]);
    }

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_never_repeat() {
        let ids: Vec<String> = (0..10_000).map(|_| new_request_id()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        // Consecutive ids share no long prefix, as counters would.
        assert_ne!(ids[0][..8], ids[1][..8]);
    }
}
