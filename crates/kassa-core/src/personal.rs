//! Personal data (names, e-mails, phone numbers) and secrets (webhook secrets), wrapped so that
//! they never appear unmasked in logs or `Debug` output. The real value is reachable only
//! through an explicit call.

use std::fmt;

/// A piece of a payer's personal data. `Debug` and `Display` print a masked form.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Personal(String);

impl Personal {
    pub fn new(value: impl Into<String>) -> Self {
        Personal(value.into())
    }

    /// The real value, for storage, signatures and the payer's own page. Never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Keeps the first character and, for e-mails, the domain: `j***@example.com`, `0***`.
    pub fn masked(&self) -> String {
        let first: String = self.0.chars().take(1).collect();
        match self.0.rsplit_once('@') {
            Some((_, domain)) => format!("{first}***@{domain}"),
            None => format!("{first}***"),
        }
    }
}

impl fmt::Debug for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Personal({:?})", self.masked())
    }
}

impl fmt::Display for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A secret (a webhook signing secret). `Debug` shows only that it is there.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for signing and for showing it to the operator who asked.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask() {
        let email = Personal::new("donald.trump@example.com");
        assert_eq!(format!("{email}"), "d***@example.com");
        assert!(!format!("{email:?}").contains("donald"));
        let phone = Personal::new("09230219312");
        assert_eq!(format!("{phone:?}"), "Personal(\"0***\")");
        assert_eq!(phone.expose(), "09230219312");
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("whsec_abc");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "whsec_abc");
    }
}
