//! The order status state machine shared by both dialects. Each dialect shows these states
//! with its own codes (`collect` 0/1/2/3/-1, `pix` 10/20/30); the rules live here only.

use crate::money::AmountMinor;

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Created, not yet started by the payer.
    Created,
    /// The payer opened a method page; the rail is working.
    InProgress,
    /// Paid. Final.
    Succeeded,
    /// Failed, cancelled or expired. Final.
    Failed,
    /// Needs the operator: the rail could not confirm, or the received amount differs.
    Exception,
}

impl OrderStatus {
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Succeeded | OrderStatus::Failed)
    }

    /// The states in which an order's time can run out: the payer has not finished yet. The
    /// expiry sweep, the payer's page and the state machine all ask this one list.
    /// Every status, in the order of an order's life.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Created,
        OrderStatus::InProgress,
        OrderStatus::Succeeded,
        OrderStatus::Failed,
        OrderStatus::Exception,
    ];

    pub const EXPIRABLE: [OrderStatus; 2] = [OrderStatus::Created, OrderStatus::InProgress];

    pub fn can_expire(self) -> bool {
        Self::EXPIRABLE.contains(&self)
    }

    /// Whether a change from `from` to `to` charges the order's fee: only reaching success does.
    pub fn charges_fee(from: OrderStatus, to: OrderStatus) -> bool {
        to == OrderStatus::Succeeded && from != OrderStatus::Succeeded
    }

    /// The stable name used in storage and operator output.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::InProgress => "in_progress",
            OrderStatus::Succeeded => "succeeded",
            OrderStatus::Failed => "failed",
            OrderStatus::Exception => "exception",
        }
    }

    pub fn parse(name: &str) -> Option<OrderStatus> {
        [
            OrderStatus::Created,
            OrderStatus::InProgress,
            OrderStatus::Succeeded,
            OrderStatus::Failed,
            OrderStatus::Exception,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Applies an event, or says why it is not allowed in this state.
    pub fn apply(self, event: &OrderEvent) -> Result<OrderStatus, IllegalTransition> {
        use OrderEvent as E;
        use OrderStatus as S;
        let next = match (self, event) {
            (S::Created, E::PayerStarted) => S::InProgress,
            (
                S::Created | S::InProgress,
                E::Paid {
                    requested,
                    received,
                },
            ) => {
                if requested == received {
                    S::Succeeded
                } else {
                    S::Exception
                }
            }
            (S::Created | S::InProgress, E::Failed { .. }) => S::Failed,
            (from, E::Expired) if from.can_expire() => S::Failed,
            (S::Created | S::InProgress, E::RailException { .. }) => S::Exception,
            (S::Exception, E::OperatorSucceeded) => S::Succeeded,
            (S::Exception, E::OperatorFailed { .. }) => S::Failed,
            (from, event) => {
                return Err(IllegalTransition {
                    from,
                    event: event.name(),
                });
            }
        };
        Ok(next)
    }

    /// Whether any event leads from `self` to `to`: the transition graph in one place.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus as S;
        matches!(
            (self, to),
            (S::Created, S::InProgress)
                | (
                    S::Created | S::InProgress,
                    S::Succeeded | S::Failed | S::Exception
                )
                | (S::Exception, S::Succeeded | S::Failed)
        )
    }
}

/// Something that happens to an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderEvent {
    /// The payer opened a method page.
    PayerStarted,
    /// The rail reports money received. A different amount than requested needs the operator.
    Paid {
        requested: AmountMinor,
        received: AmountMinor,
    },
    /// The rail reports failure or the payer cancelled.
    Failed { reason: String },
    /// The order's time ran out before the payer finished.
    Expired,
    /// The rail cannot confirm the outcome.
    RailException { reason: String },
    /// The operator settles an exception as paid.
    OperatorSucceeded,
    /// The operator settles an exception as failed.
    OperatorFailed { reason: String },
}

impl OrderEvent {
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::PayerStarted => "payer_started",
            OrderEvent::Paid { .. } => "paid",
            OrderEvent::Failed { .. } => "failed",
            OrderEvent::Expired => "expired",
            OrderEvent::RailException { .. } => "rail_exception",
            OrderEvent::OperatorSucceeded => "operator_succeeded",
            OrderEvent::OperatorFailed { .. } => "operator_failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an order in state {} cannot take event {event}", from.as_str())]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub event: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    const ALL: [S; 5] = S::ALL;

    fn events() -> Vec<E> {
        vec![
            E::PayerStarted,
            E::Paid {
                requested: AmountMinor(100),
                received: AmountMinor(100),
            },
            E::Paid {
                requested: AmountMinor(100),
                received: AmountMinor(90),
            },
            E::Failed {
                reason: "declined".into(),
            },
            E::Expired,
            E::RailException {
                reason: "timeout".into(),
            },
            E::OperatorSucceeded,
            E::OperatorFailed {
                reason: "no funds".into(),
            },
        ]
    }

    #[test]
    fn legal_paths() {
        let started = S::Created.apply(&E::PayerStarted).unwrap();
        assert_eq!(started, S::InProgress);
        let paid = E::Paid {
            requested: AmountMinor(500),
            received: AmountMinor(500),
        };
        assert_eq!(started.apply(&paid), Ok(S::Succeeded));
        let short = E::Paid {
            requested: AmountMinor(500),
            received: AmountMinor(499),
        };
        assert_eq!(started.apply(&short), Ok(S::Exception));
        assert_eq!(S::Exception.apply(&E::OperatorSucceeded), Ok(S::Succeeded));
        assert_eq!(S::Created.apply(&E::Expired), Ok(S::Failed));
    }

    #[test]
    fn only_unfinished_orders_expire_and_only_success_charges() {
        for status in ALL {
            assert_eq!(
                status.can_expire(),
                status.apply(&E::Expired).is_ok(),
                "{status:?}"
            );
            assert_eq!(S::charges_fee(status, S::Succeeded), status != S::Succeeded);
            assert!(!S::charges_fee(status, S::Failed));
        }
        assert_eq!(S::EXPIRABLE, [S::Created, S::InProgress]);
    }

    #[test]
    fn final_states_never_change() {
        for status in [S::Succeeded, S::Failed] {
            for event in events() {
                assert!(status.apply(&event).is_err(), "{status:?} took {event:?}");
            }
        }
    }

    #[test]
    fn illegal_transitions_are_refused() {
        assert!(S::InProgress.apply(&E::PayerStarted).is_err());
        assert!(S::Created.apply(&E::OperatorSucceeded).is_err());
        assert!(
            S::InProgress
                .apply(&E::OperatorFailed { reason: "x".into() })
                .is_err()
        );
        assert!(S::Exception.apply(&E::Expired).is_err());
        assert!(S::Exception.apply(&E::PayerStarted).is_err());
        let err = S::Succeeded.apply(&E::Expired).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an order in state succeeded cannot take event expired"
        );
    }

    #[test]
    fn apply_agrees_with_the_transition_graph() {
        for from in ALL {
            for event in events() {
                if let Ok(to) = from.apply(&event) {
                    assert!(from.can_become(to), "{from:?} -> {to:?}");
                }
            }
            for to in ALL {
                if from.can_become(to) {
                    assert!(
                        events().iter().any(|e| from.apply(e) == Ok(to)),
                        "no event leads {from:?} -> {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }
}
