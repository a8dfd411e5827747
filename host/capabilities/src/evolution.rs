//! `evolution`: an agent asking the host to create, evolve, compare and
//! propose agents.
//!
//! Scope: [`EvolutionScope`] (which requests, which targets, runs per UTC
//! day, an LLM budget per run). The work is done by an [`EvolutionService`]
//! — the evolution engine, which sits above the host — found through the
//! [`EvolutionDesk`] service: the host is assembled first and the engine
//! installed on the desk afterwards, so this crate never depends on the
//! engine. Every request, granted or refused, is written to the audit
//! (`EvolutionStore::evolution_request_*`); a run-starting request takes one
//! of the day's runs before the run starts, in one transaction.
//!
//! What a guest can consume through it, and the bound of each: runs (the
//! scope's `runs_per_day`, counted in the database, so restarts and
//! concurrent calls do not reset it; one run per target at a time, by the
//! engine), LLM tokens and dollars per run (`tokens_per_run`/`usd_per_run`,
//! never above `[evolution]`'s), build CPU/memory/disk (the engine's
//! sandbox limits), the bytes of a request (`MAX_*` below), audit rows
//! (refusals, proposals, reads: at most `MAX_NOTES_PER_DAY` per action a day), and reads
//! (`compare-versions` replays at most [`MAX_COMPARE_REQUESTS`] requests).
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

use agentkernel_runtime::bindings::agentkernel::agent::evolution::{self as wit, EvolutionError};
use agentkernel_runtime::{CallInfo, CapabilityStates, Grant, HostCapability, InstanceState, PrepareError, PreparedCapability, parse_scope};
use agentkernel_storage::blocking;
use agentkernel_storage::evolution::{EvolutionRequest, EvolutionStore, MAX_NOTES_PER_DAY};

/// Longest spec of a new agent, in bytes.
pub const MAX_SPEC_BYTES: usize = 8 * 1024;
/// Most cases of a new agent, and the longest request or expected string.
pub const MAX_CASES: usize = 32;
pub const MAX_CASE_BYTES: usize = 2 * 1024;
/// Longest detail of a proposal, in bytes.
pub const MAX_DETAIL_BYTES: usize = 4 * 1024;
/// Most recorded requests one comparison replays.
pub const MAX_COMPARE_REQUESTS: u32 = 32;
/// The agent that reviews created agents: never an evolution target
/// through this capability (a weakened reviewer would wave through what
/// it reviews later).
pub const REVIEWER: &str = "security-guardian";
/// Runs per UTC day when the scope does not say.
pub const DEFAULT_RUNS_PER_DAY: u32 = 3;

/// Scope of an `evolution` grant:
/// `evolution = { create = true, evolve = ["primes"], stats = true, runs_per_day = 3 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvolutionScope {
    /// May create new agents (a name no loaded agent has).
    #[serde(default)]
    pub create: bool,
    /// Agents it may evolve (`"*"`: any evolvable agent).
    #[serde(default)]
    pub evolve: Vec<String>,
    /// May read the loaded agents' metrics.
    #[serde(default)]
    pub stats: bool,
    /// May compare recorded versions on recorded traffic.
    #[serde(default)]
    pub compare: bool,
    /// May propose changes for an admin.
    #[serde(default)]
    pub propose: bool,
    /// Runs (create + evolve) per UTC day.
    pub runs_per_day: Option<u32>,
    /// LLM tokens one run may spend (never above `[evolution] max_tokens_per_evolution`).
    pub tokens_per_run: Option<u64>,
    /// Dollars one run may spend (never above `[evolution] max_usd_per_evolution`).
    pub usd_per_run: Option<f64>,
}

impl EvolutionScope {
    fn check(&self) -> Result<(), String> {
        if self.usd_per_run.is_some_and(|d| !d.is_finite() || d < 0.0) {
            return Err("usd_per_run must be a non-negative number".into());
        }
        match self.evolve.iter().find(|n| *n != "*" && !valid_name(n)) {
            Some(bad) => Err(format!("evolve: {bad:?} is not an agent name")),
            None => Ok(()),
        }
    }

    /// Whether the scope names `agent` (`"*"`: any), never the reviewer
    /// nor the requesting agent itself.
    fn may_evolve(&self, requester: &str, agent: &str) -> bool {
        agent != REVIEWER && agent != requester && self.evolve.iter().any(|n| n == "*" || n == agent)
    }

    fn runs_per_day(&self) -> u64 {
        u64::from(self.runs_per_day.unwrap_or(DEFAULT_RUNS_PER_DAY))
    }

