//! Fixed bounds that do not depend on policy.

/// Longest request URL, in bytes (also the longest `Location` followed).
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Largest request body, in bytes.
pub const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
/// Most request headers a guest may set.
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Most bytes of request header names + values a guest may set, in all.
pub const MAX_REQUEST_HEADER_BYTES: usize = 16 * 1024;
/// Longest method name accepted (the allowed methods are all shorter).
pub const MAX_METHOD_BYTES: usize = 16;

/// Most headers the HTTP parser accepts in a response head; more is a transport error.
pub const MAX_PARSED_RESPONSE_HEADERS: usize = 128;
/// Largest response head (status line + headers), and largest chunked trailer section,
/// the HTTP parser accepts; more is a transport error.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;
/// Largest read buffer of one connection.
pub const MAX_READ_BUFFER_BYTES: usize = 128 * 1024;
/// Most response headers returned to the guest; the rest are dropped.
pub const MAX_RESPONSE_HEADERS: usize = 64;
/// Most bytes of response header names + values returned to the guest; the rest are dropped.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 16 * 1024;

/// Most resolved addresses considered per name (all are checked; at most this many are tried).
pub const MAX_ADDRESSES: usize = 16;
/// Most connection attempts per hop (one per resolved address, in order).
pub const MAX_CONNECT_ATTEMPTS: usize = 4;

/// Methods a guest may use.
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Request headers a guest may not set (compared case-insensitively): the host
/// computes them (`host`, `content-length`, `connection`), they are hop-by-hop
/// and would change how the connection is framed or reused, they concern a
/// proxy, or they can stall the exchange (`expect: 100-continue`). Setting one
/// is an `invalid-request` error rather than being silently dropped, so a
/// guest learns early.
pub const REFUSED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "http2-settings",
];

/// Request headers dropped when a redirect goes to another origin (scheme, host or port).
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "cookie2"];

/// `User-Agent` sent when the guest sets none.
pub const DEFAULT_USER_AGENT: &str = concat!("agentkernel-http/", env!("CARGO_PKG_VERSION"));
