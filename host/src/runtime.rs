//! The component runtime: engines, the compiled-component cache, loading an
//! agent (import check against policy, `describe()`, pre-instantiation) and
//! calling it in a fresh, limited instance.
//!
//! Two engines share one epoch ticker: a metered one (fuel on) and an
//! unmetered one. Fuel instrumentation is compiled into the code, so the
//! per-agent fuel choice is a choice of engine.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, PoolingAllocationConfig, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{AgentError, AgentPre, Manifest, Request, Response};
use crate::capabilities::agents::Directory;
use crate::capabilities::{self, CallInfo};
use crate::llm::LlmService;
use crate::config::HostConfig;
use crate::limits::{CallLimiter, Fuel, LimitHit, Limits};
use crate::output::CapturedOutput;
use crate::policy::{self, Capability, Grants, ImportError, ImportSet};
use crate::storage::Storage;
use crate::trace::RequestScope;

/// Epoch tick. Deadlines are checked (and long-running guests yield to the
/// executor) once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Default bytes of each pooled memory and table reset with memset instead
/// of madvise when an instance is freed (`[host] keep_resident_bytes`).
/// Most of a small call's cost is otherwise the kernel decommitting and
/// re-faulting pages; for agents linked with a 128 KiB stack everything a
/// call touches fits in this prefix (README, "Benchmarks").
pub const KEEP_RESIDENT_BYTES: usize = 256 * 1024;

/// State of one instance: created for one call and dropped after it.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: CallLimiter,
    /// The capabilities this instance was linked with.
    pub(crate) caps: capabilities::States,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

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
    #[error("cannot link component: {0}")]
    Link(String),
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// Where a call sits in a chain of agent-to-agent calls, and the request
/// it serves.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Agents from the first caller to the one being called, inclusive.
    pub chain: Arc<[Arc<str>]>,
    /// The first caller's deadline, which no callee may outlive.
    pub deadline: Option<Instant>,
    /// The chat request's budget and trace, when the call is part of one.
    pub scope: Option<Arc<RequestScope>>,
    /// The caller's span in `scope`'s trace (`None` for the host's own calls).
    pub span: Option<u32>,
    /// Why the call is made, for the trace: `agent`, `router`, `synthesizer`, `callee`.
    pub role: &'static str,
}

impl Default for CallContext {
    fn default() -> Self {
        CallContext { chain: Arc::new([]), deadline: None, scope: None, span: None, role: "agent" }
    }
}

impl CallContext {
    /// A top-level call made by the host for a chat request.
    pub fn for_request(scope: Arc<RequestScope>, role: &'static str) -> CallContext {
        CallContext { deadline: Some(scope.budget.deadline()), scope: Some(scope), role, ..CallContext::default() }
    }

    /// The context for a call from the end of this chain to `callee`.
    pub fn extended(&self, callee: &str) -> CallContext {
        let chain: Vec<Arc<str>> = self.chain.iter().cloned().chain([Arc::from(callee)]).collect();
        CallContext { chain: chain.into(), role: "callee", ..self.clone() }
    }
}

/// A successful call.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub response: Response,
    /// Fuel consumed, when the agent runs metered.
    pub fuel_used: Option<u64>,
    pub elapsed: Duration,
}

/// A manifest as JSON (the WIT record, for the HTTP API and CLI).
#[derive(Debug, Clone, Serialize)]
pub struct ManifestInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub skills: Vec<SkillInfo>,
    pub capabilities: Vec<CapabilityRequestInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkillInfo {
    pub name: String,
    pub description: String,
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapabilityRequestInfo {
    pub name: String,
    pub reason: String,
}

impl ManifestInfo {
    /// Back to the WIT record (for `agents.list-agents`).
    pub fn to_wit(&self) -> Manifest {
        use crate::bindings::agentkernel::agent::types::CapabilityRequest;
        Manifest {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            skills: self
                .skills
                .iter()
                .map(|s| crate::bindings::Skill { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() })
                .collect(),
            capabilities: self
                .capabilities
                .iter()
                .map(|c| CapabilityRequest { name: c.name.clone(), reason: c.reason.clone() })
                .collect(),
        }
    }
}

impl From<&Manifest> for ManifestInfo {
    fn from(m: &Manifest) -> Self {
        ManifestInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            skills: m
                .skills
                .iter()
                .map(|s| SkillInfo { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() })
                .collect(),
            capabilities: m
                .capabilities
                .iter()
                .map(|c| CapabilityRequestInfo { name: c.name.clone(), reason: c.reason.clone() })
                .collect(),
        }
    }
}

