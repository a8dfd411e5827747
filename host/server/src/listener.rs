//! The accept loop: every connection is counted, timed and dropped when it
//! stops making progress.
//!
//! `axum::serve` keeps a connection for as long as the client likes: one that
//! never finishes its headers, sits idle between requests, or never reads its
//! answer holds a socket, a task and whatever was buffered for it. Here:
//! - a connection needs a slot of `max_connections` and of its address's
//!   `max_connections_per_ip`; over either, it gets one JSON error (503
//!   `capacity` / 429 `too-many-connections`) and is closed, so fresh clients
//!   learn why instead of hanging in the backlog;
//! - waiting for a request is bounded: `idle_timeout_ms` until its first byte
//!   arrives, `header_timeout_ms` from there until the head is complete;
//!   a request body must keep coming: each part within `header_timeout_ms`
//!   of the handler asking for it ([`StallTimeoutBody`]);
//! - a write that makes no progress for `write_timeout_ms` fails the
//!   connection ([`GuardedIo`]), which drops the response it was sending.
//!
//! While a request is being handled (no response body finished yet) no
//! timer but the write timeout runs: the handlers bound their own time.
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::io_timeouts::{GuardedIo, StallTimeoutBody};

pub use agentkernel_core::config::server::ServerConfig;

/// Largest request head hyper buffers. Heads up to [`super::limits`]'s own
/// bounds get a JSON 414/431 from the router; beyond this hyper refuses
/// them itself (an empty 431) without ever holding more per connection.
const MAX_HEAD_BUFFER_BYTES: usize = 64 * 1024;
/// Headers hyper parses; the router's own limit (JSON 431) is lower.
const MAX_PARSED_HEADERS: usize = 128;
/// Refusals (over a cap) being written at once; beyond, the socket is just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refusal may take to write and drain before the socket is dropped.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// The address rate limits and connection caps are kept by: an IPv4
/// address, or an IPv6 /64 (one subscriber's usual allocation, so a client
/// cannot multiply itself by rotating the low bits).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets requests in progress finish and closes idle connections.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let config = Arc::new(config);
    let slots = Arc::new(ConnectionSlots::new(&config));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    // Connections watch `stop`; the loop waits until every one has dropped its `open` receiver.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before
                    // accept: keep serving, without spinning on the error.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match slots.admit(peer.ip()) {
            Ok(slot) => {
                let connection = Connection { router: router.clone(), config: config.clone(), peer, _slot: slot };
                let (stop, open) = (stop_rx.clone(), open_rx.clone());
                tokio::spawn(async move {
                    connection.serve(stream, stop).await;
                    drop(open);
                });
            }
            Err(refusal) => {
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refusal.send(stream)).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Full,
    PerIp,
}

impl Refusal {
    /// Answers the refused client with a JSON error, then closes.
    async fn send(self, mut stream: TcpStream) -> io::Result<()> {
        let (status, code, message) = match self {
            Refusal::Full => ("503 Service Unavailable", "capacity", "the server has as many connections as it accepts; retry shortly"),
            Refusal::PerIp => ("429 Too Many Requests", "too-many-connections", "this address has as many connections open as one client may"),
        };
        let body = serde_json::to_string(&agentkernel_core::api::ErrorBody::new(code, message)).unwrap_or_default();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent before closing: closing with unread
        // input resets the connection, and the client may lose the answer.
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        Ok(())
    }
}

/// The connection caps: a global semaphore and a count per client address
/// (entries exist only while that address has connections, so the map
/// holds at most `max_connections` of them).
struct ConnectionSlots {
    global: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    per_ip_max: u32,
}

/// One admitted connection's slots, given back on drop.
struct Slot {
    _global: OwnedSemaphorePermit,
    key: IpAddr,
    slots: Arc<ConnectionSlots>,
}

