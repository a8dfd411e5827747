//! The chat service: one message in, one answer out, from agents working
//! together.
//!
//! A request is (1) routed to the agents whose skills fit — by the `router`
//! agent (LLM-assisted when it may use one, a keyword matcher otherwise) or
//! by the agents the client named; (2) the chosen agents run in parallel,
//! each in its own instance, and may call each other through the `agents`
//! capability; (3) their answers are combined — by the `synthesizer` agent
//! when more than one answered, else passed through. Router and synthesizer
//! are ordinary components, so they can be replaced or evolved like any
//! other agent; without them the host names the agents itself or merges
//! answers deterministically.
//!
//! Every call of a request shares one [`RequestScope`]: a budget (calls,
//! depth, fuel, tokens, time) and a trace of who called whom, which the
//! response carries and streaming clients see as it happens.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Sender;

use agentkernel_runtime::bindings::{Request, Role, Turn};
use crate::registry::Registry;
use crate::routing_index::RoutingCache;
use crate::telemetry::{Exporter, RequestSpan, TraceParent};
use agentkernel_runtime::{CallContext, CallError, LoadedAgent};
use agentkernel_storage::sessions::{SessionAppend, SessionStore, TranscriptEntry};
use agentkernel_runtime::trace::{BudgetLimits, BudgetUsage, Event, RequestScope, Span};

/// `[chat]`: how requests are routed and the limits each one runs under.
/// A request may lower these limits for itself, never raise them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Agent that chooses agents for a message; `""` disables routing (the
    /// client must name agents).
    pub router: String,
    /// Agent that combines several answers; `""` merges them in the host.
    pub synthesizer: String,
    /// Most agents one message is routed to.
    pub max_agents: u32,
    /// Most agents the router agent is offered per message: with more
    /// loaded, a shortlist of those whose skills the message touches (so
    /// routing costs the same with 1,000 agents as with 16).
    pub router_candidates: u32,
    /// Most agent invocations per request, nested calls included.
    pub max_calls: u32,
    /// Longest chain of agent-to-agent calls.
    pub max_depth: u32,
    /// Most chosen agents running at once.
    pub max_parallel: u32,
    /// Wall time per request.
    pub timeout_ms: u64,
    /// Total fuel per request across metered agents (unset: per-agent limits only).
    pub fuel: Option<u64>,
    /// Total LLM tokens per request (unset: per-agent budgets only).
    pub tokens: Option<u64>,
    /// Earlier turns of the session given to agents as history.
    pub history_turns: u32,
    /// Longest message accepted, in bytes.
    pub max_message_bytes: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            router: "router".into(),
            synthesizer: "synthesizer".into(),
            max_agents: 3,
            router_candidates: 16,
            max_calls: 16,
            max_depth: 4,
            max_parallel: 4,
            timeout_ms: 30_000,
            fuel: None,
            tokens: None,
            history_turns: 20,
            max_message_bytes: 64 * 1024,
        }
    }
}

/// `POST /v1/chat` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub message: String,
    /// Continues this session (its transcript is the agents' history);
    /// a new one is created when absent.
    #[serde(default)]
    pub session: Option<String>,
    /// Ask these agents instead of routing.
    #[serde(default)]
    pub agents: Option<Vec<String>>,
    /// Answer with server-sent events (`POST /v1/chat` only).
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub limits: RequestLimits,
}

/// Per-request limits; each is capped by `[chat]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLimits {
    pub max_agents: Option<u32>,
    /// Most agent invocations, nested calls included (also accepted as `max_turns`).
    #[serde(alias = "max_turns")]
    pub max_calls: Option<u32>,
    pub max_depth: Option<u32>,
    pub max_parallel: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub fuel: Option<u64>,
    pub tokens: Option<u64>,
}

/// The effective limits of one request.
#[derive(Debug, Clone)]
struct Effective {
    max_agents: usize,
    max_parallel: usize,
    budget: BudgetLimits,
}

fn lower<T: Ord + Copy>(configured: T, requested: Option<T>) -> T {
    requested.map_or(configured, |r| r.min(configured))
}

fn lower_opt<T: Ord + Copy>(configured: Option<T>, requested: Option<T>) -> Option<T> {
    match (configured, requested) {
        (Some(c), Some(r)) => Some(c.min(r)),
        (c, r) => c.or(r),
    }
}

