//! The canonical string of a flat JSON object: the exact bytes that are signed.
//!
//! Rules (PRODUCT.md): every top-level field except `sign`; fields whose value is `null` or
//! `""` are left out; keys sorted by byte order; each written `key=value`, where a string is
//! its raw (unescaped) content and a number or boolean is its JSON literal exactly as it
//! appears in the received text; joined with `&`. Nested objects or arrays are refused, and so
//! are duplicate keys, which would let a signature cover one value while another is used.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

pub const SIGN_FIELD: &str = "sign";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("field {0} appears more than once")]
    DuplicateKey(String),
    #[error("field {0} must not be an object or an array")]
    Nested(String),
    #[error("field sign must be a string")]
    SignNotString,
}

/// A received object: its canonical string, its `sign` if any, and every field's raw JSON
/// text, so that callers read typed values from the same parse that was signed.
#[derive(Clone, Debug)]
pub struct SignedObject<'a> {
    pub canonical: String,
    pub sign: Option<String>,
    pub fields: BTreeMap<String, &'a RawValue>,
}

/// One field's contribution to the canonical string.
enum Part<'a> {
    Skip,
    Text(Cow<'a, str>),
}

fn part_of_raw<'a>(key: &str, raw: &'a str) -> Result<Part<'a>, CanonicalError> {
    match raw.as_bytes().first() {
        Some(b'"') => {
            let text: Cow<'a, str> =
                serde_json::from_str(raw).map_err(|e| CanonicalError::Json(e.to_string()))?;
            Ok(if text.is_empty() {
                Part::Skip
            } else {
                Part::Text(text)
            })
        }
        Some(b'n') => Ok(Part::Skip),
        Some(b'{' | b'[') => Err(CanonicalError::Nested(key.to_string())),
        // Numbers and booleans: the literal as received.
        _ => Ok(Part::Text(Cow::Borrowed(raw))),
    }
}

fn part_of_value<'a>(key: &str, value: &'a serde_json::Value) -> Result<Part<'a>, CanonicalError> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(Part::Skip),
        Value::String(s) if s.is_empty() => Ok(Part::Skip),
        Value::String(s) => Ok(Part::Text(Cow::Borrowed(s))),
        // serde_json writes numbers and booleans exactly as `to_string` does.
        Value::Number(n) => Ok(Part::Text(Cow::Owned(n.to_string()))),
        Value::Bool(b) => Ok(Part::Text(Cow::Borrowed(if *b { "true" } else { "false" }))),
        Value::Array(_) | Value::Object(_) => Err(CanonicalError::Nested(key.to_string())),
    }
}

fn join<'a>(parts: impl Iterator<Item = (&'a str, Part<'a>)>) -> String {
    let mut out = String::new();
    for (key, part) in parts {
        if let Part::Text(text) = part {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(&text);
        }
    }
    out
}

/// Fields of a received object with their raw JSON text, keys in byte order, no duplicates.
struct RawObject<'a>(BTreeMap<String, &'a RawValue>);

impl<'de> de::Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: &'de RawValue = map.next_value()?;
                    if fields.contains_key(&key) {
                        return Err(de::Error::custom(format_args!("duplicate key:{key}")));
                    }
                    fields.insert(key, value);
                }
                Ok(RawObject(fields))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Parses a received body and computes its canonical string.
pub fn parse_signed_object(json: &str) -> Result<SignedObject<'_>, CanonicalError> {
    let trimmed = json.trim_start();
    if !trimmed.starts_with('{') {
        // Distinguish "valid JSON but not an object" from garbage for a clearer message.
        return Err(match serde_json::from_str::<de::IgnoredAny>(json) {
            Ok(_) => CanonicalError::NotAnObject,
            Err(e) => CanonicalError::Json(e.to_string()),
        });
    }
    let RawObject(fields) = serde_json::from_str(json).map_err(|e: serde_json::Error| {
        let text = e.to_string();
        match text.strip_prefix("duplicate key:") {
            Some(rest) => CanonicalError::DuplicateKey(
                rest.split(" at line").next().unwrap_or(rest).to_string(),
            ),
            None => CanonicalError::Json(text),
        }
    })?;
    let sign = match fields.get(SIGN_FIELD) {
        None => None,
        Some(raw) => match serde_json::from_str::<Option<String>>(raw.get()) {
            Ok(sign) => sign,
            Err(_) => return Err(CanonicalError::SignNotString),
        },
    };
    let mut parts = Vec::with_capacity(fields.len());
    for (key, raw) in &fields {
        if key != SIGN_FIELD {
            parts.push((key.as_str(), part_of_raw(key, raw.get())?));
        }
    }
    let canonical = join(parts.into_iter());
    Ok(SignedObject {
        canonical,
        sign,
        fields,
    })
}

