//! Checking a guest's request, building what goes on the wire, and rewriting
//! it for a redirect.

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use url::{Position, Url};

use crate::limits::{
    ALLOWED_METHODS, CREDENTIAL_HEADERS, DEFAULT_USER_AGENT, MAX_METHOD_BYTES,
    MAX_REQUEST_BODY_BYTES, MAX_REQUEST_HEADER_BYTES, MAX_REQUEST_HEADERS, MAX_URL_BYTES,
    REFUSED_REQUEST_HEADERS,
};
use crate::scope::normalise_host;
use crate::types::{FetchError, HttpRequest};

/// A checked request, ready for one hop.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

fn invalid(msg: impl Into<String>) -> FetchError {
    FetchError::InvalidRequest(msg.into())
}

/// Checks method, URL, headers and body against the fixed limits.
pub(crate) fn prepare(req: HttpRequest) -> Result<Outgoing, FetchError> {
    if req.method.len() > MAX_METHOD_BYTES || !ALLOWED_METHODS.contains(&req.method.as_str()) {
        return Err(invalid(format!(
            "method {:?} is not one of {}",
            req.method,
            ALLOWED_METHODS.join(", ")
        )));
    }
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let url = parse_url(&req.url).map_err(invalid)?;
    let headers = check_headers(&req.headers)?;
    if let Some(body) = &req.body
        && body.len() > MAX_REQUEST_BODY_BYTES
    {
        return Err(invalid(format!(
            "body of {} bytes exceeds {MAX_REQUEST_BODY_BYTES}",
            body.len()
        )));
    }
    Ok(Outgoing {
        method,
        url,
        headers,
        body: req.body.map(Bytes::from),
    })
}

/// Parses an absolute http(s) URL without user info; the message says what is wrong.
pub(crate) fn parse_url(raw: &str) -> Result<Url, String> {
    if raw.len() > MAX_URL_BYTES {
        return Err(format!(
            "URL of {} bytes exceeds {MAX_URL_BYTES}",
            raw.len()
        ));
    }
    let url = Url::parse(raw).map_err(|e| format!("URL {raw:?} does not parse: {e}"))?;
    check_url(url)
}

fn check_url(url: Url) -> Result<Url, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "URL scheme {:?} is not http or https",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URL must not contain user info (user:password@)".into());
    }
    if normalise_host(&url).is_none() || url.port_or_known_default().is_none_or(|p| p == 0) {
        return Err(format!("URL {:?} has no usable host or port", url.as_str()));
    }
    Ok(url)
}

