//! The callback dispatcher: delivers due callbacks from the outbox to merchants.
//!
//! It knows bytes and headers, not dialects. Each node leases a batch of due callbacks, so a
//! callback is sent by one node at a time; a node that dies releases its leases by letting them
//! expire. Every attempt is recorded. A callback is acknowledged only by HTTP 2xx with the body
//! `success` (any case, surrounding whitespace ignored); otherwise it is retried as the core's
//! [`RetryPolicy`] says, then marked dead. Delivery is fair ([`crate::fairness`]): each
//! endpoint and app gets a bounded share of the slots, and a failing endpoint backs off as a
//! whole, so one merchant's dead endpoint does not delay the others.

use crate::callback_client::{Answer, CallbackClient, NoAnswer};
use crate::fairness::{Admission, Fairness};
use crate::telemetry::{self, AttemptOutcome};
use crate::{fairness, now_ms, ssrf};
use hyper::Uri;
use kassa_core::callback::{RetryPolicy, is_acknowledgement};
use kassa_core::{AppId, Secret};
use kassa_signature::webhook::WebhookSigner;
use kassa_store::{AfterAttempt, Attempt, Callback, FinishedAttempt, Store};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// How long a claimed callback whose endpoint or app is at its share waits in this node for a
/// slot before it goes back to the database. A responsive endpoint frees a slot within
/// milliseconds, so its backlog is sent from here without being claimed twice; a slow one's
/// callbacks go back soon, so the claims reach other merchants' callbacks behind them.
const HOLD_PATIENCE_MS: i64 = 100;

/// Callbacks a node holds at most (in flight and claimed ahead), as a multiple of its slots.
/// What it holds must outlast a claim, which waits for a commit (about a millisecond with its
/// gather on SQLite): with twice the slots, a backlog going out at 25,000 deliveries a second
/// ran dry before the next claim came back, and a sixth to a fifth of the slots that finished
/// found nothing to send (docs/performance.md, "A claim that outlasts").
const CLAIMED_AHEAD: usize = 4;

/// What a claim brought: the callbacks, and whether it found fewer than it asked for.
struct Claimed {
    held: Vec<Held>,
    drained: bool,
}

/// The future in `slot`, if there is one; never ready otherwise (a `select!` branch that waits
/// only while something is under way).
async fn maybe<F: Future + Unpin>(slot: Option<&mut F>) -> Option<F::Output> {
    match slot {
        Some(future) => Some(future.await),
        None => std::future::pending().await,
    }
}

/// What this node claimed and has not sent yet, in claim order. The loop adds claims and gives
/// back what waited too long; a delivery that finishes takes from it the next callback its slot
/// may send ([`Dispatcher::next_for_slot`]), so a busy endpoint's backlog goes out without a hop
/// through the loop and a task of its own per callback. A queue, since slots mostly take its
/// first: a list would move everything behind it (a few hundred bytes each) at every take.
type Waiting = Arc<std::sync::Mutex<VecDeque<Held>>>;

fn lock(waiting: &Waiting) -> std::sync::MutexGuard<'_, VecDeque<Held>> {
    waiting.lock().expect("the waiting callbacks")
}

/// A callback this node claimed and has not sent yet, with its target and endpoint (parsed and
/// checked once, however often it is offered to fairness) and its app's webhook signers.
struct Held {
    callback: Callback,
    target: Result<Uri, NoAnswer>,
    endpoint: String,
    signers: Arc<[WebhookSigner]>,
    since_ms: i64,
}

/// Bytes of a response read to decide on acknowledgement; the rest is not read.
const MAX_RESPONSE_READ: usize = 16 * 1024;
/// Bytes of a response kept in the attempt log.
const RESPONSE_EXCERPT: usize = 1024;
/// The name of the dispatcher's thread, when it has one of its own ([`Dispatcher::start`]).
pub const THREAD: &str = "kassa-callbacks";
/// The name of the lanes' threads, numbered from 1 (the kernel shows 15 bytes of a name).
pub const LANE_THREAD: &str = "kassa-lane";
/// Most lanes, the dispatcher's own thread included: measured with two on two cores.
const MAX_LANES: usize = 4;
/// Finished attempts waiting to be recorded; a full queue holds deliveries back.
const RECORD_QUEUE: usize = 1_024;
/// Most attempts recorded in one transaction.
const MAX_RECORD_BATCH: usize = 256;
/// The longest a connection to a merchant may take to open: a host that does not answer is
/// given up on quickly, not after the whole request timeout.
const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Extra lease time beyond the request timeout, so a lease never expires mid-attempt.
const LEASE_MARGIN_MS: u64 = 10_000;

