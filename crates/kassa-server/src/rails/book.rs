//! The channel book: this node's copy of the stored channels with a ready connector for each
//! upstream one, read again every few seconds (a change made on any node takes effect within
//! that time, without a restart), and the circuit breaker of each channel. Routing asks it which
//! channels may take an order; the callback route and reconciliation ask it for a connector.

use super::connector::Connector;
use crate::sealing::Kek;
use kassa_core::{Breaker, BreakerPolicy, Channel, ChannelKind, Order, PaymentMethod};
use kassa_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// A channel as routing sees it: its settings, and its connector (upstream kinds only).
#[derive(Clone)]
pub struct Entry {
    pub channel: Channel,
    pub connector: Option<Arc<Connector>>,
}

pub struct ChannelBook {
    store: Arc<dyn Store>,
    kek: Arc<Kek>,
    policy: BreakerPolicy,
    entries: RwLock<Arc<Vec<Entry>>>,
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl ChannelBook {
    pub fn new(store: Arc<dyn Store>, kek: Arc<Kek>, policy: BreakerPolicy) -> ChannelBook {
        ChannelBook {
            store,
            kek,
            policy,
            entries: RwLock::default(),
            breakers: Mutex::default(),
        }
    }

    /// Reads the channels again; connectors are rebuilt only for channels that changed. A
    /// channel whose connector cannot be built (its key does not unseal) is left out of routing
    /// and logged.
    pub async fn refresh(&self) -> Result<(), kassa_store::StoreError> {
        let channels = self.store.channels().await?;
        let previous = self.entries();
        let entries = channels
            .into_iter()
            .filter_map(|channel| {
                let kept = previous
                    .iter()
                    .find(|e| e.channel == channel)
                    .map(|e| e.connector.clone());
                let connector = match kept {
                    Some(connector) => connector,
                    None if !channel.kind.is_upstream() => None,
                    None => match Connector::build(&channel, &self.kek) {
                        Ok(connector) => Some(Arc::new(connector)),
                        Err(e) => {
                            let id = &channel.channel_id;
                            tracing::error!(channel = %id, error = %e, "channel left out of routing");
                            return None;
                        }
                    },
                };
                Some(Entry { channel, connector })
            })
            .collect();
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(entries);
        Ok(())
    }

    fn entries(&self) -> Arc<Vec<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the operator configured any channel: without one, kassa routes to its built-in
    /// sandbox.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    pub fn entry(&self, channel_id: &str) -> Option<Entry> {
        self.entries()
            .iter()
            .find(|e| e.channel.channel_id == channel_id)
            .cloned()
    }

    /// The channels that may take `order` paid with `method` now, in the order to try them (see
    /// `kassa_core::channel::candidates`); `roll` draws among those of the first priority.
    pub fn candidates(
        &self,
        order: &Order,
        method: &PaymentMethod,
        now_ms: i64,
        roll: f64,
    ) -> Vec<Entry> {
        let entries = self.entries();
        let channels: Vec<Channel> = entries.iter().map(|e| e.channel.clone()).collect();
        let breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let healthy = |channel: &Channel| {
            breakers
                .get(&channel.channel_id)
                .is_none_or(|b| b.state(now_ms) != kassa_core::BreakerState::Open)
        };
        let amount = (order.currency, order.amount_minor);
        kassa_core::channel::candidates(&channels, amount, method, healthy, roll)
            .into_iter()
            .filter_map(|c| {
                entries
                    .iter()
                    .find(|e| e.channel.channel_id == c.channel_id)
            })
            .cloned()
            .collect()
    }

    /// The channel a new order is routed to: the first candidate for its method or, for a
    /// cashier order that no channel maps as such, for any method its page offers.
    pub fn route(&self, order: &Order, now_ms: i64, roll: f64) -> Option<(ChannelKind, String)> {
        let methods = std::iter::once(order.method).chain(order.offered_methods());
        methods
            .filter_map(|method| {
                self.candidates(order, method, now_ms, roll)
                    .into_iter()
                    .next()
            })
            .map(|e| (e.channel.kind, e.channel.channel_id))
            .next()
    }

    /// Whether a call may go to the channel now (its circuit is not open; one probe when
    /// half-open).
    pub fn admit(&self, channel_id: &str, now_ms: i64) -> bool {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        breakers
            .entry(channel_id.to_string())
            .or_default()
            .admit(now_ms)
    }

    /// Records whether a call to the channel found it working.
    pub fn record(&self, channel_id: &str, ok: bool, now_ms: i64) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let breaker = breakers.entry(channel_id.to_string()).or_default();
        let before = breaker.state(now_ms);
        breaker.record(self.policy, ok, now_ms);
        let after = breaker.state(now_ms);
        if before != after {
            tracing::warn!(channel = %channel_id, from = before.as_str(), to = after.as_str(), "circuit changed");
        }
        crate::telemetry::circuit(channel_id, after);
    }
}

/// Reads the channels again every `interval_ms` until `shutdown` turns true.
pub async fn run(book: Arc<ChannelBook>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = book.refresh().await {
            tracing::warn!(error = %e, "cannot read the channels; routing keeps the last ones read");
        }
    }
}
