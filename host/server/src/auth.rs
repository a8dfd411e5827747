//! Who is calling the API: bearer tokens from `[[host.tokens]]`, each with
//! scopes (`chat`, `admin`) and a request rate.
//!
//! With no tokens configured the API is open (config validation allows that
//! only on a loopback address) and every caller is `local` with all scopes.
//! `admin` includes `chat`.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{App, error};

pub use agentkernel_core::config::server::{Scope, TokenConfig, validate_tokens};

/// The authenticated caller, put in each request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    admin: bool,
    /// No tokens are configured: the one local user.
    open: bool,
}

impl Caller {
    pub fn has(&self, scope: Scope) -> bool {
        self.admin || scope == Scope::Chat
    }

    /// Who the chat service and agents act for (session ids agents see
    /// are scoped to named tokens).
    pub fn principal(&self) -> agentkernel_core::chat::Principal {
        if self.open {
            agentkernel_core::chat::Principal::local()
        } else {
            agentkernel_core::chat::Principal { name: self.name.clone(), isolated: true }
        }
    }
}

struct Token {
    /// SHA-256 of the secret: compared in constant time, never logged.
    digest: [u8; 32],
    caller: Caller,
    per_minute: u32,
}

pub struct Auth {
    tokens: Vec<Token>,
    open_per_minute: u32,
    /// One per token name (and `local` when open): as many as the config has.
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Requests with no valid token, per client address.
    unauthenticated: AddressBuckets,
}

#[derive(Debug, thiserror::Error)]
#[error("[[host.tokens]] `{name}`: environment variable {var} is not set")]
pub struct MissingTokenEnv {
    name: String,
    var: String,
}

impl Auth {
    pub fn new(config: &agentkernel_core::config::HostSection, server: &super::listener::ServerConfig) -> Result<Auth, MissingTokenEnv> {
        let mut tokens = Vec::new();
        for t in &config.tokens {
            let secret = match (&t.token, &t.token_env) {
                (Some(s), _) => s.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| MissingTokenEnv { name: t.name.clone(), var: var.clone() })?,
                (None, None) => unreachable!("validated: one of token/token_env"),
            };
            tokens.push(Token {
                digest: Sha256::digest(secret.as_bytes()).into(),
                caller: Caller { name: t.name.clone(), admin: t.scopes.contains(&Scope::Admin), open: false },
                per_minute: t.requests_per_minute.unwrap_or(config.requests_per_minute),
            });
        }
        Ok(Auth {
            tokens,
            open_per_minute: config.requests_per_minute,
            buckets: Mutex::new(HashMap::new()),
            unauthenticated: AddressBuckets::new(server.unauthenticated_requests_per_minute, MAX_TRACKED_ADDRESSES),
        })
    }

    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    fn identify(&self, header: Option<&HeaderValue>) -> Result<(Caller, u32), &'static str> {
        if self.is_open() {
            return Ok((Caller { name: agentkernel_core::chat::Principal::local().name, admin: true, open: true }, self.open_per_minute));
        }
        let value = header.ok_or("missing `Authorization: Bearer <token>` header")?;
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or("the Authorization header must be `Bearer <token>`")?;
        let digest: [u8; 32] = Sha256::digest(secret.trim().as_bytes()).into();
        // Compare every token fully so timing does not reveal which matched.
        let mut found = None;
        for t in &self.tokens {
            let same = t.digest.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if same {
                found = Some(t);
            }
        }
        found.map(|t| (t.caller.clone(), t.per_minute)).ok_or("unknown token")
    }

    /// Takes one request from `name`'s bucket; `Err(seconds)` to wait when empty.
    fn admit(&self, name: &str, per_minute: u32) -> Result<(), u64> {
        if per_minute == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = match buckets.get_mut(name) {
            Some(b) => b,
            None => buckets.entry(name.to_string()).or_insert_with(|| Bucket::full(per_minute)),
        };
        bucket.take(per_minute)
    }
}

