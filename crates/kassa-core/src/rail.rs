//! What a rail reports about a payment, in the core's terms. Every rail — the sandbox, later
//! upstream PSPs and banks — maps its own answers onto [`RailOutcome`], and the core turns an
//! outcome into an [`OrderEvent`].

use crate::money::AmountMinor;
use crate::status::OrderEvent;

/// The outcome of a payment attempt, as a rail reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RailOutcome {
    /// Money arrived; `received` may differ from what was asked.
    Paid { received: AmountMinor },
    /// The payer's bank or wallet declined.
    Failed { reason: String },
    /// The payer gave up.
    Cancelled,
    /// The payer took too long at the rail.
    Expired,
    /// The rail cannot say what happened; the operator must find out.
    Exception { reason: String },
}

impl RailOutcome {
    /// The event this outcome is for an order that asked for `requested`.
    pub fn event(&self, requested: AmountMinor) -> OrderEvent {
        match self {
            RailOutcome::Paid { received } => OrderEvent::Paid {
                requested,
                received: *received,
            },
            RailOutcome::Failed { reason } => OrderEvent::Failed {
                reason: reason.clone(),
            },
            RailOutcome::Cancelled => OrderEvent::Failed {
                reason: "the payer cancelled the payment".into(),
            },
            RailOutcome::Expired => OrderEvent::Expired,
            RailOutcome::Exception { reason } => OrderEvent::RailException {
                reason: reason.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::OrderStatus;

    #[test]
    fn outcomes_lead_where_the_brief_says() {
        let requested = AmountMinor(1_000);
        let status =
            |outcome: RailOutcome| OrderStatus::InProgress.apply(&outcome.event(requested));
        assert_eq!(
            status(RailOutcome::Paid {
                received: requested
            }),
            Ok(OrderStatus::Succeeded)
        );
        assert_eq!(
            status(RailOutcome::Paid {
                received: AmountMinor(999)
            }),
            Ok(OrderStatus::Exception)
        );
        assert_eq!(
            status(RailOutcome::Failed { reason: "x".into() }),
            Ok(OrderStatus::Failed)
        );
        assert_eq!(status(RailOutcome::Cancelled), Ok(OrderStatus::Failed));
        assert_eq!(status(RailOutcome::Expired), Ok(OrderStatus::Failed));
        assert_eq!(
            status(RailOutcome::Exception { reason: "x".into() }),
            Ok(OrderStatus::Exception)
        );
    }
}
