//! A loaded agent and its manifest.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use wasmtime::Engine;

use crate::bindings::{AgentPre, Manifest, Request};
use crate::call::{CallContext, CallOutcome, InstanceState, LimitedStore, WasiEnvironment, agent_error, new_instance_state};
use crate::capability::{CallInfo, PreparedCapability, States};
use crate::errors::{CallError, LoadError};
use crate::limits::{Fuel, Limits};
use crate::metrics::Metrics;
use crate::policy::{Capability, Grants, ImportSet};
use crate::sampling::CallSamples;
use crate::trace::RequestScope;

/// A manifest as JSON (the WIT record, for the HTTP API and CLI).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ManifestInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub skills: Vec<SkillInfo>,
    pub capabilities: Vec<CapabilityRequestInfo>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SkillInfo {
    pub name: String,
    pub description: String,
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CapabilityRequestInfo {
    pub name: String,
    pub reason: String,
}

impl ManifestInfo {
    /// Back to the WIT record (for `agents.list-agents`).
    pub fn to_wit(&self) -> Manifest {
        use crate::bindings::agentkernel::agent::types::CapabilityRequest;
        Manifest {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            skills: self
                .skills
                .iter()
                .map(|s| crate::bindings::Skill { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() })
                .collect(),
            capabilities: self
                .capabilities
                .iter()
                .map(|c| CapabilityRequest { name: c.name.clone(), reason: c.reason.clone() })
                .collect(),
        }
    }
}

impl From<&Manifest> for ManifestInfo {
    fn from(m: &Manifest) -> Self {
        ManifestInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            skills: m
                .skills
                .iter()
                .map(|s| SkillInfo { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() })
                .collect(),
            capabilities: m
                .capabilities
                .iter()
                .map(|c| CapabilityRequestInfo { name: c.name.clone(), reason: c.reason.clone() })
                .collect(),
        }
    }
}

/// The capabilities one agent was linked with, prepared at load.
#[derive(Default)]
pub struct PreparedCapabilities(Vec<(Capability, Box<dyn PreparedCapability>)>);

impl PreparedCapabilities {
    pub(crate) fn push(&mut self, capability: Capability, prepared: Box<dyn PreparedCapability>) {
        self.0.push((capability, prepared));
    }

    /// Every capability's per-instance state for one call.
    pub(crate) fn states(&self, call: &CallInfo<'_>) -> States {
        let mut states = States::default();
        for (_, p) in &self.0 {
            if let Some(state) = p.instance_state(call) {
                states.push(state);
            }
        }
        states
    }
}

/// A loaded agent: one compiled component, pre-instantiated against exactly
/// the capabilities it was granted. Cheap to share; each call instantiates anew.
pub struct LoadedAgent {
    pub manifest: ManifestInfo,
    pub grants: Grants,
    pub limits: Limits,
    pub imports: ImportSet,
    /// SHA-256 of the component bytes.
    pub hash: String,
    pub size: u64,
    pub source: Option<PathBuf>,
    pub loaded_at: SystemTime,
    pub compile_cache_hit: bool,
    pub(crate) capabilities: PreparedCapabilities,
    pub(crate) name: Arc<str>,
    pub(crate) pre: AgentPre<InstanceState>,
    pub(crate) engine: Engine,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) samples: Arc<CallSamples>,
    /// See [`RuntimeOptions::wasi_environment`](crate::RuntimeOptions::wasi_environment).
    pub(crate) wasi_environment: Option<Arc<dyn WasiEnvironment>>,
}

impl LoadedAgent {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn metered(&self) -> bool {
        matches!(self.limits.fuel, Fuel::Limit(_))
    }

    /// What capability `T` prepared for this agent, if it imports it (e.g.
    /// the memory capability's namespace).
    pub fn prepared<T: PreparedCapability>(&self) -> Option<&T> {
        self.capabilities.0.iter().find_map(|(_, p)| p.downcast_ref::<T>())
    }

    /// Handles one request in a fresh instance under this agent's limits.
    pub async fn call(&self, req: &Request) -> Result<CallOutcome, CallError> {
        self.call_with_limits(req, &self.limits, &CallContext::default()).await
    }

    /// Handles a request from another agent: the deadline is the earlier of
    /// this agent's own and the chain's.
    pub async fn call_in(&self, req: &Request, context: &CallContext) -> Result<CallOutcome, CallError> {
        let mut limits = self.limits.clone();
        if let Some(d) = context.deadline {
            limits.deadline = limits.deadline.min(d.saturating_duration_since(Instant::now()));
        }
        self.call_with_limits(req, &limits, context).await
    }

