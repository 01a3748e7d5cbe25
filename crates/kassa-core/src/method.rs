//! The payment-method catalogue of the `collect` seed (plus PIX): which `payType` each method
//! belongs to, the currency it collects in, the country it serves, and any limits of its own.
//!
//! Cashier countries use ISO 3166-1 numeric codes as the seed does; `000` means all of them.

use crate::money::{AmountLimits, AmountMinor, Currency};

/// The seed's `payType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayType {
    /// The payer picks a method on kassa's cashier page.
    Cashier,
    BankTransfer,
    Ewallet,
    /// Brazilian instant payments (the `pix` dialect).
    Pix,
}

impl PayType {
    pub fn code(self) -> &'static str {
        match self {
            PayType::Cashier => "CASHIER",
            PayType::BankTransfer => "BANK_TRANSFER",
            PayType::Ewallet => "EWALLET",
            PayType::Pix => "PIX",
        }
    }

    pub fn parse(code: &str) -> Option<PayType> {
        [
            PayType::Cashier,
            PayType::BankTransfer,
            PayType::Ewallet,
            PayType::Pix,
        ]
        .into_iter()
        .find(|p| p.code() == code)
    }
}

/// A cashier country of the seed (ISO 3166-1 numeric).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Country {
    pub code: &'static str,
    pub name: &'static str,
}

impl Country {
    /// `000`: show every supported country's methods.
    pub const ALL_CODE: &'static str = "000";

    pub const LIST: [Country; 6] = [
        Country {
            code: "000",
            name: "All countries",
        },
        Country {
            code: "040",
            name: "Austria",
        },
        Country {
            code: "056",
            name: "Belgium",
        },
        Country {
            code: "380",
            name: "Italy",
        },
        Country {
            code: "528",
            name: "Netherlands",
        },
        Country {
            code: "616",
            name: "Poland",
        },
    ];

    pub fn parse(code: &str) -> Option<Country> {
        Country::LIST.into_iter().find(|c| c.code == code)
    }
}

/// One entry of the catalogue: an `inBankCode` of the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentMethod {
    /// The wire code (`IDEAL_EUR`, `CASHIER`, `PIX`).
    pub code: &'static str,
    /// What the payer sees.
    pub display_name: &'static str,
    pub pay_type: PayType,
    /// `None` for `CASHIER`, which takes the order's currency.
    pub currency: Option<Currency>,
    /// The country the method serves; `None` when it serves every country (wallets).
    pub country: Option<&'static str>,
    /// Limits of the method itself; `None` uses the currency's.
    pub limits: Option<AmountLimits>,
}

const WALLET_LIMITS: AmountLimits = AmountLimits::new(AmountMinor(99), AmountMinor(100_000));

const fn method(
    code: &'static str,
    display_name: &'static str,
    pay_type: PayType,
    currency: Currency,
    country: Option<&'static str>,
) -> PaymentMethod {
    PaymentMethod {
        code,
        display_name,
        pay_type,
        currency: Some(currency),
        country,
        limits: None,
    }
}

use Currency::{Brl, Eur, Usd};
use PayType::{BankTransfer, Ewallet};

/// Every method kassa knows, in the seed's order.
pub const CATALOGUE: [PaymentMethod; 14] = [
    PaymentMethod {
        code: "CASHIER",
        display_name: "Cashier",
        pay_type: PayType::Cashier,
        currency: None,
        country: None,
        limits: None,
    },
    method(
        "BANCONTACT_USD",
        "Bancontact",
        BankTransfer,
        Usd,
        Some("056"),
    ),
    method("EPS_USD", "EPS", BankTransfer, Usd, Some("040")),
    method(
        "PRZELEWY24_USD",
        "Przelewy24",
        BankTransfer,
        Usd,
        Some("616"),
    ),
    method("BLIK_USD", "BLIK", BankTransfer, Usd, Some("616")),
    method("IDEAL_USD", "iDEAL", BankTransfer, Usd, Some("528")),
    method("EPS_EUR", "EPS", BankTransfer, Eur, Some("040")),
    method("IDEAL_EUR", "iDEAL", BankTransfer, Eur, Some("528")),
    method(
        "BANCONTACT_EUR",
        "Bancontact",
        BankTransfer,
        Eur,
        Some("056"),
    ),
    method("BANCOMATPAY_USD", "Bancomat Pay", Ewallet, Usd, Some("380")),
    method("BANCOMATPAY_EUR", "Bancomat Pay", Ewallet, Eur, Some("380")),
    PaymentMethod {
        limits: Some(WALLET_LIMITS),
        ..method("GOOGLE_PAY", "Google Pay", Ewallet, Usd, None)
    },
    PaymentMethod {
        limits: Some(WALLET_LIMITS),
        ..method("APPLE_PAY", "Apple Pay", Ewallet, Usd, None)
    },
    method("PIX", "PIX", PayType::Pix, Brl, None),
];

