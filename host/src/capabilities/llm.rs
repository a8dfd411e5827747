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

use crate::bindings::agentkernel::agent::llm::{self as wit, ChatMessage, ChatOptions, ChatReply, LlmError};
use crate::llm::{LlmCaller, LlmService};
use crate::runtime::InstanceState;
use crate::trace::RequestScope;

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

impl Prepared {
    pub fn state(&self, call: &super::CallInfo<'_>) -> LlmState {
        let mut state = LlmState::new(self.service.clone(), call.agent.clone(), call.session.to_string(), self.scope.clone(), call.deadline);
        state.request = call.context.scope.clone().zip(call.context.span);
        state
    }
}

struct HasLlm;
impl HasData for HasLlm {
    type Data<'a> = &'a mut LlmState;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InstanceState, HasLlm>(linker, |s| {
        s.caps.llm.as_mut().expect("llm is linked only for agents granted it")
    })
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
            Err(e) => tracing::info!(agent = &*self.agent, code = crate::llm::error_code(e), "llm call failed"),
            Ok(_) => {}
        }
        Ok(result)
    }
}