impl RequestLimits {
    /// A limit of zero leaves the request nothing to run with: it is a
    /// client mistake, refused up front rather than failing midway.
    /// (`tokens = 0` is kept: it means "no LLM", and agents degrade.)
    fn validate(&self) -> Result<(), ChatError> {
        let zero = [
            ("max_agents", self.max_agents.map(u64::from)),
            ("max_calls", self.max_calls.map(u64::from)),
            ("max_depth", self.max_depth.map(u64::from)),
            ("max_parallel", self.max_parallel.map(u64::from)),
            ("timeout_ms", self.timeout_ms),
            ("fuel", self.fuel),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(0));
        match zero {
            Some((name, _)) => Err(ChatError::InvalidRequest(format!("`limits.{name}` must be at least 1"))),
            None => Ok(()),
        }
    }
}

impl ChatConfig {
    /// The budget of a request that sets no limits of its own: what every
    /// entry point applies to the call tree it starts.
    pub fn default_budget(&self) -> BudgetLimits {
        self.effective(&RequestLimits::default()).budget
    }

    fn effective(&self, r: &RequestLimits) -> Effective {
        Effective {
            max_agents: lower(self.max_agents, r.max_agents).max(1) as usize,
            max_parallel: lower(self.max_parallel, r.max_parallel).max(1) as usize,
            budget: BudgetLimits {
                max_calls: lower(self.max_calls, r.max_calls),
                max_depth: lower(self.max_depth, r.max_depth).max(1),
                fuel: lower_opt(self.fuel, r.fuel),
                tokens: lower_opt(self.tokens, r.tokens),
                timeout: Duration::from_millis(lower(self.timeout_ms, r.timeout_ms).max(1)),
            },
        }
    }
}

/// What `POST /v1/chat` answers.
#[derive(Debug, Clone, Serialize)]
pub struct ChatResponse {
    pub session: String,
    pub answer: String,
    /// `ok` (every chosen agent answered), `partial`, `failed`, or
    /// `no-match` (no agent fits; the answer lists what is available).
    pub status: String,
    /// The agents whose answers make up `answer`.
    pub agents: Vec<String>,
    pub route: RouteInfo,
    /// Each chosen agent's own answer or error, in routing order.
    pub results: Vec<AgentResult>,
    /// Every agent call the request caused, nested ones included.
    pub trace: Vec<Span>,
    pub usage: ChatUsage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteInfo {
    /// `request` (named by the client), the router agent's name, or `host`
    /// (the router is not loaded or failed, and the host matched skills).
    pub by: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentResult {
    pub agent: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::api::ErrorDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ChatUsage {
    pub calls: u32,
    pub fuel: u64,
    /// LLM tokens of every call in the request, prompt and completion.
    pub tokens: u64,
    /// Of `tokens`, those of prompts.
    #[serde(default)]
    pub prompt_tokens: u64,
    pub cost_usd: f64,
    pub elapsed_ms: f64,
}

/// Why a chat request got no answer at all (a failed agent is not one of
/// these: it shows in `results` and the answer comes from the others).
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no agent named `{0}` is loaded")]
    UnknownAgent(String),
    #[error("routing is off (`[chat] router = \"\"`): name agents in the request's `agents`")]
    NoRouter,
    #[error("session storage failed: {0}")]
    Storage(String),
}

impl ChatError {
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::InvalidRequest(_) => "invalid-request",
            ChatError::UnknownAgent(_) => "not-found",
            ChatError::NoRouter => "no-router",
            ChatError::Storage(_) => "storage",
        }
    }
}

/// The conversation a request arrives with: a stored session, or (OpenAI
/// facade) the history the client sent.
pub enum Conversation {
    Session { id: Option<String> },
    Stateless { history: Vec<Turn> },
}

/// Who a request is for. Transcripts are kept per `name`, and agents see
/// session ids scoped to it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    /// Several users share the host (named tokens). Agents key their memory
    /// by the session id they are given, and clients choose session ids, so
    /// each user's ids are prefixed with the user's name: one token naming
    /// another's session reaches a different memory. In open mode there is
    /// one user, and agents see ids as given.
    pub isolated: bool,
}

impl Principal {
    /// The only user of an open (token-less) host.
    pub fn local() -> Self {
        Principal { name: "local".into(), isolated: false }
    }

    /// The session id agents see for this user's `session`. Token names
    /// cannot contain `:`, so two users never map to the same id.
    pub fn agent_session(&self, session: &str) -> String {
        if self.isolated { format!("{}:{session}", self.name) } else { session.to_string() }
    }
}