#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// When an unacknowledged callback is tried again, and when it is given up.
    pub retry: RetryPolicy,
    pub request_timeout_ms: u64,
    /// Most deliveries in flight at once.
    pub max_concurrency: usize,
    /// Most deliveries in flight to one endpoint (scheme, host, port), and for one app: one
    /// merchant's slow endpoint never takes every slot.
    pub max_per_endpoint: usize,
    pub max_per_app: usize,
    /// How often an idle dispatcher looks for due callbacks (other nodes and commands add them).
    pub idle_poll_ms: u64,
    /// Deliver to private, loopback and other forbidden addresses (sandboxes and tests only).
    pub allow_private_targets: bool,
    /// The only ports a callback may go to; empty: any port.
    pub allowed_ports: Vec<u16>,
    /// This node's name in leases and in the attempt log.
    pub node_id: String,
    /// Opens the apps' sealed webhook secrets.
    pub kek: Arc<crate::sealing::Kek>,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            retry: RetryPolicy::default(),
            request_timeout_ms: 10_000,
            max_concurrency: 32,
            max_per_endpoint: 8,
            max_per_app: 16,
            idle_poll_ms: 1_000,
            allow_private_targets: false,
            allowed_ports: Vec::new(),
            node_id: format!("node-{}", crate::ids::new_callback_id(crate::now_ms())),
            // A key of its own opens only secrets stored in clear: give the database's KEK.
            kek: Arc::new(crate::sealing::Kek::generate().0),
        }
    }
}