impl PaymentMethod {
    pub fn by_code(code: &str) -> Option<&'static PaymentMethod> {
        CATALOGUE.iter().find(|m| m.code == code)
    }

    pub fn is_cashier(&self) -> bool {
        self.pay_type == PayType::Cashier
    }

    /// Whether a request's `payType` may name this method: its own, and for the wallets also
    /// `BANK_TRANSFER` — the seed's parameter table calls every non-cashier order
    /// BANK_TRANSFER while its method table files the wallets under EWALLET; kassa takes both.
    pub fn accepts_pay_type(&self, pay_type: PayType) -> bool {
        self.pay_type == pay_type
            || (self.pay_type == PayType::Ewallet && pay_type == PayType::BankTransfer)
    }

    /// Whether the method can collect this currency (`CASHIER` collects any).
    pub fn allows_currency(&self, currency: Currency) -> bool {
        self.currency.is_none_or(|c| c == currency)
    }

    /// Whether the cashier offers this method for a country code (`000` = all).
    pub fn serves_country(&self, country_code: &str) -> bool {
        country_code == Country::ALL_CODE || self.country.is_none_or(|c| c == country_code)
    }

    /// The methods a cashier page offers for an order's currency and country.
    pub fn offered_in_cashier(
        currency: Currency,
        country_code: &str,
    ) -> impl Iterator<Item = &'static PaymentMethod> {
        CATALOGUE.iter().filter(move |m| {
            matches!(m.pay_type, PayType::BankTransfer | PayType::Ewallet)
                && m.allows_currency(currency)
                && m.serves_country(country_code)
        })
    }

    /// Limits for an order paid with this method: the method's own, else the currency's.
    pub fn limits(&self, currency: Currency) -> AmountLimits {
        self.limits.unwrap_or_else(|| currency.default_limits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallets_take_bank_transfer_too_and_nothing_else_is_lenient() {
        let wallet = PaymentMethod::by_code("GOOGLE_PAY").unwrap();
        assert!(wallet.accepts_pay_type(PayType::Ewallet));
        assert!(wallet.accepts_pay_type(PayType::BankTransfer));
        assert!(!wallet.accepts_pay_type(PayType::Cashier));
        let bank = PaymentMethod::by_code("IDEAL_EUR").unwrap();
        assert!(bank.accepts_pay_type(PayType::BankTransfer));
        assert!(!bank.accepts_pay_type(PayType::Ewallet));
    }

    #[test]
    fn catalogue_has_the_twelve_seed_codes_plus_cashier_and_pix() {
        let seed = [
            "BANCONTACT_USD",
            "EPS_USD",
            "PRZELEWY24_USD",
            "BLIK_USD",
            "IDEAL_USD",
            "EPS_EUR",
            "IDEAL_EUR",
            "BANCONTACT_EUR",
            "BANCOMATPAY_USD",
            "BANCOMATPAY_EUR",
            "GOOGLE_PAY",
            "APPLE_PAY",
        ];
        for code in seed {
            let m = PaymentMethod::by_code(code).expect(code);
            assert!(!m.is_cashier());
        }
        assert!(PaymentMethod::by_code("USA").is_none());
        assert!(PaymentMethod::by_code("CASHIER").unwrap().is_cashier());
    }

    #[test]
    fn currency_rules_follow_the_code_suffix() {
        let ideal_eur = PaymentMethod::by_code("IDEAL_EUR").unwrap();
        assert!(ideal_eur.allows_currency(Currency::Eur));
        assert!(!ideal_eur.allows_currency(Currency::Usd));
        let gpay = PaymentMethod::by_code("GOOGLE_PAY").unwrap();
        assert!(gpay.allows_currency(Currency::Usd));
        assert!(!gpay.allows_currency(Currency::Eur));
        assert_eq!(
            PaymentMethod::by_code("BANCOMATPAY_EUR").unwrap().pay_type,
            PayType::Ewallet
        );
    }

    #[test]
    fn cashier_offers_methods_by_country_and_currency() {
        let codes = |cur, country| -> Vec<&str> {
            PaymentMethod::offered_in_cashier(cur, country)
                .map(|m| m.code)
                .collect()
        };
        assert_eq!(codes(Currency::Eur, "528"), ["IDEAL_EUR"]);
        assert_eq!(
            codes(Currency::Usd, "040"),
            ["EPS_USD", "GOOGLE_PAY", "APPLE_PAY"]
        );
        assert_eq!(codes(Currency::Eur, "000").len(), 4);
        assert_eq!(codes(Currency::Usd, "000").len(), 8);
        assert!(codes(Currency::Eur, "616").is_empty());
    }
}