/// A request that passed every check a client can fail: what remains can
/// only go wrong in the agents. Streaming responses start after this, so
/// client mistakes are plain JSON errors with a 4xx status.
pub struct Accepted {
    message: String,
    /// Whose transcript the turn is appended to (`None`: stateless).
    owner: Option<String>,
    /// The session id as the client knows it.
    session: String,
    /// What the agents get (its `session_id` is scoped to the caller).
    request: Request,
    limits: Effective,
    /// The agents the client named, looked up; `None` lets the router choose.
    named: Option<Vec<Arc<LoadedAgent>>>,
    /// Which endpoint took the request, and the client's trace context.
    origin: Origin,
}

/// Which endpoint took a request (exported traces name it), and the
/// client's W3C trace context.
#[derive(Debug, Clone)]
struct Origin {
    route: &'static str,
    parent: Option<TraceParent>,
}

impl Accepted {
    /// Names the endpoint (`/v1/chat` unless said) and the `traceparent`
    /// the client sent, for the exported trace.
    pub fn traced(mut self, route: &'static str, parent: Option<TraceParent>) -> Self {
        self.origin = Origin { route, parent };
        self
    }

    /// The session id as the client knows it (a new one if it sent none).
    pub fn session(&self) -> &str {
        &self.session
    }
}

pub struct ChatService {
    registry: Arc<Registry>,
    sessions: Arc<dyn SessionStore>,
    writer: TranscriptWriter,
    config: ChatConfig,
    /// OTLP export of each request's trace (`[telemetry]`), when configured.
    telemetry: Option<Arc<Exporter>>,
    /// The routable agents and their skill index, per registry generation.
    routing: RoutingCache,
}

impl ChatService {
    pub fn new(registry: Arc<Registry>, sessions: Arc<dyn SessionStore>, config: ChatConfig) -> Self {
        let writer = TranscriptWriter::start(sessions.clone());
        ChatService { registry, sessions, writer, config, telemetry: None, routing: RoutingCache::default() }
    }

    pub fn with_telemetry(mut self, exporter: Option<Arc<Exporter>>) -> Self {
        self.telemetry = exporter;
        self
    }

    pub fn telemetry(&self) -> Option<&Arc<Exporter>> {
        self.telemetry.as_ref()
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The transcript of `session` as `owner` sees it.
    pub async fn transcript(&self, owner: &str, session: &str, limit: u32) -> Result<Vec<TranscriptEntry>, ChatError> {
        let (store, owner, session) = (self.sessions.clone(), owner.to_string(), session.to_string());
        agentkernel_storage::blocking::call(agentkernel_storage::blocking::DEFAULT_TIMEOUT, move || store.session_tail(&owner, &session, limit))
            .await
            .map_err(|e| ChatError::Storage(e.to_string()))
    }

    /// Handles one message. `events`, when given, receives the route and
    /// every span as it starts and ends.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        principal: &Principal,
        conversation: Conversation,
        events: Option<Sender<Event>>,
    ) -> Result<ChatResponse, ChatError> {
        let accepted = self.accept(req, principal, conversation).await?;
        self.run(accepted, events).await
    }

    /// Checks a request and gathers what it needs (history, named agents).
    pub async fn accept(&self, req: &ChatRequest, principal: &Principal, conversation: Conversation) -> Result<Accepted, ChatError> {
        if req.message.trim().is_empty() {
            return Err(ChatError::InvalidRequest("`message` is empty".into()));
        }
        if req.message.len() > self.config.max_message_bytes {
            return Err(ChatError::InvalidRequest(format!(
                "`message` is {} bytes; the limit is {}",
                req.message.len(),
                self.config.max_message_bytes
            )));
        }
        req.limits.validate()?;
        let limits = self.config.effective(&req.limits);
        let named = match &req.agents {
            Some(names) => Some(self.named_agents(names, limits.max_agents)?),
            None if self.config.router.is_empty() => return Err(ChatError::NoRouter),
            None => None,
        };
        let (owner, session, history) = match conversation {
            Conversation::Session { id } => {
                let (session, history) = match id {
                    Some(id) => {
                        let session = validate_session_id(&id)?;
                        let past = self.transcript(&principal.name, &session, self.config.history_turns).await?;
                        (session, past.iter().map(|t| Turn { role: role_of(&t.role), content: t.text.clone() }).collect())
                    }
                    // A new session has no past to read.
                    None => (new_session_id(), Vec::new()),
                };
                (Some(principal.name.clone()), session, history)
            }
            Conversation::Stateless { history } => (None, new_session_id(), history),
        };
        let request = Request { session_id: principal.agent_session(&session), text: req.message.clone(), history, context: None };
        let origin = Origin { route: "/v1/chat", parent: None };
        Ok(Accepted { message: req.message.clone(), owner, session, request, limits, named, origin })
    }

