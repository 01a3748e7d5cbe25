//! A channel's circuit breaker, as a pure state machine over explicit times: closed while calls
//! succeed; open after a run of consecutive failures, when routing passes the channel by; after a
//! cool-down half-open, when one call probes it — a success closes the circuit, a failure opens
//! it for another cool-down.

/// When a circuit opens and how long it stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failures_to_open: u32,
    pub cool_down_ms: i64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures_to_open: 5,
            cool_down_ms: 30_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// The cool-down is over: the next call probes.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Breaker {
    consecutive_failures: u32,
    open_until_ms: Option<i64>,
    /// A half-open probe is under way: other calls wait for its verdict.
    probing: bool,
}

impl Breaker {
    pub fn state(&self, now_ms: i64) -> BreakerState {
        match self.open_until_ms {
            None => BreakerState::Closed,
            Some(until) if now_ms < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go to the channel now; in the half-open state only the first (the
    /// probe) may, until its result is recorded.
    pub fn admit(&mut self, now_ms: i64) -> bool {
        match self.state(now_ms) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.probing => false,
            BreakerState::HalfOpen => {
                self.probing = true;
                true
            }
        }
    }

    /// Records the result of an admitted call.
    pub fn record(&mut self, policy: BreakerPolicy, ok: bool, now_ms: i64) {
        let was_probe = self.probing;
        self.probing = false;
        if ok {
            *self = Breaker::default();
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if was_probe || self.consecutive_failures >= policy.failures_to_open {
            self.open_until_ms = Some(now_ms + policy.cool_down_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures_to_open: 3,
        cool_down_ms: 1_000,
    };

    #[test]
    fn opens_after_a_run_of_failures_and_probes_after_the_cool_down() {
        let mut breaker = Breaker::default();
        for at in 0..2 {
            assert!(breaker.admit(at));
            breaker.record(POLICY, false, at);
            assert_eq!(breaker.state(at), BreakerState::Closed);
        }
        // A success resets the run.
        breaker.record(POLICY, true, 2);
        for at in 3..6 {
            assert!(breaker.admit(at));
            breaker.record(POLICY, false, at);
        }
        assert_eq!(breaker.state(5), BreakerState::Open);
        assert!(!breaker.admit(1_004));
        assert_eq!(breaker.state(1_005), BreakerState::HalfOpen);
        assert!(breaker.admit(1_005), "the probe");
        assert!(!breaker.admit(1_006), "one probe at a time");
        breaker.record(POLICY, false, 1_010);
        assert_eq!(
            breaker.state(1_010),
            BreakerState::Open,
            "a failed probe reopens"
        );
        assert!(breaker.admit(2_010));
        breaker.record(POLICY, true, 2_020);
        assert_eq!(breaker.state(2_020), BreakerState::Closed);
        assert!(breaker.admit(2_021) && breaker.admit(2_022));
    }
}