    fn budget(&self) -> RunBudget {
        RunBudget { max_tokens: self.tokens_per_run, max_usd: self.usd_per_run }
    }
}

/// Agent names as the host accepts them: `a-z0-9-`, 1 to 64 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// What a run may spend on the LLM, from the requesting agent's scope.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunBudget {
    pub max_tokens: Option<u64>,
    pub max_usd: Option<f64>,
}

/// One case of a new agent (checked for size by the capability).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseSpec {
    pub name: String,
    pub request: String,
    pub expect_contains: Vec<String>,
    pub held_out: bool,
}

/// A request to create an agent.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The agent asking.
    pub requester: String,
    pub name: String,
    pub spec: String,
    pub cases: Vec<CaseSpec>,
    pub budget: RunBudget,
}

/// A run, as the service reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub id: String,
    pub agent: String,
    pub status: String,
    pub decision: Option<String>,
    pub summary: Option<String>,
}

/// A loaded agent's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStats {
    pub name: String,
    pub version: String,
    pub calls: u64,
    pub errors: u64,
    pub fuel: u64,
    pub evolvable: bool,
}

/// Why the service could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

impl From<ServiceError> for EvolutionError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => EvolutionError::InvalidRequest(m),
            ServiceError::Busy(m) => EvolutionError::Busy(m),
            ServiceError::NotFound(m) => EvolutionError::NotFound(m),
            ServiceError::Failed(m) => EvolutionError::Failed(m),
        }
    }
}

pub type ServiceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ServiceError>> + Send + 'a>>;

/// What does the work: the evolution engine of the serving process.
pub trait EvolutionService: Send + Sync + 'static {
    /// Starts creating an agent; the run's id.
    fn create(&self, request: CreateRequest) -> ServiceFuture<'_, String>;
    /// Starts evolving `agent` with the host's generator; the run's id.
    fn evolve<'a>(&'a self, requester: &'a str, agent: &'a str, budget: RunBudget) -> ServiceFuture<'a, String>;
    /// A run, by id.
    fn run<'a>(&'a self, id: &'a str) -> ServiceFuture<'a, Option<RunInfo>>;
    /// The loaded agents' metrics.
    fn stats(&self) -> Vec<AgentStats>;
    /// Two versions of `agent` on its recorded requests: a JSON document.
    fn compare<'a>(&'a self, agent: &'a str, baseline: &'a str, candidate: &'a str, max_requests: u32) -> ServiceFuture<'a, String>;
}

/// Where the host's [`EvolutionService`] is installed once the engine
/// exists. Empty in a host without one (`agentkernel run`, the benchmark):
/// then every request that needs the engine fails with `failed`.
#[derive(Default)]
pub struct EvolutionDesk(OnceLock<Arc<dyn EvolutionService>>);

impl EvolutionDesk {
    /// Installs the service (the first one stays).
    pub fn install(&self, service: Arc<dyn EvolutionService>) {
        let _ = self.0.set(service);
    }
    fn service(&self) -> Result<&Arc<dyn EvolutionService>, EvolutionError> {
        self.0.get().ok_or_else(|| EvolutionError::Failed("this host runs no evolution engine (serve it with `agentkernel serve`)".into()))
    }
}

/// `evolution` configured for one agent.
pub struct Prepared {
    scope: Arc<EvolutionScope>,
    desk: Arc<EvolutionDesk>,
    audit: Arc<dyn EvolutionStore>,
}

impl PreparedCapability for Prepared {
    fn instance_state(&self, call: &CallInfo<'_>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(Box::new(EvolutionState {
            agent: call.agent.to_string(),
            scope: self.scope.clone(),
            desk: self.desk.clone(),
            audit: self.audit.clone(),
        }))
    }
}

/// One call's `evolution` state.
pub struct EvolutionState {
    agent: String,
    scope: Arc<EvolutionScope>,
    desk: Arc<EvolutionDesk>,
    audit: Arc<dyn EvolutionStore>,
}

struct HasEvolution;
impl HasData for HasEvolution {
    type Data<'a> = &'a mut EvolutionState;
}

/// Links `evolution` into any store whose data keeps capability states.
pub fn add_to_linker<T: CapabilityStates>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasEvolution>(linker, |s| s.state::<EvolutionState>())
}

/// The `evolution` capability (see the module docs for every bound).
pub struct Evolution;