    /// Runs an accepted request: route, agents, synthesis, transcript.
    pub async fn run(&self, accepted: Accepted, events: Option<Sender<Event>>) -> Result<ChatResponse, ChatError> {
        let Accepted { message, owner, session, request, limits, named, origin } = accepted;
        let scope = Arc::new(RequestScope::new(limits.budget.clone(), events));

        let (chosen, route) = match named {
            Some(chosen) => (chosen, RouteInfo { by: "request".into(), reason: "named in the request".into() }),
            None => self.route(&request, &scope, limits.max_agents).await,
        };
        scope.trace.emit(Event::Route { agents: chosen.iter().map(|a| a.name().to_string()).collect(), by: route.by.clone(), reason: route.reason.clone() });

        let results = run_all(&chosen, &request, &scope, limits.max_parallel).await;
        let (answer, status, agents) = self.synthesize(&request, &results, &scope).await;

        let usage = usage_of(scope.budget.usage(), &scope);
        let response = ChatResponse {
            session: session.clone(),
            answer,
            status,
            agents,
            route,
            results,
            trace: scope.trace.snapshot(),
            usage,
        };
        if let Some(exporter) = &self.telemetry {
            let span = RequestSpan {
                method: "POST",
                route: origin.route,
                parent: origin.parent,
                session: owner.is_some().then(|| session.clone()),
                status: response.status.clone(),
            };
            exporter.export(&span, &scope.trace);
        }
        if let Some(owner) = owner {
            self.record(&owner, &session, &message, &response).await?;
        }
        Ok(response)
    }

    /// The agents a client named, each loaded and not one of the service's own.
    fn named_agents(&self, names: &[String], max_agents: usize) -> Result<Vec<Arc<LoadedAgent>>, ChatError> {
        if names.is_empty() {
            return Err(ChatError::InvalidRequest("`agents` is empty: omit it to let the router choose".into()));
        }
        let mut seen = BTreeSet::new();
        let mut chosen = Vec::new();
        for name in names.iter().filter(|n| seen.insert(n.as_str())) {
            // Router and synthesizer expect the host's context, not a
            // user's message; they are not offered (`/v1/models`, routing).
            if self.is_internal(name) {
                return Err(ChatError::InvalidRequest(format!("`{name}` is the chat service's own agent and cannot be asked directly")));
            }
            chosen.push(self.registry.get(name).ok_or_else(|| ChatError::UnknownAgent(name.clone()))?);
        }
        if chosen.len() > max_agents {
            return Err(ChatError::InvalidRequest(format!("{} agents named; the limit is {max_agents}", chosen.len())));
        }
        Ok(chosen)
    }

    /// The router agent's choice, or, when it is not loaded or fails, the
    /// host's own skill matching: one broken router version must not stop
    /// every chat.
    async fn route(&self, request: &Request, scope: &Arc<RequestScope>, max_agents: usize) -> (Vec<Arc<LoadedAgent>>, RouteInfo) {
        let routing = self.routing.get(&self.registry, |name| !self.is_internal(name));
        let failure = match self.registry.get(&self.config.router) {
            None => format!("router agent `{}` is not loaded", self.config.router),
            Some(router) => {
                // Never fewer places than agents a message may go to.
                let places = (self.config.router_candidates as usize).max(max_agents).max(1);
                let offered = routing.shortlist(&request.text, places);
                match self.ask_router(&router, request, scope, &offered, max_agents).await {
                    Ok(choice) => {
                        // The router is guest code: trust nothing it names without checking.
                        let mut seen = BTreeSet::new();
                        let chosen: Vec<_> = choice
                            .agents
                            .iter()
                            .filter(|n| !self.is_internal(n) && seen.insert(n.as_str()))
                            .filter_map(|n| self.registry.get(n))
                            .take(max_agents)
                            .collect();
                        let reason = agentkernel_runtime::trace::preview(&choice.reason).to_string();
                        return (chosen, RouteInfo { by: router.name().to_string(), reason });
                    }
                    Err(why) => format!("router agent `{}` failed: {why}", router.name()),
                }
            }
        };
        tracing::warn!("routing in the host: {failure}");
        let (chosen, matched) = routing.match_skills(&request.text, max_agents);
        (chosen, RouteInfo { by: "host".into(), reason: agentkernel_runtime::trace::preview(&format!("{failure}; {matched}")).to_string() })
    }

