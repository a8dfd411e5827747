//! The `http` policy table and its checked form.
//!
//! ```toml
//! [agents.researcher]
//! http = { hosts = ["https://export.arxiv.org", "api.github.com", "https://*.wikipedia.org"],
//!          max_response_bytes = 1048576, timeout_ms = 5000 }
//! ```
//!
//! `hosts` entries:
//! - `scheme://host[:port]` — exactly that scheme, host and port (the scheme's
//!   default port when none is given): `"http://127.0.0.1:8080"`,
//!   `"https://[2001:db8::1]:8443"`.
//! - a bare `host` or `host:port` means `https://host[:port]` (port 443 by default).
//! - `*.example.com` (with or without a scheme) matches every name strictly
//!   below `example.com` — `a.example.com`, `a.b.example.com` — but not
//!   `example.com` itself; list that separately. Wildcards are for DNS names
//!   only, never IP literals, and only as the whole leftmost label.
//!
//! Names are compared after the same normalisation the URL parser applies to
//! request URLs (lower case, IDNA to punycode, IPv4 shorthand such as
//! `0x7f.1` to dotted quads, one trailing dot ignored). No path, query,
//! fragment or user info is allowed in an entry (a lone trailing `/` is).
//!
//! `allow_addresses` are CIDR ranges (`"127.0.0.0/8"`, `"::1/128"`) or single
//! addresses of otherwise-forbidden addresses (see [`crate::addr`]) that the
//! operator allows, e.g. a local test server or an internal service.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::addr::AddressPolicy;

/// The policy table for the `http` capability, as written in configuration.
///
/// Every field but `hosts` has a default; an empty `hosts` allows nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpScope {
    /// Allowed origins, see the [module docs](self).
    pub hosts: Vec<String>,
    /// CIDR ranges of otherwise-forbidden addresses that are allowed.
    pub allow_addresses: Vec<String>,
    /// Cap on one response body, in bytes (wire bytes: nothing is decompressed).
    pub max_response_bytes: u64,
    /// Cap on one request, redirects included, in milliseconds.
    pub timeout_ms: u64,
    /// Redirects followed per request; one more is an error.
    pub max_redirects: u32,
    /// Requests one agent call may make. Enforced by the caller, not by [`crate::Fetcher`].
    pub requests_per_call: u32,
    /// Requests one agent may make per day. Enforced by the caller, not by [`crate::Fetcher`].
    pub requests_per_day: u32,
}

impl HttpScope {
    /// Default response body cap: 4 MiB.
    pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
    /// Default per-request timeout: 10 s.
    pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
    /// Default redirects followed: 5.
    pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
    /// Default requests per agent call: 16.
    pub const DEFAULT_REQUESTS_PER_CALL: u32 = 16;
    /// Default requests per agent per day: 1000.
    pub const DEFAULT_REQUESTS_PER_DAY: u32 = 1000;

    /// Largest `max_response_bytes` policy may set: 64 MiB (the body is held in host memory
    /// and then copied into the guest).
    pub const MAX_RESPONSE_BYTES_LIMIT: u64 = 64 * 1024 * 1024;
    /// Largest `timeout_ms` policy may set: 5 minutes.
    pub const TIMEOUT_MS_LIMIT: u64 = 300_000;
    /// Largest `max_redirects` policy may set.
    pub const MAX_REDIRECTS_LIMIT: u32 = 20;
    /// Most `hosts` and `allow_addresses` entries, each.
    pub const MAX_ENTRIES: usize = 256;

    /// Checks every entry and bound; the message names the offending entry.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }

    /// The checked form used by [`crate::Fetcher::fetch`].
    pub fn compile(&self) -> Result<CheckedScope, String> {
        if self.hosts.len() > Self::MAX_ENTRIES || self.allow_addresses.len() > Self::MAX_ENTRIES {
            return Err(format!(
                "http: at most {} hosts and {} allow_addresses",
                Self::MAX_ENTRIES,
                Self::MAX_ENTRIES
            ));
        }
        let hosts = self
            .hosts
            .iter()
            .map(|h| HostRule::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        let allowed = self
            .allow_addresses
            .iter()
            .map(|a| parse_range(a))
            .collect::<Result<Vec<_>, _>>()?;
        bound(
            "max_response_bytes",
            self.max_response_bytes,
            1,
            Self::MAX_RESPONSE_BYTES_LIMIT,
        )?;
        bound("timeout_ms", self.timeout_ms, 1, Self::TIMEOUT_MS_LIMIT)?;
        bound(
            "max_redirects",
            self.max_redirects.into(),
            0,
            Self::MAX_REDIRECTS_LIMIT.into(),
        )?;
        bound(
            "requests_per_call",
            self.requests_per_call.into(),
            1,
            u32::MAX.into(),
        )?;
        bound(
            "requests_per_day",
            self.requests_per_day.into(),
            1,
            u32::MAX.into(),
        )?;
        Ok(CheckedScope {
            hosts,
            addresses: AddressPolicy::new(allowed),
            max_response_bytes: self.max_response_bytes,
            timeout: Duration::from_millis(self.timeout_ms),
            max_redirects: self.max_redirects,
            requests_per_call: self.requests_per_call,
            requests_per_day: self.requests_per_day,
        })
    }
}

impl Default for HttpScope {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            allow_addresses: Vec::new(),
            max_response_bytes: Self::DEFAULT_MAX_RESPONSE_BYTES,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            max_redirects: Self::DEFAULT_MAX_REDIRECTS,
            requests_per_call: Self::DEFAULT_REQUESTS_PER_CALL,
            requests_per_day: Self::DEFAULT_REQUESTS_PER_DAY,
        }
    }
}

