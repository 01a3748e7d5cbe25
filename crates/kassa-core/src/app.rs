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
    pub created_at_ms: i64,
}

impl App {
    /// The limits an order of this app paid by `method` must respect.
    pub fn limits_for(&self, method: &PaymentMethod) -> AmountLimits {
        self.limits_override
            .unwrap_or_else(|| method.limits(self.currency))
    }
}
