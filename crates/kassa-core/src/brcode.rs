//! BR Codes: EMV QRCPS-MPM payloads (the format behind PIX QR codes and copy-and-paste codes).
//!
//! A payload is a sequence of TLV fields — two-digit id, two-digit length, value — where some
//! ids hold nested templates (26–51 merchant account information, 62 additional data, 80–99
//! unreserved). It starts with `000201` and ends with field 63, a CRC16-CCITT-FALSE over
//! everything before the CRC's own four hex digits.

use std::fmt;

/// Longest payload accepted when decoding (the EMV limit is 512 characters).
pub const MAX_PAYLOAD_LEN: usize = 512;

/// A field's value: text, or a nested template of fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Template(Vec<Field>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub id: u8,
    pub value: Value,
}

impl Field {
    pub fn text(id: u8, value: impl Into<String>) -> Field {
        Field {
            id,
            value: Value::Text(value.into()),
        }
    }

    pub fn template(id: u8, fields: Vec<Field>) -> Field {
        Field {
            id,
            value: Value::Template(fields),
        }
    }

    fn encoded(&self) -> String {
        let value = match &self.value {
            Value::Text(text) => text.clone(),
            Value::Template(fields) => fields.iter().map(Field::encoded).collect(),
        };
        debug_assert!(value.len() <= 99, "field {} is too long to encode", self.id);
        format!("{:02}{:02}{value}", self.id, value.len())
    }
}

/// Whether an id holds a nested template.
pub fn is_template(id: u8) -> bool {
    matches!(id, 26..=51 | 62 | 80..=99)
}

/// CRC16-CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no final xor.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The payload of `fields` (without 63), with the CRC field appended.
pub fn encode(fields: &[Field]) -> String {
    let mut payload: String = fields.iter().map(Field::encoded).collect();
    payload.push_str("6304");
    let crc = crc16(payload.as_bytes());
    payload.push_str(&format!("{crc:04X}"));
    payload
}

/// Why a payload is not a valid BR Code, with the place it went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the payload is empty")]
    Empty,
    #[error("the payload is longer than {MAX_PAYLOAD_LEN} characters")]
    TooLong,
    #[error("the payload holds a character that is not printable ASCII at position {0}")]
    NotAscii(usize),
    #[error("{context}at position {position}: expected a two-digit {what}, found {found:?}")]
    BadHeader {
        context: String,
        position: usize,
        what: &'static str,
        found: String,
    },
    #[error(
        "{context}field {id} at position {position} declares {declared} characters but only {available} remain"
    )]
    Overrun {
        context: String,
        id: u8,
        position: usize,
        declared: usize,
        available: usize,
    },
    #[error("{context}field {id} appears twice")]
    Duplicate { context: String, id: u8 },
    #[error("field {0} is a template and cannot hold another template")]
    NestedTooDeep(u8),
    #[error("the payload must start with field 00 = \"01\"")]
    BadStart,
    #[error("the payload must end with field 63 holding four uppercase hex digits")]
    BadCrcField,
    #[error("the CRC is {stated} but the payload's CRC is {computed:04X}")]
    CrcMismatch { stated: String, computed: u16 },
}

/// A payload split into fields, and what its CRC says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Every field but 63.
    pub fields: Vec<Field>,
    /// The CRC written in field 63.
    pub stated_crc: String,
    /// The CRC of the payload.
    pub computed_crc: u16,
}

impl Parsed {
    pub fn crc_holds(&self) -> bool {
        self.stated_crc == format!("{:04X}", self.computed_crc)
    }

    pub fn get(&self, id: u8) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The text of a top-level field, or of a field inside a template (`path` = [26, 1]).
    pub fn text(&self, path: &[u8]) -> Option<&str> {
        let mut fields = &self.fields;
        for (i, id) in path.iter().enumerate() {
            let field = fields.iter().find(|f| f.id == *id)?;
            match (&field.value, i + 1 == path.len()) {
                (Value::Text(text), true) => return Some(text),
                (Value::Template(inner), false) => fields = inner,
                _ => return None,
            }
        }
        None
    }
}

