//! The notary signs and dates: every reply `data` and every callback body is signed with the
//! platform key, and every time shown to merchants is written in the operator's time zone.
//!
//! The operator's time zone is a setting in the database, so the server and every operator
//! command date orders alike (see [`operator_timezone`]).

use jiff::tz::TimeZone;
use kassa_signature::{SigningKey, sign_map};
use kassa_store::{SettingStore, StoreError};
use serde_json::{Map, Value};

/// The settings row with the operator's time zone (an IANA name).
pub const TIMEZONE_SETTING: &str = "operator_timezone";

/// Where a dialect carries the platform's signature of a reply's `data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// A `sign` field inside `data` (`collect`).
    Embedded,
    /// Beside `data`, in the `X-Sign` header (`pix`).
    Detached,
}

/// A signed reply `data`: its JSON text and, for a detached signature, the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub data: String,
    pub detached_sign: Option<String>,
}

impl Signed {
    /// One string for storage and caches: the data itself, or for a detached signature the
    /// signature (base64, never `{`), a line break, and the data.
    pub fn to_stored(&self) -> String {
        match &self.detached_sign {
            None => self.data.clone(),
            Some(sign) => format!("{sign}\n{}", self.data),
        }
    }

    /// Reads [`Signed::to_stored`] back. Replies stored before signatures were stored with
    /// them (`pix` data alone) are signed again here. Taken by value: a reply kept in the reply
    /// cache becomes the data without another copy.
    pub fn from_stored(stored: impl Into<String>, signature: Signature, notary: &Notary) -> Signed {
        let mut stored = stored.into();
        if signature == Signature::Embedded {
            return Signed {
                data: stored,
                detached_sign: None,
            };
        }
        match stored.find('\n').filter(|_| !stored.starts_with('{')) {
            Some(line_break) => {
                let data = stored.split_off(line_break + 1);
                stored.truncate(line_break);
                Signed {
                    data,
                    detached_sign: Some(stored),
                }
            }
            None => {
                let map: Map<String, Value> =
                    serde_json::from_str(&stored).expect("kassa stores its own data as JSON");
                notary.sign_as(Signature::Detached, map)
            }
        }
    }

    /// A create's reply as its order stores it: the data alone, unsigned, so that the reply can
    /// be signed while the order's insert commits. RSA PKCS#1 v1.5 signatures are
    /// deterministic, so [`Signed::replayed`] signs it again into the same bytes.
    pub fn unsigned_stored(data: &Map<String, Value>) -> String {
        serde_json::to_string(data).expect("a JSON map always serialises")
    }

    /// A stored create reply, for a retry of its request: signed again if stored unsigned
    /// ([`Signed::unsigned_stored`]), as stored if signed (earlier versions stored replies
    /// with their signature).
    pub fn replayed(stored: &str, signature: Signature, notary: &Notary) -> Signed {
        if signature == Signature::Detached {
            return Signed::from_stored(stored, signature, notary);
        }
        let map: Map<String, Value> =
            serde_json::from_str(stored).expect("kassa stores its own data as JSON");
        if map.contains_key(kassa_signature::canonical::SIGN_FIELD) {
            return Signed::from_stored(stored, signature, notary);
        }
        notary.sign_as(signature, map)
    }
}

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

    /// The operator's time zone, in which the seeds' times and reports' days are written.
    pub fn timezone(&self) -> &TimeZone {
        &self.timezone
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a flat object the way a dialect carries signatures.
    pub fn sign_as(&self, signature: Signature, data: Map<String, Value>) -> Signed {
        match signature {
            Signature::Embedded => Signed {
                data: self.sign(data),
                detached_sign: None,
            },
            Signature::Detached => {
                let (data, sign) = self.sign_detached(&data);
                Signed {
                    data,
                    detached_sign: Some(sign),
                }
            }
        }
    }

    /// Signs a flat object (sets `sign`) and serialises it.
    pub fn sign(&self, mut data: Map<String, Value>) -> String {
        crate::telemetry::signed();
        sign_map(&self.key, &mut data);
        serde_json::to_string(&data).expect("a JSON map always serialises")
    }

    /// Serialises a flat object and signs it separately, for signatures carried in a header
    /// (`X-Sign` of the pix dialect): `(json, base64 signature)`.
    pub fn sign_detached(&self, data: &Map<String, Value>) -> (String, String) {
        let canonical =
            kassa_signature::canonical_of_map(data).expect("kassa signs only flat objects");
        let json = serde_json::to_string(data).expect("a JSON map always serialises");
        crate::telemetry::signed();
        (json, self.key.sign_base64(canonical.as_bytes()))
    }

    /// `yyyy-MM-dd HH:mm:ss` of an instant in the operator's time zone.
    pub fn local_datetime(&self, ms: i64) -> String {
        kassa_core::time::format_datetime(ms, self.offset_seconds_at(ms))
    }

    /// The operator's time zone's offset from UTC at an instant, in seconds.
    pub fn offset_seconds_at(&self, ms: i64) -> i32 {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| self.timezone.to_offset(t).seconds())
            .unwrap_or(0)
    }
}

/// The operator's time zone: the stored setting, else UTC.
pub async fn operator_timezone(store: &dyn SettingStore) -> Result<TimeZone, NotaryError> {
    match store.setting(TIMEZONE_SETTING).await? {
        None => Ok(TimeZone::UTC),
        Some(name) => parse_timezone(&name).map_err(NotaryError::Zone),
    }
}

/// Stores the operator's time zone for every node and command, after checking the name.
pub async fn set_operator_timezone(
    store: &dyn SettingStore,
    name: &str,
    now_ms: i64,
) -> Result<TimeZone, NotaryError> {
    let zone = parse_timezone(name).map_err(NotaryError::Zone)?;
    store
        .set_setting(TIMEZONE_SETTING, name, now_ms, None)
        .await?;
    Ok(zone)
}

#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the operator's time zone: {0}")]
    Zone(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_replies_survive_storage() {
        let notary = Notary::utc(SigningKey::generate().unwrap());
        let mut data = Map::new();
        data.insert("orderNo".into(), "6023071013539074".into());
        for signature in [Signature::Embedded, Signature::Detached] {
            let signed = notary.sign_as(signature, data.clone());
            let stored = signed.to_stored();
            assert_eq!(Signed::from_stored(&stored, signature, &notary), signed);
        }
        // A pix reply stored as data alone (before signatures were stored) is signed on read.
        let legacy = serde_json::to_string(&data).unwrap();
        let read = Signed::from_stored(&legacy, Signature::Detached, &notary);
        assert_eq!(read, notary.sign_as(Signature::Detached, data));
    }

    #[test]
    fn create_replies_stored_unsigned_replay_byte_for_byte() {
        let notary = Notary::utc(SigningKey::generate().unwrap());
        let data: Map<String, Value> = serde_json::from_str(
            r#"{"orderId":"M-1","appId":1001,"orderNo":"6023071013539074","payTime":null}"#,
        )
        .unwrap();
        for signature in [Signature::Embedded, Signature::Detached] {
            let answered = notary.sign_as(signature, data.clone());
            let stored = Signed::unsigned_stored(&data);
            assert!(!stored.contains("sign"), "{stored}");
            assert_eq!(Signed::replayed(&stored, signature, &notary), answered);
            // Replies stored with their signature by earlier versions are replayed as stored.
            let earlier = answered.to_stored();
            assert_eq!(Signed::replayed(&earlier, signature, &notary), answered);
        }
    }

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
