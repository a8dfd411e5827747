//! The HTTP server (axum).
//!
//! Public: `GET /` (the chat page), `GET /healthz`, `GET /openapi.json`.
//! `chat` scope: `POST /v1/chat` (JSON or server-sent events),
//! `GET /v1/sessions/{id}`, the OpenAI-compatible `POST /v1/chat/completions`
//! and `GET /v1/models`, `GET /v1/agents[/{name}]`,
//! `POST /v1/agents/{name}/call`, the MCP server `POST /mcp` (`mcp`). `admin` scope: `GET /metrics`, the
//! evolution endpoints (`evolution_routes`), the KPIs (`GET /v1/stats`,
//! `stats_routes`), and the genome and EC2
//! audit endpoints (`aws_routes`, with the `aws` feature) under `/v1/admin/`.
//! Every error is `{"error": {"code", "message"}}` with a stable code.
mod a2a;
pub mod auth;
mod chat;
mod detached;
pub mod edge;
mod io_timeouts;
pub mod listener;
mod mcp;
mod openai;
#[cfg(feature = "aws")]
mod aws_routes;
mod evolution_routes;
mod research_routes;
pub mod activity;
mod stats_routes;
mod trace_context;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use agentkernel_core::api::{AgentInfo, CallRequest, CallResponse, ErrorBody};
use agentkernel_core::chat::ChatService;
use agentkernel_core::telemetry::RequestSpan;
use agentkernel_core::host::Host;
use agentkernel_core::registry::Registry;
use agentkernel_runtime::CallError;

/// What every handler shares.
pub struct App {
    /// The host's parts (storage, services), for handlers that need more
    /// than the registry and chat.
    pub host: Host,
    pub registry: Arc<Registry>,
    pub chat: Arc<ChatService>,
    pub auth: auth::Auth,
    /// Events buffered per streaming response (`[server] stream_buffer_events`).
    pub stream_buffer_events: usize,
    /// The KPIs' state: the activity recorder and `/metrics`' cached KPIs.
    pub stats: stats_routes::StatsState,
    /// A2A tasks (`POST /a2a`), bounded.
    pub(crate) a2a_tasks: a2a::TaskStore,
    /// Places for runs that outlive their connection (`detached.rs`).
    pub(crate) detached_runs: detached::DetachedRuns,
}

impl App {
    pub fn new(host: &Host) -> Result<Arc<App>, auth::MissingTokenEnv> {
        Ok(Arc::new(App {
            host: host.clone(),
            registry: host.registry.clone(),
            chat: host.chat.clone(),
            auth: auth::Auth::new(&host.config.host, &host.config.server)?,
            stream_buffer_events: host.config.server.stream_buffer_events,
            stats: stats_routes::StatsState::new(Arc::new(activity::ActivityRecorder::new(
                host.registry.runtime().metrics().clone(),
                host.backend.clone(),
            ))),
            a2a_tasks: a2a::TaskStore::default(),
            detached_runs: detached::DetachedRuns::new(
                host.config.server.max_connections as usize,
                host.config.server.max_connections_per_ip as usize,
            ),
        }))
    }
}

/// Routes any client may use without a token (rate-limited per address).
pub(crate) const PUBLIC_ROUTES: [&str; 4] = ["/", "/healthz", "/openapi.json", "/.well-known/agent-card.json"];

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(app: Arc<App>) -> Router {
    let chat = Router::new()
        .route("/v1/chat", post(chat::chat))
        .route("/v1/sessions/{id}", get(chat::session))
        .route("/v1/chat/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{name}", get(get_agent))
        .route("/v1/agents/{name}/call", post(call_agent))
        .route("/mcp", post(mcp::handle).get(mcp::not_allowed).delete(mcp::not_allowed))
        .route("/a2a", post(a2a::handle))
        .merge(research_routes::routes());
    let admin = Router::new()
        .route("/metrics", get(metrics))
        .merge(evolution_routes::routes())
        .merge(stats_routes::routes());
    #[cfg(feature = "aws")]
    let admin = admin.merge(aws_routes::admin_routes());
    let admin = admin
        .route_layer(axum::middleware::from_fn(auth::require_admin));
    let api = chat.merge(admin).route_layer(axum::middleware::from_fn_with_state(app.clone(), auth::authenticate));
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/.well-known/agent-card.json", get(a2a::public_card))
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not-found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::limit_public))
        .layer(axum::middleware::from_fn(edge::head_limits))
        // Outside everything that can answer an error: one shape for all.
        .layer(axum::middleware::map_response(edge::json_errors))
        .layer(axum::middleware::from_fn_with_state(app.registry.clone(), record_request))
        .with_state(app)
}