/// A loaded agent: one compiled component, pre-instantiated against exactly
/// the capabilities it was granted. Cheap to share; each call instantiates anew.
pub struct LoadedAgent {
    pub manifest: ManifestInfo,
    pub grants: Grants,
    pub limits: Limits,
    pub imports: ImportSet,
    /// SHA-256 of the component bytes.
    pub hash: String,
    pub size: u64,
    pub source: Option<PathBuf>,
    pub loaded_at: SystemTime,
    pub compile_cache_hit: bool,
    capabilities: capabilities::Prepared,
    name: Arc<str>,
    pre: AgentPre<InstanceState>,
    engine: Engine,
    metrics: Arc<crate::metrics::Metrics>,
    samples: Arc<crate::sampling::CallSamples>,
    /// See [`RuntimeOptions::wasi_environment`].
    wasi_environment: Option<Arc<dyn WasiEnvironment>>,
}

impl LoadedAgent {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn metered(&self) -> bool {
        matches!(self.limits.fuel, Fuel::Limit(_))
    }
    pub fn memory_namespace(&self) -> Option<&str> {
        self.capabilities.memory.as_ref().map(|m| &*m.namespace)
    }

    /// Handles one request in a fresh instance under this agent's limits.
    pub async fn call(&self, req: &Request) -> Result<CallOutcome, CallError> {
        self.call_with_limits(req, &self.limits, &CallContext::default()).await
    }

    /// Handles a request from another agent: the deadline is the earlier of
    /// this agent's own and the chain's.
    pub async fn call_in(&self, req: &Request, context: &CallContext) -> Result<CallOutcome, CallError> {
        let mut limits = self.limits.clone();
        if let Some(d) = context.deadline {
            limits.deadline = limits.deadline.min(d.saturating_duration_since(Instant::now()));
        }
        self.call_with_limits(req, &limits, context).await
    }

    /// Like [`call`](Self::call) with explicit limits (e.g. `run --fuel`).
    /// Fuel can only be changed for metered agents.
    pub async fn call_with_limits(&self, req: &Request, limits: &Limits, context: &CallContext) -> Result<CallOutcome, CallError> {
        let start = Instant::now();
        let result = match &context.scope {
            None => self.run_call(req, limits, context, start).await,
            Some(scope) => self.run_scoped_call(req, limits, context, scope, start).await,
        };
        let (outcome, fuel) = match &result {
            Ok(o) => ("ok", o.fuel_used),
            Err(e) => (e.code(), None),
        };
        self.metrics.agent_call(&self.name, outcome, start.elapsed(), fuel);
        self.samples.record(&self.name, &req.text, || match &result {
            Ok(o) => o.response.text.clone(),
            Err(e) => format!("error: {}", e.code()),
        });
        result
    }

