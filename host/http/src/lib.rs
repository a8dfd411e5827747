//! The core of the `http` capability (`wit/http.wit`): outbound HTTP for
//! untrusted agents, only where policy allows, with every resource bounded.
//!
//! - [`HttpScope`] is the policy table (`http = { hosts = [...], ... }`); its
//!   [`compile`](HttpScope::compile) gives the [`CheckedScope`] a fetch runs under.
//! - [`addr`] says which IP addresses are off limits unless `allow_addresses` lifts it.
//! - [`Fetcher::fetch`] / [`Fetcher::fetch_recorded`] perform one guest request
//!   (redirects included) and return an [`HttpResponse`] or a [`FetchError`],
//!   plus a [`FetchRecord`] for the audit log.
//!
//! # What a guest can consume, and the bound on each
//!
//! | resource | bound |
//! |---|---|
//! | destinations | scheme + host + port on `hosts`; every address the host is or resolves to must be outside the forbidden ranges of [`addr`] or inside `allow_addresses`; the connection goes to one of exactly those checked addresses |
//! | wall-clock time | min(request `timeout-ms`, scope `timeout_ms` (default 10 s, at most 5 min), caller's deadline) for everything: DNS, connect, TLS, request, redirects, response head and body; a trickling or endless body ends in `timeout` |
//! | response body memory | `max_response_bytes` (default 4 MiB, at most 64 MiB) of wire bytes (nothing is decompressed); reading stops with `too-large` as soon as it is exceeded or when `Content-Length` announces more |
//! | response head | at most 64 KiB and 128 headers parsed (more is `transport`); at most 64 headers / 16 KiB returned, the rest dropped |
//! | request size | URL ≤ 8 KiB, body ≤ 1 MiB, ≤ 64 headers totalling ≤ 16 KiB ([`limits`]) |
//! | redirects | `max_redirects` (default 5, at most 20) per request; one more is `transport` |
//! | connections | one per hop, `Connection: close`, closed when the hop ends (no pool shared between agents); ≤ 4 connect attempts per hop, each with a share of the time left; DNS answers beyond 16 addresses ignored |
//! | DNS | the system resolver on tokio's blocking pool; a lookup still running at the deadline is abandoned (its thread finishes on the resolver's own timeout) |
//! | request count | `requests_per_call` (default 16) and `requests_per_day` (default 1000) — defined here, enforced by the caller |
//!
//! # No ambient authority
//!
//! No proxy is ever used (proxy environment variables such as `HTTP_PROXY` are
//! never read), no cookie store, no default credentials, no client
//! certificate. Credential headers the guest set itself (`Authorization`,
//! `Cookie`) are dropped when a redirect changes origin. Hop-by-hop headers,
//! `Host`, `Content-Length` and `Expect` set by the guest are refused with
//! `invalid-request` ([`limits::REFUSED_REQUEST_HEADERS`]).
//!
//! # TLS
//!
//! rustls with the *ring* provider, TLS 1.2 and 1.3, ALPN `http/1.1` only,
//! trusting the operating system's roots loaded once by [`Fetcher::new`]
//! (`rustls-native-certs`; no network access at runtime), or the roots given
//! to [`Fetcher::with_roots`].

pub mod addr;
pub mod capability;
mod connect;
mod fetch;
pub mod limits;
mod request;
mod scope;
mod types;

pub use capability::{Http, HttpClient, Offline};
pub use fetch::{Fetcher, FetcherInitError, precheck};
pub use scope::{CheckedScope, HostRule, HttpScope};
pub use types::{FetchError, FetchRecord, Header, HttpRequest, HttpResponse};