/// The chat page: one self-contained file, no build step.
async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// The OpenAPI document (`server/openapi.json`; a test checks it lists every route).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

/// Counts and times every request by its route template (not its raw path,
/// so agent names in URLs do not multiply the series).
async fn record_request(
    State(reg): State<Arc<Registry>>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Method clones and MatchedPath are allocation-free; the strings are
    // only copied when a new series appears.
    let method = request.method().clone();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    let route = matched.as_ref().map_or("unmatched", |m| m.as_str());
    reg.runtime().metrics().http_request(method.as_str(), route, response.status().as_u16(), start.elapsed());
    response
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let reg = &app.registry;
    let gauges = agentkernel_runtime::metrics::Gauges {
        agents_loaded: reg.list().len(),
        files_failed: reg.files().iter().filter(|f| f.error.is_some()).count(),
    };
    let mut text = reg.runtime().metrics().render(&gauges);
    text.push_str(&stats_routes::metrics_text(&app).await);
    if let Some(exporter) = app.chat.telemetry() {
        text.push_str(&exporter.metrics_text());
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// Browsers send `Origin`; a page on another site must not reach a local
/// host through DNS rebinding (MCP's one MUST), nor post to the JSON-RPC
/// endpoints (which read raw bodies, so a cross-site form could reach them). Clients that are
/// not browsers send none.
pub(crate) fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let authority = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest).unwrap_or_default();
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// A JSON-RPC request id a client may choose: it is echoed in every answer
/// and stream event, so only null, a number or a short string.
pub(crate) fn valid_rpc_id(id: &Value) -> bool {
    match id {
        Value::Null | Value::Number(_) => true,
        Value::String(s) => s.len() <= MAX_RPC_ID_BYTES,
        _ => false,
    }
}

pub(crate) const MAX_RPC_ID_BYTES: usize = 256;

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

fn call_error_status(e: &CallError) -> StatusCode {
    match e {
        CallError::NotFound { .. } => StatusCode::NOT_FOUND,
        CallError::Agent { kind: "invalid-request", .. } => StatusCode::BAD_REQUEST,
        CallError::Agent { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CallError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
        CallError::Capacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
        CallError::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let reg = &app.registry;
    let failed = reg.files().iter().filter(|f| f.error.is_some()).count();
    Json(json!({"status": "ok", "agents": reg.list().len(), "failed_files": failed})).into_response()
}

/// Host reports `GET /v1/agents` reads at most.
pub const MAX_HOST_REPORTS: u32 = 10_000;

async fn list_agents(State(app): State<Arc<App>>) -> Response {
    let reg = &app.registry;
    let files = reg.files();
    let agents: Vec<AgentInfo> = reg.list().iter().map(|a| AgentInfo::new(a, &files)).collect();
    let failed: Vec<_> = files.iter().filter(|f| f.error.is_some()).collect();
    let mut agents = serde_json::to_value(agents).unwrap_or_default();
    // With a shared store: what every host serves, per agent.
    if app.host.config.storage.url.is_some() {
        let store = app.host.backend.clone();
        let reports = agentkernel_storage::blocking::call(agentkernel_storage::blocking::DEFAULT_TIMEOUT, move || {
            store.host_reports(MAX_HOST_REPORTS)
        })
        .await;
        let reports = match reports {
            Ok(r) => r,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
        };
        for agent in agents.as_array_mut().into_iter().flatten() {
            let name = agent["name"].as_str().unwrap_or_default().to_string();
            let hosts: Vec<_> = reports
                .iter()
                .filter(|r| r.agent == name)
                .map(|r| json!({"host": r.host, "hash": r.hash, "error": r.error, "at": r.at}))
                .collect();
            agent["hosts"] = json!(hosts);
        }
    }
    Json(json!({"agents": agents, "failed_files": failed})).into_response()
}

async fn get_agent(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    let reg = &app.registry;
    match reg.get(&name) {
        Some(a) => Json(AgentInfo::new(&a, &reg.files())).into_response(),
        None => error(StatusCode::NOT_FOUND, "not-found", format!("no agent named `{name}` is loaded")),
    }
}

/// A body the JSON extractor refused, as an error with a stable code.
pub(crate) fn json_rejection(rej: JsonRejection) -> Response {
    let code = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE { "payload-too-large" } else { "invalid-request" };
    error(rej.status(), code, rej.body_text())
}

async fn call_agent(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<auth::Caller>,
    Path(name): Path<String>,
    trace_context::IncomingTrace(parent): trace_context::IncomingTrace,
    body: Result<Json<CallRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rej) => return json_rejection(rej),
    };
    let Some(agent) = app.registry.get(&name) else {
        return error(StatusCode::NOT_FOUND, "not-found", format!("no agent named `{name}` is loaded"));
    };
    // The agent keys its memory by session id: scope it to the caller, as
    // `/v1/chat` does, so the same session name of two tokens stays apart.
    let mut request = req.to_wit();
    request.session_id = caller.principal().agent_session(&request.session_id);
    // The same request budget as `/v1/chat` (calls, depth, fuel, tokens,
    // time) bounds the call tree this call starts.
    let budget = app.host.config.chat.default_budget();
    let scope = Arc::new(agentkernel_runtime::trace::RequestScope::new(budget, None));
    let result = agent.call_in(&request, &agentkernel_runtime::CallContext::for_request(scope.clone(), "agent")).await;
    if let Some(exporter) = app.chat.telemetry() {
        let status = result.as_ref().map_or_else(|e| e.code().to_string(), |_| "ok".to_string());
        let span = RequestSpan { method: "POST", route: "/v1/agents/{name}/call", parent, session: None, status };
        exporter.export(&span, &scope.trace);
    }
    match result {
        Ok(outcome) => Json(CallResponse::new(&agent, outcome)).into_response(),
        Err(e) => {
            tracing::warn!(agent = %name, code = e.code(), "call failed: {e}");
            (call_error_status(&e), Json(ErrorBody::from(&e))).into_response()
        }
    }
}

/// Serves the API of `host` on `listener` until `shutdown` resolves.
/// Stops a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    host: &Host,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = App::new(host)?;
    // The last line of defence for "an open API stays on loopback": it
    // holds whatever path the address came by.
    let addr = listener.local_addr()?;
    if app.auth.is_open() && !addr.ip().is_loopback() {
        anyhow::bail!("refusing to serve on {addr}: no [[host.tokens]] are configured, and an open API must stay on a loopback address");
    }
    // With a shared store, components follow it (on SQLite a host is alone).
    let _follow = host.config.storage.url.is_some().then(|| {
        let name = agentkernel_core::follow::host_name(addr);
        tracing::info!(host = %name, "following the component store");
        AbortOnDrop(agentkernel_core::follow::spawn(host, name, Default::default()))
    });
    // `[evolution] take_jobs`: builds and benchmarks candidates of any
    // host's evolutions from the shared queue, one at a time.
    let _jobs = host
        .config
        .evolution
        .take_jobs
        .then(|| AbortOnDrop(agentkernel_evolution::jobs::spawn_worker(host.config.clone(), host.backend.clone())));
    // Agents granted `evolution` reach this process's engine.
    agentkernel_evolution::service::install(host);
    // `[evolution.auto]`: evolutions started from live metrics (off by default).
    let _auto = agentkernel_evolution::auto::spawn(&agentkernel_evolution::background::Handles::from(host)).map(AbortOnDrop);
    // `[research] interval_secs`: a research cycle every interval (off by default).
    let _research = agentkernel_core::research::spawn_scheduler(host).map(AbortOnDrop);
    // Agent calls and chat outcomes, persisted hourly for the KPIs.
    let activity = app.stats.activity.clone();
    let _activity = AbortOnDrop(activity.spawn());
    let server = host.config.server.clone();
    self::listener::ensure_descriptors(&server);
    self::listener::serve_connections(listener, router(app), server, shutdown).await;
    if let Err(e) = activity.flush().await {
        tracing::warn!("writing the activity counters at shutdown: {e}");
    }
    Ok(())
}