impl HostCapability for Evolution {
    fn name(&self) -> &'static str {
        "evolution"
    }
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String> {
        parse_scope::<EvolutionScope>(scope)?.check()
    }
    fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn prepare(&self, grant: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError> {
        let scope = parse_scope::<EvolutionScope>(grant.scope).map_err(PrepareError::Scope)?;
        scope.check().map_err(PrepareError::Scope)?;
        let desk = grant.services.require::<EvolutionDesk>("evolution desk")?;
        let audit = grant.services.require::<dyn EvolutionStore>("evolution audit")?;
        Ok(Box::new(Prepared { scope: Arc::new(scope), desk, audit }))
    }
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Start of the UTC day `at` (Unix seconds) falls in: where daily counts begin.
fn utc_day_start(at: i64) -> i64 {
    at - at.rem_euclid(86_400)
}

fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn code(e: &EvolutionError) -> &'static str {
    match e {
        EvolutionError::NotAllowed(_) => "not-allowed",
        EvolutionError::BudgetExceeded(_) => "budget-exceeded",
        EvolutionError::InvalidRequest(_) => "invalid-request",
        EvolutionError::Busy(_) => "busy",
        EvolutionError::NotFound(_) => "not-found",
        EvolutionError::Failed(_) => "failed",
    }
}

/// The checked cases of a new agent.
fn check_cases(cases: Vec<wit::TestCase>) -> Result<Vec<CaseSpec>, EvolutionError> {
    let invalid = |m: String| Err(EvolutionError::InvalidRequest(m));
    if cases.is_empty() || cases.len() > MAX_CASES {
        return invalid(format!("a new agent needs 1 to {MAX_CASES} cases"));
    }
    if !cases.iter().any(|c| !c.held_out) {
        return invalid("at least one case must be visible (not held out)".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        let sizes = std::iter::once(c.name.len()).chain([c.request.len()]).chain(c.expect_contains.iter().map(String::len));
        if sizes.into_iter().any(|n| n > MAX_CASE_BYTES) || c.expect_contains.len() > 16 {
            return invalid(format!("case {:?} is too large (strings up to {MAX_CASE_BYTES} bytes, 16 expectations)", clip(&c.name, 64)));
        }
        if c.expect_contains.is_empty() || c.expect_contains.iter().any(|e| e.is_empty()) {
            return invalid(format!("case {:?} must expect at least one non-empty string", clip(&c.name, 64)));
        }
        if !valid_name(&c.name) || !names.insert(c.name.clone()) {
            return invalid(format!("case name {:?}: `a-z0-9-`, unique", clip(&c.name, 64)));
        }
    }
    Ok(cases
        .into_iter()
        .map(|c| CaseSpec { name: c.name, request: c.request, expect_contains: c.expect_contains, held_out: c.held_out })
        .collect())
}

impl EvolutionState {
    fn record(&self, action: &str, target: &str, outcome: String, detail: String) -> EvolutionRequest {
        EvolutionRequest {
            id: 0,
            at: now_unix(),
            agent: self.agent.clone(),
            action: action.into(),
            target: clip(target, 64),
            outcome,
            run: None,
            detail: clip(&detail, MAX_DETAIL_BYTES),
        }
    }

    /// Writes a request that starts no run to the audit, within the day's
    /// cap: its id, or `None` when the cap is reached.
    async fn write_note(&self, record: EvolutionRequest) -> Result<Option<i64>, agentkernel_storage::StorageError> {
        let (audit, day_start) = (self.audit.clone(), utc_day_start(record.at));
        blocking::call(blocking::DEFAULT_TIMEOUT, move || audit.evolution_request_note(&record, day_start)).await
    }

    /// [`write_note`](Self::write_note) where only a failure matters (it is logged).
    async fn note(&self, action: &str, target: &str, outcome: String, detail: String) {
        if let Err(e) = self.write_note(self.record(action, target, outcome, detail)).await {
            tracing::warn!(agent = %self.agent, "cannot audit an evolution request: {e}");
        }
    }

    /// Audits a refusal and returns it.
    async fn refuse<T>(&self, action: &str, target: &str, error: EvolutionError) -> Result<T, EvolutionError> {
        self.note(action, target, format!("refused: {}", code(&error)), String::new()).await;
        Err(error)
    }

    /// Takes one of the day's runs, then starts the run with `start`; the
    /// audit row says what happened either way.
    async fn start_run<F>(&self, action: &str, target: &str, detail: String, start: F) -> Result<String, EvolutionError>
    where
        F: for<'s> FnOnce(&'s dyn EvolutionService) -> ServiceFuture<'s, String>,
    {
        let service = match self.desk.service() {
            Ok(s) => s.clone(),
            Err(e) => return self.refuse(action, target, e).await,
        };
        let record = self.record(action, target, "pending".into(), detail);
        let day_start = utc_day_start(record.at);
        let (audit, per_day) = (self.audit.clone(), self.scope.runs_per_day());
        let reserved = blocking::call(blocking::DEFAULT_TIMEOUT, move || audit.evolution_request_reserve(&record, day_start, per_day))
            .await
            .map_err(|e| EvolutionError::Failed(format!("audit unavailable: {e}")))?;
        let Some(id) = reserved else {
            let e = EvolutionError::BudgetExceeded(format!("runs_per_day ({per_day}) used up (UTC)"));
            return self.refuse(action, target, e).await;
        };
        let result = start(&*service).await.map_err(EvolutionError::from);
        let (outcome, run) = match &result {
            Ok(run) => ("started".to_string(), Some(run.clone())),
            Err(e) => (format!("refused: {}", code(e)), None),
        };
        let audit = self.audit.clone();
        if let Err(e) = blocking::call(blocking::DEFAULT_TIMEOUT, move || audit.evolution_request_finish(id, &outcome, run.as_deref())).await {
            tracing::error!(agent = %self.agent, "cannot record an evolution request's outcome: {e}");
        }
        result
    }
}

