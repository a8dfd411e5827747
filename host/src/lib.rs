//! agentkernel: a WebAssembly component host for agents.
//!
//! See `ARCHITECTURE.md` at the repository root for how the pieces fit.
pub mod api;
pub mod aws;
pub mod bindings;
pub mod capabilities;
pub mod chat;
pub mod config;
pub mod evolution;
pub mod host;
pub mod limits;
pub mod llm;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod registry;
pub mod runtime;
pub mod sampling;
pub mod scaffold;
pub mod server;
pub mod storage;
pub mod trace;