fn bound(name: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!("http: {name} = {value} is outside {min}..={max}"));
    }
    Ok(())
}

fn parse_range(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    entry
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("http: allow_addresses entry {entry:?} is not a CIDR range like \"127.0.0.0/8\" or \"::1/128\""))
}

/// How a rule matches a request's host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// A normalised DNS name or IP literal (IPv6 without brackets).
    Exact(String),
    /// `*.suffix`: any name ending in `.suffix`.
    Subdomains(String),
}

/// One checked `hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    scheme: &'static str,
    pattern: HostPattern,
    port: u16,
}

impl HostRule {
    /// Parses one `hosts` entry (see the [module docs](self)).
    pub fn parse(entry: &str) -> Result<HostRule, String> {
        let bad = |why: &str| {
            format!(
                "http: hosts entry {entry:?} {why}; expected \"scheme://host[:port]\", \"host\" or \"*.domain\""
            )
        };
        let trimmed = entry.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("https://{trimmed}")
        };
        let (prefix, rest) = with_scheme
            .split_once("://")
            .ok_or_else(|| bad("is malformed"))?;
        let (wildcard, rest) = match rest.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.contains('*') {
            return Err(bad("has a wildcard that is not the whole leftmost label"));
        }
        let url = Url::parse(&format!("{prefix}://{rest}"))
            .map_err(|e| bad(&format!("does not parse ({e})")))?;
        let scheme = match url.scheme() {
            "http" => "http",
            "https" => "https",
            other => {
                return Err(bad(&format!(
                    "has scheme {other:?}; only http and https are allowed"
                )));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("contains user info"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("has a path, query or fragment"));
        }
        let host = normalise_host(&url).ok_or_else(|| bad("has no host"))?;
        let port = url
            .port_or_known_default()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("has port 0"))?;
        let pattern = if wildcard {
            if !matches!(url.host(), Some(url::Host::Domain(_))) || !host.contains('.') {
                return Err(bad("has a wildcard over an IP address or a top-level name"));
            }
            HostPattern::Subdomains(host)
        } else {
            HostPattern::Exact(host)
        };
        Ok(HostRule {
            scheme,
            pattern,
            port,
        })
    }

    /// Whether the rule allows `url`'s scheme, host and port.
    pub fn matches(&self, url: &Url) -> bool {
        let Some(host) = normalise_host(url) else {
            return false;
        };
        if url.scheme() != self.scheme || url.port_or_known_default() != Some(self.port) {
            return false;
        }
        match &self.pattern {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// The URL's host as compared and connected to: the parser's normalised form,
/// IPv6 without brackets, one trailing dot removed from names.
pub(crate) fn normalise_host(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => {
            let d = d.strip_suffix('.').unwrap_or(d);
            (!d.is_empty()).then(|| d.to_ascii_lowercase())
        }
        url::Host::Ipv4(v4) => Some(v4.to_string()),
        url::Host::Ipv6(v6) => Some(v6.to_string()),
    }
}

/// An [`HttpScope`] whose entries parsed and whose bounds are in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedScope {
    hosts: Vec<HostRule>,
    addresses: AddressPolicy,
    max_response_bytes: u64,
    timeout: Duration,
    max_redirects: u32,
    requests_per_call: u32,
    requests_per_day: u32,
}