    /// A call that is part of a chat request: charged to the request's
    /// budget (its fuel cap may lower this call's), recorded as a span.
    async fn run_scoped_call(
        &self,
        req: &Request,
        limits: &Limits,
        context: &CallContext,
        scope: &Arc<RequestScope>,
        start: Instant,
    ) -> Result<CallOutcome, CallError> {
        scope.budget.start_call().map_err(|e| CallError::BudgetExceeded { message: e.to_string() })?;
        let mut limits = limits.clone();
        let mut capped_by_request = false;
        if let (true, Fuel::Limit(own), Some(left)) = (self.metered(), limits.fuel, scope.budget.fuel_left()) {
            if left < own {
                limits.fuel = Fuel::Limit(left);
                capped_by_request = true;
            }
        }
        let span = scope.trace.open(context.span, &self.name, context.role);
        let inner = CallContext { span: Some(span), ..context.clone() };
        let mut result = self.run_call(req, &limits, &inner, start).await;
        let fuel = match &result {
            Ok(o) => o.fuel_used,
            // Exhaustion burns the whole allotment.
            Err(CallError::FuelExhausted { limit }) => Some(*limit),
            Err(_) => None,
        };
        if let Some(f) = fuel {
            scope.budget.charge_fuel(f);
        }
        if capped_by_request && matches!(result, Err(CallError::FuelExhausted { .. })) {
            let limit = scope.budget.limits().fuel.unwrap_or(0);
            result = Err(CallError::BudgetExceeded { message: crate::trace::BudgetError::Fuel(limit).to_string() });
        }
        match &result {
            Ok(o) => scope.trace.close(span, "ok", start.elapsed(), fuel, &o.response.text),
            Err(e) => scope.trace.close(span, e.code(), start.elapsed(), fuel, &e.to_string()),
        }
        result
    }

    async fn run_call(&self, req: &Request, limits: &Limits, context: &CallContext, start: Instant) -> Result<CallOutcome, CallError> {
        let deadline = start + limits.deadline;
        let call = CallInfo { agent: &self.name, session: &req.session_id, limits, deadline, context };
        let state = new_instance_state(&self.name, limits, self.capabilities.states(&call), self.wasi_environment.as_deref());
        let mut run = LimitedStore::new(&self.engine, state, limits, self.metered(), deadline);
        let pre = &self.pre;
        let result = run
            .run(async |store| {
                let agent = pre.instantiate_async(&mut *store).await?;
                agent.call_handle(&mut *store, req).await
            })
            .await;
        let fuel_used = run.fuel_used();
        run.flush_output();
        let response = match result? {
            Ok(r) => r,
            Err(e) => return Err(agent_error(e)),
        };
        let size = (response.text.len() + response.data.as_ref().map_or(0, |d| d.len())) as u64;
        if size > limits.max_response_bytes {
            return Err(CallError::ResponseTooLarge { size, limit: limits.max_response_bytes });
        }
        Ok(CallOutcome { response, fuel_used, elapsed: start.elapsed() })
    }
}

/// Longest agent error message passed on; the rest is cut. Without this a
/// guest could return an error far larger than `max_response_bytes`.
pub const MAX_AGENT_ERROR_BYTES: usize = 4096;

fn agent_error(e: AgentError) -> CallError {
    let (kind, message) = match e {
        AgentError::InvalidRequest(m) => ("invalid-request", m),
        AgentError::CapabilityFailed(m) => ("capability-failed", m),
        AgentError::Failed(m) => ("failed", m),
    };
    let message = capabilities::log::truncate(&message, MAX_AGENT_ERROR_BYTES).to_string();
    CallError::Agent { kind, message }
}

fn new_instance_state(
    agent: &Arc<str>,
    limits: &Limits,
    caps: capabilities::States,
    environment: Option<&dyn WasiEnvironment>,
) -> (InstanceState, CapturedOutput) {
    let output = CapturedOutput::new(limits.max_output_bytes as usize);
    let mut wasi = WasiCtxBuilder::new();
    // Locked down: no preopens, no env, no args beyond the name, no network.
    wasi.stdout(output.clone())
        .stderr(output.clone())
        .arg(&**agent)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    if let Some(environment) = environment {
        environment.configure(&mut wasi);
    }
    let state = InstanceState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limiter: CallLimiter::new(limits),
        caps,
    };
    (state, output)
}

/// A store configured with a call's limits, which turns whatever stopped
/// the guest into a typed [`CallError`].
struct LimitedStore {
    store: Store<InstanceState>,
    output: CapturedOutput,
    limits: Limits,
    metered: bool,
}

