//! The books: a double-entry ledger in minor units. Every movement of money is a journal of
//! entries that sum to zero per currency; entries are never changed. Debits are positive,
//! credits negative: the channel's receivable (an asset) grows with a debit, what kassa owes a
//! merchant (a liability) and what it has earned (income) grow with credits.
//!
//! The journals, each built here from an order and checked before it is written:
//! - an order's **success**: the gross received is owed by the channel and owed to the
//!   merchant (pending); the fee moves from the merchant's pending to the platform's fees;
//! - a **settlement**: pending becomes available to the merchant.

use crate::app::AppId;
use crate::money::{AmountMinor, Currency};
use crate::order::{Order, OrderNo};
use crate::status::OrderStatus;
use std::collections::BTreeMap;

/// An account of the books.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// What kassa owes an app's merchant, not yet settled.
    MerchantPending(AppId),
    /// What kassa owes an app's merchant, settled: theirs to be paid out.
    MerchantAvailable(AppId),
    /// What kassa has earned in fees.
    FeesEarned,
    /// What a channel (the sandbox, an upstream PSP) holds for kassa.
    ChannelReceivable(String),
}

impl Account {
    /// The account's key in the store: `app:1001:pending`, `platform:fees`, `channel:ID:receivable`.
    pub fn key(&self) -> String {
        match self {
            Account::MerchantPending(app) => format!("app:{}:pending", app.0),
            Account::MerchantAvailable(app) => format!("app:{}:available", app.0),
            Account::FeesEarned => "platform:fees".into(),
            Account::ChannelReceivable(channel) => format!("channel:{channel}:receivable"),
        }
    }

    pub fn parse(key: &str) -> Option<Account> {
        let parts: Vec<&str> = key.split(':').collect();
        match parts.as_slice() {
            ["app", id, kind] => {
                let app = AppId(id.parse().ok()?);
                match *kind {
                    "pending" => Some(Account::MerchantPending(app)),
                    "available" => Some(Account::MerchantAvailable(app)),
                    _ => None,
                }
            }
            ["platform", "fees"] => Some(Account::FeesEarned),
            ["channel", id, "receivable"] => Some(Account::ChannelReceivable(id.to_string())),
            _ => None,
        }
    }
}

/// One line of a journal: a debit (positive) or a credit (negative) to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub account: Account,
    pub currency: Currency,
    pub amount_minor: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalKind {
    Success,
    Settlement,
}

impl JournalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::Success => "success",
            JournalKind::Settlement => "settlement",
        }
    }

    pub fn parse(text: &str) -> Option<JournalKind> {
        [JournalKind::Success, JournalKind::Settlement]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A balanced set of entries, posted at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Journal {
    /// Unique, and derived from what it records: an order's success journal is
    /// `success:ORDER_NO`, so it can never be posted twice.
    pub journal_id: String,
    pub kind: JournalKind,
    pub order_no: Option<OrderNo>,
    pub app_id: AppId,
    pub currency: Currency,
    pub posted_at_ms: i64,
    /// For a success journal: when its funds become available to the merchant.
    pub settles_at_ms: Option<i64>,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("journal {0} has fewer than two entries")]
    TooFewEntries(String),
    #[error("journal {journal_id} does not balance in {currency}: its entries sum to {sum}")]
    Unbalanced {
        journal_id: String,
        currency: Currency,
        sum: i64,
    },
    #[error("journal {0} has an entry of zero")]
    ZeroEntry(String),
}

impl Order {
    /// The fee the books take for this order: its fee, never more than what was paid (a
    /// fixed fee on a tiny payment takes the payment, not more). Reports show the same.
    pub fn booked_fee_minor(&self) -> AmountMinor {
        AmountMinor(self.fee_minor.0.min(self.actual_amount_minor.0))
    }
}

