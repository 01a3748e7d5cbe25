//! The accept loop: HTTP/1.1 connections with limits that `axum::serve` does not set. A client
//! that opens connections and sends headers slowly (or nothing at all) cannot hold them: the
//! headers of each request, and the wait for the next request on a kept-alive connection, must
//! arrive within the header-read timeout; header bytes are bounded; past `max_connections`
//! new connections wait in the kernel's backlog instead of each taking a task and a buffer; and
//! one address holds at most `max_connections_per_address` of them (more are closed at once),
//! so a flood from one client leaves room for everyone else. Each request carries its peer's
//! address (`ConnectInfo`) for the limits further in.

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits on connections, below the request-level limits of the router.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Time for a request's headers to arrive, counted from the start of the wait for them
    /// (so it also closes a kept-alive connection left idle this long).
    pub header_read_timeout_ms: u64,
    /// Bytes of request line and headers buffered per connection; larger heads get 431.
    pub max_header_bytes: usize,
    /// Open connections at once; more wait, unaccepted.
    pub max_connections: usize,
    /// Open connections from one IP address; more are closed as soon as they are accepted.
    pub max_connections_per_address: usize,
    /// Time open connections get to finish on shutdown before they are dropped.
    pub shutdown_grace_ms: u64,
    /// The listener's name in the metrics (`public`, `admin`).
    pub name: &'static str,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            max_connections: 4_096,
            max_connections_per_address: 256,
            shutdown_grace_ms: 10_000,
            name: "public",
        }
    }
}

/// Open connections per client address; a connection's [`AddressSlot`] gives its place back.
#[derive(Clone, Default)]
pub struct PerAddress {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One place taken from a [`PerAddress`] count, given back on drop.
pub struct AddressSlot {
    counts: PerAddress,
    ip: IpAddr,
}

impl PerAddress {
    /// A place for one more from `ip`, unless it holds `max` already.
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock().expect("per-address counts");
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("per-address counts");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// hyper refuses read buffers below this size.
const HYPER_MIN_BUF_BYTES: usize = 8 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections finish
/// their current request (within the grace time).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)))
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF_BYTES))
        .keep_alive(true);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = PerAddress::default();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let max_per_address = limits.max_connections_per_address.max(1);
        let Some(address_slot) = per_address.take(peer.ip(), max_per_address) else {
            tracing::debug!(peer = %peer.ip(), "too many connections from one address; closed");
            continue; // the stream and the permit are dropped: closed, and room for others
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let level = crate::telemetry::Level::connection(limits.name);
        tokio::spawn(async move {
            let _open = level;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(address_slot);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_millis(limits.shutdown_grace_ms)) => {
            tracing::warn!("connections still open after the shutdown grace time; dropping them");
        }
    }
    Ok(())
}
