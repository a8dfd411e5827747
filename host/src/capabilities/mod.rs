//! Host capabilities, one module each, all with the same shape:
//!
//! - `add_to_linker`: links the capability's WIT interface into a linker;
//!   the runtime calls it only for capabilities the agent is granted.
//! - a `*Scope` struct: how policy scopes the grant (`[agents.NAME] x = {..}`).
//! - a `*State` struct: the per-instance state, built for each call from
//!   the agent's policy scope (e.g. the memory namespace).
//! - the generated `Host` trait implemented on that state, every call async
//!   and bounded by its own timeout (epochs cannot interrupt host code).
//! - tests of the scoping rules.
pub mod agents;
pub mod llm;
pub mod log;
pub mod memory;

use wasmtime::component::Linker;

use crate::policy::Capability;
use crate::runtime::InstanceState;

/// Links `capability` into `linker`. Capabilities this host does not
/// implement yet are never linked (policy refuses them first).
pub fn add_to_linker(linker: &mut Linker<InstanceState>, capability: Capability) -> wasmtime::Result<()> {
    match capability {
        Capability::Log => log::add_to_linker(linker),
        Capability::Memory => memory::add_to_linker(linker),
        Capability::Llm => llm::add_to_linker(linker),
        Capability::Agents => agents::add_to_linker(linker),
        other => Err(wasmtime::format_err!("capability {other} is not available in this host")),
    }
}