    async fn ask_router(
        &self,
        router: &LoadedAgent,
        request: &Request,
        scope: &Arc<RequestScope>,
        candidates: &[Arc<LoadedAgent>],
        max_agents: usize,
    ) -> Result<RouterChoice, String> {
        let manifests: Vec<_> = candidates.iter().map(|a| serde_json::to_value(&a.manifest).unwrap_or_default()).collect();
        let mut routing = request.clone();
        routing.context = Some(json!({"agents": manifests, "max_agents": max_agents}).to_string());
        let outcome = router
            .call_in(&routing, &CallContext::for_request(scope.clone(), "router"))
            .await
            .map_err(|e| format!("{e} ({})", e.code()))?;
        let data = outcome.response.data.ok_or("its response has no `data`")?;
        serde_json::from_str(&data).map_err(|e| format!("its `data` is not a routing choice: {e}"))
    }

    fn is_internal(&self, name: &str) -> bool {
        name == self.config.router || name == self.config.synthesizer
    }

    /// One answer from the chosen agents' results.
    async fn synthesize(&self, request: &Request, results: &[AgentResult], scope: &Arc<RequestScope>) -> (String, String, Vec<String>) {
        let answered: Vec<&AgentResult> = results.iter().filter(|r| r.ok).collect();
        let agents: Vec<String> = answered.iter().map(|r| r.agent.clone()).collect();
        let status = match (results.len(), answered.len()) {
            (0, _) => "no-match",
            (n, a) if a == n => "ok",
            (_, 0) => "failed",
            _ => "partial",
        }
        .to_string();
        let answer = match answered.as_slice() {
            [] if results.is_empty() => self.no_match_answer(),
            [] => {
                let reasons: Vec<String> = results
                    .iter()
                    .filter_map(|r| r.error.as_ref().map(|e| format!("{} ({}: {})", r.agent, e.code, e.message)))
                    .collect();
                format!("No agent could answer: {}", reasons.join("; "))
            }
            [one] => one.text.clone().unwrap_or_default(),
            many => match self.synthesizer_answer(request, many, scope).await {
                Some(text) => text,
                None => merge(many),
            },
        };
        (answer, status, agents)
    }

    async fn synthesizer_answer(&self, request: &Request, answers: &[&AgentResult], scope: &Arc<RequestScope>) -> Option<String> {
        let synth = (!self.config.synthesizer.is_empty()).then(|| self.registry.get(&self.config.synthesizer)).flatten()?;
        let answers: Vec<_> = answers.iter().map(|r| json!({"agent": r.agent, "text": r.text})).collect();
        let mut req = request.clone();
        req.context = Some(json!({"question": request.text, "answers": answers}).to_string());
        match synth.call_in(&req, &CallContext::for_request(scope.clone(), "synthesizer")).await {
            Ok(out) if !out.response.text.trim().is_empty() => Some(out.response.text),
            // A failed synthesizer costs the answer nothing: the host merges.
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(code = e.code(), "synthesizer failed, merging in the host: {e}");
                None
            }
        }
    }

    fn no_match_answer(&self) -> String {
        let mut lines = vec!["No agent's skills match that message. Agents you can ask:".to_string()];
        for a in self.registry.list().iter().filter(|a| !self.is_internal(a.name())) {
            let skills: Vec<&str> = a.manifest.skills.iter().map(|s| s.name.as_str()).collect();
            lines.push(format!("- {}: {} ({})", a.name(), a.manifest.description, skills.join(", ")));
        }
        lines.join("\n")
    }

    async fn record(&self, owner: &str, session: &str, message: &str, response: &ChatResponse) -> Result<(), ChatError> {
        let now = now_ms();
        let detail = json!({"status": response.status, "route": response.route, "trace": response.trace, "usage": response.usage});
        let turns = [
            TranscriptEntry { at_ms: now, role: "user".into(), text: message.to_string(), agents: vec![], detail: None },
            TranscriptEntry {
                at_ms: now,
                role: "assistant".into(),
                text: response.answer.clone(),
                agents: response.agents.clone(),
                detail: Some(detail),
            },
        ];
        self.writer.append(SessionAppend { owner: owner.to_string(), session: session.to_string(), turns: turns.to_vec() }).await
    }
}

