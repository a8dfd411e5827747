//! The HTTP server (axum): the low-level endpoints the chat service builds on.
//!
//! - `GET /healthz`
//! - `GET /v1/agents`, `GET /v1/agents/{name}`
//! - `POST /v1/agents/{name}/call`: the request record as JSON in, a
//!   response or a typed error as JSON out.
//! - `GET /metrics`: Prometheus text.
//! - evolution (admin): see [`crate::evolution::http`].
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::api::{AgentInfo, CallRequest, CallResponse, ErrorBody};
use crate::registry::Registry;
use crate::runtime::CallError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{name}", get(get_agent))
        .route("/v1/agents/{name}/call", post(call_agent))
        .merge(crate::evolution::http::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not-found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(registry.clone(), record_request))
        .with_state(registry)
}

/// Counts and times every request by its route template (not its raw path,
/// so agent names in URLs do not multiply the series).
async fn record_request(
    State(reg): State<Arc<Registry>>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Method clones and MatchedPath are allocation-free; the strings are
    // only copied when a new series appears.
    let method = request.method().clone();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    let route = matched.as_ref().map_or("unmatched", |m| m.as_str());
    reg.runtime().metrics().http_request(method.as_str(), route, response.status().as_u16(), start.elapsed());
    response
}

async fn metrics(State(reg): State<Arc<Registry>>) -> Response {
    let gauges = crate::metrics::Gauges {
        agents_loaded: reg.list().len(),
        files_failed: reg.files().iter().filter(|f| f.error.is_some()).count(),
    };
    ([("content-type", "text/plain; version=0.0.4")], reg.runtime().metrics().render(&gauges)).into_response()
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

fn call_error_status(e: &CallError) -> StatusCode {
    match e {
        CallError::NotFound { .. } => StatusCode::NOT_FOUND,
        CallError::Agent { kind: "invalid-request", .. } => StatusCode::BAD_REQUEST,
        CallError::Agent { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CallError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
        CallError::Capacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn healthz(State(reg): State<Arc<Registry>>) -> Response {
    let failed = reg.files().iter().filter(|f| f.error.is_some()).count();
    Json(json!({"status": "ok", "agents": reg.list().len(), "failed_files": failed})).into_response()
}

async fn list_agents(State(reg): State<Arc<Registry>>) -> Response {
    let files = reg.files();
    let agents: Vec<AgentInfo> = reg.list().iter().map(|a| AgentInfo::new(a, &files)).collect();
    let failed: Vec<_> = files.iter().filter(|f| f.error.is_some()).collect();
    Json(json!({"agents": agents, "failed_files": failed})).into_response()
}

async fn get_agent(State(reg): State<Arc<Registry>>, Path(name): Path<String>) -> Response {
    match reg.get(&name) {
        Some(a) => Json(AgentInfo::new(&a, &reg.files())).into_response(),
        None => error(StatusCode::NOT_FOUND, "not-found", format!("no agent named `{name}` is loaded")),
    }
}

async fn call_agent(
    State(reg): State<Arc<Registry>>,
    Path(name): Path<String>,
    body: Result<Json<CallRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), "invalid-request", rej.body_text()),
    };
    let Some(agent) = reg.get(&name) else {
        return error(StatusCode::NOT_FOUND, "not-found", format!("no agent named `{name}` is loaded"));
    };
    match agent.call(&req.to_wit()).await {
        Ok(outcome) => Json(CallResponse::new(&agent, outcome)).into_response(),
        Err(e) => {
            tracing::warn!(agent = %name, code = e.code(), "call failed: {e}");
            (call_error_status(&e), Json(ErrorBody::from(&e))).into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(registry)).with_graceful_shutdown(shutdown).await
}
