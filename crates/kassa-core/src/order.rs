//! Orders: what a merchant asked to collect, from whom, how, and where it stands.
//!
//! [`Order::create`] holds every business rule of a new order that does not depend on a wire
//! format: method and currency, cashier country, and limits. Dialects check syntax first.

use crate::app::{App, AppId};
use crate::fee::FeeRule;
use crate::method::{Country, PaymentMethod};
use crate::money::{AmountLimits, AmountMinor, Currency};
use crate::personal::Personal;
use crate::status::{IllegalTransition, OrderEvent, OrderStatus};
use std::fmt;

/// kassa's order number: 16 decimal digits, the first not zero. Drawn at random from a space
/// of 9·10^15, so numbers are unique across nodes (the store enforces it) and cannot be guessed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderNo(String);

impl OrderNo {
    pub const LEN: usize = 16;
    const FIRST: u64 = 1_000_000_000_000_000;
    const SPAN: u64 = 9_000_000_000_000_000;

    /// Maps 64 random bits onto the order-number space.
    pub fn from_random(random: u64) -> OrderNo {
        OrderNo((Self::FIRST + random % Self::SPAN).to_string())
    }

    pub fn parse(text: &str) -> Option<OrderNo> {
        let ok = text.len() == Self::LEN
            && text.bytes().all(|b| b.is_ascii_digit())
            && !text.starts_with('0');
        ok.then(|| OrderNo(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrderNo({})", self.0)
    }
}

/// Who pays, as the `collect` seed describes them. `pix` orders carry none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payer {
    pub name: Personal,
    pub phone: Personal,
    pub email: Personal,
    /// The merchant's id for the payer, for risk control. Not personal data by itself.
    pub partner_user_id: String,
}

/// A syntactically valid request for a new order, as a dialect parsed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub app_id: AppId,
    pub merchant_order_id: String,
    pub amount_minor: AmountMinor,
    pub method: &'static PaymentMethod,
    pub country: Option<&'static str>,
    pub payer: Option<Payer>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub callback_url: Option<String>,
    pub callback_fail_url: Option<String>,
    pub notify_url: Option<String>,
    /// The payer pages' language the merchant asked for (kassa's extension), when kassa speaks it.
    pub language: Option<crate::Locale>,
    /// A digest of the request's parameters; an identical retry has the same one.
    pub request_fingerprint: String,
    /// The dialect that received the order: its replies and callbacks speak it.
    pub dialect: &'static str,
}

/// What kassa draws for a new order: its number and the token of its payment page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderIds {
    pub order_no: OrderNo,
    pub cashier_token: String,
}

/// An order. `Debug` leaves out what may carry personal data (see its impl).
#[derive(Clone, PartialEq, Eq)]
pub struct Order {
    pub order_no: OrderNo,
    pub app_id: AppId,
    pub merchant_order_id: String,
    pub currency: Currency,
    pub amount_minor: AmountMinor,
    pub method: &'static PaymentMethod,
    /// The method the payer picked on the cashier page (cashier-mode orders only).
    pub chosen_method: Option<&'static PaymentMethod>,
    pub country: Option<String>,
    pub payer: Option<Payer>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub callback_url: Option<String>,
    pub callback_fail_url: Option<String>,
    pub notify_url: Option<String>,
    /// The payer pages' language the merchant asked for.
    pub language: Option<crate::Locale>,
    pub status: OrderStatus,
    /// What the rail reported received; zero until paid.
    pub actual_amount_minor: AmountMinor,
    pub fee_minor: AmountMinor,
    pub paid_at_ms: Option<i64>,
    pub error_msg: Option<String>,
    pub request_fingerprint: String,
    /// The dialect's signed reply to the creating request, returned unchanged on a retry.
    pub create_reply: String,
    /// The unguessable token in the payment page's URL.
    pub cashier_token: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
    /// The BR Code of a PIX order, as handed out at creation.
    pub pix_code: Option<String>,
    /// The dialect that received the order (its name): callbacks are rendered by it.
    pub dialect: String,
    /// The rail that moves the order's money (its name) and the channel of that rail.
    pub rail: String,
    pub channel: String,
}