/// Writes transcripts with group commit: one thread takes every request's
/// turns that are waiting and writes them in one transaction, so under load
/// a commit serves many requests instead of each paying for its own (a
/// commit costs ~0.1 ms here; committing inline on the request's worker
/// measured slower under load). A request is answered only after its turns
/// are committed (read-your-writes).
struct TranscriptWriter {
    queue: std::sync::mpsc::Sender<(SessionAppend, tokio::sync::oneshot::Sender<Result<(), String>>)>,
}

impl TranscriptWriter {
    /// Most requests in one transaction.
    const MAX_BATCH: usize = 256;

    fn start(store: Arc<dyn SessionStore>) -> Self {
        let (queue, pending) = std::sync::mpsc::channel::<(SessionAppend, tokio::sync::oneshot::Sender<Result<(), String>>)>();
        // The thread ends when the service (and so the sender) is dropped.
        std::thread::Builder::new()
            .name("transcript-writer".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let mut batch = vec![first];
                    while batch.len() < Self::MAX_BATCH {
                        match pending.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let (appends, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    let result = store.session_append_batch(&appends).map_err(|e| e.to_string());
                    for reply in replies {
                        let _ = reply.send(result.clone());
                    }
                }
            })
            .expect("spawn transcript writer");
        TranscriptWriter { queue }
    }

    async fn append(&self, append: SessionAppend) -> Result<(), ChatError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.send((append, tx)).map_err(|_| ChatError::Storage("transcript writer stopped".into()))?;
        rx.await.map_err(|_| ChatError::Storage("transcript writer stopped".into()))?.map_err(ChatError::Storage)
    }
}

/// What the router agent returns in `data`.
#[derive(Debug, Deserialize)]
struct RouterChoice {
    agents: Vec<String>,
    #[serde(default)]
    reason: String,
}

/// Runs the chosen agents, at most `parallel` at once, results in order.
async fn run_all(chosen: &[Arc<LoadedAgent>], request: &Request, scope: &Arc<RequestScope>, parallel: usize) -> Vec<AgentResult> {
    // One agent runs in this task: a hand-off to another worker would cost
    // more than the call itself.
    if let [agent] = chosen {
        let outcome = agent.call_in(request, &CallContext::for_request(scope.clone(), "agent")).await;
        return vec![to_result(agent.name(), outcome)];
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let tasks: Vec<AbortOnDrop<AgentResult>> = chosen
        .iter()
        .map(|agent| {
            let (agent, request, scope, permits) = (agent.clone(), request.clone(), scope.clone(), permits.clone());
            // Each agent is its own task: one that loops or blows up is
            // stopped by its limits without holding the others back.
            AbortOnDrop(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = agent.call_in(&request, &CallContext::for_request(scope, "agent")).await;
                to_result(agent.name(), outcome)
            }))
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for (mut task, agent) in tasks.into_iter().zip(chosen) {
        results.push((&mut task.0).await.unwrap_or_else(|e| AgentResult {
            agent: agent.name().to_string(),
            ok: false,
            text: None,
            data: None,
            error: Some(crate::api::ErrorDetail { code: "host-error".into(), message: format!("agent task failed: {e}") }),
        }));
    }
    results
}

/// An agent's task, stopped if the request is dropped (a canceled A2A task,
/// say) so its calls end with it instead of running on unobserved.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn to_result(agent: &str, outcome: Result<agentkernel_runtime::CallOutcome, CallError>) -> AgentResult {
    match outcome {
        Ok(o) => AgentResult {
            agent: agent.to_string(),
            ok: true,
            data: o.response.data.map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
            text: Some(o.response.text),
            error: None,
        },
        Err(e) => AgentResult {
            agent: agent.to_string(),
            ok: false,
            text: None,
            data: None,
            error: Some(crate::api::ErrorDetail { code: e.code().to_string(), message: e.to_string() }),
        },
    }
}