impl wit::Host for EvolutionState {
    async fn create_agent(&mut self, name: String, spec: String, cases: Vec<wit::TestCase>) -> wasmtime::Result<Result<String, EvolutionError>> {
        if !self.scope.create {
            return Ok(self.refuse("create", &name, EvolutionError::NotAllowed(format!("`{}` may not create agents", self.agent))).await);
        }
        if !valid_name(&name) {
            return Ok(self.refuse("create", &name, EvolutionError::InvalidRequest(format!("{:?} is not an agent name (`a-z0-9-`)", clip(&name, 64)))).await);
        }
        if spec.trim().is_empty() || spec.len() > MAX_SPEC_BYTES {
            return Ok(self.refuse("create", &name, EvolutionError::InvalidRequest(format!("the spec must be 1 to {MAX_SPEC_BYTES} bytes"))).await);
        }
        let cases = match check_cases(cases) {
            Ok(c) => c,
            Err(e) => return Ok(self.refuse("create", &name, e).await),
        };
        // Fields are clipped before they are escaped, so the row stays valid JSON.
        let detail = serde_json::json!({ "spec": clip(&spec, 512), "cases": cases.len() }).to_string();
        let request = CreateRequest { requester: self.agent.clone(), name: name.clone(), spec, cases, budget: self.scope.budget() };
        Ok(self.start_run("create", &name, detail, move |s| s.create(request)).await)
    }

    async fn evolve_agent(&mut self, agent: String) -> wasmtime::Result<Result<String, EvolutionError>> {
        if !self.scope.may_evolve(&self.agent, &agent) {
            let e = EvolutionError::NotAllowed(format!("`{}` may not evolve `{}`", self.agent, clip(&agent, 64)));
            return Ok(self.refuse("evolve", &agent, e).await);
        }
        let (requester, budget) = (self.agent.clone(), self.scope.budget());
        let target = agent.clone();
        Ok(self.start_run("evolve", &agent, String::new(), move |s| Box::pin(async move { s.evolve(&requester, &target, budget).await })).await)
    }

