//! The evolution endpoints (admin): start an evolution in the server
//! process, list runs, fetch one and its HTML report.
//!
//! - `POST /v1/agents/{name}/evolve` `{"generator": "dir:PATH"|"llm",
//!   "generations": 1, "candidates": 3, "threshold": 0.15, "swap": true}`
//!   → 202 `{"id", "agent", "status": "running", "report"}`; the run goes on
//!   in the background. After a swap the live error rate is watched for
//!   `[evolution] watch_calls` calls and the old version restored if it rose.
//! - `GET /v1/evolutions` → `{"evolutions": [{"id", "agent", "status",
//!   "decision", "started_at", "finished_at"}]}`, newest first.
//! - `GET /v1/evolutions/{id}` → the run, its outcome and its report (JSON).
//! - `GET /v1/evolutions/{id}/report.html`.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{Engine, EvolveOptions, GeneratorSpec, run_dir};
use crate::api::ErrorBody;
use crate::host::Host;
use crate::registry::Registry;
use crate::server::App;
use crate::storage::evolution::EvolutionStore;
use crate::storage::sqlite::SqliteStorage;

/// Agents with an evolution running in this process (one at a time each).
static RUNNING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/agents/{name}/evolve", post(start))
        .route("/v1/evolutions", get(list))
        .route("/v1/evolutions/{id}", get(show))
        .route("/v1/evolutions/{id}/report.html", get(report_html))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

fn store(reg: &Registry) -> Result<Arc<SqliteStorage>, Response> {
    SqliteStorage::open(&Host::database_path(reg.runtime().config()))
        .map(Arc::new)
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
}

async fn start(State(app): State<Arc<App>>, Path(name): Path<String>, body: Result<Json<EvolveBody>, JsonRejection>) -> Response {
    let reg = app.registry.clone();
    let Json(body) = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), "invalid-request", rej.body_text()),
    };
    if let Err(e) = crate::runtime::validate_agent_name(&name) {
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
    };
    match spawn_evolution(reg, opts) {
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

/// Why an evolution could not start.
#[derive(Debug)]
pub enum StartError {
    NotEvolvable(String),
    Running(String),
    Storage(String),
}

/// Starts an evolution in the background of this process (one per agent);
/// after a swap, watches the live error rate and rolls back if it rose.
/// Returns the evolution's id.
pub fn spawn_evolution(reg: Arc<Registry>, opts: EvolveOptions) -> Result<String, StartError> {
    let name = opts.agent.clone();
    let config = Arc::new(reg.runtime().config().clone());
    if opts.create.is_none() {
        super::locate_source(&config.evolution, &name, opts.source.as_deref()).map_err(|e| StartError::NotEvolvable(e.to_string()))?;
    }
    let store = SqliteStorage::open(&Host::database_path(&config)).map(Arc::new).map_err(|e| StartError::Storage(e.to_string()))?;
    if !RUNNING.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone()) {
        return Err(StartError::Running(format!("an evolution of `{name}` is already running")));
    }
    let id = opts.resume.clone().unwrap_or_else(|| super::new_id(&name));
    let engine = Engine { config: config.clone(), store: store.clone(), registry: Some(reg.clone()), llm: reg.runtime().llm().clone() };
    let task_id = id.clone();
    tokio::spawn(async move {
        let result = engine.evolve_with_id(opts, task_id.clone(), &|line| tracing::info!(evolution = %task_id, "{line}")).await;
        RUNNING.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
        match result {
            Ok(outcome) if outcome.decision == "swapped" && config.evolution.watch_calls > 0 => {
                let settings = super::swap::WatchSettings {
                    calls: config.evolution.watch_calls,
                    tolerance: config.evolution.rollback_tolerance,
                    max_wait: std::time::Duration::from_secs(24 * 3600),
                };
                let outcome = super::swap::watch_after_swap(
                    reg.clone(),
                    store,
                    config.host.data_dir.clone(),
                    config.host.agents_dir.clone(),
                    name.clone(),
                    outcome.incumbent_version.clone(),
                    outcome.calls_before_swap.unwrap_or((0, 0)),
                    settings,
                )
                .await;
                tracing::info!(agent = %name, "post-swap watch: {outcome:?}");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(evolution = %task_id, "evolution failed: {e}"),
        }
    });
    Ok(id)
}

async fn list(State(app): State<Arc<App>>) -> Response {
    let reg = &app.registry;
    let store = match store(&reg) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match store.evolutions(200) {
        Ok(rows) => Json(json!({"evolutions": rows})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let reg = &app.registry;
    let store = match store(&reg) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match store.evolution(&id) {
        Ok(Some(rec)) => {
            let outcome: Option<serde_json::Value> = rec.summary.as_deref().and_then(|s| serde_json::from_str(s).ok());
            let report: Option<serde_json::Value> = valid_id(&id)
                .then(|| std::fs::read_to_string(run_dir(&reg.runtime().config().host.data_dir, &id).join("report.json")).ok())
                .flatten()
                .and_then(|t| serde_json::from_str(&t).ok());
            Json(json!({"evolution": rec, "outcome": outcome, "report": report})).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "not-found", format!("no evolution {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    }
}

async fn report_html(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let reg = &app.registry;
    if !valid_id(&id) {
        return error(StatusCode::NOT_FOUND, "not-found", format!("no evolution {id}"));
    }
    let path = run_dir(&reg.runtime().config().host.data_dir, &id).join("report.html");
    match std::fs::read_to_string(&path) {
        Ok(html) => ([("content-type", "text/html; charset=utf-8")], html).into_response(),
        Err(_) => error(StatusCode::NOT_FOUND, "not-found", format!("evolution {id} has no report (yet)")),
    }
}
