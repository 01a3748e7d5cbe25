//! Rails: where money moves. A rail starts a payment for an order and a method, and reports its
//! outcome in the core's terms ([`RailOutcome`]). [`Rails`] holds the rails a gateway uses and
//! routes each new order to one of them (and a channel of it); the order records both, and every
//! later step finds its rail by that name. Nothing outside this module names a rail.
//!
//! With channels configured ([`book`]), routing follows them: each channel belongs to the rail
//! of its kind. Without any, every order goes to the built-in sandbox.
//!
//! The sandbox rail plays the bank: its "bank page" is kassa's own method page, where the payer
//! (or the `kassa sandbox pay` command) picks the outcome by hand. The upstream rails
//! ([`upstream_rail`]) open orders at other PSPs, hear from them at
//! `/rails/{channel_id}/callback` ([`callback`]) and ask them about orders that went quiet
//! ([`reconcile`]).

pub mod book;
pub mod callback;
pub mod collect_upstream;
pub mod connector;
pub mod pix_upstream;
pub mod reconcile;
pub mod reconcile_day;
pub mod upstream;
pub mod upstream_rail;

use async_trait::async_trait;
use kassa_core::{AmountMinor, Order, PaymentMethod, RailOutcome};
use std::sync::Arc;

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
    /// The order's rail does not run on this node (it was routed by another).
    #[error("{0}")]
    NotRunning(String),
    /// The rail may have taken the payment but cannot say yet; reconciliation will tell.
    #[error("the rail's answer is pending: {0}")]
    Pending(String),
    /// The rail takes no outcomes by hand (only the sandbox does).
    #[error("the {0} rail takes no outcomes by hand")]
    NotManual(&'static str),
    #[error("{0:?} is not an outcome this rail offers")]
    UnknownOutcome(String),
}

/// An outcome a person may report by hand: its name and the label a page shows.
pub type ManualOutcome = (&'static str, &'static str);

#[async_trait]
pub trait Rail: Send + Sync + 'static {
    /// The rail's name, stored with each order it serves.
    fn name(&self) -> &'static str;

    /// The channel of this rail that takes `order`, or `None` if the rail does not take it.
    fn channel_for(&self, order: &Order) -> Option<String>;

    /// Opens `order` at the rail when it is created, before it is stored: for rails whose
    /// answer is part of the merchant's reply (a PIX upstream's BR Code). True if it was opened
    /// elsewhere (its number may not change then); most rails do nothing.
    async fn open(&self, _order: &mut Order) -> Result<bool, RailError> {
        Ok(false)
    }

    /// Starts paying `order` with `method`.
    async fn start(
        &self,
        order: &Order,
        method: &'static PaymentMethod,
    ) -> Result<RailStart, RailError>;

    /// Whether the rail reports its orders' outcomes by itself (callbacks, reconciliation): an
    /// order it has started is then not expired by kassa's clock, since the rail may have taken
    /// the payment in time and say so late.
    fn reports_outcomes(&self) -> bool {
        false
    }

    /// The outcomes a person may report by hand for this rail's orders, in the order a page
    /// shows them: the sandbox bank's buttons. Real rails report by themselves: none.
    fn manual_outcomes(&self) -> &'static [ManualOutcome] {
        &[]
    }

    /// The outcome a report by hand stands for; `received` only matters for a payment (the
    /// full amount when absent).
    fn manual_outcome(
        &self,
        _order: &Order,
        _name: &str,
        _received: Option<AmountMinor>,
    ) -> Result<RailOutcome, RailError> {
        Err(RailError::NotManual(self.name()))
    }
}

/// The rails of a gateway, in the order routing tries them, and the channels they serve.
#[derive(Clone, Default)]
pub struct Rails {
    rails: Vec<Arc<dyn Rail>>,
    book: Option<Arc<book::ChannelBook>>,
}

impl Rails {
    /// The built-in rails: the sandbox.
    pub fn standard() -> Rails {
        Rails::default().with(SandboxRail)
    }

    /// The built-in sandbox and the upstream rails over the channels of `context.book`.
    pub fn with_channels(context: upstream_rail::UpstreamContext) -> Rails {
        let book = context.book.clone();
        let context = Arc::new(context);
        let upstream = |kind| upstream_rail::UpstreamRail::new(kind, context.clone());
        let mut rails = Rails::standard()
            .with(upstream(kassa_core::ChannelKind::CollectUpstream))
            .with(upstream(kassa_core::ChannelKind::PixUpstream));
        rails.book = Some(book);
        rails
    }

    /// Registers one more rail (tried after those before it).
    pub fn with(mut self, rail: impl Rail) -> Rails {
        assert!(
            self.by_name(rail.name()).is_none(),
            "rail {} registered twice",
            rail.name()
        );
        self.rails.push(Arc::new(rail));
        self
    }

    fn by_name(&self, name: &str) -> Option<&dyn Rail> {
        self.rails
            .iter()
            .map(|r| r.as_ref())
            .find(|r| r.name() == name)
    }

    /// The channels, where the operator configured any.
    pub fn book(&self) -> Option<&Arc<book::ChannelBook>> {
        self.book.as_ref().filter(|book| !book.is_empty())
    }