fn parse_fields(
    text: &str,
    base: usize,
    context: &str,
    nested: bool,
) -> Result<Vec<Field>, DecodeError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let header = |offset: usize, what: &'static str| -> Result<usize, DecodeError> {
            let from = (at + offset).min(text.len());
            let digits = &text[from..(from + 2).min(text.len())];
            if digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(digits.parse().expect("two digits"))
            } else {
                Err(DecodeError::BadHeader {
                    context: context.to_string(),
                    position: base + at + offset,
                    what,
                    found: digits.to_string(),
                })
            }
        };
        let id = header(0, "field id")? as u8;
        let len = header(2, "field length")?;
        let start = at + 4;
        let available = text.len() - start;
        if len > available {
            return Err(DecodeError::Overrun {
                context: context.to_string(),
                id,
                position: base + at,
                declared: len,
                available,
            });
        }
        if fields.iter().any(|f| f.id == id) {
            return Err(DecodeError::Duplicate {
                context: context.to_string(),
                id,
            });
        }
        let raw = &text[start..start + len];
        let value = if is_template(id) {
            if nested {
                return Err(DecodeError::NestedTooDeep(id));
            }
            Value::Template(parse_fields(
                raw,
                base + start,
                &format!("in field {id}, "),
                true,
            )?)
        } else {
            Value::Text(raw.to_string())
        };
        fields.push(Field { id, value });
        at = start + len;
    }
    Ok(fields)
}

/// Splits a payload into fields and computes its CRC, refusing bad structure but not a wrong
/// CRC (see [`decode`] for that).
pub fn parse(payload: &str) -> Result<Parsed, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(DecodeError::TooLong);
    }
    if let Some(position) = payload.bytes().position(|b| !(0x20..0x7f).contains(&b)) {
        return Err(DecodeError::NotAscii(position));
    }
    let mut fields = parse_fields(payload, 0, "", false)?;
    if !matches!(fields.first(), Some(Field { id: 0, value: Value::Text(v) }) if v == "01") {
        return Err(DecodeError::BadStart);
    }
    let stated_crc = match fields.pop() {
        Some(Field {
            id: 63,
            value: Value::Text(crc),
        }) if crc.len() == 4
            && crc
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) =>
        {
            crc
        }
        _ => return Err(DecodeError::BadCrcField),
    };
    let computed_crc = crc16(&payload.as_bytes()[..payload.len() - 4]);
    Ok(Parsed {
        fields,
        stated_crc,
        computed_crc,
    })
}

/// Splits a payload into fields; the CRC must hold.
pub fn decode(payload: &str) -> Result<Parsed, DecodeError> {
    let parsed = parse(payload)?;
    if !parsed.crc_holds() {
        return Err(DecodeError::CrcMismatch {
            stated: parsed.stated_crc,
            computed: parsed.computed_crc,
        });
    }
    Ok(parsed)
}

