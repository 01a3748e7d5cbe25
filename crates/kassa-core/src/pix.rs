//! PIX: the receiving key of an app (CPF, CNPJ, e-mail, phone or random EVP key), the merchant
//! name and city a BR Code carries, and the BR Code of an order.

use crate::brcode::{self, Field};
use crate::money::AmountMinor;
use crate::validate;
use std::fmt;

/// The Globally Unique Identifier of PIX in field 26/00.
pub const GUI: &str = "br.gov.bcb.pix";
pub const MAX_NAME_CHARS: usize = 25;
pub const MAX_CITY_CHARS: usize = 15;
/// Longest txid of a static BR Code (field 62/05): letters and digits.
pub const MAX_TXID_CHARS: usize = 25;

/// A PIX key, normalised (digits only for CPF/CNPJ, lower case for EVP and e-mail). CPF numbers,
/// phones and e-mails are personal data: `Debug` masks every kind (see [`PixKey::masked`]).
#[derive(Clone, PartialEq, Eq)]
pub enum PixKey {
    Cpf(String),
    Cnpj(String),
    Email(String),
    /// `+55` and 10 or 11 digits.
    Phone(String),
    /// A random key: a UUID.
    Evp(String),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is not a PIX key: use a CPF or CNPJ (valid check digits), an e-mail, a phone +55 with 10 or 11 digits, or a random key (UUID)"
)]
pub struct PixKeyError(String);

fn check_digit(digits: &[u8], weights: impl Iterator<Item = u32>) -> u8 {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    let rest = sum % 11;
    if rest < 2 { 0 } else { (11 - rest) as u8 }
}

fn valid_cpf(digits: &[u8]) -> bool {
    digits.len() == 11
        && digits.iter().any(|d| *d != digits[0])
        && check_digit(&digits[..9], (2..=10).rev()) == digits[9]
        && check_digit(&digits[..10], (2..=11).rev()) == digits[10]
}

fn valid_cnpj(digits: &[u8]) -> bool {
    const FIRST: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    const SECOND: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    digits.len() == 14
        && digits.iter().any(|d| *d != digits[0])
        && check_digit(&digits[..12], FIRST.into_iter()) == digits[12]
        && check_digit(&digits[..13], SECOND.into_iter()) == digits[13]
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl PixKey {
    pub fn parse(text: &str) -> Result<PixKey, PixKeyError> {
        let bad = || PixKeyError(format!("{text:?}"));
        let text = text.trim();
        if text.len() > 77 {
            return Err(bad());
        }
        if let Some(rest) = text.strip_prefix("+55") {
            return if (10..=11).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_digit()) {
                Ok(PixKey::Phone(text.to_string()))
            } else {
                Err(bad())
            };
        }
        if text.contains('@') {
            validate::email("pixKey", text).map_err(|_| bad())?;
            return Ok(PixKey::Email(text.to_ascii_lowercase()));
        }
        if is_uuid(text) {
            return Ok(PixKey::Evp(text.to_ascii_lowercase()));
        }
        // CPF and CNPJ, with or without their usual punctuation.
        if text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"./-".contains(&b))
        {
            let digits: Vec<u8> = text
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            let plain: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            if valid_cpf(&digits) {
                return Ok(PixKey::Cpf(plain));
            }
            if valid_cnpj(&digits) {
                return Ok(PixKey::Cnpj(plain));
            }
        }
        Err(bad())
    }

    pub fn as_str(&self) -> &str {
        match self {
            PixKey::Cpf(k)
            | PixKey::Cnpj(k)
            | PixKey::Email(k)
            | PixKey::Phone(k)
            | PixKey::Evp(k) => k,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PixKey::Cpf(_) => "cpf",
            PixKey::Cnpj(_) => "cnpj",
            PixKey::Email(_) => "email",
            PixKey::Phone(_) => "phone",
            PixKey::Evp(_) => "evp",
        }
    }
}

