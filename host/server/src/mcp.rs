//! The MCP server: `POST /mcp`, the Model Context Protocol's Streamable
//! HTTP transport (revision 2025-11-25; 2025-06-18 and 2025-03-26 are
//! accepted too). Each agent is a tool, and `auto` routes as chat does.
//!
//! Stateless: no `Mcp-Session-Id` is issued, so a client never opens the
//! GET stream nor sends DELETE (both answer 405). Every request is one
//! JSON-RPC message answered with one JSON response, except a
//! `tools/call` carrying a `progressToken`, answered with server-sent
//! events: a `notifications/progress` per agent call that starts or ends,
//! then the result. A tool call runs through the chat service, so it has
//! the same authentication, scopes, rate limits, budgets, limits and trace
//! as `POST /v1/chat`.
//!
//! What a client can consume: the body (`MAX_BODY_BYTES`, as every route),
//! one chat request per call (the chat service's limits), and on a
//! streamed call at most `stream_buffer_events` progress notifications
//! held at once (a slow reader misses progress, never the result).
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use super::auth::Caller;
use super::trace_context::IncomingTrace;
use agentkernel_core::telemetry::TraceParent;
use super::chat::spawn_streaming;
use super::detached::RunsBusy;
use super::error;
use super::openai::AUTO_MODEL;
use agentkernel_core::chat::{ChatError, ChatRequest, ChatResponse, Conversation};
use agentkernel_runtime::trace::Event;

/// The revision answered when the client asks for one not listed here.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
const PROTOCOL_VERSIONS: [&str; 3] = [PROTOCOL_VERSION, "2025-06-18", "2025-03-26"];

// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// One JSON-RPC message from the client: a request (with an `id`), a
/// notification (without), or a response to a server request (no `method`).
#[derive(Debug, Deserialize)]
struct Message {
    jsonrpc: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Value,
}

#[derive(Debug, Deserialize)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: ToolArguments,
    #[serde(default, rename = "_meta")]
    meta: Option<CallMeta>,
}

#[derive(Debug, Deserialize)]
struct CallMeta {
    #[serde(default, rename = "progressToken")]
    progress_token: Option<Value>,
}

/// A tool's input, the same for every agent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolArguments {
    #[serde(default)]
    text: String,
    /// Continues this chat session (its transcript is the agents' history);
    /// without one the call is stateless, as a tool call usually is.
    #[serde(default)]
    session: Option<String>,
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// `GET` and `DELETE /mcp`: there are no sessions to stream on or end.
pub(super) async fn not_allowed() -> Response {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "this MCP server is stateless: use POST");
    resp.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    resp
}

pub(super) async fn handle(
    State(app): State<Arc<super::App>>,
    Extension(caller): Extension<Caller>,
    IncomingTrace(parent): IncomingTrace,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !super::origin_allowed(&headers) {
        return error(StatusCode::FORBIDDEN, "forbidden-origin", "the Origin header does not name this host");
    }
    if let Some(v) = headers.get("mcp-protocol-version") {
        if !PROTOCOL_VERSIONS.iter().any(|p| v.as_bytes() == p.as_bytes()) {
            let msg = format!("unsupported MCP-Protocol-Version; supported: {}", PROTOCOL_VERSIONS.join(", "));
            return (StatusCode::BAD_REQUEST, Json(rpc_error(&Value::Null, INVALID_REQUEST, msg))).into_response();
        }
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let resp = rpc_error(&Value::Null, PARSE_ERROR, format!("not JSON: {e}"));
            return (StatusCode::BAD_REQUEST, Json(resp)).into_response();
        }
    };
    // Batches left the protocol in 2025-06-18; one message per request.
    let msg: Message = match &value {
        Value::Object(o) if o.get("id").is_some_and(Value::is_null) => {
            return (StatusCode::BAD_REQUEST, Json(rpc_error(&Value::Null, INVALID_REQUEST, "a request's `id` must not be null")))
                .into_response();
        }
        Value::Object(_) => match serde_json::from_value(value) {
            Ok(m) => m,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, Json(rpc_error(&Value::Null, INVALID_REQUEST, format!("not a JSON-RPC message: {e}"))))
                    .into_response();
            }
        },
        _ => {
            let resp = rpc_error(&Value::Null, INVALID_REQUEST, "one JSON-RPC message per request (no batches)");
            return (StatusCode::BAD_REQUEST, Json(resp)).into_response();
        }
    };
    let (Some(method), Some(id)) = (msg.method.as_deref(), msg.id.as_ref()) else {
        // A notification or a response: nothing to answer.
        return StatusCode::ACCEPTED.into_response();
    };
    if !super::valid_rpc_id(id) {
        let msg = format!("a request's `id` is a number or a string of at most {} bytes", super::MAX_RPC_ID_BYTES);
        return (StatusCode::BAD_REQUEST, Json(rpc_error(&Value::Null, INVALID_REQUEST, msg))).into_response();
    }
    if msg.jsonrpc.as_deref() != Some("2.0") {
        return Json(rpc_error(id, INVALID_REQUEST, "`jsonrpc` must be \"2.0\"")).into_response();
    }
    match method {
        "initialize" => Json(rpc_result(id, initialize(&msg.params))).into_response(),
        "ping" => Json(rpc_result(id, json!({}))).into_response(),
        "tools/list" => Json(rpc_result(id, json!({"tools": tools(&app)}))).into_response(),
        "tools/call" => call(app, caller, parent, id.clone(), msg.params).await,
        other => Json(rpc_error(id, METHOD_NOT_FOUND, format!("no method `{other}`"))).into_response(),
    }
}