impl LimitedStore {
    fn new(
        engine: &Engine,
        (state, output): (InstanceState, CapturedOutput),
        limits: &Limits,
        metered: bool,
        deadline: Instant,
    ) -> Self {
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        // What one host call may copy out of the guest (wasmtime's default is
        // 128 MiB per call, for each of any number of calls). The response
        // `handle` returns is lifted under the same allowance, so it covers
        // `max_response_bytes` too, and the size check below stays the one
        // that reports an oversized response.
        store.set_hostcall_fuel(host_call_allowance(limits));
        if let (true, Fuel::Limit(n)) = (metered, limits.fuel) {
            store.set_fuel(n).expect("metered engine has fuel enabled");
        }
        // Check the deadline each tick; until then yield to the executor so a
        // spinning guest never monopolises a worker thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            // tokio's `yield_now` puts the task at the back of the run queue;
            // a plain self-wake (`Yield`) lands in the worker's LIFO slot and
            // is polled again at once, starving the tasks queued behind it.
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        LimitedStore { store, output, limits: limits.clone(), metered }
    }

    async fn run<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        // Epochs cannot interrupt host code; this outer timeout is the
        // backstop (host calls carry their own, shorter timeouts).
        let backstop = self.limits.deadline + EPOCH_TICK * 4;
        match tokio::time::timeout(backstop, f(&mut self.store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => Err(CallError::Deadline { ms: self.limits.deadline.as_millis() as u64 }),
        }
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        match self.store.data().limiter.hit {
            Some(LimitHit::Memory) => return CallError::MemoryLimit { bytes: self.limits.memory_bytes },
            Some(LimitHit::Table) => return CallError::TableLimit { elements: self.limits.table_elements },
            Some(LimitHit::Instances) => return CallError::InstanceLimit,
            None => {}
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => {
                let limit = if let Fuel::Limit(n) = self.limits.fuel { n } else { 0 };
                CallError::FuelExhausted { limit }
            }
            Some(Trap::Interrupt) => CallError::Deadline { ms: self.limits.deadline.as_millis() as u64 },
            Some(Trap::StackOverflow) => CallError::StackOverflow,
            Some(trap) => CallError::Trap { message: trap.to_string() },
            None => {
                let message = error_chain(&e);
                if message.contains(HOSTCALL_FUEL_MESSAGE) {
                    let allowance = host_call_allowance(&self.limits) as u64;
                    // Refused inside a host call, the trap carries the guest's
                    // backtrace; refused while lifting what `handle` returned,
                    // no guest frame is left: the response was too large
                    // (and was never copied, so its exact size is unknown).
                    if e.downcast_ref::<wasmtime::WasmBacktrace>().is_some() {
                        CallError::HostCallTooLarge { limit: allowance }
                    } else {
                        CallError::ResponseTooLarge { size: allowance + 1, limit: self.limits.max_response_bytes }
                    }
                } else if message.contains("concurrent") && message.contains("limit") {
                    CallError::Capacity { message }
                } else if message.contains("resource limit exceeded") || message.contains("count limit") {
                    CallError::InstanceLimit
                } else {
                    CallError::Trap { message }
                }
            }
        }
    }

    fn fuel_used(&self) -> Option<u64> {
        match (self.metered, self.limits.fuel) {
            (true, Fuel::Limit(n)) => Some(n.saturating_sub(self.store.get_fuel().unwrap_or(0))),
            _ => None,
        }
    }

    /// Sends what the guest printed to the host log, tagged with the agent,
    /// each line charged to the call's log budget (shared with `log`).
    fn flush_output(&mut self) {
        let (text, dropped) = self.output.take();
        let log = &mut self.store.data_mut().caps.log;
        for line in text.lines().filter(|l| !l.is_empty()) {
            log.stdio_line(line);
        }
        log.stdio_overflow(dropped);
    }
}

