//! Fees: per app and payment method, a percentage in basis points plus a fixed amount, taken
//! from the amount actually received when an order succeeds.

use crate::money::AmountMinor;
use std::fmt;

/// `basis_points` of the amount (100 bp = 1 %) plus `fixed_minor`, never more than the amount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeeRule {
    pub basis_points: u32,
    pub fixed_minor: AmountMinor,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    #[error("basis points must be between 0 and 10000 (100 %)")]
    BasisPoints,
    #[error("the fixed fee must not be negative")]
    Fixed,
}

impl FeeRule {
    /// The method key that applies a rule to every method of an app without its own rule.
    pub const ANY_METHOD: &'static str = "*";

    /// Whether a rule may be set for `method`: a payment method's code, or
    /// [`FeeRule::ANY_METHOD`].
    pub fn method_known(method: &str) -> bool {
        method == Self::ANY_METHOD || crate::PaymentMethod::by_code(method).is_some()
    }

    pub fn new(basis_points: u32, fixed_minor: AmountMinor) -> Result<FeeRule, FeeError> {
        if basis_points > 10_000 {
            return Err(FeeError::BasisPoints);
        }
        if fixed_minor.0 < 0 {
            return Err(FeeError::Fixed);
        }
        Ok(FeeRule {
            basis_points,
            fixed_minor,
        })
    }

    /// The rule that applies to `method` among an app's rules: the method's own, else the
    /// app's [`FeeRule::ANY_METHOD`] rule, else none (no fee).
    pub fn select(rules: &[(String, FeeRule)], method: &str) -> Option<FeeRule> {
        let find = |key: &str| rules.iter().find(|(m, _)| m == key).map(|(_, r)| *r);
        find(method).or_else(|| find(Self::ANY_METHOD))
    }

    /// The fee on `amount`: the percentage rounded half up to a minor unit, plus the fixed
    /// part, capped at the amount itself.
    pub fn fee_for(&self, amount: AmountMinor) -> AmountMinor {
        let amount = amount.0.max(0);
        let percentage = (i128::from(amount) * i128::from(self.basis_points) + 5_000) / 10_000;
        let fee = (percentage as i64).saturating_add(self.fixed_minor.0);
        AmountMinor(fee.min(amount))
    }
}

impl fmt::Display for FeeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bp + {}", self.basis_points, self.fixed_minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentages_round_half_up_and_add_the_fixed_part() {
        let rule = FeeRule::new(150, AmountMinor(25)).unwrap();
        assert_eq!(rule.fee_for(AmountMinor(10_000)), AmountMinor(175)); // 1.50 % of 100.00 + 0.25
        assert_eq!(rule.fee_for(AmountMinor(33)), AmountMinor(25)); // 0.495 → 0
        assert_eq!(
            FeeRule::new(150, AmountMinor(0))
                .unwrap()
                .fee_for(AmountMinor(100)),
            AmountMinor(2)
        ); // 1.5 → 2
        assert_eq!(
            rule.fee_for(AmountMinor(10)),
            AmountMinor(10),
            "capped at the amount"
        );
        assert_eq!(FeeRule::default().fee_for(AmountMinor(999)), AmountMinor(0));
        assert_eq!(
            FeeRule::new(10_001, AmountMinor(0)),
            Err(FeeError::BasisPoints)
        );
        assert_eq!(FeeRule::new(1, AmountMinor(-1)), Err(FeeError::Fixed));
    }

    #[test]
    fn a_methods_own_rule_wins_over_the_apps_default() {
        let own = FeeRule::new(100, AmountMinor(0)).unwrap();
        let any = FeeRule::new(200, AmountMinor(0)).unwrap();
        let rules = vec![("*".to_string(), any), ("IDEAL_EUR".to_string(), own)];
        assert_eq!(FeeRule::select(&rules, "IDEAL_EUR"), Some(own));
        assert_eq!(FeeRule::select(&rules, "EPS_EUR"), Some(any));
        assert_eq!(FeeRule::select(&rules[1..], "EPS_EUR"), None);
    }

    proptest! {
        #[test]
        fn fee_is_between_zero_and_the_amount(amount in 0i64..=AmountMinor::MAX_WIRE.0, bp in 0u32..=10_000, fixed in 0i64..1_000_000) {
            let fee = FeeRule::new(bp, AmountMinor(fixed)).unwrap().fee_for(AmountMinor(amount));
            prop_assert!(fee.0 >= 0 && fee.0 <= amount);
        }
    }
}
