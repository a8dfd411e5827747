//! What every request passes on its way in and out: bounds on its head
//! (URI and headers, answered as JSON 414/431), and the one error shape
//! for every error response, whichever part of axum produced it.
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error;

/// Longest request target (path and query) accepted; longer gets 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields in one request; more gets 431.
pub const MAX_HEADERS: usize = 100;
/// Largest header section (names, values and their separators); larger gets 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most of a non-JSON error body kept as the JSON error's message.
const MAX_MESSAGE_BYTES: usize = 1024;

/// Refuses request heads over the limits above with a JSON error. hyper
/// buffers heads up to a larger bound of its own (see `listener`), so
/// these answers, not hyper's empty ones, are what clients normally see.
pub async fn head_limits(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(uri.path().len(), |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return error(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            format!("the request target is {target} bytes; at most {MAX_URI_BYTES} are accepted"),
        );
    }
    let (count, bytes) = header_size(request.headers());
    if count > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!("{count} header fields, {bytes} bytes; at most {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes are accepted"),
        );
    }
    next.run(request).await
}

/// Field count and size as sent (`name: value\r\n` each).
fn header_size(headers: &HeaderMap) -> (usize, usize) {
    headers.iter().fold((0, 0), |(n, bytes), (name, value)| (n + 1, bytes + name.as_str().len() + value.len() + 4))
}

/// The stable code of an error response axum produced without one.
pub(crate) fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::URI_TOO_LONG => "uri-too-long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers-too-large",
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        StatusCode::SERVICE_UNAVAILABLE => "capacity",
        StatusCode::GATEWAY_TIMEOUT => "deadline",
        s if s.is_server_error() => "host-error",
        _ => "invalid-request",
    }
}

/// Rewrites any error response that is not JSON (axum's 405 with an empty
/// body, the plain-text rejections of `Path`, `Query` and the like) into
/// `{"error": {"code", "message"}}`, keeping its status and headers such as
/// `Allow` and `Retry-After`. Responses that already are JSON pass untouched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are short; a body beyond the bound is not a message.
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.ok().map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let message = match text {
        Some(t) if !t.is_empty() => t,
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut rewritten = error(status, code_for(status), message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name, value.clone());
        }
    }
    rewritten
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_status_has_a_code() {
        assert_eq!(code_for(StatusCode::METHOD_NOT_ALLOWED), "method-not-allowed");
        assert_eq!(code_for(StatusCode::BAD_REQUEST), "invalid-request");
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), "host-error");
    }

    #[test]
    fn header_size_counts_what_was_sent() {
        let mut h = HeaderMap::new();
        h.insert("x-a", "12345".parse().unwrap());
        assert_eq!(header_size(&h), (1, 3 + 5 + 4));
    }
}