impl fmt::Debug for Order {
    /// Ids, amounts and state only: the payer is masked, and the BR Code and the create reply,
    /// which carry the receiver's PIX key (a CPF, phone or e-mail), are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Order")
            .field("order_no", &self.order_no)
            .field("app_id", &self.app_id)
            .field("merchant_order_id", &self.merchant_order_id)
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("method", &self.method.code)
            .field("chosen_method", &self.chosen_method.map(|m| m.code))
            .field("status", &self.status)
            .field("actual_amount_minor", &self.actual_amount_minor)
            .field("fee_minor", &self.fee_minor)
            .field("payer", &self.payer)
            .field("error_msg", &self.error_msg)
            .field("dialect", &self.dialect)
            .field("rail", &self.rail)
            .field("channel", &self.channel)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// A business rule that refuses a new order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("inBankCode {method} does not collect {currency}")]
    MethodNotForCurrency {
        method: &'static str,
        currency: Currency,
    },
    #[error("country is required in cashier mode")]
    CountryRequired,
    #[error("no payment method is offered for country {country} in {currency}")]
    NoMethodForCountry {
        country: &'static str,
        currency: Currency,
    },
    #[error("amount {amount} {currency} is outside the limits {limits} {currency}")]
    AmountOutOfLimits {
        amount: AmountMinor,
        currency: Currency,
        limits: AmountLimits,
    },
    #[error("the app is for {app}, not {requested}")]
    WrongCurrency { app: Currency, requested: Currency },
    #[error("{method} is not offered for this order")]
    MethodNotOffered { method: &'static str },
    #[error("a method can be chosen only before the payment starts")]
    AlreadyStarted,
    #[error("the app's merchant is suspended: no new order is taken")]
    AppSuspended,
}

impl Order {
    /// Checks a new order against the app's currency and limits and builds it, `Created`.
    pub fn create(
        app: &App,
        new: NewOrder,
        ids: OrderIds,
        now_ms: i64,
        lifetime_ms: i64,
    ) -> Result<Order, OrderError> {
        if app.suspended {
            return Err(OrderError::AppSuspended);
        }
        let currency = app.currency;
        if !new.method.allows_currency(currency) {
            return Err(OrderError::MethodNotForCurrency {
                method: new.method.code,
                currency,
            });
        }
        if new.method.is_cashier() {
            let country = new.country.ok_or(OrderError::CountryRequired)?;
            if PaymentMethod::offered_in_cashier(currency, country)
                .next()
                .is_none()
            {
                return Err(OrderError::NoMethodForCountry { country, currency });
            }
        }
        debug_assert!(new.country.is_none_or(|c| Country::parse(c).is_some()));
        let limits = app.limits_for(new.method);
        if !limits.contains(new.amount_minor) {
            return Err(OrderError::AmountOutOfLimits {
                amount: new.amount_minor,
                currency,
                limits,
            });
        }
        Ok(Order {
            order_no: ids.order_no,
            app_id: new.app_id,
            merchant_order_id: new.merchant_order_id,
            currency,
            amount_minor: new.amount_minor,
            method: new.method,
            chosen_method: None,
            country: new.country.map(str::to_string),
            payer: new.payer,
            subject: new.subject,
            body: new.body,
            callback_url: new.callback_url,
            callback_fail_url: new.callback_fail_url,
            notify_url: new.notify_url,
            language: new.language,
            status: OrderStatus::Created,
            actual_amount_minor: AmountMinor::ZERO,
            fee_minor: AmountMinor::ZERO,
            paid_at_ms: None,
            error_msg: None,
            request_fingerprint: new.request_fingerprint,
            create_reply: String::new(),
            cashier_token: ids.cashier_token,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(lifetime_ms),
            pix_code: None,
            dialect: new.dialect.to_string(),
            rail: String::new(),
            channel: String::new(),
        })
    }

