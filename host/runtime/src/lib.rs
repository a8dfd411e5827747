//! The agent runtime: wasmtime engines, limits, loading a component against
//! its policy, and calling it in a fresh, limited instance; the capability
//! trait ([`HostCapability`]) every host capability implements, and the
//! built-in `log` capability.
//!
//! This crate is the bottom of the host's crate graph: capabilities,
//! storage backends and the host itself depend on it, never the reverse
//! (see ARCHITECTURE.md, "Crates").
pub mod agent;
pub mod bindings;
pub mod call;
pub mod capability;
pub mod compile;
pub mod directory;
pub mod errors;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod runtime;
pub mod sampling;
pub mod trace;

pub use agent::{CapabilityRequestInfo, LoadedAgent, ManifestInfo, SkillInfo, validate_agent_name};
pub use call::{CallContext, CallOutcome, InstanceState, MAX_AGENT_ERROR_BYTES, WasiEnvironment};
pub use capability::{CallInfo, CapabilityStates, Grant, HostCapability, PrepareError, PreparedCapability, Services, parse_scope};
pub use compile::{CompileCache, compile, content_hash, engine_hash};
pub use directory::{AgentDirectory, AgentTable};
pub use errors::{CallError, LoadError};
pub use runtime::{EPOCH_TICK, EngineError, KEEP_RESIDENT_BYTES, Runtime, RuntimeOptions};
