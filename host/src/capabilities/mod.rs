//! Host capabilities, one module each, all with the same shape:
//!
//! - `add_to_linker`: links the capability's WIT interface into a linker;
//!   the runtime calls it only for capabilities the agent is granted.
//! - a `*Scope` struct: how policy scopes the grant (`[agents.NAME] x = {..}`).
//! - a `Prepared` struct: the capability configured for one agent from its
//!   grant, built once at load; its `state` builds the per-instance state.
//! - a `*State` struct: the per-instance state, built for each call.
//! - the generated `Host` trait implemented on that state, every call async
//!   and bounded by its own timeout (epochs cannot interrupt host code).
//! - tests of the scoping rules.
pub mod agents;
pub mod aws_ec2;
pub mod llm;
pub mod log;
pub mod memory;

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Linker;

use crate::limits::Limits;
use crate::policy::Capability;
use crate::runtime::{CallContext, InstanceState};

/// Facts about one call that the per-instance states are built from.
pub struct CallInfo<'a> {
    pub agent: &'a Arc<str>,
    pub session: &'a str,
    pub limits: &'a Limits,
    /// When the call must end.
    pub deadline: Instant,
    pub context: &'a CallContext,
}

/// An agent's capabilities as its grants and imports configure them,
/// prepared once at load. `None` means not imported (and so not linked).
#[derive(Default)]
pub struct Prepared {
    pub memory: Option<memory::Prepared>,
    pub llm: Option<llm::Prepared>,
    pub agents: Option<agents::Prepared>,
    pub aws_ec2: Option<aws_ec2::Prepared>,
}

/// Every capability's per-instance state, built for one call.
pub struct States {
    pub log: log::LogState,
    pub memory: Option<memory::MemoryState>,
    pub llm: Option<llm::LlmState>,
    pub agents: Option<agents::AgentsState>,
    pub aws_ec2: Option<aws_ec2::AwsEc2State>,
}

impl Prepared {
    pub fn states(&self, call: &CallInfo<'_>) -> States {
        States {
            log: log::LogState::new(call.agent.clone(), call.limits.max_output_bytes, call.limits.max_log_lines),
            memory: self.memory.as_ref().map(|p| p.state(call)),
            llm: self.llm.as_ref().map(|p| p.state(call)),
            agents: self.agents.as_ref().map(|p| p.state(call)),
            aws_ec2: self.aws_ec2.as_ref().map(|p| p.state(call)),
        }
    }
}

/// Links `capability` into `linker`. Capabilities this host does not
/// implement yet are never linked (policy refuses them first).
pub fn add_to_linker(linker: &mut Linker<InstanceState>, capability: Capability) -> wasmtime::Result<()> {
    match capability {
        Capability::Log => log::add_to_linker(linker),
        Capability::Memory => memory::add_to_linker(linker),
        Capability::Llm => llm::add_to_linker(linker),
        Capability::Agents => agents::add_to_linker(linker),
        Capability::AwsEc2 => aws_ec2::add_to_linker(linker),
        other => Err(wasmtime::format_err!("capability {other} is not available in this host")),
    }
}
