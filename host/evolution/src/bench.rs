//! Runs a component on every case of a suite in fresh, fuel-limited
//! instances with deterministic capability doubles ([`super::doubles`]).
//!
//! The benchmark has its own runtime: the host's policy for the agent (so
//! a candidate importing more than the incumbent is granted fails to load
//! here; a granted `aws_ec2` is forced to dry run against an unreachable
//! endpoint), the suite's limits with fuel always metered, the run's
//! clocks and random numbers ([`super::environment`]: real-looking, seeded
//! per run, case and variant), the case storage and the scripted LLM.
//! Cases run one at a time, each against a freshly seeded database and
//! script, and each under [`VARIANTS`] environments: fuel is measured
//! under the first (the same for every component of a run), and the case
//! passes only if its answer passes under all of them.
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::doubles::{CaseStorage, ScriptedLlmDouble};
use super::environment::{BenchEnvironment, VARIANTS};
use super::suite::{BenchLimits, Case, Observed};
use agentkernel_runtime::bindings::Request;
use agentkernel_capabilities::memory::namespace_of;
use agentkernel_core::capabilities;
use agentkernel_core::config::HostConfig;
use agentkernel_core::host::{ServiceSet, runtime_options};
use agentkernel_llm::LlmService;
use agentkernel_runtime::limits::{Fuel, LimitOverrides};
use agentkernel_runtime::{CallError, LoadError, LoadedAgent, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot set up the benchmark: {0}")]
    Setup(String),
}

/// One case's outcome for one component.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CaseResult {
    pub name: String,
    pub held_out: bool,
    pub passed: bool,
    pub failures: Vec<String>,
    /// Fuel of the (first) run; `None` when the call failed.
    pub fuel: Option<u64>,
    /// Wall time of each run, milliseconds.
    pub wall_ms: Vec<f64>,
    /// The error code when the call failed.
    pub error: Option<String>,
    pub error_message: Option<String>,
    /// The start of the response text.
    pub text: String,
    pub llm_calls: u32,
}

/// A component's results over the whole suite.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BenchResult {
    pub cases: Vec<CaseResult>,
    pub passed: usize,
    /// Fuel summed over the cases that produced a response.
    pub total_fuel: u64,
    /// Total wall time of each repeat, milliseconds.
    pub total_wall_ms: Vec<f64>,
    pub duration_ms: f64,
}

impl BenchResult {
    pub fn case(&self, name: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.name == name)
    }
}

/// A component's benchmark, wherever it ran.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Measured {
    /// Its manifest and results, or why it could not be loaded.
    pub outcome: Result<(agentkernel_runtime::ManifestInfo, BenchResult), String>,
    /// Wall time of the load and the runs, milliseconds.
    pub ms: f64,
    /// The engine hash its fuel was measured under.
    pub engine: String,
    /// The host that measured it, when not the run's own.
    pub host: Option<String>,
}

/// Why a component could not be loaded, as its report says it.
pub fn load_error_message(e: &LoadError) -> String {
    match e {
        LoadError::Import(agentkernel_runtime::policy::ImportError::NotGranted { .. }) => {
            format!("{e} (a candidate may not import more than the agent is granted; an admin grants it in policy first)")
        }
        _ => e.to_string(),
    }
}

/// One answer of a version to a recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The answer's text, or `error: CODE`.
    pub text: String,
    /// Fuel it took (0 for an unmetered agent or a failed call).
    pub fuel: u64,
    pub failed: bool,
}

pub struct Bench {
    runtime: Arc<Runtime>,
    storage: Arc<CaseStorage>,
    llm: ScriptedLlmDouble,
    environment: Arc<BenchEnvironment>,
    agent: String,
}

impl Bench {
    /// A benchmark whose environment is seeded with `run_seed`: components
    /// benchmarked with the same seed see the same clocks and random numbers.
    pub async fn new(host: &HostConfig, agent: &str, limits: &BenchLimits, run_seed: u64) -> Result<Bench, BenchError> {
        let llm = ScriptedLlmDouble::new();
        let mut config = host.clone();
        let section = config.agents.entry(agent.to_string()).or_default();
        section.limits = LimitOverrides {
            fuel: Some(Fuel::Limit(limits.fuel)),
            deadline_ms: Some(limits.deadline_ms),
            memory_bytes: Some(limits.memory_bytes),
            ..section.limits.clone()
        };
        config.host.max_instances = 4;
        config.host.memory_ceiling_bytes = limits.memory_bytes.max(1 << 20);
        let storage = Arc::new(CaseStorage::new().map_err(|e| BenchError::Setup(e.to_string()))?);
        // The doubles are backends, chosen here; the agent's policy is the
        // one production gives it (see `ServiceSet::benchmark` for EC2).
        let llm_service = Arc::new(LlmService::with_transport(config.llm.clone(), storage.clone(), Arc::new(llm.clone())));
        let set = ServiceSet::benchmark(&config, storage.clone(), storage.clone(), llm_service)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let mut options = runtime_options(&config);
        let environment = BenchEnvironment::new(run_seed);
        options.wasi_environment = Some(environment.clone());
        let runtime = Runtime::new(options, Arc::new(config.policy()), capabilities::all(), set.services)
            .map_err(|e| BenchError::Setup(format!("{e:#}")))?;
        Ok(Bench { runtime, storage, llm, environment, agent: agent.to_string() })
    }

    /// Loads `component` under the agent's policy; it must call itself the agent's name.
    pub async fn load(&self, component: &[u8]) -> Result<LoadedAgent, LoadError> {
        let loaded = self.runtime.load(Arc::from(component), None).await?;
        if loaded.name() != self.agent {
            return Err(LoadError::Manifest(format!("the component calls itself `{}`, not `{}`", loaded.name(), self.agent)));
        }
        Ok(loaded)
    }