    /// The rail and channel that take a new order: through the channels where there are any,
    /// else the first rail that has a channel for it.
    pub fn route(&self, order: &Order) -> Result<(&dyn Rail, String), RailError> {
        if let Some(book) = self.book() {
            let (kind, channel) = book
                .route(order, crate::now_ms(), crate::ids::routing_roll())
                .ok_or_else(|| no_rail(order))?;
            let rail = self.by_name(kind.code()).ok_or_else(|| no_rail(order))?;
            return Ok((rail, channel));
        }
        self.rails
            .iter()
            .find_map(|rail| {
                rail.channel_for(order)
                    .map(|channel| (rail.as_ref(), channel))
            })
            .ok_or_else(|| no_rail(order))
    }

    /// Whether `order` is started at a rail that reports its outcome itself (see
    /// [`Rail::reports_outcomes`]).
    pub fn reports_outcomes(&self, order: &Order) -> bool {
        order.status == kassa_core::OrderStatus::InProgress
            && self.of(order).is_ok_and(|rail| rail.reports_outcomes())
    }

    /// The methods a cashier page offers for `order`: those of its currency and country that a
    /// channel can take now (all of them without channels: the sandbox takes every one).
    pub fn payable_methods(&self, order: &Order) -> Vec<&'static PaymentMethod> {
        let mut methods = order.offered_methods();
        if let Some(book) = self.book() {
            let now_ms = crate::now_ms();
            methods.retain(|method| !book.candidates(order, method, now_ms, 0.0).is_empty());
        }
        methods
    }

    /// Opens a new order at its rail (see [`Rail::open`]).
    pub async fn open(&self, order: &mut Order) -> Result<bool, RailError> {
        self.of(order)?.open(order).await
    }

    /// Starts paying `order` on its rail, timed and counted per rail and channel.
    pub async fn start(
        &self,
        order: &Order,
        method: &'static PaymentMethod,
    ) -> Result<RailStart, RailError> {
        let rail = self.of(order)?;
        let started = std::time::Instant::now();
        let result = rail.start(order, method).await;
        let seconds = started.elapsed().as_secs_f64();
        crate::telemetry::rail_call(
            rail.name(),
            &order.channel,
            "start",
            result.is_ok(),
            seconds,
        );
        result
    }

    /// The rail that serves an order, as recorded with it.
    pub fn of(&self, order: &Order) -> Result<&dyn Rail, RailError> {
        self.by_name(&order.rail).ok_or_else(|| {
            RailError::NotRunning(format!(
                "order {} is served by rail {:?}, which this node does not run",
                order.order_no, order.rail
            ))
        })
    }
}

fn no_rail(order: &Order) -> RailError {
    RailError::Unavailable(format!(
        "no rail takes {} orders paid by {}",
        order.currency, order.method.code
    ))
}

/// The built-in rail that plays the bank.
pub struct SandboxRail;

/// The outcomes the sandbox offers, in the order its page shows them.
const SANDBOX_OUTCOMES: [ManualOutcome; 5] = [
    ("paid", "Paid"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
    ("expired", "Expired"),
    ("exception", "Exception"),
];

#[async_trait]
impl Rail for SandboxRail {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    /// The sandbox takes every order, on its one channel.
    fn channel_for(&self, _order: &Order) -> Option<String> {
        Some("sandbox".into())
    }

    async fn start(
        &self,
        _order: &Order,
        _method: &'static PaymentMethod,
    ) -> Result<RailStart, RailError> {
        Ok(RailStart::OwnPage)
    }

    fn manual_outcomes(&self) -> &'static [ManualOutcome] {
        &SANDBOX_OUTCOMES
    }

    fn manual_outcome(
        &self,
        order: &Order,
        name: &str,
        received: Option<AmountMinor>,
    ) -> Result<RailOutcome, RailError> {
        Ok(match name {
            "paid" => RailOutcome::Paid {
                received: received.unwrap_or(order.amount_minor),
            },
            "failed" => RailOutcome::Failed {
                reason: "declined by the payer's bank (sandbox)".into(),
            },
            "cancelled" => RailOutcome::Cancelled,
            "expired" => RailOutcome::Expired,
            "exception" => RailOutcome::Exception {
                reason: "the bank could not confirm the payment (sandbox)".into(),
            },
            _ => return Err(RailError::UnknownOutcome(name.chars().take(40).collect())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        kassa_core::fixtures::order("M-1", 1_000, 7, 1_000)
    }

    #[test]
    fn sandbox_outcomes() {
        let order = order();
        let sandbox = SandboxRail;
        let paid = |received| sandbox.manual_outcome(&order, "paid", received).unwrap();
        assert_eq!(
            paid(None),
            RailOutcome::Paid {
                received: order.amount_minor
            }
        );
        assert_eq!(
            paid(Some(AmountMinor(5))),
            RailOutcome::Paid {
                received: AmountMinor(5)
            }
        );
        assert!(matches!(
            sandbox.manual_outcome(&order, "refunded", None),
            Err(RailError::UnknownOutcome(_))
        ));
        for (name, _) in sandbox.manual_outcomes() {
            assert!(sandbox.manual_outcome(&order, name, None).is_ok());
        }
    }

    #[test]
    fn orders_are_routed_and_found_by_their_rail() {
        let mut order = order();
        let rails = Rails::standard();
        let (rail, channel) = rails.route(&order).unwrap();
        assert_eq!((rail.name(), channel.as_str()), ("sandbox", "sandbox"));
        order.route_to(rail.name(), &channel);
        assert_eq!(rails.of(&order).unwrap().name(), "sandbox");
        order.route_to("gone", "x");
        assert!(matches!(rails.of(&order), Err(RailError::NotRunning(_))));
        assert!(matches!(
            Rails::default().route(&order),
            Err(RailError::Unavailable(_))
        ));
    }
}
