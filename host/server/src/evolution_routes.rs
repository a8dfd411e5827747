//! The evolution endpoints (admin): start an evolution in the server
//! process, list runs, fetch one and its HTML report.
//!
//! - `POST /v1/agents/{name}/evolve` `{"generator": "dir:PATH"|"llm",
//!   "generations": 1, "candidates": 3, "threshold": 0.15, "swap": true,
//!   "approve_manifest_change": false, "resume": ID}`
//!   → 202 `{"id", "agent", "status": "running", "report"}`; the run goes on
//!   in the background. After a swap the live error rate is watched for
//!   `[evolution] watch_calls` calls and the old version restored if it rose
//!   (the watch's outcome is added to the run's outcome as `watch`).
//! - `GET /v1/evolutions` → `{"evolutions": [{"id", "agent", "status",
//!   "decision", "started_at", "finished_at"}]}`, newest first.
//! - `GET /v1/evolutions/{id}` → the run, its outcome and its report (JSON).
//! - `GET /v1/evolutions/{id}/report.html`.
//! - `GET /v1/evolution/requests?action=propose&limit=N` → `{"requests":
//!   [{"id", "at", "agent", "action", "target", "outcome", "run", "detail"}]}`,
//!   newest first: what agents asked through the `evolution` capability
//!   (the audit); `action=propose` lists the proposals an admin may act on.
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use agentkernel_core::api::ErrorBody;
use agentkernel_evolution::background::{Handles, StartError, spawn_evolution};
use agentkernel_evolution::{EvolveOptions, GeneratorSpec, run_dir};
use agentkernel_storage::{Backend, blocking};

use crate::App;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/agents/{name}/evolve", post(start))
        .route("/v1/evolutions", get(list))
        .route("/v1/evolutions/{id}", get(show))
        .route("/v1/evolutions/{id}/report.html", get(report_html))
        .route("/v1/evolution/requests", get(requests))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

/// Reads the host's own backend (handlers never open a database of their
/// own) off the executor, under the storage timeout.
async fn read<T: Send + 'static>(
    app: &App,
    op: impl FnOnce(&dyn Backend) -> Result<T, agentkernel_storage::StorageError> + Send + 'static,
) -> Result<T, Response> {
    let store = app.host.backend.clone();
    blocking::call(blocking::DEFAULT_TIMEOUT, move || op(&*store))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvolveBody {
    #[serde(default)]
    generator: Option<String>,
    #[serde(default)]
    generations: Option<u32>,
    #[serde(default)]
    candidates: Option<usize>,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    swap: Option<bool>,
    /// Continue an interrupted evolution.
    #[serde(default)]
    resume: Option<String>,
    /// Install a winner whose manifest differs from the incumbent's.
    #[serde(default)]
    approve_manifest_change: Option<bool>,
}

async fn start(State(app): State<Arc<App>>, Path(name): Path<String>, body: Result<Json<EvolveBody>, JsonRejection>) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(rej) => return crate::json_rejection(rej),
    };
    if let Err(e) = agentkernel_runtime::validate_agent_name(&name) {
        return error(StatusCode::BAD_REQUEST, "invalid-request", e);
    }
    let generator: GeneratorSpec = match body.generator.as_deref().unwrap_or("llm").parse() {
        Ok(g) => g,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid-request", e),
    };
    let opts = EvolveOptions {
        agent: name.clone(),
        generator,
        generations: body.generations.unwrap_or(1),
        candidates: body.candidates,
        threshold: body.threshold,
        swap: body.swap.unwrap_or(true),
        source: None,
        resume: body.resume.clone(),
        create: None,
        approve_manifest_change: body.approve_manifest_change.unwrap_or(false),
        requested_by: None,
        max_tokens: None,
        max_usd: None,
    };
    match spawn_evolution(&Handles::from(&app.host), opts) {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "agent": name, "status": "running", "report": format!("/v1/evolutions/{id}/report.html")})),
        )
            .into_response(),
        Err(StartError::NotEvolvable(m)) => error(StatusCode::NOT_FOUND, "not-evolvable", m),
        Err(StartError::Running(m)) => error(StatusCode::CONFLICT, "evolution-running", m),
        Err(StartError::Storage(m)) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", m),
    }
}

/// Most audit rows one listing returns.
const MAX_REQUESTS_LISTED: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    action: Option<String>,
    limit: Option<u32>,
}

async fn requests(State(app): State<Arc<App>>, query: Result<axum::extract::Query<RequestsQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let query = match query {
        Ok(axum::extract::Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid-request", e.body_text()),
    };
    const ACTIONS: [&str; 5] = ["create", "evolve", "propose", "compare", "stats"];
    if let Some(a) = query.action.as_deref().filter(|a| !ACTIONS.contains(a)) {
        return error(StatusCode::BAD_REQUEST, "invalid-request", format!("action {a:?}: expected one of {}", ACTIONS.join(", ")));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_REQUESTS_LISTED);
    match read(&app, move |s| s.evolution_requests(query.action.as_deref(), limit)).await {
        Ok(rows) => Json(json!({"requests": rows})).into_response(),
        Err(r) => r,
    }
}

async fn list(State(app): State<Arc<App>>) -> Response {
    match read(&app, |s| s.evolutions(200)).await {
        Ok(rows) => Json(json!({"evolutions": rows})).into_response(),
        Err(r) => r,
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let key = id.clone();
    match read(&app, move |s| s.evolution(&key)).await {
        Ok(Some(rec)) => {
            let outcome: Option<serde_json::Value> = rec.summary.as_deref().and_then(|s| serde_json::from_str(s).ok());
            let report: Option<serde_json::Value> = valid_id(&id)
                .then(|| std::fs::read_to_string(run_dir(&app.host.config.host.data_dir, &id).join("report.json")).ok())
                .flatten()
                .and_then(|t| serde_json::from_str(&t).ok());
            Json(json!({"evolution": rec, "outcome": outcome, "report": report})).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "not-found", format!("no evolution {id}")),
        Err(r) => r,
    }
}

async fn report_html(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if !valid_id(&id) {
        return error(StatusCode::NOT_FOUND, "not-found", format!("no evolution {id}"));
    }
    let path = run_dir(&app.host.config.host.data_dir, &id).join("report.html");
    match std::fs::read_to_string(&path) {
        Ok(html) => ([("content-type", "text/html; charset=utf-8")], html).into_response(),
        Err(_) => error(StatusCode::NOT_FOUND, "not-found", format!("evolution {id} has no report (yet)")),
    }
}