/// Bytes one host call (or the lifted response) may carry: see
/// [`Limits::max_host_call_bytes`].
fn host_call_allowance(limits: &Limits) -> usize {
    // Framing of a response record beside its text and data.
    const RESPONSE_FRAMING: u64 = 64 << 10;
    let bytes = limits.max_host_call_bytes.max(limits.max_response_bytes.saturating_add(RESPONSE_FRAMING));
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// What wasmtime says when a host call's data exceeds the store's hostcall
/// fuel (its error type is private; the message is its stable display).
const HOSTCALL_FUEL_MESSAGE: &str = "fuel allocated for hostcalls has been exhausted";

/// The error chain as one line, without wasm backtraces: the cause a
/// guest's trap had (a host function's error, a limit) is in the chain's
/// later links, which the first line alone loses.
fn error_chain(e: &wasmtime::Error) -> String {
    // A backtrace link's display is a header line and then frames; its
    // type is not a std error, so it is known by its header.
    let parts: Vec<String> = e
        .chain()
        .map(|c| c.to_string().lines().next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty() && !s.starts_with("error while executing at wasm backtrace"))
        .collect();
    let joined = parts.join(": ");
    capabilities::log::truncate(&joined, 1000).to_string()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(500).collect()
}

/// Compiled components on disk, keyed by content hash and engine
/// configuration, so a restart does not recompile.
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    fn path(&self, engine: &Engine, content_hash: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{content_hash}-{:016x}.cwasm", h.finish()))
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss.
    /// Returns whether it was a hit.
    pub fn load(&self, engine: &Engine, bytes: &[u8], content_hash: &str) -> Result<(Component, bool), LoadError> {
        let path = self.path(engine, content_hash);
        if path.exists() {
            // SAFETY: files in the cache directory are written only by this
            // host (below), from components it compiled itself, and are
            // keyed by the engine's compatibility hash. The directory belongs
            // to the host's data dir, which guests cannot reach.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!("discarding unusable compile cache entry {}: {e}", path.display());
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = compile(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!("could not write compile cache entry {}: {e}", path.display());
        }
        Ok((component, false))
    }

    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
        // Write then rename, so a crash never leaves a half-written entry.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

/// Compiles `bytes` after checking it is a component at all.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8 are the version and layer: layer 0 is a core module, 1 a component.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule);
    }
    Component::new(engine, bytes).map_err(|e| LoadError::Invalid(first_line(&format!("{e:#}"))))
}

pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Supplies the clocks and random numbers of every instance a runtime
/// creates, instead of the host's real ones.
pub trait WasiEnvironment: Send + Sync + 'static {
    fn configure(&self, wasi: &mut WasiCtxBuilder);
}

/// Settings that shape the engines; fixed for the life of a runtime.
#[derive(Clone)]
pub struct RuntimeOptions {
    pub max_instances: u32,
    pub memory_ceiling_bytes: u64,
    /// Largest table any agent may grow to (the pooling slot size).
    pub table_ceiling_elements: u64,
    /// See [`KEEP_RESIDENT_BYTES`].
    pub keep_resident_bytes: usize,
    pub cache_dir: Option<PathBuf>,
    /// Clocks and random numbers for every instance instead of the host's
    /// (the evolution benchmark's seeded ones; never set for serving).
    pub wasi_environment: Option<Arc<dyn WasiEnvironment>>,
}

impl RuntimeOptions {
    pub fn from_config(config: &HostConfig) -> Self {
        RuntimeOptions {
            max_instances: config.host.max_instances,
            memory_ceiling_bytes: config.host.memory_ceiling_bytes,
            table_ceiling_elements: config.host.table_ceiling_elements,
            keep_resident_bytes: usize::try_from(config.host.keep_resident_bytes).unwrap_or(KEEP_RESIDENT_BYTES),
            cache_dir: Some(config.host.data_dir.join("cache")),
            wasi_environment: None,
        }
    }
}

struct EngineSet {
    engine: Engine,
    /// WASI plus the `types` interface: what every agent links.
    base_linker: Linker<InstanceState>,
}

