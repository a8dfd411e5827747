//! [`Fetcher`]: the redirect loop, one exchange per hop, the capped body read.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderMap};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::connect;
use crate::limits::{
    MAX_PARSED_RESPONSE_HEADERS, MAX_READ_BUFFER_BYTES, MAX_RESPONSE_HEAD_BYTES,
    MAX_RESPONSE_HEADER_BYTES, MAX_RESPONSE_HEADERS,
};
use crate::request::{self, Outgoing};
use crate::scope::CheckedScope;
use crate::types::{FetchError, FetchRecord, Header, HttpRequest, HttpResponse};

/// Why a [`Fetcher`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FetcherInitError {
    /// No trusted root certificate could be loaded from the operating system.
    #[error("no TLS root certificates could be loaded from the system store: {0}")]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Makes outbound requests for agents. One per host process; cloning shares
/// the TLS configuration. Holds no connections, cookies, credentials or proxy
/// settings: every request opens its own connection and closes it.
#[derive(Clone)]
pub struct Fetcher {
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

/// How one hop ended.
enum Hop {
    Final(HttpResponse),
    Redirect { status: u16, location: String },
}

impl Fetcher {
    /// A fetcher trusting the operating system's root certificates
    /// (`rustls-native-certs`: read once, here, from disk — `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR` when set, else the platform store; no network).
    pub fn new() -> Result<Self, FetcherInitError> {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(loaded.certs);
        if roots.is_empty() {
            let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
            return Err(FetcherInitError::NoRoots(errors.join("; ")));
        }
        Self::with_roots(roots)
    }

    /// A fetcher trusting exactly `roots` (tests, private CAs).
    pub fn with_roots(roots: rustls::RootCertStore) -> Result<Self, FetcherInitError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: Arc::new(config),
        })
    }

    /// Performs `request` under `scope`, finished by
    /// min(now + request timeout, now + scope timeout, `deadline`).
    pub async fn fetch(
        &self,
        scope: &CheckedScope,
        request: HttpRequest,
        deadline: Instant,
    ) -> Result<HttpResponse, FetchError> {
        self.fetch_recorded(scope, request, deadline).await.0
    }

    /// [`Fetcher::fetch`], plus a record of what happened, on success and failure alike.
    pub async fn fetch_recorded(
        &self,
        scope: &CheckedScope,
        request: HttpRequest,
        deadline: Instant,
    ) -> (Result<HttpResponse, FetchError>, FetchRecord) {
        let started = Instant::now();
        let mut record = FetchRecord::of(request.method.clone());
        let mut limit = (started + scope.timeout()).min(deadline);
        if let Some(ms) = request.timeout_ms {
            limit = limit.min(started + std::time::Duration::from_millis(ms.into()));
        }
        let result = if Instant::now() >= limit {
            Err(FetchError::Timeout)
        } else {
            let limit = tokio::time::Instant::from_std(limit);
            tokio::time::timeout_at(limit, self.run(scope, request, limit, &mut record))
                .await
                .unwrap_or(Err(FetchError::Timeout))
        };
        record.outcome = result.as_ref().map_or_else(FetchError::code, |_| "ok");
        record.elapsed = started.elapsed();
        (result, record)
    }

    async fn run(
        &self,
        scope: &CheckedScope,
        request: HttpRequest,
        limit: tokio::time::Instant,
        record: &mut FetchRecord,
    ) -> Result<HttpResponse, FetchError> {
        let mut out = request::prepare(request)?;
        loop {
            note_hop(record, &out.url);
            if !scope.allows_url(&out.url) {
                return Err(FetchError::HostNotAllowed(request::origin(&out.url)));
            }
            match self.hop(scope, &out, limit, record).await? {
                Hop::Final(response) => return Ok(response),
                Hop::Redirect { status, location } => {
                    if record.redirects >= scope.max_redirects() {
                        return Err(FetchError::Transport(format!(
                            "too many redirects: stopped at a {status} to {location:?} after {} (max_redirects = {})",
                            record.redirects,
                            scope.max_redirects()
                        )));
                    }
                    out = out.redirected(status, &location)?;
                    record.redirects += 1;
                }
            }
        }
    }

    /// One request on a fresh connection to a checked address.
    async fn hop(
        &self,
        scope: &CheckedScope,
        out: &Outgoing,
        limit: tokio::time::Instant,
        record: &mut FetchRecord,
    ) -> Result<Hop, FetchError> {
        let addrs = connect::resolve_checked(&out.url, scope.addresses()).await?;
        let stream = connect::tcp(&addrs, limit).await?;
        record.bytes_received = 0;
        if out.url.scheme() == "https" {
            let stream = connect::tls(&self.tls, &out.url, stream).await?;
            exchange(stream, out, scope.max_response_bytes(), record).await
        } else {
            exchange(stream, out, scope.max_response_bytes(), record).await
        }
    }
}

