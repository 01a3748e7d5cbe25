//! kassa's business core: what an order is, how money is written and limited, which payment
//! methods exist for which currency and country, and which status changes are legal.
//!
//! Nothing here does I/O, async, HTTP or SQL. Time and randomness come in as arguments, so
//! every rule can be tested directly and both dialects share one set of rules.

pub mod app;
pub mod brcode;
pub mod breaker;
pub mod callback;
pub mod channel;
pub mod fee;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod ledger;
pub mod locale;
pub mod logo;
pub mod method;
pub mod money;
pub mod order;
pub mod personal;
pub mod pix;
pub mod rail;
pub mod reconciliation;
pub mod ssrf;
pub mod status;
pub mod time;
pub mod user;
pub mod validate;

pub use app::{App, AppId, BrandColour, BrandColourError, Merchant, MerchantId};
pub use breaker::{Breaker, BreakerPolicy, BreakerState};
pub use callback::{AfterAttempt, RetryPolicy};
pub use channel::{Channel, ChannelError, ChannelKind, MethodRoute, Upstream};
pub use fee::{FeeError, FeeRule};
pub use locale::Locale;
pub use logo::{ImageFormat, Logo, LogoError};
pub use method::{Country, PayType, PaymentMethod};
pub use money::{AmountError, AmountLimits, AmountMinor, Currency};
pub use order::{NewOrder, Order, OrderError, OrderIds, OrderNo, OrderVersion, Payer};
pub use personal::{Personal, Secret};
pub use rail::RailOutcome;
pub use status::{IllegalTransition, OrderEvent, OrderStatus};