/// Owns the engines, the epoch ticker, the storage backend and the compile cache.
pub struct Runtime {
    metered: EngineSet,
    unmetered: EngineSet,
    storage: Arc<dyn Storage>,
    llm: Arc<LlmService>,
    aws: Arc<crate::aws::Ec2Service>,
    metrics: Arc<crate::metrics::Metrics>,
    samples: Arc<crate::sampling::CallSamples>,
    directory: Directory,
    cache: Option<CompileCache>,
    config: Arc<HostConfig>,
    ticker_stop: Arc<AtomicBool>,
    wasi_environment: Option<Arc<dyn WasiEnvironment>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn build_engine(opts: &RuntimeOptions, fuel: bool) -> wasmtime::Result<Engine> {
    let n = opts.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    // A Rust wasip2 component instantiates a handful of core modules (the
    // program plus adapter shims), so core resources get headroom per instance.
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .table_elements(usize::try_from(opts.table_ceiling_elements).unwrap_or(usize::MAX))
        .max_memory_size(usize::try_from(opts.memory_ceiling_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(opts.keep_resident_bytes)
        .table_keep_resident(opts.keep_resident_bytes);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .allocation_strategy(pool)
        .memory_init_cow(true);
    Engine::new(&config)
}

fn base_linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::bindings::agentkernel::agent::types::add_to_linker::<InstanceState, wasmtime::component::HasSelf<InstanceState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}

impl crate::bindings::agentkernel::agent::types::Host for InstanceState {}

impl Runtime {
    pub fn new(
        config: Arc<HostConfig>,
        storage: Arc<dyn Storage>,
        aws_store: Arc<dyn crate::storage::aws::AwsStore>,
        opts: RuntimeOptions,
    ) -> anyhow::Result<Arc<Self>> {
        let metered_engine = build_engine(&opts, true).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let unmetered_engine = build_engine(&opts, false).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let metered = EngineSet {
            base_linker: base_linker(&metered_engine).map_err(|e| anyhow::anyhow!("{e:#}"))?,
            engine: metered_engine,
        };
        let unmetered = EngineSet {
            base_linker: base_linker(&unmetered_engine).map_err(|e| anyhow::anyhow!("{e:#}"))?,
            engine: unmetered_engine,
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let stop = ticker_stop.clone();
            let engines = [metered.engine.clone(), unmetered.engine.clone()];
            std::thread::Builder::new().name("agentkernel-epoch".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    for e in &engines {
                        e.increment_epoch();
                    }
                }
            })?;
        }
        Ok(Arc::new(Runtime {
            metered,
            unmetered,
            llm: Arc::new(LlmService::new(config.llm.clone(), storage.clone()).with_metrics(metrics.clone())),
            aws: Arc::new(crate::aws::Ec2Service::new(config.aws.clone(), aws_store)),
            metrics,
            samples: Arc::default(),
            directory: Directory::default(),
            storage,
            cache: opts.cache_dir.map(CompileCache::new),
            config,
            ticker_stop,
            wasi_environment: opts.wasi_environment,
        }))
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
    pub fn llm(&self) -> &Arc<LlmService> {
        &self.llm
    }
    /// EC2 for agents and the `genome`/`audit` commands.
    pub fn aws(&self) -> &Arc<crate::aws::Ec2Service> {
        &self.aws
    }
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }
    /// Live requests kept for post-swap watches.
    pub fn samples(&self) -> &Arc<crate::sampling::CallSamples> {
        &self.samples
    }

    /// Where `agents` calls look callees up. Set once, by the registry
    /// that owns this runtime; a second registry is ignored.
    pub fn set_directory(&self, registry: std::sync::Weak<crate::registry::Registry>) {
        let _ = self.directory.set(registry);
    }
    pub fn engine(&self, metered: bool) -> &Engine {
        if metered { &self.metered.engine } else { &self.unmetered.engine }
    }

    fn engine_set(&self, metered: bool) -> &EngineSet {
        if metered { &self.metered } else { &self.unmetered }
    }

