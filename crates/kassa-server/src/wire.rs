//! Reading what a merchant sent: the body within its size limit, and typed fields out of the
//! received JSON object, shared by the dialects and the shedding layer. Every field error
//! names its field; the dialect turns it into its own error code.

use axum::body::{Body, Bytes};
use kassa_core::validate::{self, FieldError};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Largest request body accepted by every dialect.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Broken,
}

/// The whole body, refused past [`MAX_BODY_BYTES`]; `expected` is its declared length. A body
/// that arrives in one piece (or was read before) is passed on without a copy.
pub async fn read_body(mut body: Body, expected: Option<usize>) -> Result<Bytes, BodyError> {
    use hyper::body::Body as _;
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut length = 0;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let Ok(data) = frame.map_err(|_| BodyError::Broken)?.into_data() else {
            continue; // trailers
        };
        length += data.len();
        if length > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            earlier => {
                if joined.is_empty() {
                    joined.reserve(expected.unwrap_or(0).min(MAX_BODY_BYTES));
                }
                if let Some(earlier) = earlier {
                    joined.extend_from_slice(&earlier);
                }
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// The fields of a received object, as raw JSON text (see `kassa_signature::SignedObject`).
pub struct Fields<'a> {
    raw: &'a BTreeMap<String, &'a RawValue>,
}

impl<'a> Fields<'a> {
    pub fn new(raw: &'a BTreeMap<String, &'a RawValue>) -> Self {
        Fields { raw }
    }

    fn raw(&self, name: &str) -> Option<&'a str> {
        self.raw
            .get(name)
            .map(|v| v.get())
            .filter(|text| *text != "null")
    }

    /// A string field; absent, `null` and `""` are all `None`.
    pub fn string(&self, name: &'static str) -> Result<Option<String>, FieldError> {
        let Some(text) = self.raw(name) else {
            return Ok(None);
        };
        if !text.starts_with('"') {
            return Err(FieldError::wrong_type(name, "a string"));
        }
        let value: String = serde_json::from_str(text)
            .map_err(|_| FieldError::invalid(name, "is not a valid JSON string"))?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// A required string of at most `max_chars` characters, without control characters.
    pub fn required(&self, name: &'static str, max_chars: usize) -> Result<String, FieldError> {
        let value = self
            .string(name)?
            .ok_or_else(|| FieldError::missing(name))?;
        validate::text(name, &value, max_chars)?;
        Ok(value)
    }

    /// An optional string with the same rules when present.
    pub fn optional(
        &self,
        name: &'static str,
        max_chars: usize,
    ) -> Result<Option<String>, FieldError> {
        let value = self.string(name)?;
        if let Some(value) = &value {
            validate::text(name, value, max_chars)?;
        }
        Ok(value)
    }

    /// A required positive integer written as a JSON number (the seed's `Long`).
    pub fn positive_integer(&self, name: &'static str) -> Result<i64, FieldError> {
        let text = self.raw(name).ok_or_else(|| FieldError::missing(name))?;
        if !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(FieldError::wrong_type(name, "an integer number"));
        }
        match text.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(FieldError::invalid(name, "must be a positive integer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_core::validate::Problem;

    fn with_fields<T>(json: &str, f: impl FnOnce(Fields) -> T) -> T {
        let object = kassa_signature::parse_signed_object(json).unwrap();
        f(Fields::new(&object.fields))
    }

    #[test]
    fn strings() {
        with_fields(r#"{"a":"x","b":"","c":null,"d":5,"e":"\u0001"}"#, |f| {
            assert_eq!(f.string("a").unwrap().as_deref(), Some("x"));
            assert_eq!(f.string("b").unwrap(), None);
            assert_eq!(f.string("c").unwrap(), None);
            assert_eq!(f.string("zz").unwrap(), None);
            assert_eq!(
                f.string("d").unwrap_err().problem,
                Problem::WrongType("a string")
            );
            assert_eq!(f.required("b", 5).unwrap_err().problem, Problem::Missing);
            assert_eq!(
                f.required("a", 0).unwrap_err().problem,
                Problem::TooLong { max_chars: 0 }
            );
            assert!(matches!(
                f.required("e", 5).unwrap_err().problem,
                Problem::Invalid(_)
            ));
            assert_eq!(f.optional("b", 5).unwrap(), None);
        });
    }

    #[test]
    fn integers() {
        with_fields(
            r#"{"a":1054,"b":"1054","c":-1,"d":1.5,"e":0,"f":99999999999999999999}"#,
            |f| {
                assert_eq!(f.positive_integer("a"), Ok(1054));
                assert_eq!(
                    f.positive_integer("b").unwrap_err().problem,
                    Problem::WrongType("an integer number")
                );
                assert!(matches!(
                    f.positive_integer("c").unwrap_err().problem,
                    Problem::Invalid(_)
                ));
                assert_eq!(
                    f.positive_integer("d").unwrap_err().problem,
                    Problem::WrongType("an integer number")
                );
                assert!(matches!(
                    f.positive_integer("e").unwrap_err().problem,
                    Problem::Invalid(_)
                ));
                assert!(matches!(
                    f.positive_integer("f").unwrap_err().problem,
                    Problem::Invalid(_)
                ));
                assert_eq!(
                    f.positive_integer("zz").unwrap_err().problem,
                    Problem::Missing
                );
            },
        );
    }
}
