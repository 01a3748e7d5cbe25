//! Rails: where money moves. A rail starts a payment for an order and a method, and later
//! reports its outcome in the core's terms ([`RailOutcome`]). The sandbox rail plays the bank:
//! its "bank page" is kassa's own method page, where the payer (or a script) picks the outcome.
//! Upstream PSPs and banks implement the same trait; the core does not change for them.

use async_trait::async_trait;
use kassa_core::{AmountMinor, Order, PaymentMethod, RailOutcome};

/// Where the payer goes once a payment has started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RailStart {
    /// kassa's own page for the method (the sandbox's outcome page).
    OwnPage,
    /// The rail's page elsewhere (an upstream PSP's checkout).
    Redirect(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RailError {
    #[error("the rail is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Rail: Send + Sync {
    /// The rail's name, for logs and pages.
    fn name(&self) -> &'static str;

    /// Starts paying `order` with `method`.
    async fn start(
        &self,
        order: &Order,
        method: &'static PaymentMethod,
    ) -> Result<RailStart, RailError>;
}

/// The built-in rail that plays the bank.
pub struct SandboxRail;

/// The outcomes the sandbox offers, in the order its page shows them.
pub const SANDBOX_OUTCOMES: [(&str, &str); 5] = [
    ("paid", "Paid"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
    ("expired", "Expired"),
    ("exception", "Exception"),
];

impl SandboxRail {
    /// The outcome a sandbox choice stands for; `received` only matters for `paid` (the full
    /// amount when absent).
    pub fn outcome(
        name: &str,
        received: Option<AmountMinor>,
        requested: AmountMinor,
    ) -> Option<RailOutcome> {
        Some(match name {
            "paid" => RailOutcome::Paid {
                received: received.unwrap_or(requested),
            },
            "failed" => RailOutcome::Failed {
                reason: "declined by the payer's bank (sandbox)".into(),
            },
            "cancelled" => RailOutcome::Cancelled,
            "expired" => RailOutcome::Expired,
            "exception" => RailOutcome::Exception {
                reason: "the bank could not confirm the payment (sandbox)".into(),
            },
            _ => return None,
        })
    }
}

#[async_trait]
impl Rail for SandboxRail {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn start(
        &self,
        _order: &Order,
        _method: &'static PaymentMethod,
    ) -> Result<RailStart, RailError> {
        Ok(RailStart::OwnPage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_outcomes() {
        let asked = AmountMinor(1_000);
        assert_eq!(
            SandboxRail::outcome("paid", None, asked),
            Some(RailOutcome::Paid { received: asked })
        );
        assert_eq!(
            SandboxRail::outcome("paid", Some(AmountMinor(5)), asked),
            Some(RailOutcome::Paid {
                received: AmountMinor(5)
            })
        );
        assert_eq!(
            SandboxRail::outcome("cancelled", None, asked),
            Some(RailOutcome::Cancelled)
        );
        assert_eq!(SandboxRail::outcome("refunded", None, asked), None);
        for (name, _) in SANDBOX_OUTCOMES {
            assert!(SandboxRail::outcome(name, None, asked).is_some());
        }
    }
}
