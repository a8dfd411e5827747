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

/// mimalloc, not glibc's malloc: a request's buffers are allocated on one
/// thread and freed on another (tokio moves tasks between workers, storage
/// answers cross from the writer thread), and glibc's arena locks then
/// showed up in profiles under load (~5% in lock waits alone). Measured in
/// `benches/chat_load`: +20-30% req/s on every route. Set here, in the
/// library, so the binary, its tests and the benchmarks run what ships.
/// mimalloc's v2 line (the workspace's `v2` feature): v3's default keeps
/// freed pages for a second before returning them, which measured 118 KB
/// of resident memory per loaded agent beyond its code against 88 KB with
/// v2 (`benches/routing_scale`, 1,000 agents), at the same req/s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