    async fn run_status(&mut self, id: String) -> wasmtime::Result<Result<wit::RunInfo, EvolutionError>> {
        // Only runs this agent started: the audit says who started which.
        let (audit, run) = (self.audit.clone(), id.clone());
        let owner = blocking::call(blocking::DEFAULT_TIMEOUT, move || audit.evolution_request_by_run(&run)).await;
        let not_found = || EvolutionError::NotFound(format!("no run {:?} started by `{}`", clip(&id, 80), self.agent));
        let target = match owner {
            Ok(Some(r)) if r.agent == self.agent => r.target,
            Ok(_) => return Ok(Err(not_found())),
            Err(e) => return Ok(Err(EvolutionError::Failed(format!("audit unavailable: {e}")))),
        };
        let service = match self.desk.service() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(e)),
        };
        Ok(match service.run(&id).await {
            Ok(Some(r)) => Ok(wit::RunInfo { id: r.id, agent: r.agent, status: r.status, decision: r.decision, summary: r.summary }),
            // Started (the audit says so) but not yet recorded by the engine,
            // which writes its row once the run is under way: running.
            Ok(None) => Ok(wit::RunInfo { id, agent: target, status: "running".into(), decision: None, summary: None }),
            Err(e) => Err(e.into()),
        })
    }

    async fn agent_stats(&mut self) -> wasmtime::Result<Result<Vec<wit::AgentMetrics>, EvolutionError>> {
        if !self.scope.stats {
            return Ok(self.refuse("stats", "", EvolutionError::NotAllowed(format!("`{}` may not read agent metrics", self.agent))).await);
        }
        let service = match self.desk.service() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(service
            .stats()
            .into_iter()
            .map(|s| wit::AgentMetrics { name: s.name, version: s.version, calls: s.calls, errors: s.errors, fuel: s.fuel, evolvable: s.evolvable })
            .collect()))
    }

    async fn propose(&mut self, kind: String, agent: String, detail: String) -> wasmtime::Result<Result<String, EvolutionError>> {
        if !self.scope.propose {
            return Ok(self.refuse("propose", &agent, EvolutionError::NotAllowed(format!("`{}` may not propose changes", self.agent))).await);
        }
        if !matches!(kind.as_str(), "instances" | "new-agent") || !valid_name(&agent) || detail.len() > MAX_DETAIL_BYTES {
            let e = EvolutionError::InvalidRequest(format!(
                "a proposal is kind `instances` or `new-agent`, an agent name, and a detail up to {MAX_DETAIL_BYTES} bytes"
            ));
            return Ok(self.refuse("propose", &agent, e).await);
        }
        let body = serde_json::json!({ "kind": kind, "detail": clip(&detail, MAX_DETAIL_BYTES / 8) }).to_string();
        Ok(match self.write_note(self.record("propose", &agent, "proposed".into(), body)).await {
            Ok(Some(id)) => Ok(format!("proposal-{id}")),
            Ok(None) => Err(EvolutionError::BudgetExceeded(format!("{MAX_NOTES_PER_DAY} proposals a day used up (UTC)"))),
            Err(e) => Err(EvolutionError::Failed(format!("audit unavailable: {e}"))),
        })
    }

    async fn compare_versions(
        &mut self,
        agent: String,
        baseline: String,
        candidate: String,
        max_requests: u32,
    ) -> wasmtime::Result<Result<String, EvolutionError>> {
        if !self.scope.compare {
            return Ok(self.refuse("compare", &agent, EvolutionError::NotAllowed(format!("`{}` may not compare versions", self.agent))).await);
        }
        let service = match self.desk.service() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(e)),
        };
        // Audited before the work, and refused past the day's cap: each
        // comparison loads two components and replays requests.
        let record = self.record("compare", &agent, "requested".into(), format!("{} vs {}", clip(&baseline, 64), clip(&candidate, 64)));
        match self.write_note(record).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(Err(EvolutionError::BudgetExceeded(format!("{MAX_NOTES_PER_DAY} comparisons a day used up (UTC)")))),
            Err(e) => return Ok(Err(EvolutionError::Failed(format!("audit unavailable: {e}")))),
        }
        let n = max_requests.clamp(1, MAX_COMPARE_REQUESTS);
        Ok(service.compare(&agent, &baseline, &candidate, n).await.map_err(EvolutionError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, held_out: bool) -> wit::TestCase {
        wit::TestCase { name: name.into(), request: "r".into(), expect_contains: vec!["x".into()], held_out }
    }

    #[test]
    fn scopes_are_checked() {
        let ok: EvolutionScope = parse_scope(&toml::from_str("create = true\nevolve = [\"primes\", \"*\"]\nruns_per_day = 2").unwrap()).unwrap();
        assert!(ok.check().is_ok() && ok.may_evolve("me", "echo") && ok.runs_per_day() == 2);
        assert!(!ok.may_evolve("me", REVIEWER) && !ok.may_evolve("me", "me"), "never the reviewer or itself");
        assert!(parse_scope::<EvolutionScope>(&toml::from_str("apply = true").unwrap()).is_err(), "unknown keys are refused");
        let bad: EvolutionScope = parse_scope(&toml::from_str("evolve = [\"../x\"]").unwrap()).unwrap();
        assert!(bad.check().is_err());
        assert!(!EvolutionScope::default().may_evolve("me", "primes"), "nothing by default");
    }

    #[test]
    fn cases_are_bounded_and_need_a_visible_one() {
        assert!(check_cases(vec![]).is_err());
        assert!(check_cases(vec![case("a", true)]).is_err(), "all held out");
        assert!(check_cases(vec![case("a", false), case("a", true)]).is_err(), "duplicate names");
        assert!(check_cases((0..=MAX_CASES).map(|i| case(&format!("c{i}"), false)).collect()).is_err());
        let mut big = case("big", false);
        big.request = "x".repeat(MAX_CASE_BYTES + 1);
        assert!(check_cases(vec![big]).is_err());
        assert_eq!(check_cases(vec![case("a", false), case("b", true)]).unwrap().len(), 2);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("new-agent-2"));
        for bad in ["", "-x", "A", "a/b", "a.b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