/// Where a received object's canonical string could be split into other fields: the field
/// whose string value holds `&KEY=` and that `KEY`, when `KEY` is a key of the message or one of
/// `known_keys` (the dialect's) and sorts between that field and the next one. Such a value
/// makes the signature stand for two requests (`name` = `Jane&notifyUrl=URL` signs alike with a
/// separate `notifyUrl`), so it is refused. `&KEY=` that no re-split can use (an unknown key,
/// or one that would fall out of order) is allowed: query strings in URLs stay usable.
pub fn ambiguous_split(object: &SignedObject, known_keys: &[&str]) -> Option<(String, String)> {
    // The signed keys in canonical order: `null` and `""` are left out of the string.
    let signed: Vec<(&str, &str)> = object
        .fields
        .iter()
        .filter(|(key, raw)| *key != SIGN_FIELD && !matches!(raw.get(), "null" | "\"\""))
        .map(|(key, raw)| (key.as_str(), raw.get()))
        .collect();
    for (index, (key, raw)) in signed.iter().enumerate() {
        // Only a value holding `&` (raw or escaped) can be split; most hold none.
        if !raw.contains('&') && !raw.contains("\\u0026") {
            continue;
        }
        let Ok(Part::Text(value)) = part_of_raw(key, raw) else {
            continue;
        };
        let next = signed.get(index + 1).map(|(next, _)| *next);
        for (at, _) in value.match_indices('&') {
            let rest = &value[at + 1..];
            let Some(candidate) = rest.split_once('=').map(|(candidate, _)| candidate) else {
                continue;
            };
            let is_key = known_keys.contains(&candidate) || object.fields.contains_key(candidate);
            let in_order = candidate > *key && next.is_none_or(|next| candidate < next);
            if is_key && in_order {
                return Some((key.to_string(), candidate.to_string()));
            }
        }
    }
    None
}

