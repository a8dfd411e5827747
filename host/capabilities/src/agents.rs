//! `agents`: one agent calling another through the host.
//!
//! Scope: [`AgentsScope`] (which agents may be called, how deep a chain may
//! go). Per-instance state: the call chain that led here and the call's
//! deadline. A callee runs in its own fresh instance under its own limits,
//! but never past the caller's deadline; a callee already in the chain is
//! a cycle and is refused, as is a chain longer than `max_depth`.
//!
//! Every call tree is charged to a request budget (calls, depth, fuel,
//! tokens, time). Entry points that make one (`/v1/chat`, the facade,
//! `POST /v1/agents/{name}/call`) pass it in the [`CallContext`]; for any
//! other (the CLI, benchmarks, an embedder's `LoadedAgent::call`) the first
//! nested call opens one with the host's `[chat]` limits, so no entry
//! point lets an agent make calls without bound.
use std::sync::{Arc, Weak};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

use agentkernel_runtime::bindings::agentkernel::agent::agents::{self as wit, CallError as WitCallError};
use agentkernel_runtime::bindings::{Manifest, Request, Response};
use agentkernel_runtime::{
    AgentDirectory, CallContext, CallInfo, CapabilityStates, Grant, HostCapability, InstanceState, PrepareError,
    PreparedCapability, parse_scope,
};
use agentkernel_runtime::trace::{BudgetLimits, RequestScope};

/// Scope of an `agents` grant: `agents = { call = ["echo"], max_depth = 3 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentsScope {
    /// Agents this agent may call; any loaded agent when absent.
    pub call: Option<Vec<String>>,
    /// Longest chain of agents, counting the first caller (default 4).
    pub max_depth: Option<u32>,
}

impl AgentsScope {
    pub const DEFAULT_MAX_DEPTH: u32 = 4;

    fn allows(&self, callee: &str) -> bool {
        self.call.as_ref().is_none_or(|names| names.iter().any(|n| n == callee))
    }
}

/// Where callees are looked up: the host's agent table, held weakly (it
/// holds the agents, whose prepared capabilities hold this).
pub type Directory = Weak<dyn AgentDirectory>;

pub struct AgentsState {
    directory: Directory,
    scope: Arc<AgentsScope>,
    context: CallContext,
    /// The session of the call this instance serves (already scoped to
    /// its user by the host): every callee gets it.
    session: String,
    /// The budget a call tree gets when its entry point gave it none.
    default_budget: Arc<BudgetLimits>,
}

impl AgentsState {
    pub fn new(
        directory: Directory,
        scope: Arc<AgentsScope>,
        context: CallContext,
        session: String,
        default_budget: Arc<BudgetLimits>,
    ) -> Self {
        AgentsState { directory, scope, context, session, default_budget }
    }

    /// The request scope nested calls are charged to: the caller's, or one
    /// opened now for this call tree, its root call counted as the first.
    fn request_scope(&mut self) -> Arc<RequestScope> {
        if let Some(scope) = &self.context.scope {
            return scope.clone();
        }
        let scope = Arc::new(RequestScope::new((*self.default_budget).clone(), None));
        // The root call is running: it is the tree's first call.
        let _ = scope.budget.start_call();
        self.context.scope = Some(scope.clone());
        scope
    }

    /// The request a callee gets: the guest's, in the caller's session.
    /// Agents key memory by session id, so a guest naming another session
    /// could otherwise read another user's data through the callee.
    fn callee_request(&self, mut req: Request) -> Request {
        req.session_id.clone_from(&self.session);
        req
    }

    fn directory(&self) -> Option<Arc<dyn AgentDirectory>> {
        self.directory.upgrade()
    }
}

/// `agents` configured for one agent: where callees are found, its scope.
pub struct Prepared {
    pub directory: Directory,
    pub scope: Arc<AgentsScope>,
    /// `[chat]`'s request budget, for call trees no entry point budgeted.
    pub default_budget: Arc<BudgetLimits>,
}

impl PreparedCapability for Prepared {
    fn instance_state(&self, call: &CallInfo<'_>) -> Option<Box<dyn std::any::Any + Send>> {
        // A call from outside starts a chain; a call from an agent extends it.
        let chain = if call.context.chain.is_empty() { Arc::from([call.agent.clone()]) } else { call.context.chain.clone() };
        let context = CallContext { chain, deadline: Some(call.deadline), ..call.context.clone() };
        Some(Box::new(AgentsState::new(
            self.directory.clone(),
            self.scope.clone(),
            context,
            call.session.to_string(),
            self.default_budget.clone(),
        )))
    }
}

/// The `agents` capability: calls to other loaded agents, found in the
/// [`AgentDirectory`] service, within the grant's scope and the request's
/// budget ([`BudgetLimits`] service: the budget of call trees no entry
/// point budgeted).
pub struct Agents;

impl HostCapability for Agents {
    fn name(&self) -> &'static str {
        "agents"
    }
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String> {
        parse_scope::<AgentsScope>(scope).map(drop)
    }
    fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn prepare(&self, grant: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError> {
        let scope = parse_scope::<AgentsScope>(grant.scope).map_err(PrepareError::Scope)?;
        let directory = grant.services.require::<dyn AgentDirectory>("agent directory")?;
        let default_budget = grant.services.require::<BudgetLimits>("default request budget")?;
        Ok(Box::new(Prepared { directory: Arc::downgrade(&directory), scope: Arc::new(scope), default_budget }))
    }
}