/// The checks a fetch makes before it touches the network (the request's
/// form, its URL against the allow-list, a literal address against the
/// address policy), in the same order and with the same errors, and the
/// record of where the request would go. The `http` capability runs it
/// before a request is counted against the agent's budget; the
/// benchmark's offline client refuses what it refuses exactly as a fetch
/// would.
pub fn precheck(scope: &CheckedScope, request: &HttpRequest) -> (Result<(), FetchError>, FetchRecord) {
    let mut record = FetchRecord::of(request.method.chars().take(crate::limits::MAX_METHOD_BYTES).collect());
    let mut check = || -> Result<(), FetchError> {
        let out = request::prepare(request.clone())?;
        note_hop(&mut record, &out.url);
        if !scope.allows_url(&out.url) {
            return Err(FetchError::HostNotAllowed(request::origin(&out.url)));
        }
        let literal = match out.url.host() {
            Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
            _ => None,
        };
        if let Some(ip) = literal {
            scope.addresses().check(ip).map_err(FetchError::AddressNotAllowed)?;
        }
        Ok(())
    };
    let result = check();
    record.outcome = result.as_ref().err().map_or("ok", FetchError::code);
    (result, record)
}

fn note_hop(record: &mut FetchRecord, url: &url::Url) {
    record.scheme = url.scheme().to_string();
    record.host = crate::scope::normalise_host(url).unwrap_or_default();
    record.port = url.port_or_known_default().unwrap_or(0);
}

/// Aborts the connection task when the exchange ends or is cancelled.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn transport(context: &str, e: &(dyn StdError + 'static)) -> FetchError {
    let mut msg = format!("{context}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    FetchError::Transport(msg)
}

/// HTTP/1.1 over `io`: send, read the head, then the body under `cap`.
async fn exchange<S>(
    io: S,
    out: &Outgoing,
    cap: u64,
    record: &mut FetchRecord,
) -> Result<Hop, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(MAX_PARSED_RESPONSE_HEADERS)
        .max_header_size(MAX_RESPONSE_HEAD_BYTES)
        .max_buf_size(MAX_READ_BUFFER_BYTES)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| transport("HTTP handshake", &e))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let response = sender
        .send_request(out.to_wire()?)
        .await
        .map_err(|e| transport("HTTP exchange", &e))?;
    let status = response.status().as_u16();
    record.status = Some(status);
    if matches!(status, 301 | 302 | 303 | 307 | 308)
        && let Some(location) = response.headers().get(header::LOCATION)
    {
        let location = std::str::from_utf8(location.as_bytes()).map_err(|_| {
            FetchError::Transport(format!("redirect {status} with a non-UTF-8 Location"))
        })?;
        return Ok(Hop::Redirect {
            status,
            location: location.to_string(),
        });
    }
    let headers = returned_headers(response.headers());
    if out.method != Method::HEAD && announced_length(response.headers()).is_some_and(|n| n > cap) {
        return Err(FetchError::TooLarge(cap));
    }
    let body = read_capped(response.into_body(), cap, record).await?;
    Ok(Hop::Final(HttpResponse {
        status,
        headers,
        body,
    }))
}

fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the body frame by frame, failing as soon as more than `cap` bytes arrived.
/// Frames are at most the connection's read buffer, so at most one frame beyond
/// `cap` is ever held, and it is not kept.
async fn read_capped(
    mut body: Incoming,
    cap: u64,
    record: &mut FetchRecord,
) -> Result<Vec<u8>, FetchError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| transport("reading body", &e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        record.bytes_received += data.len() as u64;
        if record.bytes_received > cap {
            return Err(FetchError::TooLarge(cap));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Response headers for the guest, in order, within the count and byte caps;
/// a header that does not fit is skipped, non-UTF-8 bytes are replaced.
fn returned_headers(map: &HeaderMap) -> Vec<Header> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for (name, value) in map {
        if out.len() == MAX_RESPONSE_HEADERS {
            break;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let size = name.as_str().len() + value.len();
        if bytes + size > MAX_RESPONSE_HEADER_BYTES {
            continue;
        }
        bytes += size;
        out.push(Header {
            name: name.as_str().to_string(),
            value,
        });
    }
    out
}