impl PixKey {
    /// The key's kind and a masked form of it, as logs and `Debug` show it: `cpf:5***`.
    pub fn masked(&self) -> String {
        format!(
            "{}:{}",
            self.kind(),
            crate::Personal::new(self.as_str()).masked()
        )
    }
}

impl fmt::Debug for PixKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PixKey({})", self.masked())
    }
}

impl fmt::Display for PixKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Latin letters with diacritics to plain ASCII (`São Paulo` → `Sao Paulo`); `None` if a
/// character has no ASCII form a BR Code could carry.
pub fn transliterate(text: &str) -> Option<String> {
    text.chars()
        .map(|c| {
            let plain = match c {
                'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' => 'a',
                'Á' | 'À' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
                'é' | 'è' | 'ê' | 'ë' => 'e',
                'É' | 'È' | 'Ê' | 'Ë' => 'E',
                'í' | 'ì' | 'î' | 'ï' => 'i',
                'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
                'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
                'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ö' => 'O',
                'ú' | 'ù' | 'û' | 'ü' => 'u',
                'Ú' | 'Ù' | 'Û' | 'Ü' => 'U',
                'ç' => 'c',
                'Ç' => 'C',
                'ñ' => 'n',
                'Ñ' => 'N',
                c if (' '..='~').contains(&c) => c,
                _ => return None,
            };
            Some(plain)
        })
        .collect()
}

/// Who receives an app's PIX payments, as its BR Codes say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixReceiver {
    pub key: PixKey,
    /// ASCII, at most 25 characters.
    pub name: String,
    /// ASCII, at most 15 characters.
    pub city: String,
    pub codes: CodeKind,
}

/// How an app's BR Codes carry a payment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CodeKind {
    /// The key, the amount and the txid in the code itself.
    #[default]
    Static,
    /// A location where the payer's bank fetches the signed charge (amount, expiry, key): the
    /// code stays short and the bank shows what the receiver set.
    Dynamic,
}

impl CodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::Static => "static",
            CodeKind::Dynamic => "dynamic",
        }
    }

    pub fn parse(text: &str) -> Option<CodeKind> {
        match text {
            "static" => Some(CodeKind::Static),
            "dynamic" => Some(CodeKind::Dynamic),
            _ => None,
        }
    }
}

