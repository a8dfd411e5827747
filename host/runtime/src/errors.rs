//! Why a call or a load failed: typed, with stable codes.
use std::path::PathBuf;

use serde::Serialize;

use crate::policy::{Capability, ImportError};

/// Why a call did not produce a response. `code()` is stable and is what
/// HTTP clients and the CLI see.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum CallError {
    #[error("agent ran out of fuel (limit {limit})")]
    FuelExhausted { limit: u64 },
    #[error("agent exceeded its deadline of {ms} ms")]
    Deadline { ms: u64 },
    #[error("agent exceeded its memory limit of {bytes} bytes")]
    MemoryLimit { bytes: u64 },
    #[error("agent exceeded its table limit of {elements} elements")]
    TableLimit { elements: u64 },
    #[error("agent exceeded its instance/table/memory count limit")]
    InstanceLimit,
    #[error("agent overflowed its stack")]
    StackOverflow,
    #[error("agent trapped: {message}")]
    Trap { message: String },
    /// `size` is exact when the host measured the response, and a lower
    /// bound when the response was refused before being copied.
    #[error("agent response is at least {size} bytes; the limit is {limit}")]
    ResponseTooLarge { size: u64, limit: u64 },
    #[error(
        "agent passed more than {limit} bytes to one host call (max_host_call_bytes; the arguments are refused before the host copies them)"
    )]
    HostCallTooLarge { limit: u64 },
    #[error("agent returned an error ({kind}): {message}")]
    Agent { kind: &'static str, message: String },
    #[error("no agent named `{agent}` is loaded")]
    NotFound { agent: String },
    #[error("host is at capacity: {message}")]
    Capacity { message: String },
    #[error("could not instantiate agent: {message}")]
    Instantiate { message: String },
    #[error("{message}")]
    BudgetExceeded { message: String },
}

impl CallError {
    pub fn code(&self) -> &'static str {
        match self {
            CallError::FuelExhausted { .. } => "fuel-exhausted",
            CallError::Deadline { .. } => "deadline",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::TableLimit { .. } => "table-limit",
            CallError::InstanceLimit => "instance-limit",
            CallError::StackOverflow => "stack-overflow",
            CallError::Trap { .. } => "trap",
            CallError::ResponseTooLarge { .. } => "response-too-large",
            CallError::HostCallTooLarge { .. } => "host-call-too-large",
            CallError::Agent { .. } => "agent-error",
            CallError::NotFound { .. } => "not-found",
            CallError::Capacity { .. } => "capacity",
            CallError::Instantiate { .. } => "instantiate-failed",
            CallError::BudgetExceeded { .. } => "budget-exceeded",
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file (bad magic number or empty)")]
    NotWasm,
    #[error("this is a core WebAssembly module, not a component: build agents for wasm32-wasip2")]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("describe() failed: {0}")]
    Describe(CallError),
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("capability {capability}: {message}")]
    Capability { capability: Capability, message: String },
    #[error("cannot link component: {0}")]
    Link(String),
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
}

