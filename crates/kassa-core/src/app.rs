//! Merchants and their apps. A merchant owns one app per currency; the app's `appId` is what
//! requests carry, and it holds the merchant's public key and per-app limits.

use crate::method::PaymentMethod;
use crate::money::{AmountLimits, Currency};
use crate::personal::Secret;
use crate::pix::PixReceiver;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerchantId(pub i64);

/// The seed's `appId`: a positive integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(pub i64);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    pub id: MerchantId,
    /// Shown to payers on the cashier pages.
    pub name: String,
    pub created_at_ms: i64,
    /// When the operator suspended it, if it is.
    pub suspended_at_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub app_id: AppId,
    pub merchant_id: MerchantId,
    pub currency: Currency,
    /// The merchant's registered public key (PEM or base64 DER); `None` until registered.
    pub public_key: Option<String>,
    /// Limits set by the operator for this app; they replace the method's and currency's.
    pub limits_override: Option<AmountLimits>,
    /// The Standard Webhooks secret (`whsec_…`) that signs this app's callbacks.
    pub webhook_secret: Secret,
    /// The secret it replaced, and until when (ms) callbacks are signed with it too, so that a
    /// merchant can switch without rejecting a callback (Standard Webhooks allows several
    /// signatures).
    pub retiring_webhook_secret: Option<(Secret, i64)>,
    /// Its merchant is suspended by the operator: no new order is taken (queries, reports and
    /// callbacks of existing orders go on).
    pub suspended: bool,
    /// Who receives PIX payments (BRL apps); `None` until the operator sets it.
    pub pix: Option<PixReceiver>,
    /// The merchant's colour on the payer's pages; kassa's own blue when `None`.
    pub brand_colour: Option<BrandColour>,
    /// The version (when it was set, ms) of the merchant's logo, if it has one.
    pub logo_version: Option<i64>,
    pub created_at_ms: i64,
}

/// A merchant's colour for the payer's pages: `#RRGGBB`, dark enough that white text on it
/// (the pages' primary buttons) keeps WCAG AA contrast (4.5:1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrandColour(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrandColourError {
    #[error("a colour is written #RRGGBB (six hexadecimal digits)")]
    Format,
    #[error("{0} is too light: white text on it has a contrast of {1}:1, at least 4.5:1 is needed")]
    TooLight(String, String),
}

/// The least contrast of white text on the colour (WCAG AA for normal text).
const MIN_CONTRAST: f64 = 4.5;

impl BrandColour {
    pub fn parse(text: &str) -> Result<BrandColour, BrandColourError> {
        let hex = text
            .trim()
            .strip_prefix('#')
            .ok_or(BrandColourError::Format)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BrandColourError::Format);
        }
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits");
        let linear = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let luminance =
            0.2126 * linear(channel(0)) + 0.7152 * linear(channel(2)) + 0.0722 * linear(channel(4));
        let contrast = 1.05 / (luminance + 0.05);
        let colour = format!("#{}", hex.to_ascii_lowercase());
        if contrast < MIN_CONTRAST {
            return Err(BrandColourError::TooLight(colour, format!("{contrast:.1}")));
        }
        Ok(BrandColour(colour))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl App {
    /// The limits an order of this app paid by `method` must respect.
    pub fn limits_for(&self, method: &PaymentMethod) -> AmountLimits {
        self.limits_override
            .unwrap_or_else(|| method.limits(self.currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_colours_keep_white_text_readable() {
        assert_eq!(BrandColour::parse("#1F5FBF").unwrap().as_str(), "#1f5fbf");
        assert!(BrandColour::parse("#000000").is_ok());
        assert!(matches!(
            BrandColour::parse("#ffcc00"),
            Err(BrandColourError::TooLight(..))
        ));
        assert_eq!(BrandColour::parse("1f5fbf"), Err(BrandColourError::Format));
        assert_eq!(BrandColour::parse("#1f5fb"), Err(BrandColourError::Format));
        assert_eq!(BrandColour::parse("#1f5fbg"), Err(BrandColourError::Format));
    }
}
