//! Evolutions run in the background of a serving process (started from
//! the HTTP API or by [`crate::auto`]): one per agent at a time, marked
//! `failed`/`interrupted` if the task dies, and watched after a swap.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::json;

use agentkernel_core::config::HostConfig;
use agentkernel_core::host::Host;
use agentkernel_core::registry::Registry;
use agentkernel_llm::LlmService;
use agentkernel_storage::Backend;

/// What a background evolution works with, all from the serving host.
#[derive(Clone)]
pub struct Handles {
    pub registry: Arc<Registry>,
    pub config: Arc<HostConfig>,
    pub store: Arc<dyn Backend>,
    pub llm: Arc<LlmService>,
}

impl From<&Host> for Handles {
    fn from(host: &Host) -> Handles {
        Handles { registry: host.registry.clone(), config: host.config.clone(), store: host.backend.clone(), llm: host.llm.clone() }
    }
}

use crate::{Engine, EvolveOptions};

/// Agents with an evolution running in this process (one at a time each).
static RUNNING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Whether an evolution of `agent` runs in this process now.
pub fn is_running(agent: &str) -> bool {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner()).contains(agent)
}

/// Keeps an agent in [`RUNNING`] for as long as its evolution task lives.
/// Dropped by a panic or a cancelled task before [`finish`](Self::finish),
/// it also marks a run still `running` as `failed` (panic) or
/// `interrupted` (cancelled), so the agent can evolve again and the run
/// does not look alive forever; its checkpoint is kept for `--resume`.
struct RunningGuard {
    agent: String,
    evolution: String,
    store: Arc<dyn Backend>,
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
                rec.finished_at = Some(agentkernel_llm::now_unix());
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
fn record_watch(store: &dyn Backend, evolution: &str, watch: &crate::swap::WatchOutcome) {
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
pub fn spawn_evolution(handles: &Handles, opts: EvolveOptions) -> Result<String, StartError> {
    let reg = handles.registry.clone();
    let name = opts.agent.clone();
    let config = handles.config.clone();
    if opts.create.is_none() {
        crate::locate_source(&config.evolution, &name, opts.source.as_deref()).map_err(|e| StartError::NotEvolvable(e.to_string()))?;
    }
    let store = handles.store.clone();
    if !RUNNING.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone()) {
        return Err(StartError::Running(format!("an evolution of `{name}` is already running")));
    }
    let id = opts.resume.clone().unwrap_or_else(|| crate::new_id(&name));
    let engine = Engine { config: config.clone(), store: store.clone(), registry: Some(reg.clone()), llm: handles.llm.clone() };
    let task_id = id.clone();
    let guard = RunningGuard { agent: name.clone(), evolution: id.clone(), store: store.clone(), finished: false };
    tokio::spawn(async move {
        let mut guard = guard;
        let result = engine.evolve_with_id(opts, task_id.clone(), &|line| tracing::info!(evolution = %task_id, "{line}")).await;
        guard.finish();
        match result {
            Ok(outcome) if outcome.decision == "swapped" && config.evolution.watch_calls > 0 => {
                let settings = crate::swap::WatchSettings {
                    calls: config.evolution.watch_calls,
                    tolerance: config.evolution.rollback_tolerance,
                    max_wait: std::time::Duration::from_secs(24 * 3600),
                };
                let watch = crate::swap::watch_after_swap(
                    reg.clone(),
                    store.clone(),
                    config.clone(),
                    name.clone(),
                    outcome.incumbent_version.clone(),
                    outcome.winner_version.clone().unwrap_or_default(),
                    outcome.calls_before_swap.unwrap_or((0, 0)),
                    settings,
                )
                .await;
                match &watch {
                    crate::swap::WatchOutcome::RollbackFailed { error, .. } => {
                        tracing::error!(agent = %name, "post-swap watch: the error rate rose and the rollback FAILED: {error}")
                    }
                    other => tracing::info!(agent = %name, "post-swap watch: {other:?}"),
                }
                record_watch(&*store, &task_id, &watch);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(evolution = %task_id, "evolution failed: {e}"),
        }
    });
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentkernel_storage::evolution::EvolutionRecord;

    #[tokio::test]
    async fn a_panicking_evolution_task_frees_the_agent_and_fails_its_run() {
        let store: Arc<dyn Backend> = Arc::new(agentkernel_storage::sqlite::SqliteStorage::in_memory().unwrap());
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
