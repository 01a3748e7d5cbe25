//! Channels: the accounts through which rails move money — the sandbox, or an upstream PSP that
//! speaks the `collect` or the `pix` API — with what each serves (methods, currencies, amounts),
//! its place in routing (priority, weight, enabled) and how long its calls may take. The
//! operator configures them; the store keeps them, the upstream credentials sealed.

use crate::method::PaymentMethod;
use crate::money::{AmountLimits, AmountMinor, Currency};
use crate::personal::Secret;

/// Longest channel id: lowercase letters, digits and dashes.
pub const MAX_ID_CHARS: usize = 40;
/// Most methods one channel maps.
pub const MAX_METHODS: usize = 32;
/// Upstream codes (`inBankCode`, `payType`) are the seed's uppercase words.
pub const MAX_UPSTREAM_CODE_CHARS: usize = 40;
/// Weight of a channel among those of its priority.
pub const MAX_WEIGHT: u32 = 1_000;
/// Upstream calls may take at most this long, connecting included.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// What kind of rail a channel belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Sandbox,
    /// An upstream PSP speaking the `collect` API.
    CollectUpstream,
    /// An upstream PSP speaking the `pix` API.
    PixUpstream,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [
        ChannelKind::Sandbox,
        ChannelKind::CollectUpstream,
        ChannelKind::PixUpstream,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ChannelKind::Sandbox => "sandbox",
            ChannelKind::CollectUpstream => "collect-upstream",
            ChannelKind::PixUpstream => "pix-upstream",
        }
    }

    pub fn parse(code: &str) -> Option<ChannelKind> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// Whether the channel talks to another PSP (and so needs its address and credentials).
    pub fn is_upstream(self) -> bool {
        self != ChannelKind::Sandbox
    }
}

/// One of kassa's methods as an upstream names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodRoute {
    pub method: &'static PaymentMethod,
    pub upstream_in_bank_code: String,
    pub upstream_pay_type: String,
}

/// Where and how to reach an upstream PSP.
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Without a trailing slash; the API's paths follow it.
    pub base_url: String,
    /// kassa's `appId` at the upstream.
    pub app_id: i64,
    /// kassa's private key at the upstream (PKCS#8 PEM), sealed at rest.
    pub merchant_key: Secret,
    /// The upstream's platform public key (PEM), which its replies and callbacks verify with.
    pub platform_public_key: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("merchant_key", &self.merchant_key)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub channel_id: String,
    pub kind: ChannelKind,
    /// `None` for the sandbox.
    pub upstream: Option<Upstream>,
    /// The methods it serves; empty: every method of its currencies (the sandbox).
    pub methods: Vec<MethodRoute>,
    pub currencies: Vec<Currency>,
    /// Amounts it takes; `None`: the methods' own limits.
    pub limits: Option<AmountLimits>,
    /// Lower goes first.
    pub priority: i32,
    /// Share among the eligible channels of one priority.
    pub weight: u32,
    pub enabled: bool,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Why a channel's settings are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ChannelError {
    pub field: &'static str,
    pub problem: String,
}

fn refuse(field: &'static str, problem: impl Into<String>) -> ChannelError {
    ChannelError {
        field,
        problem: problem.into(),
    }
}

