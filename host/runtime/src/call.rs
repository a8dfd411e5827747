//! One call: a fresh instance in a store configured with the call's limits,
//! and what stopped the guest turned into a typed [`CallError`].
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{AgentError, Response};
use crate::capability::{CapabilityStates, States};
use crate::errors::CallError;
use crate::limits::{CallLimiter, Fuel, LimitHit, Limits};
use crate::log::LogState;
use crate::output::CapturedOutput;
use crate::runtime::EPOCH_TICK;
use crate::trace::RequestScope;

/// State of one instance: created for one call and dropped after it.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: CallLimiter,
    /// The call's log budget, shared by `log` and stdout/stderr.
    pub(crate) log: LogState,
    /// The per-call states of the capabilities this instance was linked with.
    caps: States,
}

impl CapabilityStates for InstanceState {
    fn state<S: std::any::Any + Send>(&mut self) -> &mut S {
        self.caps.get_mut::<S>().expect("the runtime prepares a state for every capability it links")
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
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


/// Longest agent error message passed on; the rest is cut. Without this a
/// guest could return an error far larger than `max_response_bytes`.
pub const MAX_AGENT_ERROR_BYTES: usize = 4096;

pub(crate) fn agent_error(e: AgentError) -> CallError {
    let (kind, message) = match e {
        AgentError::InvalidRequest(m) => ("invalid-request", m),
        AgentError::CapabilityFailed(m) => ("capability-failed", m),
        AgentError::Failed(m) => ("failed", m),
    };
    let message = crate::log::truncate(&message, MAX_AGENT_ERROR_BYTES).to_string();
    CallError::Agent { kind, message }
}

pub(crate) fn new_instance_state(
    agent: &Arc<str>,
    limits: &Limits,
    caps: States,
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
        log: LogState::new(agent.clone(), limits.max_output_bytes, limits.max_log_lines),
        caps,
    };
    (state, output)
}

/// A store configured with a call's limits, which turns whatever stopped
/// the guest into a typed [`CallError`].
pub(crate) struct LimitedStore {
    store: Store<InstanceState>,
    output: CapturedOutput,
    limits: Limits,
    metered: bool,
}

impl LimitedStore {
    pub(crate) fn new(
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

    pub(crate) async fn run<T>(
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

    pub(crate) fn fuel_used(&self) -> Option<u64> {
        match (self.metered, self.limits.fuel) {
            (true, Fuel::Limit(n)) => Some(n.saturating_sub(self.store.get_fuel().unwrap_or(0))),
            _ => None,
        }
    }

    /// Sends what the guest printed to the host log, tagged with the agent,
    /// each line charged to the call's log budget (shared with `log`).
    pub(crate) fn flush_output(&mut self) {
        let (text, dropped) = self.output.take();
        let log = &mut self.store.data_mut().log;
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
    crate::log::truncate(&joined, 1000).to_string()
}


/// Supplies the clocks and random numbers of every instance a runtime
/// creates, instead of the host's real ones.
pub trait WasiEnvironment: Send + Sync + 'static {
    fn configure(&self, wasi: &mut WasiCtxBuilder);
}