/// The host's deterministic merge: each agent's answer under its name.
fn merge(answers: &[&AgentResult]) -> String {
    answers
        .iter()
        .map(|r| format!("{}: {}", r.agent, r.text.as_deref().unwrap_or_default().trim()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn usage_of(budget: BudgetUsage, scope: &RequestScope) -> ChatUsage {
    let spans = scope.trace.snapshot();
    ChatUsage {
        calls: budget.calls,
        fuel: budget.fuel,
        tokens: budget.tokens,
        prompt_tokens: budget.prompt_tokens,
        cost_usd: spans.iter().map(|s| s.cost_usd).sum(),
        elapsed_ms: scope.trace.elapsed().as_secs_f64() * 1000.0,
    }
}

fn role_of(role: &str) -> Role {
    match role {
        "user" => Role::User,
        "system" => Role::System,
        "agent" => Role::Agent,
        _ => Role::Assistant,
    }
}

/// Session ids are chosen by clients too: keep them short and printable.
fn validate_session_id(id: &str) -> Result<String, ChatError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(id.to_string())
    } else {
        Err(ChatError::InvalidRequest("`session` must be 1-128 characters of A-Z a-z 0-9 - _ . :".into()))
    }
}

/// A fresh, unguessable-enough session id (not a secret: sessions are
/// scoped to their owner's token). It starts with the time in milliseconds
/// so ids sort by creation: a new session's transcript index entry and usage
/// row then land at the right edge of their B-trees, in pages the commit
/// before already wrote, instead of a random page each (which, with a new
/// session per request, was most of what a transcript commit wrote).
pub fn new_session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!("{}:{n}:{}", since_epoch.as_nanos(), std::process::id()));
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[..8]);
    session_id_from(since_epoch, u64::from_be_bytes(tail))
}

/// The shape of every fresh session id (`s-`, 11 hex digits of Unix
/// milliseconds, 12 of `tail`): the evolution benchmark makes its ids with
/// it too, so they look like live ones.
pub fn session_id_from(created: std::time::Duration, tail: u64) -> String {
    format!("s-{:011x}{:012x}", created.as_millis(), tail & 0xFFFF_FFFF_FFFF)
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_limits_only_lower_the_configured_ones() {
        let c = ChatConfig { fuel: Some(1000), ..ChatConfig::default() };
        let e = c.effective(&RequestLimits { max_calls: Some(100), max_depth: Some(2), fuel: Some(10), tokens: Some(5), ..Default::default() });
        assert_eq!(e.budget.max_calls, c.max_calls, "cannot raise max_calls");
        assert_eq!(e.budget.max_depth, 2);
        assert_eq!(e.budget.fuel, Some(10));
        assert_eq!(e.budget.tokens, Some(5), "a request may set a budget the config leaves open");
        let e = c.effective(&RequestLimits { fuel: Some(5000), ..Default::default() });
        assert_eq!(e.budget.fuel, Some(1000));
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(RequestLimits::default().validate().is_ok());
        assert!(RequestLimits { tokens: Some(0), ..Default::default() }.validate().is_ok(), "tokens = 0 means no LLM");
        for limits in [
            RequestLimits { max_calls: Some(0), ..Default::default() },
            RequestLimits { max_agents: Some(0), ..Default::default() },
            RequestLimits { timeout_ms: Some(0), ..Default::default() },
            RequestLimits { fuel: Some(0), ..Default::default() },
        ] {
            let e = limits.validate().unwrap_err();
            assert_eq!(e.code(), "invalid-request", "{e}");
        }
    }

    #[test]
    fn agent_sessions_are_scoped_to_named_users() {
        let alice = Principal { name: "alice".into(), isolated: true };
        let bob = Principal { name: "bob".into(), isolated: true };
        assert_eq!(alice.agent_session("s1"), "alice:s1");
        assert_ne!(alice.agent_session("s1"), bob.agent_session("s1"));
        assert_ne!(bob.agent_session("alice:s1"), alice.agent_session("s1"), "naming another's scoped id does not reach it");
        assert_eq!(Principal::local().agent_session("s1"), "s1", "open mode has one user");
    }

    #[test]
    fn session_ids_are_checked_and_fresh_ones_differ() {
        assert!(validate_session_id("abc-1_2.3:4").is_ok());
        assert!(validate_session_id("").is_err());
        assert!(validate_session_id("a/b").is_err());
        assert!(validate_session_id(&"x".repeat(129)).is_err());
        assert_ne!(new_session_id(), new_session_id());
        let earlier = new_session_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_session_id();
        assert!(earlier < later, "fresh ids sort by creation: {earlier} then {later}");
        assert!(validate_session_id(&later).is_ok());
    }
}