impl Journal {
    /// Refuses a journal that does not balance per currency, or that records nothing.
    pub fn check(&self) -> Result<(), LedgerError> {
        if self.entries.len() < 2 {
            return Err(LedgerError::TooFewEntries(self.journal_id.clone()));
        }
        if self.entries.iter().any(|e| e.amount_minor == 0) {
            return Err(LedgerError::ZeroEntry(self.journal_id.clone()));
        }
        let mut sums: BTreeMap<&str, (Currency, i64)> = BTreeMap::new();
        for entry in &self.entries {
            let sum = sums
                .entry(entry.currency.code())
                .or_insert((entry.currency, 0));
            sum.1 += entry.amount_minor;
        }
        match sums.into_values().find(|(_, sum)| *sum != 0) {
            Some((currency, sum)) => Err(LedgerError::Unbalanced {
                journal_id: self.journal_id.clone(),
                currency,
                sum,
            }),
            None => Ok(()),
        }
    }

    /// The journal of an order's success, if it has one: the gross received owed by its
    /// channel and to its merchant; the fee from the merchant's pending to the platform's fees.
    /// `None` for an order that has not succeeded or received nothing. Its funds settle at
    /// `settles_at_ms` (see [`settles_at_ms`]).
    pub fn of_success(order: &Order, posted_at_ms: i64, settles_at_ms: i64) -> Option<Journal> {
        if order.status != OrderStatus::Succeeded || order.actual_amount_minor.0 <= 0 {
            return None;
        }
        let gross = order.actual_amount_minor.0;
        let fee = order.booked_fee_minor().0;
        let currency = order.currency;
        let entry = |account, amount_minor| Entry {
            account,
            currency,
            amount_minor,
        };
        let mut entries = vec![
            entry(Account::ChannelReceivable(order.channel.clone()), gross),
            entry(Account::MerchantPending(order.app_id), -gross),
        ];
        if fee > 0 {
            entries.push(entry(Account::MerchantPending(order.app_id), fee));
            entries.push(entry(Account::FeesEarned, -fee));
        }
        Some(Journal {
            journal_id: format!("success:{}", order.order_no),
            kind: JournalKind::Success,
            order_no: Some(order.order_no.clone()),
            app_id: order.app_id,
            currency,
            posted_at_ms,
            settles_at_ms: Some(settles_at_ms),
            entries,
        })
    }

    /// The settlement of a success journal whose merchant was owed `net_minor` by it: pending
    /// becomes available. Its id is derived from the success journal's, so it is posted once.
    pub fn settlement(
        success_journal_id: &str,
        (app_id, currency): (AppId, Currency),
        net_minor: i64,
        posted_at_ms: i64,
    ) -> Option<Journal> {
        if net_minor <= 0 {
            return None;
        }
        let entry = |account, amount_minor| Entry {
            account,
            currency,
            amount_minor,
        };
        Some(Journal {
            journal_id: format!("settle:{success_journal_id}"),
            kind: JournalKind::Settlement,
            order_no: None,
            app_id,
            currency,
            posted_at_ms,
            settles_at_ms: None,
            entries: vec![
                entry(Account::MerchantPending(app_id), net_minor),
                entry(Account::MerchantAvailable(app_id), -net_minor),
            ],
        })
    }
}

/// Longest settlement delay an app may have, in days.
pub const MAX_SETTLEMENT_DELAY_DAYS: i64 = 30;

/// When funds posted at `posted_at_ms` settle after `delay_days` (T+N): at the start of the
/// N-th day after the posting's day, in the zone whose UTC offset at a moment is
/// `offset_seconds_at` (the operator's; days begin at local midnight, DST included).
pub fn settles_at_ms(
    posted_at_ms: i64,
    delay_days: i64,
    offset_seconds_at: impl Fn(i64) -> i32,
) -> i64 {
    let local_day =
        (posted_at_ms + i64::from(offset_seconds_at(posted_at_ms)) * 1000).div_euclid(86_400_000);
    let local_midnight = (local_day + delay_days.clamp(0, MAX_SETTLEMENT_DELAY_DAYS)) * 86_400_000;
    // The offset in force at that local midnight: try the one before and after the day's start.
    let guess = local_midnight - i64::from(offset_seconds_at(local_midnight)) * 1000;
    local_midnight - i64::from(offset_seconds_at(guess)) * 1000
}