impl ConnectionSlots {
    fn new(config: &ServerConfig) -> Self {
        ConnectionSlots {
            global: Arc::new(Semaphore::new(config.max_connections as usize)),
            per_ip: Mutex::new(HashMap::new()),
            per_ip_max: config.max_connections_per_ip,
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        // A full server says so to everyone, whoever holds the connections.
        let global = self.global.clone().try_acquire_owned().map_err(|_| Refusal::Full)?;
        let key = client_key(ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_ip.get(&key).copied().unwrap_or(0);
        if count >= self.per_ip_max {
            return Err(Refusal::PerIp);
        }
        per_ip.insert(key, count + 1);
        Ok(Slot { _global: global, key, slots: self.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.slots.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_ip.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.key);
            }
        }
    }
}

/// One admitted connection.
struct Connection {
    router: Router,
    config: Arc<ServerConfig>,
    peer: SocketAddr,
    _slot: Slot,
}

impl Connection {
    async fn serve(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = GuardedIo::new(stream, self.config.write_timeout(), activity.clone());
        let (router, peer, on_request) = (self.router, self.peer, activity.clone());
        // A body, once announced, must keep coming as a head must.
        let body_timeout = self.config.header_timeout();
        let service = hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = on_request.request_started();
            let response = router.clone().oneshot(request.map(|body| Body::new(StallTimeoutBody::new(body, body_timeout))));
            async move {
                let response = response.await?;
                // The request counts as in progress until its body is sent (or dropped).
                Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(BodyGuard { body, _busy: busy })))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // Our own timers ([`Activity`]) are tighter; hyper's is a backstop.
            .header_read_timeout(self.config.header_timeout() + self.config.idle_timeout())
            .max_buf_size(MAX_HEAD_BUFFER_BYTES)
            .max_headers(MAX_PARSED_HEADERS);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = activity.expired(&self.config) => {
                    tracing::debug!(%peer, "connection closed: idle or header timeout");
                    return;
                }
            }
        }
    }
}

/// Where a connection is between requests, for the idle and header timers.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in progress since this instant (or the last write progress).
    Idle(Instant),
    /// The first byte of a request head arrived at this instant.
    ReadingHead(Instant),
    /// Requests handed to the router whose responses are not finished.
    Busy(u32),
}

pub(super) struct Activity {
    phase: Mutex<Phase>,
    /// Signalled when a deadline appears or moves earlier.
    sooner: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Self {
        Activity { phase: Mutex::new(Phase::Idle(Instant::now())), sooner: tokio::sync::Notify::new() }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn read_progress(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::ReadingHead(Instant::now());
            self.sooner.notify_one();
        }
    }

    pub(super) fn write_progress(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            // The end of a response still being flushed is not idleness.
            *phase = Phase::Idle(Instant::now());
        }
    }

    fn request_started(self: &Arc<Self>) -> Busy {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        Busy(self.clone())
    }

    /// When the connection must close if nothing changes, if ever.
    fn deadline(&self, config: &ServerConfig) -> Option<Instant> {
        match *self.phase() {
            Phase::Idle(since) => Some(since + config.idle_timeout()),
            Phase::ReadingHead(since) => Some(since + config.header_timeout()),
            Phase::Busy(_) => None,
        }
    }

    /// Resolves once a deadline passes with the connection still in that phase.
    async fn expired(&self, config: &ServerConfig) {
        // Sleep to the current deadline, or until one appears or moves
        // earlier, and look again (a deadline moved later is found on waking).
        loop {
            match self.deadline(config) {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.sooner.notified() => {}
                    }
                }
                None => self.sooner.notified().await,
            }
        }
    }
}

/// A request in progress; dropping it (response body finished or
/// abandoned) may make the connection idle.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => {
                self.0.sooner.notify_one();
                Phase::Idle(Instant::now())
            }
        };
    }
}

/// A response body that keeps its request counted as in progress.
struct BodyGuard {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for BodyGuard {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Raises the soft open-file limit towards what `config` may need
/// (every connection is a descriptor, plus the database, cache and
/// agent files), so the connection cap is reached before `EMFILE`.
pub(crate) fn ensure_descriptors(config: &ServerConfig) {
    const RESERVE: u64 = 256;
    let wanted = u64::from(config.max_connections) + RESERVE;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur as u64 >= wanted {
        return;
    }
    let raised = libc::rlimit { rlim_cur: (wanted.min(limit.rlim_max as u64)) as libc::rlim_t, rlim_max: limit.rlim_max };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 || (raised.rlim_cur as u64) < wanted {
        tracing::warn!(
            "open-file limit {} is below [server] max_connections ({}) + {RESERVE}: connections may fail with EMFILE before the cap refuses them",
            raised.rlim_cur,
            config.max_connections
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_bit_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn config_is_validated() {
        assert!(ServerConfig::default().validate().is_ok());
        let zero = ServerConfig { idle_timeout_ms: 0, ..ServerConfig::default() };
        assert!(zero.validate().unwrap_err().contains("idle_timeout_ms"));
        let per_ip = ServerConfig { max_connections: 4, max_connections_per_ip: 5, ..ServerConfig::default() };
        assert!(per_ip.validate().is_err());
    }
}