    /// Compiles (or loads from the cache) on the blocking pool.
    async fn compile_cached(&self, metered: bool, bytes: Arc<[u8]>, hash: &str) -> Result<(Component, bool), LoadError> {
        let engine = self.engine_set(metered).engine.clone();
        let cache_path = self.cache.as_ref().map(|c| c.dir.clone());
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || match cache_path {
            Some(dir) => CompileCache::new(dir).load(&engine, &bytes, &hash),
            None => compile(&engine, &bytes).map(|c| (c, false)),
        })
        .await
        .map_err(|e| LoadError::Invalid(format!("compiler task failed: {e}")))?
    }

    /// Reads and loads the component at `path`.
    pub async fn load_file(&self, path: &Path) -> Result<LoadedAgent, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| LoadError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        self.load(bytes.into(), Some(path.to_path_buf())).await
    }

    /// Loads a component: checks it, asks it to describe itself, checks its
    /// imports against its policy and pre-instantiates it.
    pub async fn load(&self, bytes: Arc<[u8]>, source: Option<PathBuf>) -> Result<LoadedAgent, LoadError> {
        let hash = content_hash(&bytes);
        self.load_hashed(bytes, hash, source).await
    }

    /// [`load`](Self::load) for callers that already hashed the bytes.
    pub async fn load_hashed(&self, bytes: Arc<[u8]>, hash: String, source: Option<PathBuf>) -> Result<LoadedAgent, LoadError> {
        // describe() is guest code too: it always runs metered.
        let (component, mut cache_hit) = self.compile_cached(true, bytes.clone(), &hash).await?;
        let engine = &self.metered.engine;
        let import_names: Vec<String> =
            component.component_type().imports(engine).map(|(name, _)| name.to_string()).collect();
        let imports = policy::classify_imports(import_names.iter().map(String::as_str))?;

        let manifest = self.describe(&component, &imports).await?;
        validate_manifest(&manifest)?;
        let name = manifest.name.clone();
        let grants = self.config.policy_for(&name);
        policy::check_imports(&name, &imports, &grants)?;
        for c in &imports.capabilities {
            if !manifest.capabilities.iter().any(|r| r.name == c.name()) {
                tracing::warn!(agent = %name, "imports `{c}` without declaring it in describe().capabilities");
            }
        }

        let limits = self.config.limits_for(&name);
        let metered = matches!(limits.fuel, Fuel::Limit(_));
        let component = if metered {
            component
        } else {
            let (c, hit) = self.compile_cached(false, bytes.clone(), &hash).await?;
            cache_hit = hit;
            c
        };
        let set = self.engine_set(metered);
        let mut linker = set.base_linker.clone();
        for &c in &imports.capabilities {
            capabilities::add_to_linker(&mut linker, c).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        }
        let pre = linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = AgentPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        // Only imported capabilities are prepared (and linked, above).
        let imported = |c| imports.capabilities.contains(&c);
        let prepared = capabilities::Prepared {
            memory: grants.memory_namespace(&name).filter(|_| imported(Capability::Memory)).map(|namespace| {
                capabilities::memory::Prepared {
                    storage: self.storage.clone(),
                    namespace: Arc::from(namespace),
                    quota: grants.memory.scope().unwrap_or_default().quota(),
                }
            }),
            llm: grants.llm.scope().filter(|_| imported(Capability::Llm)).map(|scope| capabilities::llm::Prepared {
                service: self.llm.clone(),
                scope: Arc::new(scope),
            }),
            agents: grants.agents.scope().filter(|_| imported(Capability::Agents)).map(|scope| {
                capabilities::agents::Prepared {
                    directory: self.directory.clone(),
                    scope: Arc::new(scope),
                    default_budget: Arc::new(self.config.chat.default_budget()),
                }
            }),
            aws_ec2: grants.aws_ec2.scope().filter(|_| imported(Capability::AwsEc2)).map(|scope| {
                capabilities::aws_ec2::Prepared { service: self.aws.clone(), scope: Arc::new(scope) }
            }),
        };
        Ok(LoadedAgent {
            manifest: ManifestInfo::from(&manifest),
            grants,
            limits,
            imports,
            hash,
            size: bytes.len() as u64,
            source,
            loaded_at: SystemTime::now(),
            compile_cache_hit: cache_hit,
            capabilities: prepared,
            name: Arc::from(name.as_str()),
            pre,
            engine: set.engine.clone(),
            metrics: self.metrics.clone(),
            samples: self.samples.clone(),
            wasi_environment: self.wasi_environment.clone(),
        })
    }

    /// Calls `describe()` with real WASI and `log`, and every other
    /// capability defined as a trap: describe must not use capabilities,
    /// and the agent's grants are unknown until it has said its name.
    async fn describe(&self, component: &Component, imports: &ImportSet) -> Result<Manifest, LoadError> {
        let mut linker = self.metered.base_linker.clone();
        if imports.capabilities.contains(&Capability::Log) {
            capabilities::log::add_to_linker(&mut linker).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        }
        linker.define_unknown_imports_as_traps(component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let limits = Limits::default().with(&self.config.limits);
        let limits = Limits { fuel: Fuel::Limit(limits_fuel_or_default(&limits)), ..limits };
        let name: Arc<str> = Arc::from("(loading)");
        let deadline = Instant::now() + limits.deadline;
        let context = CallContext::default();
        let call = CallInfo { agent: &name, session: "", limits: &limits, deadline, context: &context };
        let state = new_instance_state(&name, &limits, capabilities::Prepared::default().states(&call), self.wasi_environment.as_deref());
        let mut run = LimitedStore::new(&self.metered.engine, state, &limits, true, deadline);
        let result = run
            .run(async |store| {
                let instance = linker.instantiate_async(&mut *store, component).await?;
                let agent = crate::bindings::Agent::new(&mut *store, &instance)?;
                agent.call_describe(&mut *store).await
            })
            .await;
        run.flush_output();
        result.map_err(LoadError::Describe)
    }
}

