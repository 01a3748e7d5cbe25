//! Payer pages waiting for their order to change (the PIX page's long poll).
//!
//! A waiting page holds no request slot and costs no query of its own: one task per process
//! looks up the statuses of every watched order at once, each second, in batches, and wakes
//! the pages of the orders that changed — whichever node or process changed them (a bank's
//! notification on another node, `kassa trigger`, the sweep). A page then reads its order
//! once and answers. Past `max_waiters` a page is answered at once and falls back to polling
//! with backoff, so memory stays bounded.

use kassa_core::{OrderNo, OrderStatus};
use kassa_store::{MAX_STATUSES_AT_ONCE, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How often the watched orders are looked up.
const LOOK_EVERY: Duration = Duration::from_secs(1);

struct Watched {
    /// The status last seen: a change from it wakes the waiters.
    seen: OrderStatus,
    waiters: usize,
    wake: Arc<Notify>,
}

/// The orders payers' pages wait on, and the task that looks them up.
pub struct StatusWatch {
    watched: Mutex<HashMap<OrderNo, Watched>>,
    waiters: Mutex<usize>,
    max_waiters: usize,
    looking: AtomicBool,
    /// The server is stopping: waits end at once, and no new one starts.
    released: AtomicBool,
}

/// One page's wait; dropping it ends the wait (and the watch of an order nobody waits on).
pub struct Waiting {
    watch: Arc<StatusWatch>,
    order_no: OrderNo,
    pub wake: Arc<Notify>,
}

impl StatusWatch {
    pub fn new(max_waiters: usize) -> Arc<StatusWatch> {
        Arc::new(StatusWatch {
            watched: Mutex::default(),
            waiters: Mutex::new(0),
            max_waiters,
            looking: AtomicBool::new(false),
            released: AtomicBool::new(false),
        })
    }

    /// Pages waiting now.
    pub fn waiting(&self) -> usize {
        *self.waiters.lock().expect("status watch lock poisoned")
    }

    /// Starts waiting on an order last seen in `seen`; `None` when too many pages wait. The
    /// lookup task starts with the first waiter (and ends with the last).
    pub fn wait_on(
        self: &Arc<Self>,
        order_no: &OrderNo,
        seen: OrderStatus,
        store: &Arc<dyn Store>,
    ) -> Option<Waiting> {
        if self.released.load(Ordering::Acquire) {
            return None;
        }
        {
            let mut waiters = self.waiters.lock().expect("status watch lock poisoned");
            if *waiters >= self.max_waiters {
                return None;
            }
            *waiters += 1;
        }
        let wake = {
            let mut watched = self.watched.lock().expect("status watch lock poisoned");
            let entry = watched.entry(order_no.clone()).or_insert_with(|| Watched {
                seen,
                waiters: 0,
                wake: Arc::default(),
            });
            entry.waiters += 1;
            entry.wake.clone()
        };
        if !self.looking.swap(true, Ordering::AcqRel) {
            tokio::spawn(look_up(self.clone(), store.clone()));
        }
        Some(Waiting {
            watch: self.clone(),
            order_no: order_no.clone(),
            wake,
        })
    }

    /// Answers every waiting page now and lets no new one wait: the server is stopping, and
    /// the pages' next requests should find another node (or this one, restarted).
    pub fn release_all(&self) {
        self.released.store(true, Ordering::Release);
        let watched = self.watched.lock().expect("status watch lock poisoned");
        for entry in watched.values() {
            entry.wake.notify_waiters();
        }
    }

    fn snapshot(&self) -> Vec<OrderNo> {
        let watched = self.watched.lock().expect("status watch lock poisoned");
        watched.keys().cloned().collect()
    }

    /// Wakes the waiters of the orders whose status is not the one last seen.
    fn saw(&self, statuses: &[(OrderNo, OrderStatus)]) {
        let mut watched = self.watched.lock().expect("status watch lock poisoned");
        for (order_no, status) in statuses {
            if let Some(entry) = watched.get_mut(order_no)
                && entry.seen != *status
            {
                entry.seen = *status;
                entry.wake.notify_waiters();
            }
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut watched = self
            .watch
            .watched
            .lock()
            .expect("status watch lock poisoned");
        if let Some(entry) = watched.get_mut(&self.order_no) {
            entry.waiters -= 1;
            if entry.waiters == 0 {
                watched.remove(&self.order_no);
            }
        }
        drop(watched);
        *self
            .watch
            .waiters
            .lock()
            .expect("status watch lock poisoned") -= 1;
    }
}

/// Looks up the watched orders each second while any page waits. A failed lookup is retried
/// at the next tick (the pages' own deadline answers them meanwhile).
async fn look_up(watch: Arc<StatusWatch>, store: Arc<dyn Store>) {
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let order_nos = watch.snapshot();
        if order_nos.is_empty() {
            watch.looking.store(false, Ordering::Release);
            // A waiter that came meanwhile saw the flag still set: look on for it.
            if watch.snapshot().is_empty() || watch.looking.swap(true, Ordering::AcqRel) {
                return;
            }
            continue;
        }
        for batch in order_nos.chunks(MAX_STATUSES_AT_ONCE) {
            match store.order_statuses(batch).await {
                Ok(statuses) => watch.saw(&statuses),
                Err(e) => tracing::warn!(error = %e, "cannot look up the statuses pages wait on"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_wake_the_waiters_of_that_order_only() {
        let watch = StatusWatch::new(10);
        let (a, b) = (OrderNo::from_random(1), OrderNo::from_random(2));
        let mut watched = watch.watched.lock().unwrap();
        for order_no in [&a, &b] {
            watched.insert(
                order_no.clone(),
                Watched {
                    seen: OrderStatus::InProgress,
                    waiters: 1,
                    wake: Arc::default(),
                },
            );
        }
        let (wake_a, wake_b) = (watched[&a].wake.clone(), watched[&b].wake.clone());
        drop(watched);
        let notified_a = wake_a.notified();
        let notified_b = wake_b.notified();
        tokio::pin!(notified_a, notified_b);
        notified_a.as_mut().enable();
        notified_b.as_mut().enable();
        watch.saw(&[
            (a.clone(), OrderStatus::Succeeded),
            (b.clone(), OrderStatus::InProgress),
        ]);
        let waker = futures_util::task::noop_waker();
        let mut context = std::task::Context::from_waker(&waker);
        assert!(notified_a.as_mut().poll(&mut context).is_ready());
        assert!(notified_b.as_mut().poll(&mut context).is_pending());
        assert_eq!(
            watch.watched.lock().unwrap()[&a].seen,
            OrderStatus::Succeeded
        );
    }

    #[tokio::test]
    async fn a_stopping_server_answers_every_wait() {
        let db = kassa_store::testing::TestDatabase::sqlite().await;
        let store: Arc<dyn Store> = Arc::new(db.store().await);
        let watch = StatusWatch::new(10);
        let order_no = OrderNo::from_random(3);
        let waiting = watch
            .wait_on(&order_no, OrderStatus::InProgress, &store)
            .expect("room to wait");
        assert_eq!(watch.waiting(), 1);
        let wake = waiting.wake.clone();
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        watch.release_all();
        tokio::time::timeout(Duration::from_secs(1), woken)
            .await
            .expect("released at once");
        assert!(
            watch
                .wait_on(&order_no, OrderStatus::InProgress, &store)
                .is_none()
        );
        drop(waiting);
        assert_eq!(watch.waiting(), 0);
        assert!(watch.watched.lock().unwrap().is_empty());
    }
}
