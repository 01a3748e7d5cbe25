//! The notary signs and dates: every reply `data` and every callback body is signed with the
//! platform key, and every time shown to merchants is written in the operator's time zone.

use jiff::tz::TimeZone;
use kassa_signature::{SigningKey, sign_map};
use serde_json::{Map, Value};

pub struct Notary {
    key: SigningKey,
    timezone: TimeZone,
}

/// Reads an IANA time zone name (`Europe/Amsterdam`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

impl Notary {
    pub fn new(key: SigningKey, timezone: TimeZone) -> Notary {
        Notary { key, timezone }
    }

    /// A notary in UTC, for tools and tests that do not care about the zone.
    pub fn utc(key: SigningKey) -> Notary {
        Notary::new(key, TimeZone::UTC)
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a flat object (sets `sign`) and serialises it.
    pub fn sign(&self, mut data: Map<String, Value>) -> String {
        sign_map(&self.key, &mut data);
        serde_json::to_string(&data).expect("a JSON map always serialises")
    }

    /// Serialises a flat object and signs it separately, for signatures carried in a header
    /// (`X-Sign` of the pix dialect): `(json, base64 signature)`.
    pub fn sign_detached(&self, data: &Map<String, Value>) -> (String, String) {
        let canonical =
            kassa_signature::canonical_of_map(data).expect("kassa signs only flat objects");
        let json = serde_json::to_string(data).expect("a JSON map always serialises");
        (json, self.key.sign_base64(canonical.as_bytes()))
    }

    /// `yyyy-MM-dd HH:mm:ss` of an instant in the operator's time zone.
    pub fn local_datetime(&self, ms: i64) -> String {
        let offset_seconds = jiff::Timestamp::from_millisecond(ms)
            .map(|t| self.timezone.to_offset(t).seconds())
            .unwrap_or(0);
        kassa_core::time::format_datetime(ms, offset_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_operators_zone_with_daylight_saving() {
        let key = SigningKey::generate().unwrap();
        let amsterdam = Notary::new(key, parse_timezone("Europe/Amsterdam").unwrap());
        // 2026-01-15 12:00:00 UTC is 13:00 in winter; 2026-07-15 12:00:00 UTC is 14:00 in summer.
        assert_eq!(
            amsterdam.local_datetime(1_768_478_400_000),
            "2026-01-15 13:00:00"
        );
        assert_eq!(
            amsterdam.local_datetime(1_784_116_800_000),
            "2026-07-15 14:00:00"
        );
        let sao_paulo = Notary::new(
            SigningKey::generate().unwrap(),
            parse_timezone("America/Sao_Paulo").unwrap(),
        );
        assert_eq!(
            sao_paulo.local_datetime(1_768_478_400_000),
            "2026-01-15 09:00:00"
        );
        assert!(parse_timezone("Mars/Olympus_Mons").is_err());
    }
}