/// Client addresses with a bucket of their own; beyond, new addresses share one.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Token buckets per client address ([`super::listener::client_key`]),
/// bounded: at most `capacity` addresses. A full bucket is the same as no
/// bucket, so full ones are dropped when room is needed; if every tracked
/// address is still limited, new addresses share one overflow bucket
/// (clients spread over many addresses then limit each other, not the host).
pub(crate) struct AddressBuckets {
    per_minute: u32,
    capacity: usize,
    table: Mutex<AddressTable>,
}

struct AddressTable {
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    last_sweep: Instant,
}

impl AddressBuckets {
    pub(crate) fn new(per_minute: u32, capacity: usize) -> Self {
        let table = AddressTable { buckets: HashMap::new(), overflow: Bucket::full(per_minute), last_sweep: Instant::now() };
        AddressBuckets { per_minute, capacity, table: Mutex::new(table) }
    }

    /// Takes one request from `ip`'s bucket; `Err(seconds)` to wait when empty.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let key = super::listener::client_key(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let table = &mut *table;
        if let Some(bucket) = table.buckets.get_mut(&key) {
            return bucket.take(self.per_minute);
        }
        // Sweeping is O(tracked): at most once a second, however many new addresses arrive.
        if table.buckets.len() >= self.capacity && table.last_sweep.elapsed() >= Duration::from_secs(1) {
            let now = Instant::now();
            table.buckets.retain(|_, b| !b.is_full(self.per_minute, now));
            table.last_sweep = now;
        }
        if table.buckets.len() >= self.capacity {
            return table.overflow.take(self.per_minute);
        }
        table.buckets.entry(key).or_insert_with(|| Bucket::full(self.per_minute)).take(self.per_minute)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().unwrap().buckets.len()
    }
}