fn initialize(params: &Value) -> Value {
    let asked = params["protocolVersion"].as_str().unwrap_or_default();
    let version = PROTOCOL_VERSIONS.iter().find(|v| **v == asked).copied().unwrap_or(PROTOCOL_VERSION);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "agentkernel", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Each tool is an agent: pass the request as `text`. `auto` lets the router choose the agents.",
    })
}

/// What every tool takes.
fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "The request, as a user would write it"},
            "session": {"type": "string", "description": "A chat session to continue (optional; without it the call is stateless)"},
        },
        "required": ["text"],
        "additionalProperties": false,
    })
}

/// What every tool returns as structured content (clients check it).
fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "status": {"type": "string", "description": "ok, partial, failed or no-match"},
            "agents": {"type": "array", "items": {"type": "string"}},
            "session": {"type": "string"},
            "results": {"type": "array", "description": "Each agent's own answer: text, data, or error {code, message}"},
            "error": {"type": "object", "description": "Why the request was refused before any agent ran: {code, message}"},
        },
        "required": ["answer", "status", "agents"],
    })
}

/// One tool per agent the chat service may answer with (not the router
/// nor the synthesizer), and `auto`.
fn tools(app: &super::App) -> Vec<Value> {
    let config = app.chat.config();
    let mut tools = vec![json!({
        "name": AUTO_MODEL,
        "description": "Routes the request to the agents best suited to it, as chat does.",
        "inputSchema": input_schema(),
        "outputSchema": output_schema(),
    })];
    for a in app.registry.list().iter() {
        if a.name() == config.router || a.name() == config.synthesizer {
            continue;
        }
        let skills: Vec<&str> = a.manifest.skills.iter().map(|s| s.name.as_str()).collect();
        let description = if skills.is_empty() {
            a.manifest.description.clone()
        } else {
            format!("{} (skills: {})", a.manifest.description, skills.join(", "))
        };
        tools.push(json!({
            "name": a.name(),
            "title": a.manifest.name,
            "description": description,
            "inputSchema": input_schema(),
            "outputSchema": output_schema(),
        }));
    }
    tools
}

async fn call(app: Arc<super::App>, caller: Caller, parent: Option<TraceParent>, id: Value, params: Value) -> Response {
    let name = params["name"].as_str().map(str::to_string);
    let params: CallParams = match (serde_json::from_value(params), name) {
        (Ok(p), _) => p,
        (Err(e), None) => return Json(rpc_error(&id, INVALID_PARAMS, format!("tools/call: {e}"))).into_response(),
        // Arguments that do not fit the input schema: a tool error the
        // model can read and correct, as the protocol asks.
        (Err(e), Some(_)) => return Json(rpc_result(&id, refused("invalid-arguments", &e.to_string()))).into_response(),
    };
    let agents = (params.name != AUTO_MODEL).then(|| vec![params.name.clone()]);
    if let Some([name]) = agents.as_deref() {
        let config = app.chat.config();
        if app.registry.get(name).is_none() || *name == config.router || *name == config.synthesizer {
            return Json(rpc_error(&id, INVALID_PARAMS, format!("no tool `{name}`"))).into_response();
        }
    }
    let conversation = match &params.arguments.session {
        Some(s) => Conversation::Session { id: Some(s.clone()) },
        None => Conversation::Stateless { history: Vec::new() },
    };
    let req = ChatRequest { message: params.arguments.text, session: params.arguments.session, agents, ..ChatRequest::default() };
    let accepted = match app.chat.accept(&req, &caller.principal(), conversation).await {
        Ok(a) => a.traced("/mcp", parent),
        Err(e) => return Json(rpc_result(&id, chat_error_result(&e))).into_response(),
    };
    let token = params.meta.and_then(|m| m.progress_token);
    if token.as_ref().is_some_and(|t| t.is_null() || !super::valid_rpc_id(t)) {
        let msg = format!("`progressToken` is a number or a string of at most {} bytes", super::MAX_RPC_ID_BYTES);
        return Json(rpc_error(&id, INVALID_PARAMS, msg)).into_response();
    }
    let Some(token) = token else {
        let result = match app.chat.run(accepted, None).await {
            Ok(resp) => tool_result(&resp),
            Err(e) => chat_error_result(&e),
        };
        return Json(rpc_result(&id, result)).into_response();
    };
    let Ok(place) = app.detached_runs.try_acquire(&caller.principal().name) else {
        return Json(rpc_result(&id, refused(RunsBusy::CODE, RunsBusy::MESSAGE))).into_response();
    };
    let (events, task) = spawn_streaming(app, accepted, place);
    Sse::new(progress_then_result(id, token, events, task)).keep_alive(KeepAlive::default()).into_response()
}

