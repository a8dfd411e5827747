//! The `evolution` capability's requests on this engine: what a serving
//! process installs on its host's [`EvolutionDesk`](agentkernel_capabilities::evolution::EvolutionDesk).
//!
//! Creations and evolutions start in the background exactly as the HTTP
//! API starts them ([`spawn_evolution`]: one per agent, watched after a
//! swap), with the LLM generator, the requesting agent recorded (so a
//! creation is never registered without the security review) and its LLM
//! budget. A run's status is what the run's owner may read: the decision
//! and numbers, never host paths. A comparison replays the agent's most
//! recent recorded requests on two kept versions in benchmark instances
//! and answers with numbers only (no request or answer text: the requests
//! are other users' words).
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use agentkernel_capabilities::evolution::{
    AgentStats, CreateRequest, EvolutionService, RunBudget, RunInfo, ServiceError, ServiceFuture,
};
use agentkernel_storage::blocking;

use crate::background::{Handles, StartError, spawn_evolution};
use crate::bench::Bench;
use crate::suite::BenchLimits;
use crate::{CreateSpec, EvolveOptions, GeneratorSpec, Outcome};

/// Candidates a requested run generates per generation.
const REQUESTED_CANDIDATES: usize = 2;
/// Shortest version prefix accepted by `compare-versions`.
const MIN_VERSION_PREFIX: usize = 6;

pub struct EngineService {
    handles: Handles,
}

impl EngineService {
    pub fn new(handles: Handles) -> Self {
        EngineService { handles }
    }

    /// What can refuse a run, checked before anything is written.
    fn check_startable(&self, agent: &str) -> Result<(), ServiceError> {
        if self.handles.llm.endpoint().is_none() {
            return Err(ServiceError::Failed("no LLM is configured on this host to write code".into()));
        }
        if crate::background::is_running(agent) {
            return Err(ServiceError::Busy(format!("an evolution of `{agent}` is already running")));
        }
        Ok(())
    }

    /// A created agent's name must be new to this host: a name with a
    /// policy section, a file in the agents directory, recorded versions or
    /// stored memory would inherit another agent's grants or data.
    async fn check_new_name(&self, name: &str) -> Result<(), ServiceError> {
        let taken = |why: &str| Err(ServiceError::Busy(format!("the name `{name}` is taken ({why}); choose a new one")));
        if self.handles.registry.get(name).is_some() {
            return taken("a loaded agent");
        }
        if self.handles.config.agents.contains_key(name) {
            return taken("it has a policy section");
        }
        if self.handles.config.host.agents_dir.join(format!("{name}.wasm")).exists() {
            return taken("a file in the agents directory");
        }
        let (store, key) = (self.handles.store.clone(), name.to_string());
        let used = blocking::call(blocking::DEFAULT_TIMEOUT, move || {
            Ok(!store.versions(&key)?.is_empty() || store.kv_usage(&key)?.keys > 0 || store.history_usage(&key)?.turns > 0)
        })
        .await
        .map_err(|e| ServiceError::Failed(e.to_string()))?;
        if used { taken("it has recorded versions or stored data") } else { Ok(()) }
    }

    fn start(&self, opts: EvolveOptions) -> Result<String, ServiceError> {
        self.check_startable(&opts.agent)?;
        spawn_evolution(&self.handles, opts).map_err(|e| match e {
            StartError::Running(m) => ServiceError::Busy(m),
            StartError::NotEvolvable(m) => ServiceError::NotFound(m),
            StartError::Storage(m) => ServiceError::Failed(m),
        })
    }

    /// Writes the new agent's cases as a suite file (the `evolve.toml` format):
    /// only for a run about to start, so at most `runs_per_day` a day per
    /// requesting agent (a run that then fails to start removes it).
    fn write_cases(&self, request: &CreateRequest) -> Result<PathBuf, ServiceError> {
        let dir = self.handles.config.host.data_dir.join("evolve").join("requested").join(crate::new_id(&request.name));
        let cases: Vec<toml::Value> = request
            .cases
            .iter()
            .map(|c| {
                let mut t = toml::Table::new();
                t.insert("name".into(), c.name.clone().into());
                t.insert("request".into(), c.request.clone().into());
                t.insert("held_out".into(), c.held_out.into());
                let mut expect = toml::Table::new();
                expect.insert("contains".into(), toml::Value::Array(c.expect_contains.iter().cloned().map(Into::into).collect()));
                t.insert("expect".into(), expect.into());
                toml::Value::Table(t)
            })
            .collect();
        let mut suite = toml::Table::new();
        suite.insert("case".into(), toml::Value::Array(cases));
        let text = toml::to_string(&suite).map_err(|e| ServiceError::Failed(format!("cannot write the cases: {e}")))?;
        std::fs::create_dir_all(&dir).map_err(|e| ServiceError::Failed(format!("{}: {e}", dir.display())))?;
        let path = dir.join("evolve.toml");
        std::fs::write(&path, text).map_err(|e| ServiceError::Failed(format!("{}: {e}", path.display())))?;
        Ok(path)
    }