/// A token bucket: `per_minute` requests of burst, refilled continuously.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(per_minute: u32) -> Self {
        Bucket { tokens: f64::from(per_minute), at: Instant::now() }
    }

    /// Whether it has refilled completely by `now` (and so could be forgotten).
    fn is_full(&self, per_minute: u32, now: Instant) -> bool {
        self.tokens + now.duration_since(self.at).as_secs_f64() * f64::from(per_minute) / 60.0 >= f64::from(per_minute)
    }

    fn take(&mut self, per_minute: u32) -> Result<(), u64> {
        let rate = f64::from(per_minute) / 60.0;
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(f64::from(per_minute));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// Whether a `Host` header (or URI authority) names this machine's
/// loopback: `localhost`, `127.x.x.x` or `[::1]`, with any port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => v6,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Authenticates and rate-limits every API request.
pub async fn authenticate(State(app): State<std::sync::Arc<App>>, mut request: Request, next: Next) -> Response {
    // Open mode makes every caller admin, trusting that only this machine
    // can connect. A web page elsewhere can still reach it by DNS
    // rebinding (its own name resolving to 127.0.0.1), but the browser
    // then sends that name as `Host`: only loopback names pass.
    if app.auth.is_open() {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
        let host = host.or_else(|| request.uri().authority().map(|a| a.as_str().to_string()));
        if !host.as_deref().is_some_and(is_loopback_host) {
            if let Some(limited) = unauthenticated_limit(&app.auth, &request) {
                return limited;
            }
            return error(
                StatusCode::FORBIDDEN,
                "host-not-allowed",
                format!(
                    "Host `{}` is not a loopback name: an API without [[host.tokens]] answers only localhost, 127.0.0.1 and [::1]",
                    host.as_deref().unwrap_or("")
                ),
            );
        }
    }
    let (caller, per_minute) = match app.auth.identify(request.headers().get(header::AUTHORIZATION)) {
        Ok(c) => c,
        Err(why) => {
            // Guessing tokens costs the guesser its address's request rate.
            if let Some(limited) = unauthenticated_limit(&app.auth, &request) {
                return limited;
            }
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized", why);
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    if let Err(wait) = app.auth.admit(&caller.name, per_minute) {
        return rate_limited(format!("`{}` may make {per_minute} requests per minute; retry in {wait} s", caller.name), wait);
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn rate_limited(message: String, wait: u64) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate-limited", message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
    r
}

/// Charges a request that carries no valid token to its client address;
/// the 429 to answer instead when that address's rate is spent. Requests
/// that did not come through a socket (no `ConnectInfo`) are not limited.
fn unauthenticated_limit(auth: &Auth, request: &Request) -> Option<Response> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>()?.0;
    let wait = auth.unauthenticated.admit(peer.ip()).err()?;
    let per_minute = auth.unauthenticated.per_minute;
    Some(rate_limited(
        format!("{} may make {per_minute} requests per minute without a valid token; retry in {wait} s", peer.ip()),
        wait,
    ))
}

/// The per-address rate of requests no token covers: the public routes
/// (`public`, matched route templates) and paths that match no route.
/// Requests to authenticated routes are charged by [`authenticate`].
pub async fn limit_public(
    State(app): State<std::sync::Arc<App>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let public = matched.as_ref().is_none_or(|m| super::PUBLIC_ROUTES.contains(&m.as_str()));
    if public {
        if let Some(limited) = unauthenticated_limit(&app.auth, &request) {
            return limited;
        }
    }
    next.run(request).await
}

/// Lets only callers with the `admin` scope through.
pub async fn require_admin(request: Request, next: Next) -> Response {
    match request.extensions().get::<Caller>() {
        Some(c) if c.has(Scope::Admin) => next.run(request).await,
        Some(c) => error(StatusCode::FORBIDDEN, "forbidden", format!("token `{}` lacks the `admin` scope", c.name)),
        None => error(StatusCode::UNAUTHORIZED, "unauthorized", "not authenticated").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refuses_with_a_wait() {
        let mut b = Bucket::full(3);
        assert!(b.take(3).is_ok());
        assert!(b.take(3).is_ok());
        assert!(b.take(3).is_ok());
        let wait = b.take(3).unwrap_err();
        assert!((1..=20).contains(&wait), "wait {wait}");
    }

    #[test]
    fn address_buckets_stay_bounded_under_many_addresses() {
        let limits = AddressBuckets::new(2, 4);
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..4 {
            assert!(limits.admit(ip(i)).is_ok());
        }
        // Every tracked address is still limited: newcomers share the overflow bucket.
        assert!(limits.admit(ip(100)).is_ok());
        assert!(limits.admit(ip(101)).is_ok());
        assert!(limits.admit(ip(102)).is_err(), "the overflow bucket is spent");
        assert_eq!(limits.tracked(), 4);
        // A tracked address keeps its own bucket.
        assert!(limits.admit(ip(0)).is_ok());
        assert!(limits.admit(ip(0)).is_err());
    }

    #[test]
    fn only_loopback_host_names_pass() {
        for ok in ["localhost", "localhost:8080", "LocalHost.", "127.0.0.1", "127.0.0.1:9", "127.1.2.3:80", "[::1]", "[::1]:8080"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1:8080", "[::2]:80", "[::1", "[::1]x", ""] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn token_names_cannot_contain_the_session_separator() {
        let t = |name: &str| TokenConfig {
            name: name.into(),
            token: Some("0123456789abcdef".into()),
            token_env: None,
            scopes: vec![Scope::Chat],
            requests_per_minute: None,
        };
        assert!(validate_tokens(&[t("web-ui_2.0")]).is_ok());
        assert!(validate_tokens(&[t("a:b")]).is_err());
        assert!(validate_tokens(&[t("a b")]).is_err());
    }

    #[test]
    fn token_config_is_validated() {
        let t = |name: &str, token: Option<&str>, env: Option<&str>, scopes: Vec<Scope>| TokenConfig {
            name: name.into(),
            token: token.map(Into::into),
            token_env: env.map(Into::into),
            scopes,
            requests_per_minute: None,
        };
        assert!(validate_tokens(&[t("a", Some("0123456789abcdef"), None, vec![Scope::Chat])]).is_ok());
        assert!(validate_tokens(&[t("a", Some("short"), None, vec![Scope::Chat])]).is_err());
        assert!(validate_tokens(&[t("a", Some("0123456789abcdef"), Some("X"), vec![Scope::Chat])]).is_err());
        assert!(validate_tokens(&[t("a", None, Some("X"), vec![])]).is_err());
        let dup = t("a", None, Some("X"), vec![Scope::Admin]);
        assert!(validate_tokens(&[dup.clone(), dup]).is_err());
    }
}
