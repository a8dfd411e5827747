//! What one chat request shares across every agent call it causes: a
//! budget (calls, fuel, tokens, depth, time) and a trace of who called whom.
//!
//! The orchestrator creates one [`RequestScope`] per request and puts it in
//! the [`CallContext`](crate::CallContext); the runtime charges each
//! call against it and records a span, the `agents` capability passes it on
//! to callees, and the `llm` capability charges tokens to the calling span.
//! Streaming clients receive the same facts as [`Event`]s while they happen.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc::Sender;

/// Longest piece of an agent's output copied into a span or event.
pub const PREVIEW_BYTES: usize = 2048;

/// The limits one request runs under, across its whole call tree.
#[derive(Debug, Clone)]
pub struct BudgetLimits {
    /// Most agent invocations, nested ones included.
    pub max_calls: u32,
    /// Longest chain of agent-to-agent calls (1 = no nested calls).
    pub max_depth: u32,
    /// Total fuel across metered agents; `None` = each agent's own limit only.
    pub fuel: Option<u64>,
    /// Total LLM tokens (prompt + completion); `None` = agents' own budgets only.
    pub tokens: Option<u64>,
    /// Wall time for the whole request.
    pub timeout: Duration,
}

/// Why the request's budget refused a call.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("the request may make at most {0} agent calls")]
    Calls(u32),
    #[error("the request's fuel budget of {0} is spent")]
    Fuel(u64),
    #[error("the request's token budget of {0} is spent")]
    Tokens(u64),
    #[error("the request's time budget is spent")]
    Time,
}

/// A budget shared by every call in one request. Counters are atomics: the
/// calls it covers run in parallel.
#[derive(Debug)]
pub struct Budget {
    limits: BudgetLimits,
    deadline: Instant,
    calls: AtomicU32,
    fuel_used: AtomicU64,
    tokens_used: AtomicU64,
    /// The prompt part of `tokens_used` (OpenAI clients expect the split).
    prompt_tokens_used: AtomicU64,
}