    /// Like [`call`](Self::call) with explicit limits (e.g. `run --fuel`).
    /// Fuel can only be changed for metered agents.
    pub async fn call_with_limits(&self, req: &Request, limits: &Limits, context: &CallContext) -> Result<CallOutcome, CallError> {
        let start = Instant::now();
        let result = match &context.scope {
            None => self.run_call(req, limits, context, start).await,
            Some(scope) => self.run_scoped_call(req, limits, context, scope, start).await,
        };
        let (outcome, fuel) = match &result {
            Ok(o) => ("ok", o.fuel_used),
            Err(e) => (e.code(), None),
        };
        self.metrics.agent_call(&self.name, outcome, start.elapsed(), fuel);
        self.samples.record(&self.name, &req.text, || match &result {
            Ok(o) => o.response.text.clone(),
            Err(e) => format!("error: {}", e.code()),
        });
        result
    }

    /// A call that is part of a chat request: charged to the request's
    /// budget (its fuel cap may lower this call's), recorded as a span.
    async fn run_scoped_call(
        &self,
        req: &Request,
        limits: &Limits,
        context: &CallContext,
        scope: &Arc<RequestScope>,
        start: Instant,
    ) -> Result<CallOutcome, CallError> {
        scope.budget.start_call().map_err(|e| CallError::BudgetExceeded { message: e.to_string() })?;
        let mut limits = limits.clone();
        let mut capped_by_request = false;
        if let (true, Fuel::Limit(own), Some(left)) = (self.metered(), limits.fuel, scope.budget.fuel_left()) {
            if left < own {
                limits.fuel = Fuel::Limit(left);
                capped_by_request = true;
            }
        }
        let span = scope.trace.open(context.span, &self.name, context.role);
        let inner = CallContext { span: Some(span), ..context.clone() };
        let mut result = self.run_call(req, &limits, &inner, start).await;
        let fuel = match &result {
            Ok(o) => o.fuel_used,
            // Exhaustion burns the whole allotment.
            Err(CallError::FuelExhausted { limit }) => Some(*limit),
            Err(_) => None,
        };
        if let Some(f) = fuel {
            scope.budget.charge_fuel(f);
        }
        if capped_by_request && matches!(result, Err(CallError::FuelExhausted { .. })) {
            let limit = scope.budget.limits().fuel.unwrap_or(0);
            result = Err(CallError::BudgetExceeded { message: crate::trace::BudgetError::Fuel(limit).to_string() });
        }
        match &result {
            Ok(o) => scope.trace.close(span, "ok", start.elapsed(), fuel, &o.response.text),
            Err(e) => scope.trace.close(span, e.code(), start.elapsed(), fuel, &e.to_string()),
        }
        result
    }

    async fn run_call(&self, req: &Request, limits: &Limits, context: &CallContext, start: Instant) -> Result<CallOutcome, CallError> {
        let deadline = start + limits.deadline;
        let call = CallInfo { agent: &self.name, session: &req.session_id, limits, deadline, context };
        let state = new_instance_state(&self.name, limits, self.capabilities.states(&call), self.wasi_environment.as_deref());
        let mut run = LimitedStore::new(&self.engine, state, limits, self.metered(), deadline);
        let pre = &self.pre;
        let result = run
            .run(async |store| {
                let agent = pre.instantiate_async(&mut *store).await?;
                agent.call_handle(&mut *store, req).await
            })
            .await;
        let fuel_used = run.fuel_used();
        run.flush_output();
        let response = match result? {
            Ok(r) => r,
            Err(e) => return Err(agent_error(e)),
        };
        let size = (response.text.len() + response.data.as_ref().map_or(0, |d| d.len())) as u64;
        if size > limits.max_response_bytes {
            return Err(CallError::ResponseTooLarge { size, limit: limits.max_response_bytes });
        }
        Ok(CallOutcome { response, fuel_used, elapsed: start.elapsed() })
    }
}


/// Agent names route requests and key policy, so they are kept simple.
pub fn validate_agent_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok { Ok(()) } else { Err(format!("agent name {name:?} must be 1-64 chars of a-z, 0-9 and '-'")) }
}

pub(crate) fn validate_manifest(m: &Manifest) -> Result<(), LoadError> {
    validate_agent_name(&m.name).map_err(LoadError::Manifest)?;
    let too_long = |what: &str, len: usize, max: usize| {
        if len > max { Err(LoadError::Manifest(format!("{what} is {len} bytes; the limit is {max}"))) } else { Ok(()) }
    };
    too_long("version", m.version.len(), 64)?;
    too_long("description", m.description.len(), 4096)?;
    too_long("skill count", m.skills.len(), 64)?;
    for s in &m.skills {
        too_long("skill name", s.name.len(), 128)?;
        too_long("skill description", s.description.len(), 1024)?;
        too_long("skill keyword count", s.keywords.len(), 64)?;
    }
    Ok(())
}

