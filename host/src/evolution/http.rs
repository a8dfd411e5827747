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
    /// Install a winner whose manifest differs from the incumbent's.
    #[serde(default)]
    approve_manifest_change: Option<bool>,
}

async fn start(State(app): State<Arc<App>>, Path(name): Path<String>, body: Result<Json<EvolveBody>, JsonRejection>) -> Response {
    let reg = app.registry.clone();
    let Json(body) = match body {
        Ok(b) => b,
        Err(rej) => return crate::server::json_rejection(rej),
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
        approve_manifest_change: body.approve_manifest_change.unwrap_or(false),
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

/// Keeps an agent in [`RUNNING`] for as long as its evolution task lives.
/// Dropped by a panic or a cancelled task before [`finish`](Self::finish),
/// it also marks a run still `running` as `failed` (panic) or
/// `interrupted` (cancelled), so the agent can evolve again and the run
/// does not look alive forever; its checkpoint is kept for `--resume`.
struct RunningGuard {
    agent: String,
    evolution: String,
    store: Arc<SqliteStorage>,
    finished: bool,
}

impl RunningGuard {
    /// The engine returned (it recorded the run's end itself).
    fn finish(&mut self) {
        self.finished = true;
        RUNNING.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.agent);
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        RUNNING.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.agent);
        let (status, error) = if std::thread::panicking() {
            ("failed", "the evolution task panicked (see the server log)")
        } else {
            ("interrupted", "the evolution task was cancelled")
        };
        match self.store.evolution(&self.evolution) {
            Ok(Some(mut rec)) if rec.status == "running" => {
                rec.status = status.into();
                rec.finished_at = Some(crate::llm::now_unix());
                rec.summary = Some(json!({ "error": error }).to_string());
                if let Err(e) = self.store.upsert_evolution(&rec) {
                    tracing::error!(evolution = %self.evolution, "cannot mark the run {status}: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(evolution = %self.evolution, "cannot read the run to mark it {status}: {e}"),
        }
        tracing::error!(evolution = %self.evolution, agent = %self.agent, "{error}");
    }
}

/// Adds the post-swap watch's outcome to the run's outcome (`watch`).
fn record_watch(store: &SqliteStorage, evolution: &str, watch: &super::swap::WatchOutcome) {
    let Ok(Some(mut rec)) = store.evolution(evolution) else { return };
    let mut summary: serde_json::Value = rec.summary.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_else(|| json!({}));
    summary["watch"] = serde_json::to_value(watch).unwrap_or_default();
    rec.summary = Some(summary.to_string());
    if let Err(e) = store.upsert_evolution(&rec) {
        tracing::error!(%evolution, "cannot record the post-swap watch: {e}");
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
    let guard = RunningGuard { agent: name.clone(), evolution: id.clone(), store: store.clone(), finished: false };
    tokio::spawn(async move {
        let mut guard = guard;
        let result = engine.evolve_with_id(opts, task_id.clone(), &|line| tracing::info!(evolution = %task_id, "{line}")).await;
        guard.finish();
        match result {
            Ok(outcome) if outcome.decision == "swapped" && config.evolution.watch_calls > 0 => {
                let settings = super::swap::WatchSettings {
                    calls: config.evolution.watch_calls,
                    tolerance: config.evolution.rollback_tolerance,
                    max_wait: std::time::Duration::from_secs(24 * 3600),
                };
                let watch = super::swap::watch_after_swap(
                    reg.clone(),
                    store.clone(),
                    config.host.data_dir.clone(),
                    config.host.agents_dir.clone(),
                    name.clone(),
                    outcome.incumbent_version.clone(),
                    outcome.winner_version.clone().unwrap_or_default(),
                    outcome.calls_before_swap.unwrap_or((0, 0)),
                    settings,
                )
                .await;
                match &watch {
                    super::swap::WatchOutcome::RollbackFailed { error, .. } => {
                        tracing::error!(agent = %name, "post-swap watch: the error rate rose and the rollback FAILED: {error}")
                    }
                    other => tracing::info!(agent = %name, "post-swap watch: {other:?}"),
                }
                record_watch(&store, &task_id, &watch);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::evolution::EvolutionRecord;

    #[tokio::test]
    async fn a_panicking_evolution_task_frees_the_agent_and_fails_its_run() {
        let store = Arc::new(SqliteStorage::in_memory().unwrap());
        let rec = EvolutionRecord {
            id: "panicky-1".into(),
            agent: "panicky".into(),
            status: "running".into(),
            decision: None,
            started_at: 1,
            finished_at: None,
            checkpoint: Some("{}".into()),
            summary: None,
        };
        store.upsert_evolution(&rec).unwrap();
        assert!(RUNNING.lock().unwrap().insert("panicky".into()));
        let guard = RunningGuard { agent: "panicky".into(), evolution: "panicky-1".into(), store: store.clone(), finished: false };
        let task = tokio::spawn(async move {
            let _guard = guard;
            panic!("a bug in the engine");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(!RUNNING.lock().unwrap().contains("panicky"), "the agent may evolve again");
        let after = store.evolution("panicky-1").unwrap().unwrap();
        assert_eq!(after.status, "failed");
        assert!(after.summary.unwrap().contains("panicked"));
        assert_eq!(after.checkpoint.as_deref(), Some("{}"), "still resumable");
    }
}