impl Budget {
    pub fn new(limits: BudgetLimits) -> Self {
        Budget {
            deadline: Instant::now() + limits.timeout,
            limits,
            calls: AtomicU32::new(0),
            fuel_used: AtomicU64::new(0),
            tokens_used: AtomicU64::new(0),
            prompt_tokens_used: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Counts one more call, refusing it when a limit is already reached.
    pub fn start_call(&self) -> Result<(), BudgetError> {
        if Instant::now() >= self.deadline {
            return Err(BudgetError::Time);
        }
        if let (Some(limit), Some(0)) = (self.limits.fuel, self.fuel_left()) {
            return Err(BudgetError::Fuel(limit));
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n >= self.limits.max_calls {
            self.calls.fetch_sub(1, Ordering::Relaxed);
            return Err(BudgetError::Calls(self.limits.max_calls));
        }
        Ok(())
    }

    /// Fuel a new call may use at most (`None`: no request-wide limit).
    /// Calls running at once each see what is left when they start, so the
    /// total can overshoot by what they burn in parallel; the next call is
    /// refused.
    pub fn fuel_left(&self) -> Option<u64> {
        self.limits.fuel.map(|f| f.saturating_sub(self.fuel_used.load(Ordering::Relaxed)))
    }
    pub fn charge_fuel(&self, fuel: u64) {
        self.fuel_used.fetch_add(fuel, Ordering::Relaxed);
    }

    pub fn tokens_left(&self) -> Option<u64> {
        self.limits.tokens.map(|t| t.saturating_sub(self.tokens_used.load(Ordering::Relaxed)))
    }
    pub fn charge_tokens(&self, tokens: u64) {
        self.tokens_used.fetch_add(tokens, Ordering::Relaxed);
    }

    /// Charges one LLM call: prompt and completion count alike against
    /// the budget; the split is kept for reporting.
    pub fn charge_llm_tokens(&self, prompt: u64, completion: u64) {
        self.prompt_tokens_used.fetch_add(prompt, Ordering::Relaxed);
        self.charge_tokens(prompt + completion);
    }

    pub fn usage(&self) -> BudgetUsage {
        BudgetUsage {
            calls: self.calls.load(Ordering::Relaxed),
            fuel: self.fuel_used.load(Ordering::Relaxed),
            tokens: self.tokens_used.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens_used.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct BudgetUsage {
    pub calls: u32,
    pub fuel: u64,
    /// LLM tokens, prompt and completion.
    pub tokens: u64,
    /// Of `tokens`, those of prompts.
    pub prompt_tokens: u64,
}

/// One agent call in a request's trace.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    pub id: u32,
    /// The span of the agent that made this call; `None` for the host's own calls.
    pub parent: Option<u32>,
    pub agent: String,
    /// Why the host made the call: `router`, `agent`, `synthesizer`, or `callee`.
    pub role: &'static str,
    /// Milliseconds from the start of the request.
    pub start_ms: f64,
    pub elapsed_ms: Option<f64>,
    pub fuel: Option<u64>,
    pub tokens: u64,
    pub cost_usd: f64,
    /// `ok`, or the error code the call ended with; `None` while running.
    pub outcome: Option<String>,
    /// The start of the agent's answer, or its error message.
    pub output: Option<String>,
}

/// One model call an agent made, for exported traces (`gen_ai` `chat` spans).
#[derive(Debug, Clone, Serialize)]
pub struct LlmCallRecord {
    /// The agent span that made the call.
    pub span: u32,
    /// The model asked for (`gen_ai.request.model`) and the one that answered.
    pub request_model: String,
    pub response_model: String,
    /// Milliseconds from the start of the request.
    pub start_ms: f64,
    pub elapsed_ms: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `ok`, or the error code the call ended with.
    pub outcome: String,
}

/// Most model calls a trace keeps: the records are for telemetry, and a
/// request without a token budget could otherwise grow them without bound.
pub const MAX_LLM_CALL_RECORDS: usize = 1024;

/// What a streaming client sees, in order, as the request runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// The agents chosen, and by whom (`request`, the router agent, or `none`).
    Route { agents: Vec<String>, by: String, reason: String },
    AgentStart { span: u32, parent: Option<u32>, agent: String, role: &'static str },
    /// Text an LLM produced for `span` so far (one delta per event).
    Token { span: u32, agent: String, text: String },
    AgentEnd { span: u32, agent: String, outcome: String, elapsed_ms: f64, fuel: Option<u64>, tokens: u64, output: String },
    /// The client read too slowly: `missed` events before this one were dropped.
    Lagged { missed: u64 },
}

/// The spans of one request, and the stream they are reported on.
#[derive(Debug)]
pub struct Trace {
    started: Instant,
    /// `started` on the wall clock, for exported span times.
    started_unix_nanos: u64,
    spans: Mutex<Vec<Span>>,
    llm_calls: Mutex<Vec<LlmCallRecord>>,
    /// Bounded (`[server] stream_buffer_events`): a slow client cannot make it grow.
    events: Option<Sender<Event>>,
    /// Events dropped since the last one that fitted.
    missed: AtomicU64,
}

impl Trace {
    /// `events` receives every span as it starts and ends (streaming clients);
    /// a closed receiver (client gone) is ignored.
    pub fn new(events: Option<Sender<Event>>) -> Self {
        let started_unix_nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Trace {
            started: Instant::now(),
            started_unix_nanos,
            spans: Mutex::new(Vec::new()),
            llm_calls: Mutex::new(Vec::new()),
            events,
            missed: AtomicU64::new(0),
        }
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, Vec<Span>> {
        // Span updates are single assignments: a panic elsewhere cannot leave one half-made.
        self.spans.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Never waits: an agent call must not slow down to a client's reading
    /// pace. When the buffer is full the event is dropped and counted, and
    /// the next one that fits is preceded by a `Lagged` marker. (The final
    /// answer is not an event: it always arrives.)
    pub fn emit(&self, event: Event) {
        let Some(tx) = &self.events else { return };
        let missed = self.missed.swap(0, Ordering::Relaxed);
        if missed > 0 && tx.try_send(Event::Lagged { missed }).is_err() {
            self.missed.fetch_add(missed + 1, Ordering::Relaxed);
            return;
        }
        if tx.try_send(event).is_err() {
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn streaming(&self) -> bool {
        self.events.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    pub fn open(&self, parent: Option<u32>, agent: &str, role: &'static str) -> u32 {
        let start_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let id = {
            let mut spans = self.spans();
            let id = spans.len() as u32;
            spans.push(Span {
                id,
                parent,
                agent: agent.to_string(),
                role,
                start_ms,
                elapsed_ms: None,
                fuel: None,
                tokens: 0,
                cost_usd: 0.0,
                outcome: None,
                output: None,
            });
            id
        };
        self.emit(Event::AgentStart { span: id, parent, agent: agent.to_string(), role });
        id
    }

    pub fn close(&self, id: u32, outcome: &str, elapsed: Duration, fuel: Option<u64>, output: &str) {
        let output = preview(output).to_string();
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        let (agent, tokens) = {
            let mut spans = self.spans();
            let Some(span) = spans.get_mut(id as usize) else { return };
            span.elapsed_ms = Some(elapsed_ms);
            span.fuel = fuel;
            span.outcome = Some(outcome.to_string());
            span.output = Some(output.clone());
            (span.agent.clone(), span.tokens)
        };
        self.emit(Event::AgentEnd { span: id, agent, outcome: outcome.to_string(), elapsed_ms, fuel, tokens, output });
    }

    /// Charges an LLM call's tokens and cost to `span`.
    pub fn add_llm_usage(&self, id: u32, tokens: u64, cost_usd: f64) {
        if let Some(span) = self.spans().get_mut(id as usize) {
            span.tokens += tokens;
            span.cost_usd += cost_usd;
        }
    }

    /// Records a model call (beyond [`MAX_LLM_CALL_RECORDS`] it is only
    /// charged, through [`add_llm_usage`](Self::add_llm_usage)). `started` is
    /// when the call began.
    pub fn record_llm_call(&self, mut call: LlmCallRecord, started: Instant) {
        call.start_ms = started.saturating_duration_since(self.started).as_secs_f64() * 1000.0;
        let mut calls = self.llm_calls.lock().unwrap_or_else(|p| p.into_inner());
        if calls.len() < MAX_LLM_CALL_RECORDS {
            calls.push(call);
        }
    }

    pub fn llm_calls(&self) -> Vec<LlmCallRecord> {
        self.llm_calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// When the request started, in nanoseconds since the Unix epoch.
    pub fn started_unix_nanos(&self) -> u64 {
        self.started_unix_nanos
    }

    pub fn agent_of(&self, id: u32) -> Option<String> {
        self.spans().get(id as usize).map(|s| s.agent.clone())
    }

    pub fn snapshot(&self) -> Vec<Span> {
        self.spans().clone()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Budget and trace of one request.
#[derive(Debug)]
pub struct RequestScope {
    pub budget: Budget,
    pub trace: Trace,
}

impl RequestScope {
    pub fn new(limits: BudgetLimits, events: Option<Sender<Event>>) -> Self {
        RequestScope { budget: Budget::new(limits), trace: Trace::new(events) }
    }
}

/// The first [`PREVIEW_BYTES`] of `s`, cut at a character boundary.
pub fn preview(s: &str) -> &str {
    crate::log::truncate(s, PREVIEW_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BudgetLimits {
        BudgetLimits { max_calls: 2, max_depth: 3, fuel: Some(100), tokens: Some(50), timeout: Duration::from_secs(5) }
    }

    #[test]
    fn budget_counts_calls_fuel_and_tokens() {
        let b = Budget::new(limits());
        b.start_call().unwrap();
        b.start_call().unwrap();
        assert_eq!(b.start_call(), Err(BudgetError::Calls(2)));
        assert_eq!(b.usage().calls, 2, "a refused call is not counted");
        b.charge_fuel(60);
        assert_eq!(b.fuel_left(), Some(40));
        b.charge_fuel(60);
        assert_eq!(b.fuel_left(), Some(0));
        b.charge_tokens(20);
        assert_eq!(b.tokens_left(), Some(30));
    }

    #[test]
    fn spent_fuel_refuses_the_next_call() {
        let b = Budget::new(limits());
        b.charge_fuel(100);
        assert_eq!(b.start_call(), Err(BudgetError::Fuel(100)));
    }

    #[test]
    fn trace_records_spans_and_streams_events() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let t = Trace::new(Some(tx));
        let a = t.open(None, "a", "agent");
        let b = t.open(Some(a), "b", "callee");
        t.add_llm_usage(b, 30, 0.5);
        t.close(b, "ok", Duration::from_millis(2), Some(7), "x".repeat(5000).as_str());
        t.close(a, "deadline", Duration::from_millis(3), None, "too slow");
        let spans = t.snapshot();
        assert_eq!(spans[1].parent, Some(0));
        assert_eq!(spans[1].tokens, 30);
        assert_eq!(spans[1].output.as_ref().unwrap().len(), PREVIEW_BYTES);
        assert_eq!(spans[0].outcome.as_deref(), Some("deadline"));
        let kinds: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| serde_json::to_value(e).unwrap()["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["agent-start", "agent-start", "agent-end", "agent-end"]);
    }
}
