//! Fair callback delivery: one merchant's slow or dead endpoint must not delay everyone else's
//! callbacks. Each endpoint (scheme, host and port of the URL) and each app get a bounded share
//! of the delivery slots, and an endpoint whose attempts keep failing is suspended as a whole
//! for a backoff that grows with its failures (capped at the retry interval), as Svix disables
//! failing endpoints. A callback whose endpoint or app is at its share waits a moment in the
//! node that claimed it (the dispatcher's hold), then goes back to the queue; one whose endpoint
//! is suspended goes back at once, to the end of the suspension; neither counts as an attempt.
//! The counts live in this node's memory; every node keeps its own.

use kassa_core::AppId;
use std::collections::HashMap;
use std::sync::Mutex;

/// Consecutive failed attempts after which an endpoint is suspended.
const FAILURES_BEFORE_BACKOFF: u32 = 3;
/// The first suspension; each further failure doubles it, up to the retry interval.
const FIRST_BACKOFF_MS: i64 = 1_000;
/// How much later a callback is offered again when its endpoint or app stayed at its share.
pub const DEFER_MS: i64 = 500;
/// Endpoints remembered at most; past it the table starts over (counts of deliveries in
/// flight are kept).
const MAX_ENDPOINTS: usize = 10_000;

/// What may happen to a claimed callback now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Deliver it; its slot is taken until [`Fairness::finished`].
    Go,
    /// Its endpoint or app is at its share: a slot may free up in a moment.
    Busy,
    /// Its endpoint is suspended: offer it again at this time, without an attempt.
    Later { at_ms: i64 },
}

#[derive(Default)]
struct Endpoint {
    in_flight: usize,
    consecutive_failures: u32,
    suspended_until_ms: i64,
}

#[derive(Default)]
struct Counts {
    endpoints: HashMap<String, Endpoint>,
    apps: HashMap<AppId, usize>,
}

pub struct Fairness {
    max_per_endpoint: usize,
    max_per_app: usize,
    max_backoff_ms: i64,
    counts: Mutex<Counts>,
}

/// The endpoint of a callback URL: scheme, host and port (`https://shop.example:443`), from the
/// URL as parsed (once, by the caller), or the first characters of one that does not parse.
pub fn endpoint_of(url: &str, parsed: Option<&url::Url>) -> String {
    match parsed {
        Some(url) => format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        ),
        None => url.chars().take(200).collect(),
    }
}

impl Fairness {
    pub fn new(max_per_endpoint: usize, max_per_app: usize, max_backoff_ms: u64) -> Fairness {
        Fairness {
            max_per_endpoint: max_per_endpoint.max(1),
            max_per_app: max_per_app.max(1),
            max_backoff_ms: (max_backoff_ms as i64).max(FIRST_BACKOFF_MS),
            counts: Mutex::default(),
        }
    }

    /// Whether a callback of `app` to `endpoint` may go now; if so, its slot is taken.
    pub fn admit(&self, endpoint: &str, app: AppId, now_ms: i64) -> Admission {
        let mut counts = self.counts.lock().expect("fairness counts");
        let known = counts.endpoints.contains_key(endpoint);
        if counts.endpoints.len() >= MAX_ENDPOINTS && !known {
            counts.endpoints.retain(|_, e| e.in_flight > 0);
        }
        let app_in_flight = counts.apps.get(&app).copied().unwrap_or(0);
        // The endpoint's name is copied only when it is new (this runs for every offer).
        if !known {
            counts
                .endpoints
                .insert(endpoint.to_string(), Endpoint::default());
        }
        let entry = counts.endpoints.get_mut(endpoint).expect("inserted above");
        if entry.suspended_until_ms > now_ms {
            return Admission::Later {
                at_ms: entry.suspended_until_ms,
            };
        }
        if entry.in_flight >= self.max_per_endpoint || app_in_flight >= self.max_per_app {
            return Admission::Busy;
        }
        entry.in_flight += 1;
        *counts.apps.entry(app).or_default() += 1;
        Admission::Go
    }

    /// Gives a slot back with the attempt's outcome: success resets the endpoint's failures;
    /// repeated failure suspends it, for longer each time.
    pub fn finished(&self, endpoint: &str, app: AppId, acknowledged: bool, now_ms: i64) {
        let mut counts = self.counts.lock().expect("fairness counts");
        if let Some(in_flight) = counts.apps.get_mut(&app) {
            *in_flight = in_flight.saturating_sub(1);
            if *in_flight == 0 {
                counts.apps.remove(&app);
            }
        }
        let entry = counts.endpoints.entry(endpoint.to_string()).or_default();
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if acknowledged {
            entry.consecutive_failures = 0;
            entry.suspended_until_ms = 0;
            return;
        }
        entry.consecutive_failures += 1;
        if entry.consecutive_failures >= FAILURES_BEFORE_BACKOFF {
            let doublings = (entry.consecutive_failures - FAILURES_BEFORE_BACKOFF).min(20);
            let backoff_ms = (FIRST_BACKOFF_MS << doublings).min(self.max_backoff_ms);
            entry.suspended_until_ms = entry.suspended_until_ms.max(now_ms + backoff_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_apps_get_a_bounded_share() {
        let fair = Fairness::new(2, 3, 60_000);
        let (a, b) = (AppId(1), AppId(2));
        assert_eq!(fair.admit("https://slow:443", a, 0), Admission::Go);
        assert_eq!(fair.admit("https://slow:443", a, 0), Admission::Go);
        assert_eq!(
            fair.admit("https://slow:443", b, 0),
            Admission::Busy,
            "the endpoint's share is taken"
        );
        assert_eq!(fair.admit("https://other:443", a, 0), Admission::Go);
        assert_eq!(
            fair.admit("https://third:443", a, 0),
            Admission::Busy,
            "the app's share is taken"
        );
        assert_eq!(fair.admit("https://third:443", b, 0), Admission::Go);
        fair.finished("https://slow:443", a, true, 1);
        assert_eq!(fair.admit("https://third:443", a, 1), Admission::Go);
    }

    #[test]
    fn a_failing_endpoint_backs_off_and_recovers() {
        let fair = Fairness::new(10, 10, 4_000);
        let app = AppId(1);
        for now in 0..3 {
            assert_eq!(fair.admit("https://dead:443", app, now), Admission::Go);
            fair.finished("https://dead:443", app, false, now);
        }
        assert_eq!(
            fair.admit("https://dead:443", app, 10),
            Admission::Later { at_ms: 1_002 }
        );
        assert_eq!(fair.admit("https://alive:443", app, 10), Admission::Go);
        for (now, expected) in [(1_002, 2_000), (3_002, 4_000), (7_002, 4_000)] {
            assert_eq!(fair.admit("https://dead:443", app, now), Admission::Go);
            fair.finished("https://dead:443", app, false, now);
            assert_eq!(
                fair.admit("https://dead:443", app, now),
                Admission::Later {
                    at_ms: now + expected
                }
            );
        }
        assert_eq!(fair.admit("https://dead:443", app, 20_000), Admission::Go);
        fair.finished("https://dead:443", app, true, 20_000);
        assert_eq!(fair.admit("https://dead:443", app, 20_001), Admission::Go);
        let url = "https://Shop.example/cb?x=1";
        let parsed = url::Url::parse(url).ok();
        assert_eq!(
            endpoint_of(url, parsed.as_ref()),
            "https://shop.example:443"
        );
        assert_eq!(endpoint_of("no url", None), "no url");
    }
}