/// A thread beside the dispatcher's own that delivers for some of its slots: its runtime,
/// and a client of its own, whose connections that runtime drives (a connection shared between
/// two runtimes would wake the other thread at every exchange).
struct Lane {
    runtime: tokio::runtime::Handle,
    client: CallbackClient,
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    /// Each endpoint's and app's share of the slots, and failing endpoints' backoff.
    fairness: Fairness,
    client: CallbackClient,
    /// The lanes beside the dispatcher's own thread, when it runs on one (see
    /// [`Dispatcher::start`]); slots take the dispatcher's thread and the lanes in turn.
    lanes: std::sync::OnceLock<Vec<Lane>>,
    next_lane: AtomicUsize,
    config: DispatcherConfig,
    /// Poked when this process queues a callback, so delivery starts without waiting a poll.
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        config: DispatcherConfig,
        wake: Arc<Notify>,
    ) -> Result<Dispatcher, String> {
        let client = client_for(&config)?;
        Ok(Dispatcher {
            lanes: std::sync::OnceLock::new(),
            next_lane: AtomicUsize::new(0),
            store,
            fairness: Fairness::new(
                config.max_per_endpoint,
                config.max_per_app,
                config.retry.retry_interval_ms,
            ),
            client,
            config,
            wake,
        })
    }

    /// Starts [`Dispatcher::run`]; its handle ends when the dispatcher stops. `own_thread`: on a
    /// thread of its own ([`THREAD`]) with a single-threaded runtime, so a delivery's tasks (its
    /// slot, its connection, the recorder) stay on one thread and wake each other without
    /// waking the serving runtime's parked workers, and deliveries never take those workers
    /// from requests (docs/performance.md, "The dispatcher on a thread of its own"); with more
    /// than one core, slots also run on lanes ([`LANE_THREAD`]), one per further core up to
    /// [`MAX_LANES`] in all, so that deliveries answered at once are handled on more than one
    /// core (docs/performance.md, "Lanes: a delivery's slot on more than one thread"). Only for
    /// a store whose calls do no I/O on the runtime that made it
    /// (`Backend::calls_bound_to_runtime`: with PostgreSQL the dispatcher stays on it).
    pub fn start(
        self: Arc<Self>,
        shutdown: watch::Receiver<bool>,
        own_thread: bool,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        if !own_thread {
            return Ok(tokio::spawn(self.run(shutdown)));
        }
        let runtime = single_threaded()?;
        let lanes_end = self.start_lanes(lane_count() - 1)?;
        let (stopped, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || {
                runtime.block_on(self.run(shutdown));
                // Every slot has finished: the lanes' threads end, their idle connections with them.
                drop(lanes_end);
                let _ = stopped.send(());
            })?;
        Ok(tokio::spawn(async move {
            let _ = finished.await;
        }))
    }

    /// Starts `count` lanes, each a thread that runs its runtime until the sender returned for
    /// it is dropped.
    fn start_lanes(&self, count: usize) -> std::io::Result<Vec<tokio::sync::oneshot::Sender<()>>> {
        let (mut lanes, mut ends) = (Vec::new(), Vec::new());
        for number in 1..=count {
            let runtime = single_threaded()?;
            let client = client_for(&self.config).map_err(std::io::Error::other)?;
            let (end, ended) = tokio::sync::oneshot::channel::<()>();
            lanes.push(Lane {
                runtime: runtime.handle().clone(),
                client,
            });
            std::thread::Builder::new()
                .name(format!("{LANE_THREAD}-{number}"))
                .spawn(move || {
                    let _ = runtime.block_on(ended);
                })?;
            ends.push(end);
        }
        let _ = self.lanes.set(lanes);
        Ok(ends)
    }

    /// Runs until `shutdown` turns true, then waits for deliveries in flight and their records.
    /// A claim runs beside the deliveries (it waits for a commit), so slots are refilled from
    /// callbacks claimed ahead while the next claim is written.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.config.max_concurrency));
        let mut in_flight = JoinSet::new();
        let waiting: Waiting = Arc::default();
        let mut claiming: Option<Pin<Box<dyn Future<Output = Claimed> + Send + '_>>> = None;
        // Whether the last claim found fewer than it asked for: the next waits for a poke, a
        // finished delivery or the poll (never a claim right after an empty one).
        let mut drained = false;
        // When the soonest callback this node gave back is due again: the loop looks then,
        // not only at the poll, since a node that found nothing due may be idle meanwhile.
        let mut given_back_due: Option<i64> = None;
        let (records, recorder) = self.clone().start_recorder();
        tracing::info!(node = %self.config.node_id, "callback dispatcher started");
        while !*shutdown.borrow() {
            while in_flight.try_join_next().is_some() {}
            // What waits here was claimed already: it goes first.
            let batch = std::mem::take(&mut *lock(&waiting));
            let slots = (&permits, &waiting, &shutdown);
            let given_back = self.dispatch(batch, slots, &mut in_flight, &records).await;
            given_back_due = given_back_due.into_iter().chain(given_back).min();
            let held = lock(&waiting).len();
            if claiming.is_none()
                && let Some(limit) =
                    claim_size(self.config.max_concurrency, held, in_flight.len(), drained)
            {
                claiming = Some(Box::pin(self.claim(limit)));
            }
            // Wait for a claim, a poke, a finished delivery, the poll interval (sooner while
            // callbacks wait here: they go back when their patience runs out), or shutdown.
            let poll_ms = poll_ms(self.config.idle_poll_ms, held, given_back_due, now_ms());
            tokio::select! {
                Some(claimed) = maybe(claiming.as_mut()) => {
                    claiming = None;
                    drained = claimed.drained;
                    lock(&waiting).extend(claimed.held);
                }
                _ = self.wake.notified() => drained = false,
                _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {
                    drained = false;
                    given_back_due = given_back_due.filter(|&due_ms| due_ms > now_ms());
                }
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => drained = false,
                _ = shutdown.changed() => {}
            }
        }
        // A claim under way is finished, so what it leased is given back now, not at expiry.
        if let Some(claiming) = claiming {
            let claimed = claiming.await;
            lock(&waiting).extend(claimed.held);
        }
        // Deliveries under way finish (they take nothing more once shutdown is seen).
        while in_flight.join_next().await.is_some() {}
        let back: Vec<(String, i64)> = std::mem::take(&mut *lock(&waiting))
            .into_iter()
            .map(|h| (h.callback.callback_id, now_ms()))
            .collect();
        self.release(&back).await;
        drop(records);
        let _ = recorder.await;
        tracing::info!(node = %self.config.node_id, "callback dispatcher stopped");
    }

    /// Leases up to `limit` due callbacks, with their apps' webhook signers.
    async fn claim(&self, limit: i64) -> Claimed {
        let now = now_ms();
        let lease_ms = (self.config.request_timeout_ms + LEASE_MARGIN_MS) as i64;
        let node = &self.config.node_id;
        match self
            .store
            .claim_due_callbacks(now, limit, node, now + lease_ms)
            .await
        {
            Ok(batch) => Claimed {
                drained: (batch.len() as i64) < limit,
                held: self.held(batch, now).await,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim callbacks; retrying");
                Claimed {
                    drained: true,
                    held: Vec::new(),
                }
            }
        }
    }

    /// A claimed batch with its apps' webhook signers, waiting since `now_ms`. Each distinct URL
    /// is parsed and checked once per batch: a merchant's callbacks mostly go to one address,
    /// and a copy costs less than a parse.
    async fn held(&self, batch: Vec<Callback>, now_ms: i64) -> Vec<Held> {
        let signers = self.signers_for(&batch).await;
        let mut parsed: HashMap<&str, (Result<Uri, NoAnswer>, String)> = HashMap::new();
        let targets: Vec<_> = batch
            .iter()
            .map(|callback| {
                let url = callback.url.as_str();
                let (target, endpoint) = parsed.entry(url).or_insert_with(|| {
                    let parsed = url::Url::parse(url);
                    let endpoint = fairness::endpoint_of(url, parsed.as_ref().ok());
                    (self.target(parsed), endpoint)
                });
                (target.clone(), endpoint.clone())
            })
            .collect();
        batch
            .into_iter()
            .zip(targets)
            .map(|(callback, (target, endpoint))| Held {
                endpoint,
                target,
                signers: signers
                    .get(&callback.app_id)
                    .cloned()
                    .unwrap_or_else(no_signers),
                callback,
                since_ms: now_ms,
            })
            .collect()
    }

    /// Where a callback's URL may be sent: refused if it does not parse, or (at delivery as at
    /// creation, since the operator's rules may have changed) if its port is not allowed or its
    /// host is a forbidden address written out. Names are checked as they resolve.
    fn target(&self, parsed: Result<url::Url, url::ParseError>) -> Result<Uri, NoAnswer> {
        let failed = |error: String| (AttemptOutcome::Error, error);
        let blocked = |error: String| (AttemptOutcome::Blocked, error);
        let url = parsed.map_err(|e| failed(format!("bad URL: {e}")))?;
        ssrf::check_port(&url, &self.config.allowed_ports).map_err(blocked)?;
        if !self.config.allow_private_targets {
            ssrf::check_literal(&url).map_err(blocked)?;
        }
        Uri::try_from(url.as_str()).map_err(|e| failed(format!("bad URL: {e}")))
    }

    /// The lane the next slot runs on: 0, the dispatcher's own thread, or one of its lanes.
    fn next_lane(&self) -> usize {
        let lanes = 1 + self.lanes.get().map_or(0, Vec::len);
        self.next_lane.fetch_add(1, Ordering::Relaxed) % lanes
    }

    /// Lane number `lane` beside the dispatcher's own thread (0), if it has such a lane.
    fn lane(&self, lane: usize) -> Option<&Lane> {
        self.lanes.get()?.get(lane.checked_sub(1)?)
    }

    /// The client of the runtime that `lane`'s slots run on.
    fn client_of(&self, lane: usize) -> &CallbackClient {
        self.lane(lane).map_or(&self.client, |on| &on.client)
    }

    /// Sends what a free slot and fairness let go now, each slot in its own task. What waits for
    /// a slot or its endpoint's or app's share stays waiting for [`HOLD_PATIENCE_MS`], then goes
    /// back to the database; what waits for a suspended endpoint goes back at once. When the
    /// soonest of those given back is due again, if any.
    async fn dispatch(
        self: &Arc<Self>,
        batch: VecDeque<Held>,
        (permits, waiting, shutdown): (&Arc<Semaphore>, &Waiting, &watch::Receiver<bool>),
        in_flight: &mut JoinSet<()>,
        records: &mpsc::Sender<FinishedAttempt>,
    ) -> Option<i64> {
        let now = now_ms();
        let (mut later, mut held) = (Vec::new(), Vec::new());
        // Endpoints found busy in this pass (at their share, or their app at its): their other
        // callbacks wait without asking again (a pass offers everything claimed ahead, often
        // to one endpoint); the next pass asks afresh.
        let mut busy: Vec<String> = Vec::new();
        for candidate in batch {
            let app_id = candidate.callback.app_id;
            // Every slot taken counts as a busy endpoint: the loop never waits for a slot
            // (claims and releases go on), and a callback held too long goes back.
            let permit = match busy.contains(&candidate.endpoint) {
                true => None,
                false => permits.clone().try_acquire_owned().ok(),
            };
            let admission = match permit {
                Some(_) => self.fairness.admit(&candidate.endpoint, app_id, now),
                None => Admission::Busy,
            };
            if admission == Admission::Busy && permit.is_some() {
                busy.push(candidate.endpoint.clone());
            }
            match admission {
                Admission::Go => {}
                Admission::Busy if now - candidate.since_ms < HOLD_PATIENCE_MS => {
                    held.push(candidate);
                    continue;
                }
                Admission::Busy => {
                    later.push((candidate.callback.callback_id, now + fairness::DEFER_MS));
                    continue;
                }
                Admission::Later { at_ms } => {
                    later.push((candidate.callback.callback_id, at_ms));
                    continue;
                }
            }
            let permit = permit.expect("admitted with a slot");
            let (this, records) = (self.clone(), records.clone());
            let (shared, shutdown) = (waiting.clone(), shutdown.clone());
            let lane = self.next_lane();
            let slot = async move {
                let mut next = Some(candidate);
                while let Some(held) = next {
                    this.deliver_held(held, &records, lane).await;
                    next = match *shutdown.borrow() {
                        true => None,
                        false => this.next_for_slot(&shared),
                    };
                }
                drop(permit);
            };
            match self.lane(lane) {
                Some(on) => in_flight.spawn_on(slot, &on.runtime),
                None => in_flight.spawn(slot),
            };
        }
        lock(waiting).extend(held);
        self.release(&later).await;
        later.iter().map(|(_, due_ms)| *due_ms).min()
    }

    /// Delivers one admitted callback, tells fairness, and hands the attempt to the recorder.
    async fn deliver_held(&self, held: Held, records: &mpsc::Sender<FinishedAttempt>, lane: usize) {
        let (endpoint, app_id) = (held.endpoint, held.callback.app_id);
        let level = telemetry::Level::callback_in_flight();
        let finished = self
            .deliver(held.callback, held.target, held.signers, lane)
            .await;
        drop(level);
        let acknowledged = finished.attempt.acknowledged;
        self.fairness
            .finished(&endpoint, app_id, acknowledged, now_ms());
        // Waits when the recorder is behind: back-pressure, bounded memory.
        let _ = records.send(finished).await;
    }

    /// What a slot that just finished sends next: the first waiting callback, in claim order,
    /// that fairness admits now — the one the loop would give that slot. What fairness turns
    /// away stays for the loop, which gives it back when its patience runs out.
    fn next_for_slot(&self, waiting: &Waiting) -> Option<Held> {
        let now = now_ms();
        let mut waiting = lock(waiting);
        let mut busy: Vec<&str> = Vec::new();
        let mut admitted = None;
        for (at, held) in waiting.iter().enumerate() {
            if busy.contains(&held.endpoint.as_str()) {
                continue;
            }
            match self
                .fairness
                .admit(&held.endpoint, held.callback.app_id, now)
            {
                Admission::Go => {
                    admitted = Some(at);
                    break;
                }
                _ => busy.push(&held.endpoint),
            }
        }
        let next = admitted.and_then(|at| waiting.remove(at));
        // The loop is not woken by deliveries that go on: at half of what the node holds, it
        // is poked to claim more while the rest is sent.
        let half = self.config.max_concurrency * CLAIMED_AHEAD / 2;
        if next.is_some() && waiting.len() == half {
            self.wake.notify_one();
        }
        next
    }

    /// Gives leases back without an attempt, each callback due again at its time.
    async fn release(&self, later: &[(String, i64)]) {
        if let Err(e) = self
            .store
            .release_callbacks(&self.config.node_id, later)
            .await
        {
            // The leases expire by themselves; the callbacks come back then.
            tracing::warn!(error = %e, "cannot release deferred callbacks");
        }
    }

    /// The task that records finished attempts, many per transaction.
    fn start_recorder(
        self: Arc<Self>,
    ) -> (mpsc::Sender<FinishedAttempt>, tokio::task::JoinHandle<()>) {
        let (records, mut queue) = mpsc::channel::<FinishedAttempt>(RECORD_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_RECORD_BATCH {
                    match queue.try_recv() {
                        Ok(finished) => batch.push(finished),
                        Err(_) => break,
                    }
                }
                match self
                    .store
                    .finish_attempts(&self.config.node_id, &batch)
                    .await
                {
                    Ok(kept) => {
                        for (finished, kept) in batch.iter().zip(kept) {
                            if !kept {
                                tracing::warn!(callback_id = %finished.callback_id, "lease lost during an attempt");
                            }
                        }
                    }
                    // The leases expire and other attempts follow: at least once, never lost.
                    Err(e) => {
                        tracing::error!(error = %e, attempts = batch.len(), "cannot record attempts")
                    }
                }
            }
        });
        (records, task)
    }

    /// The webhook signers of the apps in a batch, one look-up per app and each key derived
    /// once for the batch: the current secret's, and the one it replaced while that still signs.
    async fn signers_for(&self, batch: &[Callback]) -> HashMap<AppId, Arc<[WebhookSigner]>> {
        let mut signers = HashMap::new();
        for callback in batch {
            if signers.contains_key(&callback.app_id) {
                continue;
            }
            match self.store.app(callback.app_id).await {
                Ok(Some(app)) => {
                    let now = now_ms();
                    let retiring = app.retiring_webhook_secret.as_ref();
                    let stored = std::iter::once(&app.webhook_secret)
                        .chain(retiring.filter(|(_, until)| *until > now).map(|(s, _)| s));
                    let usable: Arc<[WebhookSigner]> = stored
                        .filter_map(|sealed| self.signer(callback.app_id, sealed))
                        .collect();
                    signers.insert(callback.app_id, usable);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read webhook secret"),
            }
        }
        signers
    }

    /// The signer of a sealed webhook secret, or none (logged) if it does not open or is not a
    /// webhook secret.
    fn signer(&self, app_id: AppId, sealed: &Secret) -> Option<WebhookSigner> {
        let kek = &self.config.kek;
        let opened = kek.open(crate::sealing::WEBHOOK_SECRET, sealed.expose());
        let signer = opened
            .map_err(|e| e.to_string())
            .and_then(|secret| WebhookSigner::new(&secret).map_err(|e| e.to_string()));
        signer
            .inspect_err(|e| {
                tracing::error!(app_id = app_id.0, error = %e, "cannot open the webhook secret")
            })
            .ok()
    }

    /// One attempt: send to `target` (the callback's URL, parsed) and judge; the recorder
    /// stores the outcome. The body goes into the request (nothing after the send reads it).
    async fn deliver(
        &self,
        mut callback: Callback,
        target: Result<Uri, NoAnswer>,
        signers: Arc<[WebhookSigner]>,
        lane: usize,
    ) -> FinishedAttempt {
        let started_at_ms = now_ms();
        let clock = Instant::now();
        let body = std::mem::take(&mut callback.body);
        let sent = self.send(&callback, body, target, &signers, started_at_ms, lane);
        let result = sent.await;
        let latency_ms = clock.elapsed().as_millis() as i64;
        let finished_at_ms = started_at_ms + latency_ms;
        let (http_status, response_excerpt, outcome, error) = match result {
            Ok(Answer { status, body }) => {
                let body = String::from_utf8_lossy(&body);
                let outcome = if is_acknowledgement(status, &body) {
                    AttemptOutcome::Acknowledged
                } else {
                    AttemptOutcome::Refused
                };
                let excerpt = Some(excerpt(&body));
                (Some(i64::from(status)), excerpt, outcome, None)
            }
            Err((outcome, error)) => (None, None, outcome, Some(error)),
        };
        let acknowledged = outcome == AttemptOutcome::Acknowledged;
        let after =
            self.config
                .retry
                .after_attempt(acknowledged, callback.first_due_at_ms, finished_at_ms);
        let queued_for_s = (finished_at_ms - callback.created_at_ms) as f64 / 1000.0;
        let died = matches!(after, AfterAttempt::Dead { .. });
        telemetry::callback_attempt(outcome, queued_for_s, died);
        let attempt = Attempt {
            attempt_no: 0,
            started_at_ms,
            latency_ms,
            http_status,
            error: error.clone(),
            response_excerpt,
            acknowledged,
            node: self.config.node_id.clone(),
        };
        let request_id = request_id_of(&callback);
        tracing::debug!(
            callback_id = %callback.callback_id,
            order_no = %callback.order_no,
            request_id,
            http_status,
            error = error.as_deref().unwrap_or(""),
            acknowledged,
            latency_ms,
            "callback attempt"
        );
        if let AfterAttempt::Dead { .. } = after {
            tracing::warn!(callback_id = %callback.callback_id, order_no = %callback.order_no, request_id, "callback dead after its maximum age");
        }
        FinishedAttempt {
            callback_id: callback.callback_id,
            attempt,
            after,
        }
    }

    /// Sends the callback with `body`, signed with each of its app's secrets; the status and the
    /// first bytes of the answer, or why nothing came back.
    async fn send(
        &self,
        callback: &Callback,
        body: String,
        target: Result<Uri, NoAnswer>,
        signers: &[WebhookSigner],
        started_at_ms: i64,
        lane: usize,
    ) -> Result<Answer, NoAnswer> {
        let failed = |error: String| (AttemptOutcome::Error, error);
        let target = target?;
        if signers.is_empty() {
            return Err(failed("the app has no webhook secret".into()));
        }
        let timestamp_s = started_at_ms / 1000;
        // One signature per secret, space-separated: either verifies (Standard Webhooks).
        let id = &callback.callback_id;
        let signatures: Vec<String> = signers
            .iter()
            .map(|signer| signer.header(id, timestamp_s, body.as_bytes()))
            .collect();
        let (signature, timestamp) = (signatures.join(" "), timestamp_s.to_string());
        let mut headers = vec![
            ("webhook-id", callback.callback_id.as_str()),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        headers.extend(
            callback
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        self.client_of(lane)
            .post(target, &headers, body, MAX_RESPONSE_READ)
            .await
    }
}

/// How many callbacks to claim now, if any: once what waits here has fallen to half of the
/// [`CLAIMED_AHEAD`] times the `slots` a node holds (where a finishing slot pokes the loop), as
/// many as bring it back to full, in flight and waiting; none while the last claim found the
/// due ones drained. A claim is a write, and the attempts recorded meanwhile commit with it
/// (SQLite's writer holds their batch for the next claim): claims of half of what a node
/// holds are half the commits of claims as soon as a few went out.
fn claim_size(slots: usize, held: usize, in_flight: usize, drained: bool) -> Option<i64> {
    let holds = slots * CLAIMED_AHEAD;
    let wanted = holds.saturating_sub(held + in_flight);
    (held <= holds / 2 && wanted > 0 && !drained).then_some(wanted as i64)
}

/// How long the loop waits at most before it looks again: the poll interval, sooner while
/// callbacks wait here (they go back when their patience runs out) or when one given back is
/// due again (`given_back_due`).
fn poll_ms(idle_poll_ms: u64, held: usize, given_back_due: Option<i64>, now_ms: i64) -> u64 {
    let patience = match held {
        0 => idle_poll_ms,
        _ => idle_poll_ms.min(HOLD_PATIENCE_MS as u64),
    };
    let due_in_ms = given_back_due.map_or(u64::MAX, |due_ms| {
        due_ms.saturating_sub(now_ms).max(0) as u64
    });
    patience.min(due_in_ms)
}

/// How many lanes deliver, the dispatcher's own thread included: one per core, up to
/// [`MAX_LANES`].
pub fn lane_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.clamp(1, MAX_LANES)
}

fn single_threaded() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The delivery client as `config` sets it up.
fn client_for(config: &DispatcherConfig) -> Result<CallbackClient, String> {
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let connect_timeout = timeout.min(Duration::from_millis(CONNECT_TIMEOUT_MS));
    CallbackClient::new(
        concat!("kassa-callbacks/", env!("CARGO_PKG_VERSION")),
        (connect_timeout, timeout),
        config.allow_private_targets,
        config.max_per_endpoint,
    )
}

/// An app without a webhook secret that opens: its callbacks fail with that reason.
fn no_signers() -> Arc<[WebhookSigner]> {
    Arc::from(Vec::new())
}

/// The id of the request that caused a callback (sent with it as `X-Request-Id`), or "".
fn request_id_of(callback: &Callback) -> &str {
    callback
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(crate::request_id::HEADER))
        .map_or("", |(_, value)| value.as_str())
}