/// Aborts a spawned callee when the caller's call is dropped before it ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct HasAgents;
impl HasData for HasAgents {
    type Data<'a> = &'a mut AgentsState;
}

/// Links `agents` into any store whose data keeps capability states.
pub fn add_to_linker<T: CapabilityStates>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasAgents>(linker, |s| s.state::<AgentsState>())
}

impl wit::Host for AgentsState {
    async fn call(&mut self, agent: String, req: Request) -> wasmtime::Result<Result<Response, WitCallError>> {
        let request = self.request_scope();
        let chain = &self.context.chain;
        let caller = chain.last().map(|c| &**c).unwrap_or("?");
        if !self.scope.allows(&agent) {
            return Ok(Err(WitCallError::NotAllowed(format!("policy does not let `{caller}` call `{agent}`"))));
        }
        if chain.iter().any(|c| **c == *agent) {
            let path: Vec<&str> = chain.iter().map(|c| &**c).chain([agent.as_str()]).collect();
            return Ok(Err(WitCallError::DepthExceeded(format!("cycle: {}", path.join(" → ")))));
        }
        // The request may set a lower limit for its whole call tree.
        let max_depth = (self.scope.max_depth.unwrap_or(AgentsScope::DEFAULT_MAX_DEPTH) as usize)
            .min(request.budget.limits().max_depth as usize);
        if chain.len() + 1 > max_depth {
            return Ok(Err(WitCallError::DepthExceeded(format!("a chain of {} agents exceeds max_depth {max_depth}", chain.len() + 1))));
        }
        let Some(callee) = self.directory().and_then(|r| r.get(&agent)) else {
            return Ok(Err(WitCallError::NotFound(format!("no agent named `{agent}` is loaded"))));
        };
        if self.context.deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(Err(WitCallError::BudgetExceeded("no time left before the caller's deadline".into())));
        }
        let context = self.context.extended(callee.name());
        let req = self.callee_request(req);
        // The callee runs as its own task (its own fiber and stack), bounded
        // by its limits and the caller's deadline. If the caller is dropped
        // (its request cancelled, its outer timeout), so is the callee.
        let mut task = AbortOnDrop(tokio::spawn(async move { callee.call_in(&req, &context).await }));
        let outcome = (&mut task.0).await;
        Ok(match outcome {
            Ok(Ok(out)) => Ok(out.response),
            Ok(Err(e @ agentkernel_runtime::CallError::BudgetExceeded { .. })) => Err(WitCallError::BudgetExceeded(e.to_string())),
            Ok(Err(e)) => Err(WitCallError::Failed(format!("{} ({})", e, e.code()))),
            Err(join) => Err(WitCallError::Failed(format!("callee task failed: {join}"))),
        })
    }

    async fn list_agents(&mut self) -> wasmtime::Result<Vec<Manifest>> {
        let Some(registry) = self.directory() else { return Ok(Vec::new()) };
        let me = self.context.chain.last().cloned();
        Ok(registry
            .list()
            .iter()
            .filter(|a| Some(a.name()) != me.as_deref() && self.scope.allows(a.name()))
            .map(|a| a.manifest.to_wit())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(session: &str) -> AgentsState {
        let budget = BudgetLimits {
            max_calls: 4,
            max_depth: 4,
            fuel: None,
            tokens: None,
            timeout: std::time::Duration::from_secs(5),
        };
        let nowhere: Arc<dyn AgentDirectory> = Arc::new(agentkernel_runtime::AgentTable::default());
        AgentsState::new(
            Arc::downgrade(&nowhere),
            Arc::new(AgentsScope::default()),
            CallContext::default(),
            session.into(),
            Arc::new(budget),
        )
    }

    #[test]
    fn a_callee_always_gets_the_callers_session() {
        let asked = Request { session_id: "bob:secret".into(), text: "recall".into(), history: vec![], context: None };
        let sent = state("alice:s1").callee_request(asked);
        assert_eq!(sent.session_id, "alice:s1");
        assert_eq!(sent.text, "recall");
    }

    #[test]
    fn a_call_tree_without_a_scope_gets_one_counting_its_root() {
        let mut s = state("s");
        let scope = s.request_scope();
        assert_eq!(scope.budget.usage().calls, 1, "the root call is counted");
        assert!(Arc::ptr_eq(&scope, &s.request_scope()), "every nested call shares it");
        for _ in 1..4 {
            scope.budget.start_call().unwrap();
        }
        assert!(scope.budget.start_call().is_err(), "the default max_calls holds");
    }

    #[tokio::test]
    async fn dropping_the_guard_aborts_the_callee_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let guard = AbortOnDrop(tokio::spawn(async move {
            let _tx = tx; // dropped, closing the channel, only when the task ends
            std::future::pending::<()>().await
        }));
        drop(guard);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await.expect("the task was aborted, not left running");
        assert!(ended.is_err(), "the task ended by abort (its sender dropped), not by sending");
    }
}