/// A chat response as a tool result: the answer as text, everything as
/// structured content, `isError` unless every chosen agent answered.
fn tool_result(resp: &ChatResponse) -> Value {
    let is_error = !matches!(resp.status.as_str(), "ok" | "no-match");
    json!({
        "content": [{"type": "text", "text": resp.answer}],
        "structuredContent": {
            "answer": resp.answer,
            "status": resp.status,
            "agents": resp.agents,
            "session": resp.session,
            "results": resp.results,
        },
        "isError": is_error,
    })
}

/// A request the chat service refused, as a tool error with its code (so a
/// client can tell a budget from a bad request).
fn chat_error_result(e: &ChatError) -> Value {
    refused(e.code(), &e.to_string())
}

/// A tool error before any agent ran; its structured content still fits
/// the output schema (some clients check it on errors too).
fn refused(code: &str, message: &str) -> Value {
    json!({
        "content": [{"type": "text", "text": format!("{code}: {message}")}],
        "structuredContent": {
            "answer": "",
            "status": "refused",
            "agents": [],
            "error": {"code": code, "message": message},
        },
        "isError": true,
    })
}

fn sse_message(message: &Value) -> SseEvent {
    SseEvent::default().event("message").json_data(message).unwrap_or_default()
}

/// Progress as agents start and end, then the result.
fn progress_then_result(
    id: Value,
    token: Value,
    events: Receiver<Event>,
    task: JoinHandle<Result<ChatResponse, ChatError>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold((events, Some(task), 0u64), move |(mut events, task, mut step)| {
        let (id, token) = (id.clone(), token.clone());
        async move {
            while let Some(event) = events.recv().await {
                let message = match event {
                    Event::Route { agents, by, .. } => format!("routed to {} by {by}", agents.join(", ")),
                    Event::AgentStart { agent, role, .. } => format!("{agent} ({role}) started"),
                    Event::AgentEnd { agent, outcome, .. } => format!("{agent}: {outcome}"),
                    Event::Lagged { missed } => format!("{missed} progress events missed"),
                    Event::Token { .. } => continue,
                };
                step += 1;
                let note = json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": step, "message": message},
                });
                return Some((Ok(sse_message(&note)), (events, task, step)));
            }
            let task = task?;
            let result = match task.await {
                Ok(Ok(resp)) => rpc_result(&id, tool_result(&resp)),
                Ok(Err(e)) => rpc_result(&id, chat_error_result(&e)),
                Err(e) => rpc_error(&id, INTERNAL_ERROR, format!("the request failed: {e}")),
            };
            Some((Ok(sse_message(&result)), (events, None, step)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    use super::super::origin_allowed;

    #[test]
    fn only_an_origin_naming_this_host_is_allowed() {
        assert!(origin_allowed(&headers(&[("host", "127.0.0.1:8080")])), "no Origin: not a browser");
        assert!(origin_allowed(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(!origin_allowed(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])));
        assert!(!origin_allowed(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])));
        assert!(!origin_allowed(&headers(&[("origin", "http://127.0.0.1:8080")])), "no Host to compare with");
    }

    #[test]
    fn initialize_echoes_a_known_revision_and_offers_the_latest_otherwise() {
        assert_eq!(initialize(&json!({"protocolVersion": "2025-06-18"}))["protocolVersion"], "2025-06-18");
        assert_eq!(initialize(&json!({"protocolVersion": "2031-01-01"}))["protocolVersion"], PROTOCOL_VERSION);
        assert_eq!(initialize(&json!({}))["protocolVersion"], PROTOCOL_VERSION);
    }
}