    /// The engine hash fuel is measured under here.
    pub fn engine_hash(&self) -> String {
        self.runtime.engine_hash()
    }

    /// Loads `component` and runs every case: its manifest and results,
    /// or why it could not be loaded.
    pub async fn measure(&self, component: &[u8], cases: &[Case], repeats: u32) -> Measured {
        let started = Instant::now();
        let outcome = match self.load(component).await {
            Ok(loaded) => Ok((loaded.manifest.clone(), self.run(&loaded, cases, repeats).await)),
            Err(e) => Err(load_error_message(&e)),
        };
        Measured { outcome, ms: started.elapsed().as_secs_f64() * 1000.0, engine: self.engine_hash(), host: None }
    }

    /// Runs every case `repeats` times (fuel is taken from the first run).
    pub async fn run(&self, agent: &LoadedAgent, cases: &[Case], repeats: u32) -> BenchResult {
        let started = Instant::now();
        let mut results = Vec::with_capacity(cases.len());
        for (index, case) in cases.iter().enumerate() {
            results.push(self.run_case(agent, index, case, repeats.max(1)).await);
        }
        let repeats = repeats.max(1) as usize;
        let total_wall_ms =
            (0..repeats).map(|r| results.iter().map(|c: &CaseResult| c.wall_ms.get(r).copied().unwrap_or(0.0)).sum()).collect();
        BenchResult {
            passed: results.iter().filter(|c| c.passed).count(),
            total_fuel: results.iter().filter_map(|c| c.fuel).sum(),
            cases: results,
            total_wall_ms,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    async fn run_case(&self, agent: &LoadedAgent, index: usize, case: &Case, repeats: u32) -> CaseResult {
        // The suite's default session would be a constant a candidate
        // could test for: such cases get a production-shaped one.
        let session_id =
            if case.session == super::suite::DEFAULT_SESSION { self.environment.session_id(index) } else { case.session.clone() };
        let request = Request {
            session_id,
            text: case.request.clone(),
            history: vec![],
            context: case.context.as_ref().map(|c| c.to_string()),
        };
        let mut result = CaseResult {
            name: case.name.clone(),
            held_out: case.held_out,
            passed: false,
            failures: vec![],
            fuel: None,
            wall_ms: vec![],
            error: None,
            error_message: None,
            text: String::new(),
            llm_calls: 0,
        };
        // Runs 0..repeats measure under the first environment; the other
        // variants follow, their answers checked, their cost not counted.
        for run in 0..repeats + VARIANTS - 1 {
            let variant = run.saturating_sub(repeats - 1);
            self.environment.select(index, variant);
            if let Err(e) = self.storage.reset(namespace_of(agent), &case.memory) {
                result.failures.push(format!("cannot seed memory: {e}"));
                return result;
            }
            self.llm.set_script(&case.llm);
            let started = Instant::now();
            let outcome = agent.call(&request).await;
            if run < repeats {
                result.wall_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            if variant > 0 {
                // Another environment: the answer must pass there too.
                let failures = match &outcome {
                    Ok(o) => case.check(&Observed::Response { text: &o.response.text, data: o.response.data.as_deref() }),
                    Err(e) => case.check(&Observed::Error { code: e.code() }),
                };
                result.failures.extend(failures.into_iter().map(|f| format!("in environment {variant}: {f}")));
                continue;
            }
            if run > 0 {
                continue;
            }
            result.llm_calls = self.llm.calls();
            match &outcome {
                Ok(o) => {
                    result.fuel = o.fuel_used;
                    result.text = o.response.text.chars().take(300).collect();
                    result.failures =
                        case.check(&Observed::Response { text: &o.response.text, data: o.response.data.as_deref() });
                }
                Err(e) => {
                    result.error = Some(e.code().to_string());
                    result.error_message = Some(first_chars(&e.to_string(), 500));
                    result.failures = case.check(&Observed::Error { code: e.code() });
                    if matches!(e, CallError::FuelExhausted { .. } | CallError::Deadline { .. } | CallError::MemoryLimit { .. }) {
                        // A limit hit will not pass on a repeat either.
                        break;
                    }
                }
            }
        }
        result.passed = result.failures.is_empty();
        result
    }
}

impl Bench {
    /// One answer of `agent` to a request from outside the suite (the
    /// shadow stage): empty memory, no LLM script, the environment of slot
    /// `slot` (the same for every component). The text, or `error: CODE`.
    pub async fn answer(&self, agent: &LoadedAgent, slot: usize, text: &str) -> String {
        self.answer_measured(agent, slot, text).await.text
    }

    /// [`answer`](Self::answer), with the fuel it took and whether it failed.
    pub async fn answer_measured(&self, agent: &LoadedAgent, slot: usize, text: &str) -> Answer {
        // Slots after every case index a suite may have.
        self.environment.select(1_000_000 + slot, 0);
        if let Err(e) = self.storage.reset(namespace_of(agent), &Default::default()) {
            return Answer { text: format!("error: cannot reset memory: {e}"), fuel: 0, failed: true };
        }
        self.llm.set_script(&[]);
        let request = Request { session_id: self.environment.session_id(1_000_000 + slot), text: text.into(), history: vec![], context: None };
        match agent.call(&request).await {
            Ok(o) => Answer { text: o.response.text, fuel: o.fuel_used.unwrap_or(0), failed: false },
            Err(e) => Answer { text: format!("error: {}", e.code()), fuel: 0, failed: true },
        }
    }
}

fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
