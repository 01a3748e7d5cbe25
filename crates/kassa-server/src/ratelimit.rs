//! The optional per-app rate limit of the merchant APIs: a token bucket per app that holds one
//! second's worth of requests and refills continuously. Only requests whose signature verified
//! are counted, so nobody can spend a merchant's budget by sending requests in its name; floods
//! of unsigned requests are bounded by the server-wide in-flight limit instead.

use kassa_core::AppId;
use std::collections::HashMap;
use std::sync::Mutex;

/// A request costs this many milli-tokens; integer arithmetic keeps refills exact.
const MILLI_PER_REQUEST: u64 = 1_000;

#[derive(Debug, Default)]
pub struct AppRates {
    /// One bucket per app that has made a verified request. Bounded by the number of apps,
    /// which only the operator creates.
    buckets: Mutex<HashMap<AppId, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    milli_tokens: u64,
    refilled_at_ms: i64,
}

impl AppRates {
    /// Takes one request from `app_id`'s budget of `per_s` requests a second (0: no limit).
    /// When the budget is spent, says how many whole seconds until the next request fits.
    pub fn admit(&self, app_id: AppId, per_s: u32, now_ms: i64) -> Result<(), RetryAfterS> {
        if per_s == 0 {
            return Ok(());
        }
        // Tokens per ms ×1000 = per_s milli-tokens per ms.
        let refill_per_ms = u64::from(per_s);
        let capacity = u64::from(per_s) * MILLI_PER_REQUEST;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(app_id).or_insert(Bucket {
            milli_tokens: capacity,
            refilled_at_ms: now_ms,
        });
        // A clock step backwards refills nothing rather than underflowing.
        let elapsed_ms = u64::try_from(now_ms - bucket.refilled_at_ms).unwrap_or(0);
        bucket.milli_tokens = capacity.min(
            bucket
                .milli_tokens
                .saturating_add(elapsed_ms.saturating_mul(refill_per_ms)),
        );
        bucket.refilled_at_ms = bucket.refilled_at_ms.max(now_ms);
        if bucket.milli_tokens >= MILLI_PER_REQUEST {
            bucket.milli_tokens -= MILLI_PER_REQUEST;
            Ok(())
        } else {
            let missing = MILLI_PER_REQUEST - bucket.milli_tokens;
            let wait_ms = missing.div_ceil(refill_per_ms);
            Err(RetryAfterS(wait_ms.div_ceil(1_000).max(1)))
        }
    }
}

/// Whole seconds a client is asked to wait, as sent in `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfterS(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_then_the_refill_rate() {
        let rates = AppRates::default();
        let app = AppId(7);
        for _ in 0..5 {
            assert_eq!(rates.admit(app, 5, 1_000), Ok(()));
        }
        assert_eq!(rates.admit(app, 5, 1_000), Err(RetryAfterS(1)));
        // 5 per second: one token every 200 ms.
        assert_eq!(rates.admit(app, 5, 1_199), Err(RetryAfterS(1)));
        assert_eq!(rates.admit(app, 5, 1_200), Ok(()));
        assert_eq!(rates.admit(app, 5, 1_200), Err(RetryAfterS(1)));
        // A long pause refills only up to one second's worth.
        for _ in 0..5 {
            assert_eq!(rates.admit(app, 5, 60_000), Ok(()));
        }
        assert!(rates.admit(app, 5, 60_000).is_err());
    }

    #[test]
    fn apps_have_separate_budgets_and_zero_means_unlimited() {
        let rates = AppRates::default();
        assert_eq!(rates.admit(AppId(1), 1, 0), Ok(()));
        assert!(rates.admit(AppId(1), 1, 0).is_err());
        assert_eq!(rates.admit(AppId(2), 1, 0), Ok(()));
        for _ in 0..10_000 {
            assert_eq!(rates.admit(AppId(1), 0, 0), Ok(()));
        }
    }

    #[test]
    fn a_clock_stepping_back_does_not_refill_or_panic() {
        let rates = AppRates::default();
        assert_eq!(rates.admit(AppId(1), 1, 10_000), Ok(()));
        assert!(rates.admit(AppId(1), 1, 5_000).is_err());
        assert_eq!(rates.admit(AppId(1), 1, 11_000), Ok(()));
    }
}