    fn options(&self, agent: &str, requester: &str, budget: RunBudget) -> EvolveOptions {
        let mut opts = EvolveOptions::new(agent, GeneratorSpec::Llm);
        opts.candidates = Some(REQUESTED_CANDIDATES);
        opts.requested_by = Some(requester.into());
        opts.max_tokens = budget.max_tokens;
        opts.max_usd = budget.max_usd;
        opts
    }

    /// A kept version of `agent` by hash or unique prefix.
    async fn version(&self, agent: &str, prefix: &str) -> Result<String, ServiceError> {
        if prefix.len() < MIN_VERSION_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::Invalid(format!("a version is a hash or a prefix of at least {MIN_VERSION_PREFIX} hex digits")));
        }
        let (store, name) = (self.handles.store.clone(), agent.to_string());
        let versions = blocking::call(blocking::DEFAULT_TIMEOUT, move || store.versions(&name))
            .await
            .map_err(|e| ServiceError::Failed(e.to_string()))?;
        let matching: Vec<String> = versions.into_iter().map(|v| v.hash).filter(|h| h.starts_with(prefix)).collect();
        match matching.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ServiceError::NotFound(format!("`{agent}` has no recorded version {prefix}"))),
            _ => Err(ServiceError::Invalid(format!("{prefix} names several versions of `{agent}`"))),
        }
    }

    async fn compare_versions(&self, agent: &str, baseline: &str, candidate: &str, max: u32) -> Result<String, ServiceError> {
        let (a, b) = (self.version(agent, baseline).await?, self.version(agent, candidate).await?);
        let (store, name) = (self.handles.store.clone(), agent.to_string());
        let requests = blocking::call(blocking::DEFAULT_TIMEOUT, move || store.recent_requests(&name, max))
            .await
            .map_err(|e| ServiceError::Failed(e.to_string()))?;
        let config = &self.handles.config;
        let bench = Bench::new(config, agent, &BenchLimits::default(), 0).await.map_err(|e| ServiceError::Failed(e.to_string()))?;
        let load = async |hash: &str| {
            let path = crate::swap::components_dir(&config.host.data_dir).join(format!("{hash}.wasm"));
            let bytes = tokio::fs::read(&path).await.map_err(|_| ServiceError::NotFound(format!("version {} is not kept", &hash[..12])))?;
            bench.load(&bytes).await.map_err(|e| ServiceError::Failed(format!("cannot load {}: {e}", &hash[..12])))
        };
        let (base, cand) = (load(&a).await?, load(&b).await?);
        let (mut agreed, mut totals) = (0usize, [(0u64, 0u64); 2]);
        for (i, request) in requests.iter().enumerate() {
            let x = bench.answer_measured(&base, i, request).await;
            let y = bench.answer_measured(&cand, i, request).await;
            agreed += usize::from(x.text == y.text);
            for (t, ans) in totals.iter_mut().zip([&x, &y]) {
                t.0 += u64::from(ans.failed);
                t.1 += ans.fuel;
            }
        }
        Ok(comparison(agent, [&a, &b], requests.len(), agreed, totals).to_string())
    }
}

/// The comparison's document: which version is better, and why, in numbers.
fn comparison(agent: &str, versions: [&str; 2], requests: usize, agreed: usize, totals: [(u64, u64); 2]) -> serde_json::Value {
    let n = requests.max(1) as u64;
    let side = |i: usize| json!({ "version": versions[i], "errors": totals[i].0, "fuel": totals[i].1, "mean_fuel": totals[i].1 / n });
    let [(base_err, base_fuel), (cand_err, cand_fuel)] = totals;
    let (better, reason) = if requests == 0 {
        ("tie", "no recorded requests to compare on".to_string())
    } else if base_err != cand_err {
        let b = if cand_err < base_err { "candidate" } else { "baseline" };
        (b, format!("fewer errors ({} vs {})", base_err.min(cand_err), base_err.max(cand_err)))
    } else if base_fuel.abs_diff(cand_fuel) * 20 > base_fuel.max(cand_fuel) {
        let b = if cand_fuel < base_fuel { "candidate" } else { "baseline" };
        (b, format!("less fuel ({} vs {})", base_fuel.min(cand_fuel), base_fuel.max(cand_fuel)))
    } else {
        ("tie", "the same errors and fuel within 5%".to_string())
    };
    json!({
        "agent": agent,
        "requests": requests,
        "agreed": agreed,
        "disagreements": requests - agreed,
        "baseline": side(0),
        "candidate": side(1),
        "better": better,
        "reason": reason,
    })
}