impl fmt::Display for Parsed {
    /// One line per field, templates indented: `26 merchant account` / `  00 br.gov.bcb.pix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn write(f: &mut fmt::Formatter<'_>, fields: &[Field], indent: usize) -> fmt::Result {
            for field in fields {
                match &field.value {
                    Value::Text(text) => writeln!(f, "{:indent$}{:02} {text}", "", field.id)?,
                    Value::Template(inner) => {
                        writeln!(f, "{:indent$}{:02}", "", field.id)?;
                        write(f, inner, indent + 2)?;
                    }
                }
            }
            Ok(())
        }
        write(f, &self.fields, 0)?;
        let verdict = if self.crc_holds() {
            "holds"
        } else {
            "does NOT hold"
        };
        write!(
            f,
            "63 {} (computed {:04X}: the CRC {verdict})",
            self.stated_crc, self.computed_crc
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The static example of the Banco Central's BR Code manual.
    const BCB_EXAMPLE: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";

    #[test]
    fn crc_matches_the_reference_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn encodes_the_manual_example_byte_for_byte() {
        let fields = vec![
            Field::text(0, "01"),
            Field::template(
                26,
                vec![
                    Field::text(0, "br.gov.bcb.pix"),
                    Field::text(1, "123e4567-e12b-12d1-a456-426655440000"),
                ],
            ),
            Field::text(52, "0000"),
            Field::text(53, "986"),
            Field::text(58, "BR"),
            Field::text(59, "Fulano de Tal"),
            Field::text(60, "BRASILIA"),
            Field::template(62, vec![Field::text(5, "***")]),
        ];
        assert_eq!(encode(&fields), BCB_EXAMPLE);
        let parsed = decode(BCB_EXAMPLE).unwrap();
        assert_eq!(parsed.fields, fields);
        assert_eq!(
            parsed.text(&[26, 1]),
            Some("123e4567-e12b-12d1-a456-426655440000")
        );
        assert_eq!(parsed.text(&[59]), Some("Fulano de Tal"));
        assert!(
            parsed
                .to_string()
                .ends_with("63 1D3D (computed 1D3D: the CRC holds)")
        );
    }

    #[test]
    fn refuses_bad_payloads_precisely() {
        let wrong_crc = BCB_EXAMPLE.replace("63041D3D", "63041D3E");
        assert_eq!(
            decode(&wrong_crc),
            Err(DecodeError::CrcMismatch {
                stated: "1D3E".into(),
                computed: 0x1D3D
            })
        );
        assert!(
            !parse(&wrong_crc).unwrap().crc_holds(),
            "parse reports, decode refuses"
        );
        assert_eq!(decode(""), Err(DecodeError::Empty));
        assert_eq!(decode(&"0".repeat(600)), Err(DecodeError::TooLong));
        assert_eq!(decode("000201é"), Err(DecodeError::NotAscii(6)));
        assert!(matches!(
            decode("0002016304"),
            Err(DecodeError::Overrun { id: 63, .. })
        ));
        assert!(matches!(
            decode("00X201"),
            Err(DecodeError::BadHeader {
                position: 2,
                what: "field length",
                ..
            })
        ));
        assert!(matches!(
            decode("000201520"),
            Err(DecodeError::BadHeader {
                position: 8,
                what: "field length",
                ..
            })
        ));
        assert!(matches!(
            decode("0002015"),
            Err(DecodeError::BadHeader {
                position: 6,
                what: "field id",
                ..
            })
        ));
        assert_eq!(decode("0002026304ABCD"), Err(DecodeError::BadStart));
        assert_eq!(
            decode("000201520400006304abcd"),
            Err(DecodeError::BadCrcField)
        );
        assert_eq!(decode("00020152040000"), Err(DecodeError::BadCrcField));
        assert!(matches!(
            decode("0002015204000052040000"),
            Err(DecodeError::Duplicate { id: 52, .. })
        ));
        // Nesting: a template's inner lengths must add up, and templates do not nest further.
        let bad_inner = BCB_EXAMPLE.replace("0014br.gov.bcb.pix", "0015br.gov.bcb.pix");
        let err = decode(&bad_inner).unwrap_err();
        assert!(err.to_string().starts_with("in field 26, "), "{err}");
        assert_eq!(
            decode("0002012606260100"),
            Err(DecodeError::NestedTooDeep(26))
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(name in "[A-Za-z ]{1,25}", city in "[A-Za-z]{1,15}", txid in "[A-Za-z0-9]{1,25}") {
            let fields = vec![
                Field::text(0, "01"),
                Field::template(26, vec![Field::text(0, "br.gov.bcb.pix"), Field::text(1, "a@b.co")]),
                Field::text(59, name),
                Field::text(60, city),
                Field::template(62, vec![Field::text(5, txid)]),
            ];
            prop_assert_eq!(decode(&encode(&fields)).unwrap().fields, fields);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[ -~]{0,80}") {
            let _ = parse(&text);
            let _ = decode(&format!("000201{text}"));
        }
    }
}