/// The first [`RESPONSE_EXCERPT`] bytes, cut at a character boundary.
fn excerpt(body: &str) -> String {
    let mut end = body.len().min(RESPONSE_EXCERPT);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::{HOLD_PATIENCE_MS, claim_size, poll_ms};

    /// A node that gave callbacks back looks again when the soonest is due, not only at the
    /// poll: with nothing due it may have no other reason to wake.
    #[test]
    fn the_loop_looks_again_when_a_callback_given_back_is_due() {
        assert_eq!(poll_ms(30_000, 0, None, 1_000), 30_000);
        assert_eq!(poll_ms(30_000, 0, Some(1_500), 1_000), 500);
        assert_eq!(poll_ms(30_000, 0, Some(900), 1_000), 0, "due already");
        assert_eq!(poll_ms(30_000, 5, None, 1_000), HOLD_PATIENCE_MS as u64);
        assert_eq!(poll_ms(30_000, 5, Some(1_020), 1_000), 20);
        assert_eq!(poll_ms(50, 0, Some(9_000), 1_000), 50);
    }

    /// With every slot busy and twice the slots waiting, a node claims again: what it holds
    /// must outlast the claim's commit (holding only twice the slots, it ran dry).
    #[test]
    fn a_busy_node_claims_before_it_runs_dry() {
        let slots = 32;
        assert_eq!(claim_size(slots, 2 * slots, slots, false), Some(32));
        let half = slots * super::CLAIMED_AHEAD / 2;
        for in_flight in 0..=slots {
            assert!(
                claim_size(slots, half, in_flight, false).is_some(),
                "poked at half of what it holds, with {in_flight} in flight, it claims"
            );
        }
        assert_eq!(
            claim_size(slots, 0, 0, false),
            Some(128),
            "an idle node fills up"
        );
        assert_eq!(
            claim_size(slots, 3 * slots, slots, false),
            None,
            "it holds enough"
        );
        assert_eq!(
            claim_size(slots, half + 1, 8, false),
            None,
            "a claim is a write: above half of what it holds, it waits for the poke"
        );
        assert_eq!(claim_size(slots, half, 8, false), Some(56));
        assert_eq!(claim_size(slots, 0, 1, false), Some(127));
        assert_eq!(
            claim_size(slots, 0, 0, true),
            None,
            "not right after an empty claim"
        );
    }
}