/// What an account's entries add up to: positive for an asset's debit balance; what kassa owes
/// (a merchant's pending or available) and what it earned come out negative.
pub fn balance(entries: &[Entry], account: &Account, currency: Currency) -> AmountMinor {
    AmountMinor(
        entries
            .iter()
            .filter(|e| &e.account == account && e.currency == currency)
            .map(|e| e.amount_minor)
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::OrderEvent;

    fn order(amount: i64, seed: u64) -> Order {
        crate::fixtures::order(&format!("M-{seed}"), amount, seed, 1_000_000)
    }

    #[test]
    fn settlement_moves_pending_to_available_once() {
        let settled =
            Journal::settlement("success:1", (AppId(1001), Currency::Eur), 2_432, 9).unwrap();
        assert_eq!(settled.journal_id, "settle:success:1");
        assert_eq!(settled.check(), Ok(()));
        assert_eq!(
            balance(
                &settled.entries,
                &Account::MerchantAvailable(AppId(1001)),
                Currency::Eur
            )
            .0,
            -2_432
        );
        assert!(Journal::settlement("success:2", (AppId(1001), Currency::Eur), 0, 9).is_none());
    }

    #[test]
    fn settlement_days_start_at_local_midnight() {
        // 2026-11-21 23:30 UTC is 2026-11-22 00:30 in Amsterdam (UTC+1): T+1 is 2026-11-23
        // 00:00 there, 2026-11-22 23:00 UTC.
        let posted = 1_795_303_800_000; // 2026-11-21T23:30:00Z
        let amsterdam_winter = |_: i64| 3_600;
        assert_eq!(
            settles_at_ms(posted, 1, amsterdam_winter),
            1_795_388_400_000
        );
        // In UTC the same moment is still 2026-11-21: T+1 is 2026-11-22 00:00, T+0 its own day.
        assert_eq!(settles_at_ms(posted, 1, |_| 0), 1_795_305_600_000);
        assert_eq!(settles_at_ms(posted, 0, |_| 0), 1_795_219_200_000);
        // Across the end of summer time (2026-10-25 in Europe: 03:00 +02 → 02:00 +01), T+1 of
        // 2026-10-24 12:00 local is 2026-10-25 00:00 +02 = 2026-10-24 22:00 UTC.
        let switch = 1_792_890_000_000; // 2026-10-25T01:00:00Z
        let europe = move |ms: i64| if ms < switch { 7_200 } else { 3_600 };
        let noon = 1_792_836_000_000; // 2026-10-24T10:00:00Z = 12:00 +02
        assert_eq!(settles_at_ms(noon, 1, europe), 1_792_879_200_000);
        // T+2 is 2026-10-26 00:00 +01 = 2026-10-25 23:00 UTC.
        assert_eq!(settles_at_ms(noon, 2, europe), 1_792_969_200_000);
    }

    #[test]
    fn account_keys_round_trip() {
        for account in [
            Account::MerchantPending(AppId(1001)),
            Account::MerchantAvailable(AppId(7)),
            Account::FeesEarned,
            Account::ChannelReceivable("acme-eu".into()),
        ] {
            assert_eq!(Account::parse(&account.key()), Some(account));
        }
        assert_eq!(Account::parse("app:x:pending"), None);
        assert_eq!(Account::parse("platform:other"), None);
    }

    #[test]
    fn unbalanced_or_empty_journals_are_refused() {
        let mut paid = order(2_500, 1);
        paid.apply(&OrderEvent::PayerStarted, 1).unwrap();
        paid.apply(
            &OrderEvent::Paid {
                requested: paid.amount_minor,
                received: paid.amount_minor,
            },
            2,
        )
        .unwrap();
        paid.fee_minor = AmountMinor(68);
        let journal = Journal::of_success(&paid, 3, 4).unwrap();
        assert_eq!(journal.check(), Ok(()));
        assert_eq!(journal.journal_id, format!("success:{}", paid.order_no));
        let mut broken = journal.clone();
        broken.entries[0].amount_minor += 1;
        assert!(matches!(
            broken.check(),
            Err(LedgerError::Unbalanced { sum: 1, .. })
        ));
        broken.entries.truncate(1);
        assert!(matches!(broken.check(), Err(LedgerError::TooFewEntries(_))));
        let mut zero = journal;
        zero.entries[0].amount_minor = 0;
        zero.entries[1].amount_minor = 0;
        assert!(matches!(zero.check(), Err(LedgerError::ZeroEntry(_))));
    }

    /// One step of a generated history: which order, which event, whether a payment is short.
    fn event(kind: u8, requested: AmountMinor, short: bool) -> OrderEvent {
        match kind % 6 {
            0 => OrderEvent::PayerStarted,
            1 => OrderEvent::Paid {
                requested,
                received: AmountMinor(requested.0 - i64::from(short)),
            },
            2 => OrderEvent::Failed { reason: "x".into() },
            3 => OrderEvent::Expired,
            4 => OrderEvent::OperatorSucceeded,
            _ => OrderEvent::RailException { reason: "x".into() },
        }
    }

    proptest::proptest! {
        /// Any sequence of events on any orders, with settlements between them, leaves the
        /// books balanced and equal to the orders: the merchant is owed (pending + available)
        /// the gross of its succeeded orders less the fees, the platform earned the fees, the
        /// channel holds the gross — and only succeeded orders post, each once.
        #[test]
        fn any_sequence_of_events_keeps_the_books_equal_to_the_orders(
            amounts in proptest::collection::vec(100i64..=50_000, 1..8),
            steps in proptest::collection::vec((0usize..8, 0u8..6, proptest::bool::ANY, proptest::bool::ANY), 0..60),
        ) {
            let mut orders: Vec<Order> = amounts.iter().enumerate()
                .map(|(i, amount)| order(*amount, i as u64 + 1))
                .collect();
            let (mut posted, mut settled): (Vec<Journal>, Vec<String>) = (Vec::new(), Vec::new());
            for (at, (which, kind, short, settle)) in steps.into_iter().enumerate() {
                let i = which % orders.len();
                let (before, requested) = (orders[i].status, orders[i].amount_minor);
                if orders[i].apply(&event(kind, requested, short), at as i64).is_ok()
                    && OrderStatus::charges_fee(before, orders[i].status)
                {
                    orders[i].fee_minor = AmountMinor(orders[i].actual_amount_minor.0 * 15 / 1_000 + 30);
                    if let Some(journal) = Journal::of_success(&orders[i], at as i64, at as i64) {
                        proptest::prop_assert_eq!(journal.check(), Ok(()));
                        proptest::prop_assert!(posted.iter().all(|j| j.journal_id != journal.journal_id));
                        posted.push(journal);
                    }
                }
                // Now and then every success not settled yet settles.
                if settle {
                    let due: Vec<(String, i64)> = posted.iter()
                        .filter(|j| j.kind == JournalKind::Success && !settled.contains(&j.journal_id))
                        .map(|j| (j.journal_id.clone(), -balance(&j.entries, &Account::MerchantPending(AppId(1001)), Currency::Eur).0))
                        .collect();
                    for (id, net) in due {
                        settled.push(id.clone());
                        posted.extend(Journal::settlement(&id, (AppId(1001), Currency::Eur), net, at as i64));
                    }
                }
            }
            let entries: Vec<Entry> = posted.into_iter().flat_map(|j| j.entries).collect();
            proptest::prop_assert_eq!(entries.iter().map(|e| e.amount_minor).sum::<i64>(), 0);
            let succeeded = orders.iter().filter(|o| o.status == OrderStatus::Succeeded && o.actual_amount_minor.0 > 0);
            let (gross, fees) = succeeded.fold((0, 0), |(g, f), o| {
                (g + o.actual_amount_minor.0, f + o.fee_minor.0.min(o.actual_amount_minor.0))
            });
            let owed = |account| -balance(&entries, &account, Currency::Eur).0;
            let merchant = owed(Account::MerchantPending(AppId(1001))) + owed(Account::MerchantAvailable(AppId(1001)));
            proptest::prop_assert_eq!(merchant, gross - fees);
            proptest::prop_assert_eq!(owed(Account::FeesEarned), fees);
            proptest::prop_assert_eq!(-owed(Account::ChannelReceivable("sandbox".into())), gross);
        }
    }
}
