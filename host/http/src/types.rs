//! Request, response, error and record types; the first three mirror
//! `wit/http.wit`.

use std::time::Duration;

/// One header, as in WIT `header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A guest's request, as in WIT `http-request`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS`, upper case.
    pub method: String,
    /// Absolute `https://` or `http://` URL.
    pub url: String,
    pub headers: Vec<Header>,
    pub body: Option<Vec<u8>>,
    /// Per-request timeout; the scope's timeout and the call's deadline apply when shorter.
    pub timeout_ms: Option<u32>,
}

impl HttpRequest {
    /// A `GET` of `url` with no headers.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            url: url.into(),
            ..Self::default()
        }
    }
}

/// The response, as in WIT `http-response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// At most [`crate::limits::MAX_RESPONSE_HEADERS`] headers of at most
    /// [`crate::limits::MAX_RESPONSE_HEADER_BYTES`] bytes in all; later ones are dropped.
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// Why a fetch failed, as in WIT `http-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL's scheme, host and port are not on the agent's allow-list.
    #[error("host not allowed: {0}")]
    HostNotAllowed(String),
    /// The host is, or resolved to, a forbidden address.
    #[error("address not allowed: {0}")]
    AddressNotAllowed(String),
    /// The response body exceeded the cap (the cap, in bytes).
    #[error("response body larger than {0} bytes")]
    TooLarge(u64),
    /// The request, the scope's timeout or the call's deadline ran out.
    #[error("timed out")]
    Timeout,
    /// The guest's request is malformed or uses something refused.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Resolution, connection, TLS, protocol failure, or too many redirects.
    #[error("transport error: {0}")]
    Transport(String),
}

impl FetchError {
    /// A stable machine-readable code, for records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::HostNotAllowed(_) => "host_not_allowed",
            FetchError::AddressNotAllowed(_) => "address_not_allowed",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Timeout => "timeout",
            FetchError::InvalidRequest(_) => "invalid_request",
            FetchError::Transport(_) => "transport",
        }
    }
}

impl FetchRecord {
    /// The record of a `method` request not yet sent anywhere.
    pub(crate) fn of(method: String) -> Self {
        FetchRecord {
            method,
            scheme: String::new(),
            host: String::new(),
            port: 0,
            status: None,
            redirects: 0,
            bytes_received: 0,
            outcome: "ok",
            elapsed: Duration::ZERO,
        }
    }
}

/// A summary of one fetch, successful or not, for the caller's audit log.
///
/// `scheme`, `host` and `port` describe the last hop attempted (the request's
/// own URL unless a redirect was followed); they are empty / 0 when the URL
/// did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRecord {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Status of the last response received, if any.
    pub status: Option<u16>,
    /// Redirects followed.
    pub redirects: u32,
    /// Response body bytes read on the last hop (at most the cap + one frame when too large).
    pub bytes_received: u64,
    /// `"ok"` or [`FetchError::code`].
    pub outcome: &'static str,
    pub elapsed: Duration,
}