/// Longest location of a dynamic code (field 26/25): a URL without its `https://`.
pub const MAX_LOCATION_CHARS: usize = 77;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PixReceiverError {
    #[error(transparent)]
    Key(#[from] PixKeyError),
    #[error("the {0} must be 1 to {1} characters after transliteration to ASCII")]
    Length(&'static str, usize),
    #[error("the {0} has characters without an ASCII form")]
    Charset(&'static str),
}

/// The longest `qrCode` the pix seed allows.
pub const MAX_CODE_CHARS: usize = 200;
/// What a static code holds besides the key, name and city, at its longest (16-digit txid, the
/// largest amount): 000201, 26's own header and GUI, 52, 53, 54, 58, 59/60 headers, 62, 63.
const CODE_OVERHEAD_CHARS: usize = 109;
/// What a dynamic code holds besides the location, name and city: 000201, 010212, 26's header
/// and GUI, 25's header, 52, 53, 58, 59/60 headers, 62 (txid `***`), 63.
const DYNAMIC_OVERHEAD_CHARS: usize = 86;
/// Shortening stops here: a name or city cut further would say nothing.
const MIN_NAME_CHARS: usize = 10;
const MIN_CITY_CHARS: usize = 3;

/// Cuts the name, then the city, so that a code with `other_chars` besides them fits the
/// seed's 200 characters (the BR Code manual lets both be shortened: they are shown, not
/// routed on).
fn fit(other_chars: usize, name: &mut String, city: &mut String) {
    let room = MAX_CODE_CHARS.saturating_sub(other_chars);
    let over = (name.len() + city.len()).saturating_sub(room);
    let name_cut = over.min(name.len().saturating_sub(MIN_NAME_CHARS));
    name.truncate(name.len() - name_cut);
    let city_cut = (over - name_cut).min(city.len().saturating_sub(MIN_CITY_CHARS));
    city.truncate(city.len() - city_cut);
    *name = name.trim_end().to_string();
    *city = city.trim_end().to_string();
}

impl PixReceiver {
    /// A receiver; the name and city shortened where a long key leaves them too little room
    /// in a 200-character code.
    pub fn new(key: &str, name: &str, city: &str) -> Result<PixReceiver, PixReceiverError> {
        let clean = |what: &'static str, text: &str, max: usize| {
            let ascii = transliterate(text.trim()).ok_or(PixReceiverError::Charset(what))?;
            if ascii.is_empty() || ascii.chars().count() > max {
                return Err(PixReceiverError::Length(what, max));
            }
            Ok(ascii)
        };
        let key = PixKey::parse(key)?;
        let mut name = clean("merchant name", name, MAX_NAME_CHARS)?;
        let mut city = clean("merchant city", city, MAX_CITY_CHARS)?;
        fit(
            CODE_OVERHEAD_CHARS + key.as_str().len(),
            &mut name,
            &mut city,
        );
        Ok(PixReceiver {
            key,
            name,
            city,
            codes: CodeKind::Static,
        })
    }

    /// The same receiver with codes of `codes`' kind.
    pub fn with_codes(self, codes: CodeKind) -> PixReceiver {
        PixReceiver { codes, ..self }
    }

    /// The dynamic BR Code of one payment: the receiver's name and city (shortened where the
    /// location leaves too little room) and where the charge is fetched (`location`: host and
    /// path, at most 77 characters, no scheme). It is single-use (01 = 12) and its txid is
    /// `***`: the charge behind the location carries the real one.
    pub fn dynamic_brcode(&self, location: &str) -> String {
        debug_assert!(location.len() <= MAX_LOCATION_CHARS && !location.contains("://"));
        let (mut name, mut city) = (self.name.clone(), self.city.clone());
        fit(
            DYNAMIC_OVERHEAD_CHARS + location.len(),
            &mut name,
            &mut city,
        );
        brcode::encode(&[
            Field::text(0, "01"),
            Field::text(1, "12"),
            Field::template(26, vec![Field::text(0, GUI), Field::text(25, location)]),
            Field::text(52, "0000"),
            Field::text(53, "986"),
            Field::text(58, "BR"),
            Field::text(59, name),
            Field::text(60, city),
            Field::template(62, vec![Field::text(5, "***")]),
        ])
    }

    /// The BR Code of one payment: this receiver, the amount, and a txid for reconciliation.
    pub fn brcode(&self, amount: AmountMinor, txid: &str) -> String {
        debug_assert!(
            txid.len() <= MAX_TXID_CHARS && txid.bytes().all(|b| b.is_ascii_alphanumeric())
        );
        brcode::encode(&[
            Field::text(0, "01"),
            Field::template(
                26,
                vec![Field::text(0, GUI), Field::text(1, self.key.as_str())],
            ),
            Field::text(52, "0000"),
            Field::text(53, "986"),
            Field::text(54, amount.to_decimal_string()),
            Field::text(58, "BR"),
            Field::text(59, self.name.clone()),
            Field::text(60, self.city.clone()),
            Field::template(62, vec![Field::text(5, txid)]),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every code of every receiver fits the seed's 200 characters and decodes with its CRC,
        /// the longest e-mail key (77 characters) included.
        #[test]
        fn every_code_fits_the_seed(
            local in "[a-z0-9]{1,64}",
            name in "[A-Za-z ]{1,25}",
            city in "[A-Za-z ]{1,15}",
            amount in 1i64..=AmountMinor::MAX_WIRE.0,
            kind in 0usize..3,
        ) {
            let email_domain = "e".repeat(77usize.saturating_sub(local.len() + 5).clamp(1, 63));
            let key = match kind {
                0 => format!("{local}@{email_domain}.br"),
                1 => "123e4567-e12b-12d1-a456-426655440000".to_string(),
                _ => "+5511987654321".to_string(),
            };
            let name = if name.trim().is_empty() { "Loja".to_string() } else { name };
            let city = if city.trim().is_empty() { "Rio".to_string() } else { city };
            let Ok(receiver) = PixReceiver::new(&key, &name, &city) else {
                return Ok(());
            };
            let code = receiver.brcode(AmountMinor(amount), "6023071013539075");
            proptest::prop_assert!(code.len() <= MAX_CODE_CHARS, "{} characters: {code}", code.len());
            proptest::prop_assert!(crate::brcode::decode(&code).is_ok());
        }

        /// Dynamic codes fit too, whatever the location's length up to the manual's 77.
        #[test]
        fn every_dynamic_code_fits_the_seed(
            name in "[A-Za-z]{1,25}",
            city in "[A-Za-z]{1,15}",
            host in "[a-z0-9.]{1,36}",
        ) {
            let receiver = PixReceiver::new("+5511987654321", &name, &city).unwrap();
            let location = format!("{host}/pix/cob/{}", "1".repeat(32));
            let code = receiver.dynamic_brcode(&location);
            proptest::prop_assert!(code.len() <= MAX_CODE_CHARS, "{} characters: {code}", code.len());
            let parsed = crate::brcode::decode(&code).unwrap();
            proptest::prop_assert_eq!(parsed.text(&[26, 25]), Some(location.as_str()));
            proptest::prop_assert_eq!(parsed.text(&[62, 5]), Some("***"));
            proptest::prop_assert_eq!(parsed.text(&[1]), Some("12"));
            proptest::prop_assert!(parsed.get(54).is_none());
        }
    }

    #[test]
    fn the_longest_location_still_fits() {
        let receiver = PixReceiver::new(
            "+5511987654321",
            "Comercio de Alimentos Ltd",
            "Sao Jose Campos",
        )
        .unwrap();
        let location = "l".repeat(MAX_LOCATION_CHARS);
        let code = receiver.dynamic_brcode(&location);
        // 163 characters besides the name and city leave 37: the name loses "Ltd".
        assert_eq!(code.len(), MAX_CODE_CHARS - 1);
        let parsed = crate::brcode::decode(&code).unwrap();
        assert_eq!(parsed.text(&[59]), Some("Comercio de Alimentos"));
        assert_eq!(parsed.text(&[60]), Some("Sao Jose Campos"));
    }

    #[test]
    fn long_keys_shorten_the_name_then_the_city() {
        let key = format!("{}@{}.com.br", "a".repeat(40), "b".repeat(29));
        assert_eq!(key.len(), 77);
        let receiver = PixReceiver::new(&key, "Comercio de Alimentos Ltda", "Sao Jose dos Campos")
            .unwrap_err();
        assert!(matches!(
            receiver,
            PixReceiverError::Length("merchant name", 25)
        ));
        let receiver =
            PixReceiver::new(&key, "Comercio de Alimentos Ltd", "Sao Jose Campos").unwrap();
        // 14 characters of room: the name keeps 10, the city 4 ("Sao ", its space trimmed).
        assert_eq!(
            (receiver.name.as_str(), receiver.city.as_str()),
            ("Comercio d", "Sao")
        );
        let code = receiver.brcode(AmountMinor::MAX_WIRE, "6023071013539075");
        assert_eq!(code.len(), MAX_CODE_CHARS - 1);
        // Short keys keep the whole name and city.
        let evp = PixReceiver::new(
            "123e4567-e12b-12d1-a456-426655440000",
            "Comercio de Alimentos Ltd",
            "Sao Jose Campos",
        )
        .unwrap();
        assert_eq!(evp.name, "Comercio de Alimentos Ltd");
    }

    #[test]
    fn keys_of_every_kind() {
        assert_eq!(
            PixKey::parse("529.982.247-25"),
            Ok(PixKey::Cpf("52998224725".into()))
        );
        assert_eq!(PixKey::parse("52998224725").unwrap().kind(), "cpf");
        assert_eq!(
            PixKey::parse("11.222.333/0001-81"),
            Ok(PixKey::Cnpj("11222333000181".into()))
        );
        assert_eq!(
            PixKey::parse("Pix@Loja.com.br"),
            Ok(PixKey::Email("pix@loja.com.br".into()))
        );
        assert_eq!(PixKey::parse("+5511987654321").unwrap().kind(), "phone");
        assert_eq!(PixKey::parse("+551133334444").unwrap().kind(), "phone");
        assert_eq!(
            PixKey::parse("123E4567-E12B-12D1-A456-426655440000"),
            Ok(PixKey::Evp("123e4567-e12b-12d1-a456-426655440000".into()))
        );
        for bad in [
            "52998224724",    // CPF with a wrong check digit
            "11111111111",    // all one digit
            "11222333000182", // CNPJ with a wrong check digit
            "+5511987",       // short phone
            "+14155550100",   // not Brazil
            "11987654321",    // phone without +55 (and not a CPF)
            "not-an-email@",
            "123e4567-e12b-12d1-a456-42665544000", // short UUID
            "",
            "random",
        ] {
            assert!(PixKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_masks_every_kind_of_key() {
        for key in [
            "529.982.247-25",
            "11.222.333/0001-81",
            "pix.owner@loja.com.br",
            "+5511987654321",
            "123e4567-e12b-12d1-a456-426655440000",
        ] {
            let parsed = PixKey::parse(key).unwrap();
            let receiver = PixReceiver {
                key: parsed.clone(),
                name: "Loja".into(),
                city: "Rio".into(),
                codes: CodeKind::Static,
            };
            for shown in [format!("{parsed:?}"), format!("{receiver:?}")] {
                assert!(
                    !shown.contains(&parsed.as_str()[1..]),
                    "{shown} shows {key}"
                );
                assert!(shown.contains(parsed.kind()), "{shown}");
            }
        }
    }

    #[test]
    fn names_and_cities_become_ascii() {
        assert_eq!(transliterate("São Paulo").as_deref(), Some("Sao Paulo"));
        assert_eq!(transliterate("Açaí Ñandú").as_deref(), Some("Acai Nandu"));
        assert_eq!(transliterate("東京"), None);
        let receiver =
            PixReceiver::new("pix@loja.com.br", "Café Três Corações", "Florianópolis").unwrap();
        assert_eq!(
            (receiver.name.as_str(), receiver.city.as_str()),
            ("Cafe Tres Coracoes", "Florianopolis")
        );
        assert_eq!(
            PixReceiver::new("pix@loja.com.br", &"x".repeat(26), "Rio"),
            Err(PixReceiverError::Length("merchant name", 25))
        );
        assert_eq!(
            PixReceiver::new("pix@loja.com.br", "Loja", "São José dos Campos"),
            Err(PixReceiverError::Length("merchant city", 15))
        );
    }

    #[test]
    fn order_codes_carry_every_field() {
        let receiver = PixReceiver::new(
            "123e4567-e12b-12d1-a456-426655440000",
            "Fulano de Tal",
            "BRASILIA",
        )
        .unwrap();
        let code = receiver.brcode(AmountMinor(1_234), "6023071013539074");
        let parsed = brcode::decode(&code).unwrap();
        assert_eq!(parsed.text(&[26, 0]), Some(GUI));
        assert_eq!(
            parsed.text(&[26, 1]),
            Some("123e4567-e12b-12d1-a456-426655440000")
        );
        assert_eq!(parsed.text(&[53]), Some("986"));
        assert_eq!(parsed.text(&[54]), Some("12.34"));
        assert_eq!(parsed.text(&[58]), Some("BR"));
        assert_eq!(parsed.text(&[62, 5]), Some("6023071013539074"));
        assert!(code.len() <= 200, "the seed allows 200 characters");
    }
}