impl Channel {
    /// Checks the settings that need no I/O (keys are parsed, and URLs checked against the SSRF
    /// policy, by the caller).
    pub fn check(&self) -> Result<(), ChannelError> {
        check_id(&self.channel_id)?;
        self.check_upstream()?;
        if self.currencies.is_empty() {
            return Err(refuse("currencies", "name at least one currency"));
        }
        self.check_methods()?;
        if let Some(limits) = self.limits
            && (limits.min_minor.0 <= 0 || limits.min_minor > limits.max_minor)
        {
            return Err(refuse(
                "limits",
                "the minimum must be above zero and at most the maximum",
            ));
        }
        if !(1..=MAX_WEIGHT).contains(&self.weight) {
            return Err(refuse("weight", format!("must be 1 to {MAX_WEIGHT}")));
        }
        for (field, ms) in [
            ("connect-timeout", self.connect_timeout_ms),
            ("request-timeout", self.request_timeout_ms),
        ] {
            if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
                return Err(refuse(
                    field,
                    format!("must be 1 ms to {MAX_TIMEOUT_MS} ms"),
                ));
            }
        }
        Ok(())
    }

    fn check_upstream(&self) -> Result<(), ChannelError> {
        match (&self.upstream, self.kind.is_upstream()) {
            (None, false) => Ok(()),
            (Some(_), false) => Err(refuse("kind", "the sandbox has no upstream")),
            (None, true) => Err(refuse(
                "base-url",
                "an upstream channel needs its URL and keys",
            )),
            (Some(upstream), true) => {
                let url = crate::validate::http_url("base-url", &upstream.base_url)
                    .map_err(|e| refuse("base-url", e.to_string()))?;
                if upstream.base_url.ends_with('/') || url.query().is_some() {
                    return Err(refuse("base-url", "no trailing slash and no query"));
                }
                if upstream.app_id <= 0 {
                    return Err(refuse("upstream-app-id", "must be a positive number"));
                }
                Ok(())
            }
        }
    }

    fn check_methods(&self) -> Result<(), ChannelError> {
        if self.kind.is_upstream() && self.methods.is_empty() {
            return Err(refuse(
                "method",
                "an upstream channel maps at least one method",
            ));
        }
        if self.methods.len() > MAX_METHODS {
            return Err(refuse("method", format!("at most {MAX_METHODS} methods")));
        }
        for (i, route) in self.methods.iter().enumerate() {
            let code = route.method.code;
            if self.methods[..i].iter().any(|r| r.method.code == code) {
                return Err(refuse("method", format!("{code} is mapped twice")));
            }
            if !self
                .currencies
                .iter()
                .any(|&c| route.method.allows_currency(c))
            {
                return Err(refuse(
                    "method",
                    format!("{code} takes none of the channel's currencies"),
                ));
            }
            for value in [&route.upstream_in_bank_code, &route.upstream_pay_type] {
                let ok = !value.is_empty()
                    && value.len() <= MAX_UPSTREAM_CODE_CHARS
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    return Err(refuse(
                        "method",
                        format!(
                            "{value:?}: upstream codes are 1 to {MAX_UPSTREAM_CODE_CHARS} letters, digits or _"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether this channel can take an order of `amount` in `currency` paid with `method`
    /// (enabled, currency, method, amount). Health and the circuit breaker are the router's business.
    pub fn serves(&self, currency: Currency, amount: AmountMinor, method: &PaymentMethod) -> bool {
        let method_ok = self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|route| route.method.code == method.code);
        let amount_ok = self
            .limits
            .is_none_or(|limits| limits.min_minor <= amount && amount <= limits.max_minor);
        self.enabled && self.currencies.contains(&currency) && method_ok && amount_ok
    }

    /// How the upstream names `method`, if this channel maps it.
    pub fn route_of(&self, method: &PaymentMethod) -> Option<&MethodRoute> {
        self.methods
            .iter()
            .find(|route| route.method.code == method.code)
    }
}

/// The channels that may take an order of `amount` in `currency` paid with `method`, in the
/// order routing tries them:
/// those that serve it (enabled, currency, method, amount) and are `healthy`, by priority
/// (lower first); within one priority a weighted draw decides who goes first — `roll` is a
/// uniform number in `[0, 1)` drawn by the caller, so the rule itself stays deterministic — and
/// the rest follow by weight, heaviest first (the failover order).
pub fn candidates<'a>(
    channels: &'a [Channel],
    (currency, amount): (Currency, AmountMinor),
    method: &PaymentMethod,
    healthy: impl Fn(&Channel) -> bool,
    roll: f64,
) -> Vec<&'a Channel> {
    let mut eligible: Vec<&Channel> = channels
        .iter()
        .filter(|channel| channel.serves(currency, amount, method) && healthy(channel))
        .collect();
    eligible.sort_by(|a, b| {
        (a.priority, std::cmp::Reverse(a.weight), &a.channel_id).cmp(&(
            b.priority,
            std::cmp::Reverse(b.weight),
            &b.channel_id,
        ))
    });
    let Some(first) = eligible.first() else {
        return eligible;
    };
    let top = eligible
        .iter()
        .take_while(|c| c.priority == first.priority)
        .count();
    let total: u64 = eligible[..top].iter().map(|c| u64::from(c.weight)).sum();
    let mut point = (roll.clamp(0.0, 1.0 - f64::EPSILON) * total as f64) as u64;
    let drawn = eligible[..top]
        .iter()
        .position(|c| {
            let hit = point < u64::from(c.weight);
            point = point.saturating_sub(u64::from(c.weight));
            hit
        })
        .unwrap_or(0);
    let chosen = eligible.remove(drawn);
    eligible.insert(0, chosen);
    eligible
}

/// A channel id: 1 to 40 lowercase letters, digits and dashes, not starting with a dash. It
/// appears in URLs (`/rails/{channel_id}/callback`) and in metrics labels.
pub fn check_id(id: &str) -> Result<(), ChannelError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(refuse(
            "id",
            format!(
                "1 to {MAX_ID_CHARS} lowercase letters, digits and dashes, not starting with a dash"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream_channel() -> Channel {
        Channel {
            channel_id: "acme-eu".into(),
            kind: ChannelKind::CollectUpstream,
            upstream: Some(Upstream {
                base_url: "https://psp.example".into(),
                app_id: 1001,
                merchant_key: Secret::new("-----BEGIN PRIVATE KEY-----"),
                platform_public_key: "-----BEGIN PUBLIC KEY-----".into(),
            }),
            methods: vec![MethodRoute {
                method: PaymentMethod::by_code("IDEAL_EUR").unwrap(),
                upstream_in_bank_code: "IDEAL".into(),
                upstream_pay_type: "BANK_TRANSFER".into(),
            }],
            currencies: vec![Currency::Eur],
            limits: Some(AmountLimits::new(AmountMinor(100), AmountMinor(100_000))),
            priority: 10,
            weight: 100,
            enabled: true,
            connect_timeout_ms: 2_000,
            request_timeout_ms: 10_000,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn a_valid_channel_passes_and_each_bad_setting_is_named() {
        assert_eq!(upstream_channel().check(), Ok(()));
        type Spoil = fn(&mut Channel);
        let cases: [(&str, Spoil); 10] = [
            ("id", |c| c.channel_id = "Acme".into()),
            ("id", |c| c.channel_id = "-x".into()),
            ("base-url", |c| {
                c.upstream.as_mut().unwrap().base_url = "ftp://psp.example".into()
            }),
            ("base-url", |c| {
                c.upstream.as_mut().unwrap().base_url = "https://psp.example/".into()
            }),
            ("base-url", |c| c.upstream = None),
            ("currencies", |c| c.currencies.clear()),
            ("method", |c| c.currencies = vec![Currency::Usd]),
            ("method", |c| {
                c.methods[0].upstream_pay_type = "bank transfer".into()
            }),
            ("limits", |c| {
                c.limits = Some(AmountLimits::new(AmountMinor(5), AmountMinor(1)))
            }),
            ("weight", |c| c.weight = 0),
        ];
        for (field, spoil) in cases {
            let mut channel = upstream_channel();
            spoil(&mut channel);
            assert_eq!(channel.check().unwrap_err().field, field, "{channel:?}");
        }
        let mut twice = upstream_channel();
        twice.methods.push(twice.methods[0].clone());
        assert!(twice.check().unwrap_err().problem.contains("twice"));
    }

    #[test]
    fn the_debug_output_hides_the_private_key() {
        let shown = format!("{:?}", upstream_channel());
        assert!(!shown.contains("BEGIN PRIVATE KEY"), "{shown}");
        assert!(shown.contains("acme-eu"));
    }

    #[test]
    fn routing_filters_then_orders_by_priority_and_draws_by_weight() {
        let order = (Currency::Eur, AmountMinor(2_500));
        let ideal = PaymentMethod::by_code("IDEAL_EUR").unwrap();
        let with = |id: &str, priority: i32, weight: u32| {
            let mut channel = upstream_channel();
            channel.channel_id = id.into();
            channel.priority = priority;
            channel.weight = weight;
            channel
        };
        let mut off = with("off", 0, 100);
        off.enabled = false;
        let mut small = with("small", 0, 100);
        small.limits = Some(AmountLimits::new(AmountMinor(100), AmountMinor(1_000)));
        let channels = vec![
            with("b70", 1, 70),
            with("a30", 1, 30),
            with("late", 5, 100),
            off,
            small,
        ];
        let ids = |roll: f64, healthy: &dyn Fn(&Channel) -> bool| -> Vec<String> {
            candidates(&channels, order, ideal, healthy, roll)
                .iter()
                .map(|c| c.channel_id.clone())
                .collect()
        };
        let all = |_: &Channel| true;
        // Disabled and out-of-range channels never appear; priority 1 before 5.
        assert_eq!(ids(0.0, &all), ["b70", "a30", "late"]);
        assert_eq!(ids(0.69, &all), ["b70", "a30", "late"]);
        assert_eq!(
            ids(0.70, &all),
            ["a30", "b70", "late"],
            "the draw puts a30 first 30 % of the time"
        );
        assert_eq!(ids(0.999, &all), ["a30", "b70", "late"]);
        // An unhealthy channel (open circuit) is skipped; failover follows the order.
        assert_eq!(
            ids(0.0, &|c: &Channel| c.channel_id != "b70"),
            ["a30", "late"]
        );
        let none = |_: &Channel| false;
        assert!(ids(0.5, &none).is_empty());
        // Over many rolls, the shares follow the weights.
        let firsts = (0..1_000)
            .filter(|i| ids(f64::from(*i) / 1_000.0, &all)[0] == "b70")
            .count();
        assert_eq!(firsts, 700);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in ChannelKind::ALL {
            assert_eq!(ChannelKind::parse(kind.code()), Some(kind));
        }
        assert_eq!(ChannelKind::parse("paypal"), None);
    }
}
