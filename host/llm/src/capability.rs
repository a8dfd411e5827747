//! `llm`: chat completions through [`LlmService`].
//!
//! Scope: [`LlmScope`] (profiles, tokens per call and per day, money per
//! day). Per-instance state: the service handle, the agent and session the
//! usage is charged to, and the call's deadline, which bounds the model
//! call (epochs cannot interrupt host code).
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

use agentkernel_runtime::bindings::agentkernel::agent::llm::{self as wit, ChatMessage, ChatOptions, ChatReply, LlmError};
use agentkernel_runtime::trace::RequestScope;
use agentkernel_runtime::{CallInfo, CapabilityStates, Grant, HostCapability, InstanceState, PrepareError, PreparedCapability, parse_scope};

use crate::{LlmCaller, LlmService};

/// Scope of an `llm` grant: `[agents.NAME] llm = { profiles = ["fast"], tokens_per_day = 100000 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmScope {
    /// Profiles the agent may use; all configured profiles when absent.
    pub profiles: Option<Vec<String>>,
    /// Most completion tokens one call may ask for: caps the request's
    /// `max_tokens` (the prompt's size is the agent's to control).
    pub tokens_per_call: Option<u32>,
    /// Most tokens (prompt + completion) per UTC day, across calls and restarts.
    pub tokens_per_day: Option<u64>,
    /// Most spend per UTC day in USD (needs a price for the model).
    pub usd_per_day: Option<f64>,
}

pub struct LlmState {
    service: Arc<LlmService>,
    agent: Arc<str>,
    session: String,
    scope: Arc<LlmScope>,
    deadline: Instant,
    /// The chat request this call serves and the caller's span, if any.
    request: Option<(Arc<RequestScope>, u32)>,
}

impl LlmState {
    pub fn new(service: Arc<LlmService>, agent: Arc<str>, session: String, scope: Arc<LlmScope>, deadline: Instant) -> Self {
        LlmState { service, agent, session, scope, deadline, request: None }
    }
}

/// `llm` configured for one agent: the shared service and its scope.
pub struct Prepared {
    pub service: Arc<LlmService>,
    pub scope: Arc<LlmScope>,
}

impl PreparedCapability for Prepared {
    fn instance_state(&self, call: &CallInfo<'_>) -> Option<Box<dyn std::any::Any + Send>> {
        let mut state = LlmState::new(self.service.clone(), call.agent.clone(), call.session.to_string(), self.scope.clone(), call.deadline);
        state.request = call.context.scope.clone().zip(call.context.span);
        Some(Box::new(state))
    }
}

struct HasLlm;
impl HasData for HasLlm {
    type Data<'a> = &'a mut LlmState;
}

/// Links `llm` into any store whose data keeps capability states.
pub fn add_to_linker<T: CapabilityStates>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLlm>(linker, |s| s.state::<LlmState>())
}

/// The `llm` capability: chat completions through the host's [`LlmService`].
pub struct Llm;

impl HostCapability for Llm {
    fn name(&self) -> &'static str {
        "llm"
    }
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String> {
        parse_scope::<LlmScope>(scope).map(drop)
    }
    fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn prepare(&self, grant: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError> {
        let scope = parse_scope::<LlmScope>(grant.scope).map_err(PrepareError::Scope)?;
        let service = grant.services.require::<LlmService>("LLM service")?;
        Ok(Box::new(Prepared { service, scope: Arc::new(scope) }))
    }
}

impl wit::Host for LlmState {
    async fn chat(&mut self, messages: Vec<ChatMessage>, options: ChatOptions) -> wasmtime::Result<Result<ChatReply, LlmError>> {
        let caller = LlmCaller {
            agent: &self.agent,
            session: &self.session,
            scope: &self.scope,
            deadline: self.deadline,
            request: self.request.as_ref().map(|(scope, span)| (&**scope, *span)),
        };
        let result = self.service.chat(&caller, messages, options).await;
        match &result {
            // Expected on hosts without a model; agents degrade.
            Err(LlmError::NotConfigured) => tracing::debug!(agent = &*self.agent, "llm not configured"),
            Err(e) => tracing::info!(agent = &*self.agent, code = crate::error_code(e), "llm call failed"),
            Ok(_) => {}
        }
        Ok(result)
    }
}
