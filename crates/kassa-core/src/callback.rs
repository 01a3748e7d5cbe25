//! The callback delivery policy: what counts as the merchant's acknowledgement, when an
//! unacknowledged callback is tried again, and when it is given up as dead. The dispatcher
//! sends bytes; these rules decide what follows each attempt.

/// What follows a delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered { at_ms: i64 },
    RetryAt { at_ms: i64 },
    Dead { at_ms: i64 },
}

/// Retry every `retry_interval_ms` until `max_age_ms` after the callback first became due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retry_interval_ms: u64,
    pub max_age_ms: u64,
}

impl Default for RetryPolicy {
    /// Every minute (as the `pix` seed says) for 24 hours.
    fn default() -> Self {
        RetryPolicy {
            retry_interval_ms: 60_000,
            max_age_ms: 24 * 3_600_000,
        }
    }
}

impl RetryPolicy {
    /// What follows an attempt that ended at `now_ms`, for a callback first due at
    /// `first_due_at_ms`: delivered, another try, or dead when the next try would be too late.
    pub fn after_attempt(
        self,
        acknowledged: bool,
        first_due_at_ms: i64,
        now_ms: i64,
    ) -> AfterAttempt {
        if acknowledged {
            return AfterAttempt::Delivered { at_ms: now_ms };
        }
        let next_ms = now_ms.saturating_add(self.retry_interval_ms as i64);
        if next_ms > first_due_at_ms.saturating_add(self.max_age_ms as i64) {
            AfterAttempt::Dead { at_ms: now_ms }
        } else {
            AfterAttempt::RetryAt { at_ms: next_ms }
        }
    }
}

/// Whether a merchant's answer acknowledges a callback: HTTP 2xx with the body `success`, in
/// any case, surrounding whitespace ignored.
pub fn is_acknowledgement(http_status: u16, body: &str) -> bool {
    (200..300).contains(&http_status) && body.trim().eq_ignore_ascii_case("success")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgement_is_2xx_and_success() {
        assert!(is_acknowledgement(200, "success"));
        assert!(is_acknowledgement(204, "  SUCCESS\n"));
        assert!(!is_acknowledgement(200, "ok"));
        assert!(!is_acknowledgement(500, "success"));
        assert!(!is_acknowledgement(301, "success"));
    }

    #[test]
    fn retries_until_the_maximum_age_then_dies() {
        let policy = RetryPolicy {
            retry_interval_ms: 60_000,
            max_age_ms: 180_000,
        };
        assert_eq!(
            policy.after_attempt(true, 0, 5),
            AfterAttempt::Delivered { at_ms: 5 }
        );
        assert_eq!(
            policy.after_attempt(false, 0, 1_000),
            AfterAttempt::RetryAt { at_ms: 61_000 }
        );
        assert_eq!(
            policy.after_attempt(false, 0, 120_000),
            AfterAttempt::RetryAt { at_ms: 180_000 }
        );
        assert_eq!(
            policy.after_attempt(false, 0, 120_001),
            AfterAttempt::Dead { at_ms: 120_001 }
        );
        assert_eq!(RetryPolicy::default().retry_interval_ms, 60_000);
    }
}
