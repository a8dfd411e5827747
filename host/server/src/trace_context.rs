//! The client's W3C `traceparent`, for the exported trace of its request.
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use agentkernel_core::telemetry::TraceParent;

/// `traceparent` as sent, if it parses (a malformed one starts a new
/// trace, as the W3C spec asks; it is never an error).
pub(crate) struct IncomingTrace(pub Option<TraceParent>);

impl<S: Send + Sync> FromRequestParts<S> for IncomingTrace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get("traceparent").and_then(|v| v.to_str().ok());
        Ok(IncomingTrace(header.and_then(TraceParent::parse)))
    }
}
