//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): the second factor of
//! back-office sign-in. HMAC-SHA1, 30-second steps, six digits — what authenticator apps
//! expect — with a step of clock skew either way, and a code's step never taken twice.

use aws_lc_rs::hmac;

/// Seconds per step.
pub const STEP_S: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps of clock skew accepted either way.
pub const SKEW_STEPS: u64 = 1;
/// Bytes of a secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// The HOTP value of `counter` under `secret`, `digits` long.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation (RFC 4226 §5.3).
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    let code = u64::from(binary) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The code of the step holding `unix_s`.
pub fn code_at(secret: &[u8], unix_s: u64) -> String {
    hotp(secret, unix_s / STEP_S, DIGITS)
}

/// The step `code` belongs to, if it is the code of a step within the skew of `unix_s` that is
/// later than `last_used_step` (a code seen once is refused after: no replay). Compared in
/// constant time.
pub fn verify(secret: &[u8], code: &str, unix_s: u64, last_used_step: Option<u64>) -> Option<u64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_s / STEP_S;
    let mut found = None;
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let expected = hotp(secret, step, DIGITS);
        let same =
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes())
                .is_ok();
        if same && last_used_step.is_none_or(|last| step > last) {
            found = Some(step);
        }
    }
    found
}

/// A new random secret.
pub fn generate_secret() -> [u8; SECRET_BYTES] {
    let mut secret = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut secret).expect("the system's random source");
    secret
}

/// The secret in base32 (RFC 4648, no padding), as authenticator apps take it.
pub fn base32(secret: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(secret.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in secret {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The secret from its base32 form (what an authenticator was given); `None` if it is not
/// base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').chars() {
        buffer = (buffer << 5) | ALPHABET.find(c.to_ascii_uppercase())? as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The secret of an `otpauth://` URI.
pub fn secret_of_uri(uri: &str) -> Option<Vec<u8>> {
    let query = uri.split_once('?')?.1;
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("secret="))?;
    from_base32(value)
}

/// The `otpauth://` URI an authenticator app scans (as a QR code) to enrol `account`.
pub fn enrolment_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label = url::form_urlencoded::byte_serialize(format!("{issuer}:{account}").as_bytes())
        .collect::<String>();
    let issuer = url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{label}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 rows (8 digits).
    #[test]
    fn the_rfc_vectors_hold() {
        let secret = b"12345678901234567890";
        for (unix_s, expected) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(hotp(secret, unix_s / STEP_S, 8), expected, "at {unix_s}");
        }
    }

    #[test]
    fn codes_verify_within_the_skew_once() {
        let secret = generate_secret();
        let now = 1_795_400_000;
        let code = code_at(&secret, now);
        let step = now / STEP_S;
        assert_eq!(verify(&secret, &code, now, None), Some(step));
        assert_eq!(
            verify(&secret, &code, now + STEP_S, None),
            Some(step),
            "a step late"
        );
        assert_eq!(
            verify(&secret, &code, now + 3 * STEP_S, None),
            None,
            "too late"
        );
        assert_eq!(
            verify(&secret, &code, now, Some(step)),
            None,
            "used already"
        );
        assert_eq!(verify(&secret, "12345", now, None), None);
        assert_eq!(verify(&secret, "12a456", now, None), None);
    }

    #[test]
    fn secrets_are_written_in_base32() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = enrolment_uri("kassa", "ops@psp.example", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/kassa%3Aops%40psp.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=kassa&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(secret_of_uri(&uri).unwrap(), b"12345678901234567890");
        assert_eq!(from_base32("MZXW6YTBOI").unwrap(), b"foobar");
        assert_eq!(from_base32("MZ1"), None, "1 is not base32");
    }
}
