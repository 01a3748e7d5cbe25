//! Reconciliation of a channel's day: what kassa holds of an order against what the upstream
//! says of it, as one pure rule. The server gathers both sides (the upstream's report, or a
//! query per order) and stores what this rule finds.

use crate::money::AmountMinor;
use crate::status::OrderStatus;

/// What the upstream says of one of kassa's orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamState {
    /// Paid there, this much.
    Succeeded { amount_minor: AmountMinor },
    /// Failed, cancelled or expired there.
    Failed,
    /// Not final there yet.
    Open,
    /// The upstream has no such order.
    Missing,
}

impl UpstreamState {
    pub fn describe(&self) -> String {
        match self {
            UpstreamState::Succeeded { amount_minor } => format!("succeeded {amount_minor}"),
            UpstreamState::Failed => "failed".into(),
            UpstreamState::Open => "open".into(),
            UpstreamState::Missing => "no such order".into(),
        }
    }
}

/// How the two sides of one order disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DifferenceKind {
    /// kassa counts the order as paid; the upstream has no such order.
    MissingUpstream,
    /// The upstream reports a payment for an order kassa does not have.
    MissingAtKassa,
    /// Both say paid, for different amounts.
    AmountDiffers,
    /// One says paid (or open), the other does not.
    StatusDiffers,
}

impl DifferenceKind {
    pub const ALL: [DifferenceKind; 4] = [
        DifferenceKind::MissingUpstream,
        DifferenceKind::MissingAtKassa,
        DifferenceKind::AmountDiffers,
        DifferenceKind::StatusDiffers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DifferenceKind::MissingUpstream => "missing_upstream",
            DifferenceKind::MissingAtKassa => "missing_at_kassa",
            DifferenceKind::AmountDiffers => "amount_differs",
            DifferenceKind::StatusDiffers => "status_differs",
        }
    }

    pub fn parse(text: &str) -> Option<DifferenceKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// kassa's side of one order: its status and what it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KassaState {
    pub status: OrderStatus,
    pub actual_amount_minor: AmountMinor,
}

impl KassaState {
    pub fn describe(&self) -> String {
        match self.status {
            OrderStatus::Succeeded => format!("succeeded {}", self.actual_amount_minor),
            other => other.as_str().to_string(),
        }
    }
}

/// Whether, and how, kassa's order (if it has one) and the upstream's word on it disagree.
/// Both open is no difference: the order is still being paid. A failure on one side with the
/// order still open on the other is one: the upstream could still take money kassa no longer
/// expects (or the reverse).
pub fn difference(kassa: Option<KassaState>, upstream: UpstreamState) -> Option<DifferenceKind> {
    use OrderStatus as S;
    use UpstreamState as U;
    let Some(kassa) = kassa else {
        return matches!(upstream, U::Succeeded { .. }).then_some(DifferenceKind::MissingAtKassa);
    };
    match (kassa.status, upstream) {
        (S::Succeeded, U::Succeeded { amount_minor }) => {
            (amount_minor != kassa.actual_amount_minor).then_some(DifferenceKind::AmountDiffers)
        }
        (S::Succeeded, U::Missing) => Some(DifferenceKind::MissingUpstream),
        (S::Succeeded, U::Failed | U::Open) => Some(DifferenceKind::StatusDiffers),
        (_, U::Succeeded { .. }) => Some(DifferenceKind::StatusDiffers),
        (S::Failed, U::Failed | U::Missing) => None,
        (S::Failed, U::Open) => Some(DifferenceKind::StatusDiffers),
        // kassa still open (or waiting for the operator): a final failure upstream is news
        // reconciliation by query brings in; nothing disagrees yet.
        (S::Created | S::InProgress | S::Exception, U::Failed | U::Open | U::Missing) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kassa(status: OrderStatus, minor: i64) -> Option<KassaState> {
        Some(KassaState {
            status,
            actual_amount_minor: AmountMinor(minor),
        })
    }

    fn paid(minor: i64) -> UpstreamState {
        UpstreamState::Succeeded {
            amount_minor: AmountMinor(minor),
        }
    }

    #[test]
    fn every_pair_of_states_has_its_answer() {
        use DifferenceKind as D;
        use OrderStatus as S;
        assert_eq!(difference(kassa(S::Succeeded, 500), paid(500)), None);
        assert_eq!(
            difference(kassa(S::Succeeded, 500), paid(499)),
            Some(D::AmountDiffers)
        );
        assert_eq!(
            difference(kassa(S::Succeeded, 500), UpstreamState::Missing),
            Some(D::MissingUpstream)
        );
        for upstream in [UpstreamState::Failed, UpstreamState::Open] {
            assert_eq!(
                difference(kassa(S::Succeeded, 500), upstream),
                Some(D::StatusDiffers)
            );
        }
        for status in [S::Created, S::InProgress, S::Failed, S::Exception] {
            assert_eq!(
                difference(kassa(status, 0), paid(500)),
                Some(D::StatusDiffers),
                "{status:?}"
            );
        }
        assert_eq!(difference(None, paid(500)), Some(D::MissingAtKassa));
        assert_eq!(difference(None, UpstreamState::Failed), None);
        assert_eq!(difference(kassa(S::Failed, 0), UpstreamState::Failed), None);
        assert_eq!(
            difference(kassa(S::Failed, 0), UpstreamState::Open),
            Some(D::StatusDiffers)
        );
        assert_eq!(
            difference(kassa(S::InProgress, 0), UpstreamState::Open),
            None
        );
        for kind in DifferenceKind::ALL {
            assert_eq!(DifferenceKind::parse(kind.as_str()), Some(kind));
        }
    }
}
