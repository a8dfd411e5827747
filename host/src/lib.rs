//! agentkernel: a WebAssembly component host for agents.
//!
//! This crate is the `agentkernel` binary and a facade over the host's
//! crates, re-exported under the module names they had when the host was
//! one crate (see `ARCHITECTURE.md`, "Crates", for the graph).
pub use agentkernel_core::{api, chat, config, follow, host, registry, research, scaffold};
pub use agentkernel_evolution as evolution;
pub use agentkernel_llm as llm;
pub use agentkernel_runtime::{bindings, limits, metrics, output, policy, sampling, trace};
pub use agentkernel_server as server;
pub use agentkernel_storage as storage;
#[cfg(feature = "aws")]
pub use agentkernel_aws as aws;

/// The runtime crate: engines, loading, the call path, the capability trait.
pub mod runtime {
    pub use agentkernel_runtime::*;
}

/// The capabilities, one module each, and the host's list of them.
pub mod capabilities {
    pub use agentkernel_capabilities::{agents, evolution, memory};
    pub use agentkernel_core::capabilities::{all, granted_by_default, is_available};
    pub use agentkernel_http::capability as http;
    #[cfg(feature = "aws")]
    pub use agentkernel_aws::capability as aws_ec2;
    pub use agentkernel_llm::capability as llm;
    pub use agentkernel_runtime::log;
}
