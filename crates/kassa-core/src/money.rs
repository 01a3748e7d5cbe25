//! Money: currencies, amounts as integer minor units, the wire format of amounts and limits.
//!
//! Amounts travel as strings of digits with at most two decimals (`"300"`, `"50.00"`) and are
//! held as `i64` minor units; floating point never touches money.

use std::fmt;

/// A currency kassa collects in. All have two decimal places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    Usd,
    Eur,
    Brl,
}

impl Currency {
    pub const ALL: [Currency; 3] = [Currency::Usd, Currency::Eur, Currency::Brl];

    /// ISO 4217 alphabetic code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Brl => "BRL",
        }
    }

    /// Parses an ISO 4217 code, case-insensitively (`eur` comes from URL paths).
    pub fn parse(code: &str) -> Option<Currency> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(code))
    }

    /// The limits that apply when neither the method nor the app sets its own.
    /// BRL has no upper bound in the brief; the operator sets one per app.
    pub fn default_limits(self) -> AmountLimits {
        match self {
            Currency::Usd => AmountLimits::new(AmountMinor(99), AmountMinor(100_000)),
            Currency::Eur => AmountLimits::new(AmountMinor(100), AmountMinor(50_000)),
            Currency::Brl => AmountLimits::new(AmountMinor(1), AmountMinor::MAX_WIRE),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount in minor units (cents). Never negative for amounts kassa accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmountMinor(pub i64);

/// Why an amount string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is empty")]
    Empty,
    #[error("must be digits with at most two decimals, such as \"50\" or \"50.00\"")]
    Format,
    #[error("has more than two decimals")]
    TooManyDecimals,
    #[error("is too large")]
    TooLarge,
}

impl AmountMinor {
    pub const ZERO: AmountMinor = AmountMinor(0);
    /// The largest amount kassa parses: 12 characters on the `pix` wire, `999999999.99`.
    pub const MAX_WIRE: AmountMinor = AmountMinor(99_999_999_999);
    /// Longest amount string accepted before parsing (12 digits + '.' + 2 decimals).
    pub const MAX_TEXT_LEN: usize = 15;

    /// Parses the wire format: `DIGITS[.D[D]]`, no sign, separators, exponent or whitespace.
    pub fn parse(text: &str) -> Result<AmountMinor, AmountError> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        if text.len() > Self::MAX_TEXT_LEN {
            return Err(AmountError::TooLarge);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Format);
        }
        let fraction = fraction.unwrap_or("");
        if text.ends_with('.') || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Format);
        }
        if fraction.len() > 2 {
            return Err(AmountError::TooManyDecimals);
        }
        let whole: i64 = whole.parse().map_err(|_| AmountError::TooLarge)?;
        let mut cents: i64 = fraction.parse().unwrap_or(0);
        if fraction.len() == 1 {
            cents *= 10;
        }
        let minor = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .ok_or(AmountError::TooLarge)?;
        if minor > Self::MAX_WIRE.0 {
            return Err(AmountError::TooLarge);
        }
        Ok(AmountMinor(minor))
    }

    /// The wire format of replies: always two decimals, `"50.00"`.
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl fmt::Display for AmountMinor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

/// An inclusive range of accepted amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmountLimits {
    pub min_minor: AmountMinor,
    pub max_minor: AmountMinor,
}

impl AmountLimits {
    pub const fn new(min_minor: AmountMinor, max_minor: AmountMinor) -> Self {
        AmountLimits {
            min_minor,
            max_minor,
        }
    }

    pub fn contains(&self, amount: AmountMinor) -> bool {
        self.min_minor <= amount && amount <= self.max_minor
    }

    /// Limits an operator may set on an app: above zero, the least not above the most.
    pub fn for_operator(min_minor: AmountMinor, max_minor: AmountMinor) -> Option<Self> {
        (min_minor.0 > 0 && min_minor <= max_minor)
            .then_some(AmountLimits::new(min_minor, max_minor))
    }
}

impl fmt::Display for AmountLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.min_minor, self.max_minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_seed_examples() {
        assert_eq!(AmountMinor::parse("300"), Ok(AmountMinor(30_000)));
        assert_eq!(AmountMinor::parse("50.00"), Ok(AmountMinor(5_000)));
        assert_eq!(AmountMinor::parse("0.99"), Ok(AmountMinor(99)));
        assert_eq!(AmountMinor::parse("10.5"), Ok(AmountMinor(1_050)));
        assert_eq!(AmountMinor::parse("007"), Ok(AmountMinor(700)));
    }

    #[test]
    fn refuses_what_the_brief_refuses() {
        for bad in [
            "1,000", "-5", "1e3", " 5", "5 ", "+5", "", ".5", "5.", "1.2.3", "５", "0x10", "NaN",
        ] {
            assert!(AmountMinor::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(
            AmountMinor::parse("10.001"),
            Err(AmountError::TooManyDecimals)
        );
        assert_eq!(
            AmountMinor::parse("99999999999999"),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn formats_two_decimals() {
        assert_eq!(AmountMinor(0).to_decimal_string(), "0.00");
        assert_eq!(AmountMinor(5).to_decimal_string(), "0.05");
        assert_eq!(AmountMinor(123_456).to_decimal_string(), "1234.56");
    }

    #[test]
    fn default_limits_match_the_seed() {
        let usd = Currency::Usd.default_limits();
        assert!(!usd.contains(AmountMinor::parse("0.98").unwrap()));
        assert!(usd.contains(AmountMinor::parse("0.99").unwrap()));
        assert!(usd.contains(AmountMinor::parse("1000").unwrap()));
        assert!(!usd.contains(AmountMinor::parse("1000.01").unwrap()));
        let eur = Currency::Eur.default_limits();
        assert!(!eur.contains(AmountMinor::parse("0.99").unwrap()));
        assert!(eur.contains(AmountMinor::parse("500.00").unwrap()));
        assert!(!eur.contains(AmountMinor::parse("500.01").unwrap()));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(minor in 0i64..=AmountMinor::MAX_WIRE.0) {
            let text = AmountMinor(minor).to_decimal_string();
            prop_assert_eq!(AmountMinor::parse(&text), Ok(AmountMinor(minor)));
        }

        #[test]
        fn parse_then_format_is_canonical(whole in 0u64..1_000_000_000, cents in 0u32..100) {
            let text = format!("{whole}.{cents:02}");
            let parsed = AmountMinor::parse(&text).unwrap();
            prop_assert_eq!(parsed.to_decimal_string(), text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,20}") {
            if let Ok(amount) = AmountMinor::parse(&text) {
                prop_assert!(amount.0 >= 0);
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
            }
        }
    }
}