impl CheckedScope {
    /// Whether some `hosts` entry allows `url`'s scheme, host and port.
    pub fn allows_url(&self, url: &Url) -> bool {
        self.hosts.iter().any(|rule| rule.matches(url))
    }
    /// The address policy: forbidden ranges minus `allow_addresses`.
    pub fn addresses(&self) -> &AddressPolicy {
        &self.addresses
    }
    /// Cap on one response body, in bytes.
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
    }
    /// Cap on one request's duration, redirects included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Redirects followed per request.
    pub fn max_redirects(&self) -> u32 {
        self.max_redirects
    }
    /// Requests per agent call (for the caller to enforce).
    pub fn requests_per_call(&self) -> u32 {
        self.requests_per_call
    }
    /// Requests per agent per day (for the caller to enforce).
    pub fn requests_per_day(&self) -> u32 {
        self.requests_per_day
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(hosts: &[&str]) -> CheckedScope {
        HttpScope {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..HttpScope::default()
        }
        .compile()
        .unwrap()
    }

    fn allows(s: &CheckedScope, url: &str) -> bool {
        s.allows_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn exact_entries_match_scheme_host_and_port() {
        let s = scope(&[
            "https://export.arxiv.org",
            "http://127.0.0.1:8080",
            "http://[::1]:9000",
        ]);
        assert!(allows(&s, "https://export.arxiv.org/api/query?x=1"));
        assert!(allows(&s, "https://EXPORT.arxiv.org:443/"));
        assert!(allows(&s, "https://export.arxiv.org./"));
        assert!(!allows(&s, "http://export.arxiv.org/"));
        assert!(!allows(&s, "https://export.arxiv.org:8443/"));
        assert!(!allows(&s, "https://arxiv.org/"));
        assert!(!allows(&s, "https://export.arxiv.org.evil.com/"));
        assert!(allows(&s, "http://127.0.0.1:8080/x"));
        assert!(
            allows(&s, "http://0x7f.0.0.1:8080/x"),
            "IPv4 shorthand is normalised"
        );
        assert!(!allows(&s, "http://127.0.0.1/"));
        assert!(allows(&s, "http://[::1]:9000/"));
    }

    #[test]
    fn bare_host_means_https_443() {
        let s = scope(&["api.github.com", "example.org:8443"]);
        assert!(allows(&s, "https://api.github.com/repos"));
        assert!(!allows(&s, "http://api.github.com/repos"));
        assert!(allows(&s, "https://example.org:8443/"));
        assert!(!allows(&s, "https://example.org/"));
    }

    #[test]
    fn wildcards_match_strict_subdomains_only() {
        let s = scope(&["*.wikipedia.org", "http://*.local.test:8080"]);
        assert!(allows(&s, "https://en.wikipedia.org/wiki/X"));
        assert!(allows(&s, "https://a.b.wikipedia.org/"));
        assert!(!allows(&s, "https://wikipedia.org/"));
        assert!(!allows(&s, "https://evilwikipedia.org/"));
        assert!(!allows(&s, "https://en.wikipedia.org.evil.com/"));
        assert!(allows(&s, "http://x.local.test:8080/"));
        assert!(!allows(&s, "https://x.local.test:8080/"));
    }

    #[test]
    fn malformed_entries_are_refused_with_the_entry_named() {
        for (entry, needle) in [
            ("ftp://example.com", "scheme"),
            ("https://user:pw@example.com", "user info"),
            ("https://example.com/path", "path"),
            ("https://example.com?q", "path"),
            ("a.*.example.com", "wildcard"),
            ("*example.com", "wildcard"),
            ("*.com", "top-level"),
            ("*.127.0.0.1", "IP"),
            ("https://", "parse"),
            ("", "parse"),
            ("https://example.com:0", "port 0"),
            ("https://example.com:99999", "parse"),
        ] {
            let err = HostRule::parse(entry).unwrap_err();
            assert!(
                err.contains(needle) && err.contains(&format!("{entry:?}")),
                "{entry}: {err}"
            );
        }
    }

    #[test]
    fn bounds_and_ranges_are_validated() {
        let ok = HttpScope {
            allow_addresses: vec!["127.0.0.0/8".into(), "::1/128".into(), "10.0.0.5".into()],
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = HttpScope {
            allow_addresses: vec!["127.0.0.0/33".into()],
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("127.0.0.0/33"));
        let bad = HttpScope {
            max_response_bytes: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_response_bytes"));
        let bad = HttpScope {
            max_response_bytes: 1 << 40,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_response_bytes"));
        let bad = HttpScope {
            timeout_ms: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("timeout_ms"));
        let bad = HttpScope {
            max_redirects: 100,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_redirects"));
    }

    #[test]
    fn toml_table_deserialises_with_defaults_and_rejects_unknown_fields() {
        let s: HttpScope =
            toml::from_str("hosts = [\"https://export.arxiv.org\"]\ntimeout_ms = 2000").unwrap();
        assert_eq!(s.hosts, vec!["https://export.arxiv.org"]);
        assert_eq!(s.timeout_ms, 2000);
        assert_eq!(s.max_response_bytes, HttpScope::DEFAULT_MAX_RESPONSE_BYTES);
        assert_eq!(s.max_redirects, HttpScope::DEFAULT_MAX_REDIRECTS);
        let err = toml::from_str::<HttpScope>("hosts = []\nmax_body = 3").unwrap_err();
        assert!(err.to_string().contains("max_body"), "{err}");
        let back: HttpScope = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(
            !HttpScope::default()
                .compile()
                .unwrap()
                .allows_url(&Url::parse("https://x.org").unwrap())
        );
    }
}
