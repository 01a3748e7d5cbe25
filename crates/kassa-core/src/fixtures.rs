//! Orders and apps for tests, in one place (the core's own tests and, with the `fixtures`
//! feature, other crates'): an app of a currency, and a direct order of it, created at 0.

use crate::app::{App, AppId, MerchantId};
use crate::method::PaymentMethod;
use crate::money::{AmountMinor, Currency};
use crate::order::{NewOrder, Order, OrderIds, OrderNo};

/// App 1001 of merchant 1, collecting `currency`, without keys or limits.
pub fn app(currency: Currency) -> App {
    App {
        app_id: AppId(1001),
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

/// A new `collect` order of app 1001 in EUR paid by iDEAL, created at 0 and living
/// `lifetime_ms`, its number drawn from `seed`, routed to the sandbox.
pub fn order(merchant_order_id: &str, amount_minor: i64, seed: u64, lifetime_ms: i64) -> Order {
    let app = app(Currency::Eur);
    let new = NewOrder {
        app_id: app.app_id,
        merchant_order_id: merchant_order_id.into(),
        amount_minor: AmountMinor(amount_minor),
        method: PaymentMethod::by_code("IDEAL_EUR").expect("in the catalogue"),
        country: None,
        payer: None,
        subject: None,
        body: None,
        callback_url: None,
        callback_fail_url: None,
        notify_url: None,
        language: None,
        request_fingerprint: "fp".into(),
        dialect: "collect",
    };
    let ids = OrderIds {
        order_no: OrderNo::from_random(seed),
        cashier_token: "t".into(),
    };
    let mut order = Order::create(&app, new, ids, 0, lifetime_ms).expect("a valid order");
    order.route_to("sandbox", "sandbox");
    order
}