fn limits_fuel_or_default(l: &Limits) -> u64 {
    match l.fuel {
        Fuel::Limit(n) => n,
        Fuel::Off => match Limits::default().fuel {
            Fuel::Limit(n) => n,
            Fuel::Off => u64::MAX,
        },
    }
}

/// Agent names route requests and key policy, so they are kept simple.
pub fn validate_agent_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok { Ok(()) } else { Err(format!("agent name {name:?} must be 1-64 chars of a-z, 0-9 and '-'")) }
}

fn validate_manifest(m: &Manifest) -> Result<(), LoadError> {
    validate_agent_name(&m.name).map_err(LoadError::Manifest)?;
    let too_long = |what: &str, len: usize, max: usize| {
        if len > max { Err(LoadError::Manifest(format!("{what} is {len} bytes; the limit is {max}"))) } else { Ok(()) }
    };
    too_long("version", m.version.len(), 64)?;
    too_long("description", m.description.len(), 4096)?;
    too_long("skill count", m.skills.len(), 64)?;
    for s in &m.skills {
        too_long("skill name", s.name.len(), 128)?;
        too_long("skill description", s.description.len(), 1024)?;
        too_long("skill keyword count", s.keywords.len(), 64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_are_restricted() {
        assert!(validate_agent_name("notes-2").is_ok());
        for bad in ["", "Notes", "a b", "-x", "../etc", &"a".repeat(65)] {
            assert!(validate_agent_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn non_components_are_rejected_before_compiling() {
        let engine = Engine::default();
        assert!(matches!(compile(&engine, b""), Err(LoadError::NotWasm)));
        assert!(matches!(compile(&engine, b"hello world, not wasm"), Err(LoadError::NotWasm)));
        let core = b"\0asm\x01\0\0\0";
        assert!(matches!(compile(&engine, core), Err(LoadError::CoreModule)));
    }
}
