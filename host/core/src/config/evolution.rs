//! `[evolution]`: where agents' sources are, how candidates are built and
//! within what budget (read by the evolution engine).
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How candidates are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// `bwrap`: no network, cleared environment, read-only toolchain.
    #[default]
    Bwrap,
    /// No sandbox (an explicit opt-out; every report says so).
    None,
}

impl SandboxMode {
    pub fn name(self) -> &'static str {
        match self {
            SandboxMode::Bwrap => "bwrap",
            SandboxMode::None => "none",
        }
    }
}

/// `[evolution]` in `agentkernel.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvolutionConfig {
    /// Directories searched for `NAME/evolve.toml` (an agent's source crate).
    #[serde(default = "default_source_roots")]
    pub source_roots: Vec<PathBuf>,
    /// Explicit source crate per agent, overriding `source_roots`.
    #[serde(default)]
    pub sources: BTreeMap<String, PathBuf>,
    /// The SDK candidates build against (default: this build's checkout).
    pub sdk: Option<PathBuf>,
    /// The lockfile copied into candidates (default: the SDK workspace's).
    pub lockfile: Option<PathBuf>,
    /// Shared candidate target directory (default: DATA_DIR/evolve/target).
    pub target_dir: Option<PathBuf>,
    /// Rust toolchain (default: `rustc --print sysroot`).
    pub sysroot: Option<PathBuf>,
    #[serde(default)]
    pub sandbox: SandboxMode,
    #[serde(default = "default_build_timeout")]
    pub build_timeout_secs: u64,
    #[serde(default = "default_build_cpu")]
    pub build_cpu_secs: u64,
    #[serde(default = "default_build_memory")]
    pub build_memory_bytes: u64,
    #[serde(default = "default_build_file")]
    pub build_file_bytes: u64,
    /// Bytes one candidate build may add to its target directory.
    #[serde(default = "default_build_disk")]
    pub build_disk_bytes: u64,
    /// Size past which the host-built dependencies in `target_dir` are
    /// wiped and built again.
    #[serde(default = "default_target_dir_max")]
    pub target_dir_max_bytes: u64,
    /// Times a generator may repair a candidate that does not build.
    #[serde(default = "default_repairs")]
    pub repairs: u32,
    /// LLM profile the `llm` generator uses.
    #[serde(default = "default_llm_profile")]
    pub llm_profile: String,
    #[serde(default = "default_max_tokens")]
    pub max_tokens_per_evolution: u64,
    #[serde(default = "default_max_usd")]
    pub max_usd_per_evolution: f64,
    /// Live calls watched after a swap made by the server (0 = no watch).
    #[serde(default = "default_watch_calls")]
    pub watch_calls: u64,
    /// Error-rate increase tolerated before an automatic rollback.
    #[serde(default = "default_tolerance")]
    pub rollback_tolerance: f64,
    /// Evolutions started by the server from live metrics (off by default).
    #[serde(default)]
    pub auto: AutoEvolve,
    /// Whether a run puts its candidates' builds and benchmarks in the
    /// shared job queue for any host to take (default: when `[storage]
    /// url` is set). The owner does what nobody took within a few seconds.
    #[serde(default)]
    pub spread: Option<bool>,
    /// Whether `serve` takes other hosts' candidate jobs (off by default:
    /// a host opts in to building and benchmarking others' candidates).
    #[serde(default)]
    pub take_jobs: bool,
}

fn default_source_roots() -> Vec<PathBuf> {
    vec![PathBuf::from("agents")]
}
fn default_build_timeout() -> u64 {
    600
}
fn default_build_cpu() -> u64 {
    1200
}
fn default_build_memory() -> u64 {
    8 << 30
}
fn default_build_file() -> u64 {
    1 << 30
}
fn default_build_disk() -> u64 {
    2 << 30
}
fn default_target_dir_max() -> u64 {
    4 << 30
}
fn default_repairs() -> u32 {
    2
}
fn default_llm_profile() -> String {
    "code".into()
}
fn default_max_tokens() -> u64 {
    200_000
}
fn default_max_usd() -> f64 {
    2.0
}
fn default_watch_calls() -> u64 {
    20
}
fn default_tolerance() -> f64 {
    0.05
}

impl Default for EvolutionConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}


/// `[evolution.auto]`: evolutions started from live metrics (off by default).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoEvolve {
    #[serde(default)]
    pub enabled: bool,
    /// Start when the error rate of the window is above this.
    pub error_rate: Option<f64>,
    /// Start when the mean fuel of the window's successful calls is above this.
    pub fuel_per_call: Option<u64>,
    #[serde(default = "default_min_calls")]
    pub min_calls: u64,
    #[serde(default = "default_check_ms")]
    pub check_ms: u64,
    /// `llm` or `dir:PATH`.
    #[serde(default = "default_generator")]
    pub generator: String,
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: u64,
}

fn default_min_calls() -> u64 {
    50
}
fn default_check_ms() -> u64 {
    60_000
}
fn default_generator() -> String {
    "llm".into()
}
fn default_cooldown() -> u64 {
    3600
}

impl Default for AutoEvolve {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

