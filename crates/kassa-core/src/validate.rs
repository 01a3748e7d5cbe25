//! Syntax rules for fields that both dialects receive: lengths, e-mail, phone, URLs and
//! identifier charsets. Each check names the field it refused, so replies can say exactly
//! what was wrong.

use std::fmt;

/// A refused field: which one and why. The dialect maps it to its own error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Missing,
    /// The JSON value has another type; the text names the expected one.
    WrongType(&'static str),
    TooLong {
        max_chars: usize,
    },
    Invalid(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("is required"),
            Problem::WrongType(expected) => write!(f, "must be {expected}"),
            Problem::TooLong { max_chars } => {
                write!(f, "is longer than {max_chars} characters")
            }
            Problem::Invalid(why) => f.write_str(why),
        }
    }
}

impl FieldError {
    pub fn missing(field: &'static str) -> Self {
        FieldError {
            field,
            problem: Problem::Missing,
        }
    }

    pub fn wrong_type(field: &'static str, expected: &'static str) -> Self {
        FieldError {
            field,
            problem: Problem::WrongType(expected),
        }
    }

    pub fn invalid(field: &'static str, why: impl Into<String>) -> Self {
        FieldError {
            field,
            problem: Problem::Invalid(why.into()),
        }
    }
}

/// Longest URL kassa stores (callback and redirect targets).
pub const MAX_URL_CHARS: usize = 512;