fn check_headers(headers: &[crate::types::Header]) -> Result<HeaderMap, FetchError> {
    if headers.len() > MAX_REQUEST_HEADERS {
        return Err(invalid(format!(
            "{} headers exceed {MAX_REQUEST_HEADERS}",
            headers.len()
        )));
    }
    let total: usize = headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    if total > MAX_REQUEST_HEADER_BYTES {
        return Err(invalid(format!(
            "headers of {total} bytes exceed {MAX_REQUEST_HEADER_BYTES}"
        )));
    }
    let mut map = HeaderMap::new();
    for h in headers {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| invalid(format!("header name {:?} is not a valid token", h.name)))?;
        if REFUSED_REQUEST_HEADERS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "header {:?} is set by the host and may not be set by an agent",
                h.name
            )));
        }
        let value = HeaderValue::from_str(&h.value).map_err(|_| {
            invalid(format!(
                "header {:?} has a value with control characters",
                h.name
            ))
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// `scheme://host:port` of a URL, for messages and origin comparison.
pub(crate) fn origin(url: &Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(v6)) => format!("[{v6}]"),
        _ => normalise_host(url).unwrap_or_default(),
    };
    format!(
        "{}://{}:{}",
        url.scheme(),
        host,
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Outgoing {
    /// The request for one hop: origin-form target, `Host`, `Content-Length`,
    /// `Connection: close` (one exchange per connection), default `User-Agent`.
    pub(crate) fn to_wire(&self) -> Result<http::Request<Full<Bytes>>, FetchError> {
        let target = &self.url[Position::BeforePath..Position::AfterQuery];
        let mut host = match self.url.host() {
            Some(url::Host::Ipv6(v6)) => format!("[{v6}]"),
            _ => normalise_host(&self.url).unwrap_or_default(),
        };
        if let Some(port) = self.url.port() {
            host.push_str(&format!(":{port}"));
        }
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(target);
        let headers = builder.headers_mut().expect("fresh builder");
        headers.clone_from(&self.headers);
        let wire_value =
            |s: &str| HeaderValue::from_str(s).map_err(|_| invalid(format!("bad value {s:?}")));
        headers.insert(header::HOST, wire_value(&host)?);
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(
                header::USER_AGENT,
                HeaderValue::from_static(DEFAULT_USER_AGENT),
            );
        }
        if let Some(body) = &self.body {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        builder
            .body(Full::new(self.body.clone().unwrap_or_default()))
            .map_err(|e| invalid(format!("cannot build request: {e}")))
    }

    /// The request for the next hop after a `status` redirect to `location`.
    ///
    /// 303 turns anything but `HEAD` into a bodiless `GET`; 301 and 302 turn
    /// `POST` into a bodiless `GET` (what browsers do); 307 and 308 keep method
    /// and body. Content headers go with the body. When the origin (scheme,
    /// host, port) changes, [`CREDENTIAL_HEADERS`] are dropped.
    pub(crate) fn redirected(
        mut self,
        status: u16,
        location: &str,
    ) -> Result<Outgoing, FetchError> {
        let bad = |why: String| {
            FetchError::Transport(format!("redirect {status} to {location:?}: {why}"))
        };
        if location.len() > MAX_URL_BYTES {
            return Err(bad(format!("Location exceeds {MAX_URL_BYTES} bytes")));
        }
        let next = self.url.join(location).map_err(|e| bad(e.to_string()))?;
        let next = check_url(next).map_err(bad)?;
        let to_get = match status {
            303 => self.method != Method::HEAD,
            301 | 302 => self.method == Method::POST,
            _ => false,
        };
        if to_get {
            self.method = Method::GET;
            self.body = None;
            let content: Vec<HeaderName> = self
                .headers
                .keys()
                .filter(|k| k.as_str().starts_with("content-"))
                .cloned()
                .collect();
            for k in content {
                self.headers.remove(k);
            }
        }
        if origin(&next) != origin(&self.url) {
            for name in CREDENTIAL_HEADERS {
                self.headers.remove(*name);
            }
        }
        self.url = next;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Header;

    fn req(method: &str, url: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            url: url.into(),
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            ..HttpRequest::default()
        }
    }

    fn invalid_msg(r: HttpRequest) -> String {
        match prepare(r) {
            Err(FetchError::InvalidRequest(m)) => m,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        assert!(invalid_msg(req("CONNECT", "https://a.org/", &[])).contains("CONNECT"));
        assert!(invalid_msg(req("get", "https://a.org/", &[])).contains("method"));
        assert!(invalid_msg(req("TRACE", "https://a.org/", &[])).contains("method"));
        assert!(invalid_msg(req("GET", "ftp://a.org/", &[])).contains("scheme"));
        assert!(invalid_msg(req("GET", "file:///etc/passwd", &[])).contains("scheme"));
        assert!(invalid_msg(req("GET", "https://u:p@a.org/", &[])).contains("user info"));
        assert!(invalid_msg(req("GET", "https://u@a.org/", &[])).contains("user info"));
        assert!(invalid_msg(req("GET", "/relative", &[])).contains("parse"));
        assert!(
            invalid_msg(req(
                "GET",
                &format!("https://a.org/{}", "x".repeat(9000)),
                &[]
            ))
            .contains("URL")
        );
        for h in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "Upgrade",
            "TE",
            "Expect",
            "Proxy-Authorization",
        ] {
            assert!(
                invalid_msg(req("GET", "https://a.org/", &[(h, "x")])).contains("set by the host"),
                "{h}"
            );
        }
        assert!(
            invalid_msg(req("GET", "https://a.org/", &[("x-a", "b\r\nInjected: 1")]))
                .contains("control")
        );
        assert!(invalid_msg(req("GET", "https://a.org/", &[("bad name", "b")])).contains("token"));
        let many: Vec<(String, String)> = (0..65).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(invalid_msg(req("GET", "https://a.org/", &many)).contains("headers"));
        let big = "v".repeat(MAX_REQUEST_HEADER_BYTES);
        assert!(invalid_msg(req("GET", "https://a.org/", &[("x-big", &big)])).contains("bytes"));
        let mut r = req("POST", "https://a.org/", &[]);
        r.body = Some(vec![0; MAX_REQUEST_BODY_BYTES + 1]);
        assert!(invalid_msg(r).contains("body"));
    }

    #[test]
    fn wire_request_has_host_computed_headers() {
        let mut r = req(
            "POST",
            "http://[::1]:8080/a/b?q=1#frag",
            &[("X-Thing", "1")],
        );
        r.body = Some(b"hi".to_vec());
        let wire = prepare(r).unwrap().to_wire().unwrap();
        assert_eq!(wire.uri().to_string(), "/a/b?q=1");
        assert_eq!(wire.headers()["host"], "[::1]:8080");
        assert_eq!(wire.headers()["content-length"], "2");
        assert_eq!(wire.headers()["connection"], "close");
        assert_eq!(wire.headers()["x-thing"], "1");
        assert!(
            wire.headers()["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("agentkernel-http/")
        );
        let wire = prepare(req("GET", "https://Example.COM./", &[]))
            .unwrap()
            .to_wire()
            .unwrap();
        assert_eq!(wire.headers()["host"], "example.com");
    }

    #[test]
    fn redirects_rewrite_method_and_drop_credentials_across_origins() {
        let hdrs = [
            ("Authorization", "Bearer s"),
            ("Cookie", "a=b"),
            ("Content-Type", "text/plain"),
            ("X-Keep", "1"),
        ];
        let mut r = req("POST", "https://a.org/x", &hdrs);
        r.body = Some(b"data".to_vec());
        let out = prepare(r).unwrap();

        let same = out.clone().redirected(307, "/y").unwrap();
        assert_eq!(
            (same.method.as_str(), same.url.as_str()),
            ("POST", "https://a.org/y")
        );
        assert!(same.body.is_some() && same.headers.contains_key("authorization"));

        let other = out.clone().redirected(308, "https://b.org/z").unwrap();
        assert_eq!(other.method, Method::POST);
        assert!(
            !other.headers.contains_key("authorization") && !other.headers.contains_key("cookie")
        );
        assert!(other.headers.contains_key("x-keep") && other.body.is_some());

        let port = out.clone().redirected(302, "https://a.org:8443/").unwrap();
        assert!(
            !port.headers.contains_key("authorization"),
            "port change is an origin change"
        );
        assert_eq!(port.method, Method::GET);
        assert!(port.body.is_none() && !port.headers.contains_key("content-type"));

        let see_other = out.clone().redirected(303, "/done").unwrap();
        assert_eq!(see_other.method, Method::GET);
        assert!(see_other.body.is_none() && see_other.headers.contains_key("authorization"));

        let put = prepare(req("PUT", "https://a.org/x", &[]))
            .unwrap()
            .redirected(301, "/y")
            .unwrap();
        assert_eq!(put.method, Method::PUT);
        let head = prepare(req("HEAD", "https://a.org/x", &[]))
            .unwrap()
            .redirected(303, "/y")
            .unwrap();
        assert_eq!(head.method, Method::HEAD);

        for bad in ["ftp://a.org/", "https://u:p@b.org/", "file:///etc/passwd"] {
            assert!(
                matches!(
                    out.clone().redirected(302, bad),
                    Err(FetchError::Transport(_))
                ),
                "{bad}"
            );
        }
    }
}