/// The canonical string of an object kassa builds itself (replies, callbacks).
pub fn canonical_of_map(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, CanonicalError> {
    let mut keys: Vec<&String> = map.keys().filter(|k| *k != SIGN_FIELD).collect();
    keys.sort_unstable();
    let mut parts = Vec::with_capacity(keys.len());
    for key in keys {
        parts.push((key.as_str(), part_of_value(key, &map[key])?));
    }
    Ok(join(parts.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_that_re_split_into_other_fields_are_found() {
        let known = ["amount", "name", "notifyUrl", "subject"];
        let split = |json: &str| ambiguous_split(&parse_signed_object(json).unwrap(), &known);
        // A separate notifyUrl and one hidden in the name sign alike: refused.
        let hidden = r#"{"amount":"1","name":"Jane&notifyUrl=https://evil.example/x"}"#;
        assert_eq!(split(hidden), Some(("name".into(), "notifyUrl".into())));
        assert_eq!(
            parse_signed_object(hidden).unwrap().canonical,
            parse_signed_object(
                r#"{"amount":"1","name":"Jane","notifyUrl":"https://evil.example/x"}"#
            )
            .unwrap()
            .canonical
        );
        // An escaped ampersand is the same character once decoded.
        let escaped = r#"{"amount":"1","name":"Jane\u0026notifyUrl=https://evil.example/x"}"#;
        assert_eq!(split(escaped), Some(("name".into(), "notifyUrl".into())));
        // Query strings whose keys no re-split can use stay allowed.
        assert_eq!(
            split(r#"{"notifyUrl":"https://shop.example/?a=1&b=2&zz=3"}"#),
            None
        );
        assert_eq!(split(r#"{"name":"Tom&Jerry","subject":"x"}"#), None);
        // Out of order (a key before the field) or taken by the next field: no re-split.
        assert_eq!(split(r#"{"name":"x&amount=5"}"#), None);
        assert_eq!(split(r#"{"name":"x&notifyUrl=u","notifyUrl":"v"}"#), None);
        // The last field can swallow any later key.
        assert_eq!(
            split(r#"{"amount":"1","name":"x&subject=free"}"#),
            Some(("name".into(), "subject".into()))
        );
    }

    fn canonical(json: &str) -> String {
        parse_signed_object(json).unwrap().canonical
    }

    #[test]
    fn the_seed_request() {
        let json = r#"{
            "appId": 1054, "orderId": "M233323000059", "amount": "300",
            "phone": "09230219312", "email": "23423@qq.com", "name": "test",
            "inBankCode": "USA", "payType": "BANK_TRANSFER", "partnerUserId": "149597870",
            "sign": "af0g=="
        }"#;
        let object = parse_signed_object(json).unwrap();
        assert_eq!(
            object.canonical,
            "amount=300&appId=1054&email=23423@qq.com&inBankCode=USA&name=test\
             &orderId=M233323000059&partnerUserId=149597870&payType=BANK_TRANSFER\
             &phone=09230219312"
        );
        assert_eq!(object.sign.as_deref(), Some("af0g=="));
    }

    #[test]
    fn skips_null_and_empty_and_keeps_literals() {
        assert_eq!(
            canonical(r#"{"b":null,"a":"","c":1.50,"d":true,"e":-0,"f":"x y&z=é\"","sign":null}"#),
            "c=1.50&d=true&e=-0&f=x y&z=é\""
        );
        assert_eq!(canonical(r#"{"k":"\u00e9"}"#), "k=é");
        assert_eq!(canonical("{}"), "");
    }

    #[test]
    fn keys_sort_by_bytes() {
        assert_eq!(
            canonical(r#"{"b":"1","B":"2","a":"3","_":"4"}"#),
            "B=2&_=4&a=3&b=1"
        );
    }

    #[test]
    fn refuses_nesting_duplicates_and_non_objects() {
        let error = |json| parse_signed_object(json).unwrap_err();
        assert_eq!(
            error(r#"{"a":{"b":1}}"#),
            CanonicalError::Nested("a".into())
        );
        assert_eq!(error(r#"{"a":[1]}"#), CanonicalError::Nested("a".into()));
        assert_eq!(
            error(r#"{"a":"1","a":"2"}"#),
            CanonicalError::DuplicateKey("a".into())
        );
        assert_eq!(error("[1]"), CanonicalError::NotAnObject);
        assert!(matches!(error("{"), CanonicalError::Json(_)));
        assert!(matches!(error(""), CanonicalError::Json(_)));
        assert_eq!(error(r#"{"sign":5}"#), CanonicalError::SignNotString);
    }

    #[test]
    fn built_and_received_objects_agree() {
        let value = serde_json::json!({"orderNo":"6023","status":-1,"amount":"50.00","payTime":null,"errorMsg":"","ok":false});
        let map = value.as_object().unwrap();
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(canonical_of_map(map).unwrap(), canonical(&text));
        assert_eq!(
            canonical_of_map(map).unwrap(),
            "amount=50.00&ok=false&orderNo=6023&status=-1"
        );
    }

    proptest! {
        #[test]
        fn any_flat_object_canonicalises_the_same_both_ways(
            fields in proptest::collection::btree_map("[a-zA-Z_]{1,8}", prop_oneof![
                any::<String>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
            ], 0..8)
        ) {
            let map: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
            let text = serde_json::to_string(&map).unwrap();
            prop_assert_eq!(canonical_of_map(&map).unwrap(), canonical(&text));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,64}") {
            let _ = parse_signed_object(&text);
        }
    }
}