    /// Records which rail and channel move the order's money (chosen before it is stored).
    pub fn route_to(&mut self, rail: &str, channel: &str) {
        self.rail = rail.to_string();
        self.channel = channel.to_string();
    }
}

/// Whose an order is and everything of it that can change after creation and that a reply's
/// data shows (status, amounts, and `updated_at_ms`, which moves with every other change): read
/// alone, it tells whether a reply rendered earlier is still the order's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderVersion {
    pub order_no: OrderNo,
    pub app_id: AppId,
    pub merchant_order_id: String,
    pub status: OrderStatus,
    pub updated_at_ms: i64,
    pub actual_amount_minor: AmountMinor,
    pub fee_minor: AmountMinor,
}

impl Order {
    /// This order's [`OrderVersion`].
    pub fn version(&self) -> OrderVersion {
        OrderVersion {
            order_no: self.order_no.clone(),
            app_id: self.app_id,
            merchant_order_id: self.merchant_order_id.clone(),
            status: self.status,
            updated_at_ms: self.updated_at_ms,
            actual_amount_minor: self.actual_amount_minor,
            fee_minor: self.fee_minor,
        }
    }

    /// The method that pays the order: the payer's pick in cashier mode, else the order's.
    pub fn paying_method(&self) -> &'static PaymentMethod {
        self.chosen_method.unwrap_or(self.method)
    }

    /// The methods the payer may pick: for a cashier order, those offered for its currency
    /// and country; otherwise just the order's own.
    pub fn offered_methods(&self) -> Vec<&'static PaymentMethod> {
        if self.method.is_cashier() {
            let country = self.country.as_deref().unwrap_or(Country::ALL_CODE);
            PaymentMethod::offered_in_cashier(self.currency, country).collect()
        } else {
            vec![self.method]
        }
    }

    /// Whether opening the payer's page starts the payment: a direct (non-cashier) order that
    /// has not started. A cashier order starts when the payer picks a method.
    pub fn starts_on_view(&self) -> bool {
        self.status == OrderStatus::Created && !self.method.is_cashier()
    }

    /// Whether the order's time ran out at `now_ms` while it could still expire.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.status.can_expire() && now_ms >= self.expires_at_ms
    }

    /// Where the payer goes back to after a final outcome: the merchant's success or failure
    /// address (PIX orders have neither).
    pub fn return_url(&self) -> Option<&str> {
        match self.status {
            OrderStatus::Succeeded => self.callback_url.as_deref(),
            OrderStatus::Failed => self.callback_fail_url.as_deref(),
            _ => None,
        }
    }

    /// Records the payer's pick on the cashier page and starts the payment.
    pub fn choose_method(
        &mut self,
        method: &'static PaymentMethod,
        now_ms: i64,
    ) -> Result<(), OrderError> {
        self.check_offered(method)?;
        if self.status != OrderStatus::Created {
            return Err(OrderError::AlreadyStarted);
        }
        self.apply(&OrderEvent::PayerStarted, now_ms)
            .map_err(|_| OrderError::AlreadyStarted)?;
        if self.method.is_cashier() {
            self.chosen_method = Some(method);
        }
        Ok(())
    }

    fn check_offered(&self, method: &'static PaymentMethod) -> Result<(), OrderError> {
        if self.offered_methods().contains(&method) {
            Ok(())
        } else {
            Err(OrderError::MethodNotOffered {
                method: method.code,
            })
        }
    }

    /// Switches a started cashier order to another method the payer picked after going back to
    /// the list. The status stays in progress; the server allows it only where nothing was
    /// started elsewhere (a rail whose bank page is kassa's own).
    pub fn switch_method(
        &mut self,
        method: &'static PaymentMethod,
        now_ms: i64,
    ) -> Result<(), OrderError> {
        self.check_offered(method)?;
        if self.status != OrderStatus::InProgress || !self.method.is_cashier() {
            return Err(OrderError::AlreadyStarted);
        }
        self.chosen_method = Some(method);
        self.updated_at_ms = now_ms;
        Ok(())
    }

    /// Sets the fee of a succeeded order from the rule of its app and method.
    pub fn charge_fee(&mut self, rule: Option<FeeRule>) {
        if self.status == OrderStatus::Succeeded {
            self.fee_minor = rule.unwrap_or_default().fee_for(self.actual_amount_minor);
        }
    }

    /// Applies an event: the status changes as the state machine says, and the order records
    /// what came with the event (received amount, payment time, failure reason).
    pub fn apply(&mut self, event: &OrderEvent, now_ms: i64) -> Result<(), IllegalTransition> {
        let next = self.status.apply(event)?;
        match event {
            OrderEvent::PayerStarted => {}
            OrderEvent::Paid { received, .. } => {
                self.actual_amount_minor = *received;
                if next == OrderStatus::Succeeded {
                    self.paid_at_ms = Some(now_ms);
                } else {
                    self.error_msg = Some(format!(
                        "received {received} {currency} instead of {amount} {currency}",
                        currency = self.currency,
                        amount = self.amount_minor
                    ));
                }
            }
            OrderEvent::Failed { reason }
            | OrderEvent::RailException { reason }
            | OrderEvent::OperatorFailed { reason } => self.error_msg = Some(reason.clone()),
            OrderEvent::Expired => self.error_msg = Some("the order expired".into()),
            OrderEvent::OperatorSucceeded => {
                self.paid_at_ms = Some(now_ms);
                self.error_msg = None;
                // The rail could not say what arrived; the operator confirms the full amount.
                if self.actual_amount_minor == AmountMinor::ZERO {
                    self.actual_amount_minor = self.amount_minor;
                }
            }
        }
        self.status = next;
        self.updated_at_ms = now_ms;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::MerchantId;

    fn app(currency: Currency) -> App {
        App {
            app_id: AppId(1054),
            merchant_id: MerchantId(1),
            currency,
            public_key: None,
            limits_override: None,
            webhook_secret: Default::default(),
            retiring_webhook_secret: None,
            brand_colour: None,
            logo_version: None,
            suspended: false,
            pix: None,
            created_at_ms: 0,
        }
    }

    fn new_order(method: &str, amount: &str, country: Option<&'static str>) -> NewOrder {
        NewOrder {
            app_id: AppId(1054),
            merchant_order_id: "M1".into(),
            amount_minor: AmountMinor::parse(amount).unwrap(),
            method: PaymentMethod::by_code(method).unwrap(),
            country,
            payer: None,
            subject: None,
            body: None,
            callback_url: None,
            callback_fail_url: None,
            notify_url: None,
            language: None,
            request_fingerprint: "fp".into(),
            dialect: "test",
        }
    }

    fn ids() -> OrderIds {
        OrderIds {
            order_no: OrderNo::from_random(42),
            cashier_token: "t".into(),
        }
    }

    #[test]
    fn order_numbers_have_sixteen_digits() {
        for r in [0, 1, u64::MAX, 9_000_000_000_000_000, 12345] {
            let no = OrderNo::from_random(r);
            assert!(OrderNo::parse(no.as_str()).is_some(), "{no}");
        }
        assert!(OrderNo::parse("0123456789012345").is_none());
        assert!(OrderNo::parse("602307101353907").is_none());
        assert!(OrderNo::parse("6023071013539074").is_some());
    }

    #[test]
    fn creates_a_valid_order() {
        let order = Order::create(
            &app(Currency::Eur),
            new_order("IDEAL_EUR", "50", None),
            ids(),
            1_000,
            1_800_000,
        )
        .unwrap();
        assert_eq!(order.status, OrderStatus::Created);
        assert_eq!(order.amount_minor, AmountMinor(5_000));
        assert_eq!(order.expires_at_ms, 1_801_000);
    }

    #[test]
    fn a_suspended_app_takes_no_order() {
        let suspended = App {
            suspended: true,
            ..app(Currency::Eur)
        };
        let refused = Order::create(&suspended, new_order("IDEAL_EUR", "50", None), ids(), 1, 1);
        assert_eq!(refused.unwrap_err(), OrderError::AppSuspended);
    }

    #[test]
    fn refuses_business_rule_violations() {
        let eur = app(Currency::Eur);
        let usd = app(Currency::Usd);
        let create = |app: &App, o| Order::create(app, o, ids(), 0, 1);
        assert!(matches!(
            create(&eur, new_order("IDEAL_USD", "50", None)),
            Err(OrderError::MethodNotForCurrency { .. })
        ));
        assert!(matches!(
            create(&eur, new_order("GOOGLE_PAY", "50", None)),
            Err(OrderError::MethodNotForCurrency { .. })
        ));
        assert_eq!(
            create(&eur, new_order("CASHIER", "50", None)),
            Err(OrderError::CountryRequired)
        );
        assert!(matches!(
            create(&eur, new_order("CASHIER", "50", Some("616"))),
            Err(OrderError::NoMethodForCountry { .. })
        ));
        assert!(matches!(
            create(&usd, new_order("IDEAL_USD", "0.98", None)),
            Err(OrderError::AmountOutOfLimits { .. })
        ));
        assert!(matches!(
            create(&eur, new_order("IDEAL_EUR", "500.01", None)),
            Err(OrderError::AmountOutOfLimits { .. })
        ));
        assert!(create(&usd, new_order("CASHIER", "0.99", Some("000"))).is_ok());
    }

    #[test]
    fn events_record_what_came_with_them() {
        let eur = app(Currency::Eur);
        let mut order =
            Order::create(&eur, new_order("IDEAL_EUR", "50", None), ids(), 0, 1).unwrap();
        order.apply(&OrderEvent::PayerStarted, 5).unwrap();
        let paid = OrderEvent::Paid {
            requested: order.amount_minor,
            received: AmountMinor(4_000),
        };
        order.apply(&paid, 10).unwrap();
        assert_eq!(order.status, OrderStatus::Exception);
        assert_eq!(order.actual_amount_minor, AmountMinor(4_000));
        assert_eq!(
            order.error_msg.as_deref(),
            Some("received 40.00 EUR instead of 50.00 EUR")
        );
        order.apply(&OrderEvent::OperatorSucceeded, 20).unwrap();
        assert_eq!(
            (order.status, order.paid_at_ms, order.error_msg.as_deref()),
            (OrderStatus::Succeeded, Some(20), None)
        );
        let before = order.clone();
        assert!(order.apply(&OrderEvent::Expired, 30).is_err());
        assert_eq!(order, before, "a refused event changes nothing");

        let mut expiring =
            Order::create(&eur, new_order("IDEAL_EUR", "50", None), ids(), 0, 1).unwrap();
        expiring.apply(&OrderEvent::Expired, 7).unwrap();
        assert_eq!(
            (expiring.status, expiring.error_msg.as_deref()),
            (OrderStatus::Failed, Some("the order expired"))
        );
    }

    #[test]
    fn cashier_choice_and_fees() {
        let eur = app(Currency::Eur);
        let mut order =
            Order::create(&eur, new_order("CASHIER", "100", Some("528")), ids(), 0, 1).unwrap();
        let codes: Vec<&str> = order.offered_methods().iter().map(|m| m.code).collect();
        assert_eq!(codes, ["IDEAL_EUR"]);
        let bancontact = PaymentMethod::by_code("BANCONTACT_EUR").unwrap();
        assert_eq!(
            order.choose_method(bancontact, 1),
            Err(OrderError::MethodNotOffered {
                method: "BANCONTACT_EUR"
            })
        );
        let ideal = PaymentMethod::by_code("IDEAL_EUR").unwrap();
        order.choose_method(ideal, 2).unwrap();
        assert_eq!(
            (order.status, order.paying_method().code),
            (OrderStatus::InProgress, "IDEAL_EUR")
        );
        assert_eq!(
            order.choose_method(ideal, 3),
            Err(OrderError::AlreadyStarted)
        );
        // Back to the list: only an offered method, only while in progress.
        assert_eq!(
            order.switch_method(bancontact, 3),
            Err(OrderError::MethodNotOffered {
                method: "BANCONTACT_EUR"
            })
        );
        order.switch_method(ideal, 3).unwrap();
        assert_eq!(order.status, OrderStatus::InProgress);

        let rule = FeeRule::new(150, AmountMinor(25)).unwrap();
        order.charge_fee(Some(rule));
        assert_eq!(order.fee_minor, AmountMinor::ZERO, "no fee before success");
        order
            .apply(
                &OrderEvent::Paid {
                    requested: order.amount_minor,
                    received: order.amount_minor,
                },
                4,
            )
            .unwrap();
        order.charge_fee(Some(rule));
        assert_eq!(order.fee_minor, AmountMinor(175));

        let mut direct =
            Order::create(&eur, new_order("IDEAL_EUR", "10", None), ids(), 0, 1).unwrap();
        direct.choose_method(ideal, 1).unwrap();
        assert_eq!(
            direct.chosen_method, None,
            "a direct order keeps its own method"
        );
        assert_eq!(
            direct.switch_method(ideal, 1),
            Err(OrderError::AlreadyStarted),
            "and cannot switch"
        );
        direct
            .apply(&OrderEvent::RailException { reason: "?".into() }, 2)
            .unwrap();
        direct.apply(&OrderEvent::OperatorSucceeded, 3).unwrap();
        assert_eq!(direct.actual_amount_minor, direct.amount_minor);
    }

    #[test]
    fn page_policies() {
        let eur = app(Currency::Eur);
        let mut direct =
            Order::create(&eur, new_order("IDEAL_EUR", "10", None), ids(), 0, 100).unwrap();
        direct.callback_url = Some("https://shop/ok".into());
        direct.callback_fail_url = Some("https://shop/fail".into());
        assert!(direct.starts_on_view());
        assert!(!direct.is_overdue(99) && direct.is_overdue(100));
        assert_eq!(direct.return_url(), None, "not final yet");
        let cashier =
            Order::create(&eur, new_order("CASHIER", "10", Some("528")), ids(), 0, 1).unwrap();
        assert!(!cashier.starts_on_view());
        let mut paid = direct.clone();
        paid.apply(&OrderEvent::PayerStarted, 1).unwrap();
        assert!(!paid.starts_on_view());
        let mut failed = paid.clone();
        paid.apply(
            &OrderEvent::Paid {
                requested: paid.amount_minor,
                received: paid.amount_minor,
            },
            2,
        )
        .unwrap();
        assert_eq!(paid.return_url(), Some("https://shop/ok"));
        assert!(!paid.is_overdue(1_000));
        failed.apply(&OrderEvent::Expired, 2).unwrap();
        assert_eq!(failed.return_url(), Some("https://shop/fail"));
    }

    #[test]
    fn debug_hides_the_payer_and_the_pix_key() {
        let eur = app(Currency::Eur);
        let mut new = new_order("IDEAL_EUR", "10", None);
        new.payer = Some(Payer {
            name: Personal::new("Maria Jansen"),
            phone: Personal::new("+31612345678"),
            email: Personal::new("maria@example.nl"),
            partner_user_id: "p1".into(),
        });
        let mut order = Order::create(&eur, new, ids(), 0, 1).unwrap();
        order.pix_code = Some("00020126580014br.gov.bcb.pix013652998224725".into());
        order.create_reply = r#"{"qrCode":"...52998224725..."}"#.into();
        let shown = format!("{order:?}");
        for secret in ["Jansen", "612345678", "maria@", "52998224725"] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
        assert!(shown.contains("IDEAL_EUR"), "{shown}");
    }

    #[test]
    fn app_limits_replace_the_defaults() {
        let mut eur = app(Currency::Eur);
        eur.limits_override = Some(AmountLimits::new(AmountMinor(1_000), AmountMinor(2_000)));
        let create = |o| Order::create(&eur, o, ids(), 0, 1);
        assert!(create(new_order("IDEAL_EUR", "9.99", None)).is_err());
        assert!(create(new_order("IDEAL_EUR", "20.00", None)).is_ok());
        assert!(create(new_order("IDEAL_EUR", "20.01", None)).is_err());
    }
}