/// Requires a non-empty value of at most `max_chars` characters without control characters.
pub fn text(field: &'static str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::missing(field));
    }
    if value.chars().count() > max_chars {
        return Err(FieldError {
            field,
            problem: Problem::TooLong { max_chars },
        });
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::invalid(field, "contains control characters"));
    }
    if let Some(c) = value.chars().find(|c| is_bidi_control_or_separator(*c)) {
        return Err(FieldError::invalid(
            field,
            format!(
                "contains U+{:04X}, a text-direction control or line separator",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// Characters that reorder or break the text around them when it is shown (Trojan Source):
/// the bidirectional embeddings, overrides, isolates and marks, and the Unicode line and
/// paragraph separators. Refused in every text a merchant sends.
pub fn is_bidi_control_or_separator(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{061C}')
}

/// Characters a terminal shows as nothing (zero-width, soft hyphen, byte-order mark, other
/// format characters): escaped wherever kassa prints merchant text for a person.
pub fn is_invisible(c: char) -> bool {
    is_bidi_control_or_separator(c)
        || matches!(c, '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// A merchant's order id: printable ASCII without spaces, at most `max_chars`.
pub fn order_id(field: &'static str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    text(field, value, max_chars)?;
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::invalid(
            field,
            "may contain only printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// The seed's `partnerUserId`: numbers, letters, or `-~!@#$%&*()_.`.
pub fn partner_user_id(field: &'static str, value: &str) -> Result<(), FieldError> {
    text(field, value, 64)?;
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-~!@#$%&*()_.".contains(&b))
    {
        return Err(FieldError::invalid(
            field,
            "may contain only letters, digits and -~!@#$%&*()_.",
        ));
    }
    Ok(())
}

/// E-mail syntax: one `@`, a local part of common characters, a dotted domain.
pub fn email(field: &'static str, value: &str) -> Result<(), FieldError> {
    text(field, value, 254)?;
    let bad = || FieldError::invalid(field, "is not an e-mail address such as name@example.com");
    let (local, domain) = value.rsplit_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Phone syntax: an optional leading `+`, then 6 to 20 digits, optionally grouped by single
/// spaces or hyphens (`+31 6 1234 5678`, `09230219312`).
pub fn phone(field: &'static str, value: &str) -> Result<(), FieldError> {
    text(field, value, 32)?;
    let digits_part = value.strip_prefix('+').unwrap_or(value);
    let bad = || {
        FieldError::invalid(
            field,
            "must be 6 to 20 digits with an optional leading + (spaces or hyphens may group them)",
        )
    };
    let mut digits = 0;
    let mut last_was_separator = true; // no separator first
    for b in digits_part.bytes() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                last_was_separator = false;
            }
            b' ' | b'-' if !last_was_separator => last_was_separator = true,
            _ => return Err(bad()),
        }
    }
    if last_was_separator || !(6..=20).contains(&digits) {
        return Err(bad());
    }
    Ok(())
}

/// An absolute `http` or `https` URL with a host, at most [`MAX_URL_CHARS`].
pub fn http_url(field: &'static str, value: &str) -> Result<url::Url, FieldError> {
    text(field, value, MAX_URL_CHARS)?;
    let bad = |why: &str| FieldError::invalid(field, why.to_string());
    let parsed = url::Url::parse(value)
        .map_err(|_| bad("must be an absolute http(s) URL such as https://shop.example/return"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_controls_and_line_separators_are_refused() {
        for bad in [
            "Jane\u{202E}gnp.exe",
            "a\u{2028}b",
            "x\u{2067}y",
            "\u{200F}",
        ] {
            let refused = text("name", bad, 100).unwrap_err();
            assert!(matches!(refused.problem, Problem::Invalid(_)), "{bad:?}");
            assert!(refused.to_string().contains("U+"), "{refused}");
        }
        // Zero-width and format characters pass (scripts need some) but count as invisible.
        assert!(text("name", "Ma\u{200B}ria", 100).is_ok());
        assert!(is_invisible('\u{200B}') && is_invisible('\u{FEFF}') && is_invisible('\u{202E}'));
        assert!(!is_invisible('é') && !is_invisible(' '));
    }

    #[test]
    fn emails() {
        for ok in ["23423@qq.com", "a.b+c@mail.example.org", "x@a-b.co"] {
            assert!(email("email", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            ".a@b.com",
            "a..b@c.com",
            "a@b..com",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for ok in [
            "09230219312",
            "+31612345678",
            "+31 6 1234 5678",
            "030-123-456",
        ] {
            assert!(phone("phone", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "12345",
            "+",
            "phone",
            "12 34  5678",
            "-123456",
            "123456-",
            "+1(555)1234567",
        ] {
            assert!(phone("phone", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(http_url("notifyUrl", "https://shop.example/notify?x=1").is_ok());
        assert!(http_url("notifyUrl", "http://10.0.0.1:8080/").is_ok());
        for bad in [
            "/relative",
            "ftp://x.example/",
            "javascript:alert(1)",
            "https://",
            "https://user:pw@x.example/",
            "shop.example/notify",
        ] {
            assert!(http_url("notifyUrl", bad).is_err(), "{bad}");
        }
        let long = format!("https://x.example/{}", "a".repeat(MAX_URL_CHARS));
        assert!(matches!(
            http_url("notifyUrl", &long).unwrap_err().problem,
            Problem::TooLong { .. }
        ));
    }

    #[test]
    fn partner_ids_and_order_ids() {
        assert!(partner_user_id("partnerUserId", "149597870").is_ok());
        assert!(partner_user_id("partnerUserId", "u-~!@#$%&*()_.1").is_ok());
        assert!(partner_user_id("partnerUserId", "a b").is_err());
        assert!(partner_user_id("partnerUserId", "a/b").is_err());
        assert!(order_id("orderId", "M233323000059", 48).is_ok());
        assert!(order_id("orderId", &"x".repeat(49), 48).is_err());
        assert!(order_id("orderId", "a b", 48).is_err());
        assert!(order_id("orderId", "é", 48).is_err());
    }

    #[test]
    fn messages_name_the_field() {
        let err = text("name", "", 10).unwrap_err();
        assert_eq!(err.to_string(), "name is required");
        let err = text("subject", "abcdef", 3).unwrap_err();
        assert_eq!(err.to_string(), "subject is longer than 3 characters");
    }
}
