//! Small helpers shared by the wire structs of both dialects.

use crate::Error;
use kassa_core::AmountMinor;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A `json!` object literal as a map.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("built as an object"),
    }
}

/// Typed fields of verified data.
pub fn parse<T: DeserializeOwned>(data: &str) -> Result<T, Error> {
    serde_json::from_str(data).map_err(|e| Error::Malformed(e.to_string()))
}

/// A decimal amount of the wire (`"25.00"`) in minor units.
pub fn amount(field: &str, text: &str) -> Result<AmountMinor, Error> {
    AmountMinor::parse(text).map_err(|e| Error::Malformed(format!("{field}: {e}")))
}

/// An optional decimal amount of the wire.
pub fn optional_amount(field: &str, text: Option<&str>) -> Result<Option<AmountMinor>, Error> {
    text.map(|text| amount(field, text)).transpose()
}