/// What the run's owner may read of a run's outcome: the decision and
/// numbers, never the engine's own messages (they name host paths and
/// build output); an admin reads those in the report.
fn guest_summary(status: &str, summary: Option<&str>) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(summary?).ok()?;
    if status != "finished" {
        return Some(json!({ "error": format!("the run {status}; an admin can read why in its report") }).to_string());
    }
    let outcome: Outcome = serde_json::from_value(value).ok()?;
    Some(
        json!({
            "decision": outcome.decision,
            "incumbent_fuel": outcome.incumbent_fuel,
            "winner_fuel": outcome.winner_fuel,
            "winner_version": outcome.winner_version,
            "security_review": outcome.security_review,
        })
        .to_string(),
    )
}

impl EvolutionService for EngineService {
    fn create(&self, request: CreateRequest) -> ServiceFuture<'_, String> {
        Box::pin(async move {
            self.check_new_name(&request.name).await?;
            self.check_startable(&request.name)?;
            let cases = self.write_cases(&request)?;
            let mut opts = self.options(&request.name, &request.requester, request.budget);
            opts.create = Some(CreateSpec { spec: request.spec.clone(), cases: cases.clone() });
            let started = self.start(opts);
            if started.is_err()
                && let Some(dir) = cases.parent()
            {
                let _ = std::fs::remove_dir_all(dir);
            }
            started
        })
    }

    fn evolve<'a>(&'a self, requester: &'a str, agent: &'a str, budget: RunBudget) -> ServiceFuture<'a, String> {
        Box::pin(async move {
            if self.handles.registry.get(agent).is_none() {
                return Err(ServiceError::NotFound(format!("no agent `{agent}` is loaded")));
            }
            self.start(self.options(agent, requester, budget))
        })
    }

    fn run<'a>(&'a self, id: &'a str) -> ServiceFuture<'a, Option<RunInfo>> {
        Box::pin(async move {
            let (store, key) = (self.handles.store.clone(), id.to_string());
            let record = blocking::call(blocking::DEFAULT_TIMEOUT, move || store.evolution(&key))
                .await
                .map_err(|e| ServiceError::Failed(e.to_string()))?;
            Ok(record.map(|r| RunInfo {
                summary: guest_summary(&r.status, r.summary.as_deref()),
                id: r.id,
                agent: r.agent,
                status: r.status,
                decision: r.decision,
            }))
        })
    }

    fn stats(&self) -> Vec<AgentStats> {
        let metrics = self.handles.registry.runtime().metrics();
        let evolution = &self.handles.config.evolution;
        self.handles
            .registry
            .list()
            .iter()
            .map(|a| {
                let (calls, errors) = metrics.agent_call_counts(a.name());
                AgentStats {
                    name: a.name().to_string(),
                    version: a.manifest.version.clone(),
                    calls,
                    errors,
                    fuel: metrics.agent_fuel_total(a.name()),
                    evolvable: crate::locate_source(evolution, a.name(), None).is_ok(),
                }
            })
            .collect()
    }

    fn compare<'a>(&'a self, agent: &'a str, baseline: &'a str, candidate: &'a str, max_requests: u32) -> ServiceFuture<'a, String> {
        Box::pin(self.compare_versions(agent, baseline, candidate, max_requests))
    }
}

/// Installs this process's engine on `host`'s evolution desk.
pub fn install(host: &agentkernel_core::host::Host) {
    host.evolution.install(Arc::new(EngineService::new(Handles::from(host))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_better_version_has_fewer_errors_then_less_fuel() {
        let c = comparison("a", ["x", "y"], 4, 3, [(1, 100), (0, 500)]);
        assert_eq!(c["better"], "candidate");
        let c = comparison("a", ["x", "y"], 4, 4, [(0, 1000), (0, 500)]);
        assert_eq!((c["better"].as_str(), c["candidate"]["mean_fuel"].as_u64()), (Some("candidate"), Some(125)));
        assert_eq!(comparison("a", ["x", "y"], 4, 4, [(0, 1000), (0, 990)])["better"], "tie");
        assert_eq!(comparison("a", ["x", "y"], 0, 0, [(0, 0), (0, 0)])["better"], "tie");
    }

    #[test]
    fn a_guest_never_reads_host_paths_in_a_summary() {
        let outcome = json!({
            "evolution": "e", "agent": "a", "reason": "r", "incumbent_version": "v", "installed": "/srv/agents/a.wasm",
            "decision": "swapped", "winner_version": "w", "incumbent_fuel": 10, "winner_fuel": 5,
            "report_json": "/srv/data/report.json", "report_html": "/srv/data/report.html"
        });
        let s = guest_summary("finished", Some(&outcome.to_string())).unwrap();
        assert!(!s.contains("/srv"), "{s}");
        assert!(s.contains("\"winner_fuel\":5"));
        let failed = guest_summary("failed", Some(r#"{"error":"/srv/data/evolve/x: no such file"}"#)).unwrap();
        assert!(!failed.contains("/srv") && failed.contains("failed"), "{failed}");
    }
}
