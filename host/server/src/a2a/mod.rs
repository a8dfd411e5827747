//! The A2A server (Agent2Agent protocol 1.0, JSON-RPC binding): the Agent
//! Card at `GET /.well-known/agent-card.json` and `POST /a2a` with
//! `SendMessage`, `SendStreamingMessage`, `GetTask`, `CancelTask` and
//! `GetExtendedAgentCard`.
//!
//! The host is one A2A agent whose skills are its agents. A message runs as
//! one chat request (same token, scopes, rate limits, budgets, limits and
//! trace as `POST /v1/chat`): routed, or to the agents named in the
//! message's `metadata.agent` / `metadata.agents`. A task's `contextId` is
//! the chat session, so messages in one context share a transcript.
//!
//! Errors are JSON-RPC errors with HTTP 200, as the binding asks (the
//! official client reads no body of a non-2xx answer); only the edge's
//! own refusals (auth, rate, size) keep their HTTP status and our shape.
//!
//! What a client can consume: one chat request per message (the chat
//! service's limits), a body of `MAX_BODY_BYTES`, at most
//! `stream_buffer_events` progress events held per stream, room in its own
//! token's bounded task store (`tasks.rs`), and one of the app's detached-run
//! places (`[server] max_connections`) per running task. A browser page of
//! another site is refused by the `Origin` check, and ids it may choose are
//! short (they are echoed in every answer).
mod card;
mod tasks;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::App;
use super::detached::RunsBusy;
use super::auth::Caller;
use super::trace_context::IncomingTrace;
use agentkernel_core::chat::{ChatError, ChatRequest, ChatResponse, Conversation};
use agentkernel_core::telemetry::TraceParent;
use agentkernel_runtime::trace::Event;

pub(super) use card::public_card;
pub use tasks::TaskStore;
use tasks::{State as TaskState, TaskError, message};

/// The protocol version served (the `A2A-Version` header and the card).
pub const PROTOCOL_VERSION: &str = "1.0";

// JSON-RPC and A2A error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
const TASK_NOT_FOUND: i64 = -32001;
/// Implementation-defined (JSON-RPC's server error range): a bound of the
/// task store or of detached runs was reached; `data` says which.
const TOO_MANY_TASKS: i64 = -32050;
const TASK_NOT_CANCELABLE: i64 = -32002;
const PUSH_NOT_SUPPORTED: i64 = -32003;
const UNSUPPORTED_OPERATION: i64 = -32004;
const CONTENT_TYPE_NOT_SUPPORTED: i64 = -32005;
const VERSION_NOT_SUPPORTED: i64 = -32009;

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error with our code in `data` (`ErrorInfo`, as the SDKs read it).
fn rpc_error(id: &Value, code: i64, reason: &str, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": code,
        "message": message.into(),
        "data": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "agentkernel", "metadata": {"code": reason}}],
    }})
}

fn answer(v: Value) -> Response {
    Json(v).into_response()
}

#[derive(Debug, Deserialize)]
struct Rpc {
    jsonrpc: Option<String>,
    #[serde(default)]
    id: Value,
    method: String,
    #[serde(default)]
    params: Value,
}

/// `POST /a2a`.
pub(super) async fn handle(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    IncomingTrace(parent): IncomingTrace,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !super::origin_allowed(&headers) {
        return super::error(StatusCode::FORBIDDEN, "forbidden-origin", "the Origin header does not name this host");
    }
    let rpc: Rpc = match serde_json::from_slice::<Value>(&body) {
        Err(e) => return answer(rpc_error(&Value::Null, PARSE_ERROR, "parse-error", format!("not JSON: {e}"))),
        Ok(v) if !v.is_object() => return answer(rpc_error(&Value::Null, INVALID_REQUEST, "invalid-request", "one JSON-RPC request per call")),
        Ok(v) => match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => return answer(rpc_error(&Value::Null, INVALID_REQUEST, "invalid-request", format!("not a JSON-RPC request: {e}"))),
        },
    };
    let id = rpc.id.clone();
    if !super::valid_rpc_id(&id) {
        let msg = format!("`id` is a number or a string of at most {} bytes", super::MAX_RPC_ID_BYTES);
        return answer(rpc_error(&Value::Null, INVALID_REQUEST, "invalid-request", msg));
    }
    if rpc.jsonrpc.as_deref() != Some("2.0") {
        return answer(rpc_error(&id, INVALID_REQUEST, "invalid-request", "`jsonrpc` must be \"2.0\""));
    }
    if let Some(v) = headers.get("a2a-version").and_then(|v| v.to_str().ok()) {
        if v.trim() != "1" && !v.trim().starts_with("1.") {
            return answer(rpc_error(&id, VERSION_NOT_SUPPORTED, "version-not-supported", format!("A2A-Version {v}: this server speaks {PROTOCOL_VERSION}")));
        }
    }
    let owner = caller.principal().name;
    match rpc.method.as_str() {
        "SendMessage" => send(app, caller, parent, id, rpc.params, false).await,
        "SendStreamingMessage" => send(app, caller, parent, id, rpc.params, true).await,
        "GetTask" => {
            let history = rpc.params["historyLength"].as_u64().map(|n| n as usize);
            match rpc.params["id"].as_str() {
                None => answer(rpc_error(&id, INVALID_PARAMS, "invalid-request", "GetTask needs `id`")),
                Some(task) => answer(task_answer(&id, app.a2a_tasks.get(&owner, task, history))),
            }
        }
        "CancelTask" => match rpc.params["id"].as_str() {
            None => answer(rpc_error(&id, INVALID_PARAMS, "invalid-request", "CancelTask needs `id`")),
            Some(task) => answer(task_answer(&id, app.a2a_tasks.cancel(&owner, task))),
        },
        "GetExtendedAgentCard" => answer(rpc_result(&id, card::card(&app, &headers, true))),
        "ListTasks" | "SubscribeToTask" => {
            answer(rpc_error(&id, UNSUPPORTED_OPERATION, "unsupported-operation", format!("{} is not supported", rpc.method)))
        }
        m if m.contains("PushNotificationConfig") => {
            answer(rpc_error(&id, PUSH_NOT_SUPPORTED, "push-notifications-not-supported", "push notifications are not supported"))
        }
        other => answer(rpc_error(&id, METHOD_NOT_FOUND, "method-not-found", format!("no method `{other}`"))),
    }
}

fn task_answer(id: &Value, task: Result<Value, TaskError>) -> Value {
    match task {
        Ok(task) => rpc_result(id, task),
        Err(TaskError::NotFound) => rpc_error(id, TASK_NOT_FOUND, "task-not-found", "no such task"),
        Err(TaskError::NotCancelable(state)) => rpc_error(id, TASK_NOT_CANCELABLE, "task-not-cancelable", format!("the task has ended ({state})")),
        Err(TaskError::Full) => rpc_error(id, TOO_MANY_TASKS, "too-many-tasks", format!(
            "this token holds as many tasks as it may ({} running, {} kept); try again when some have ended",
            tasks::MAX_RUNNING,
            tasks::MAX_TASKS
        )),
    }
}

/// What the client asked, from `params.message`.
struct Ask {
    text: String,
    agents: Option<Vec<String>>,
    context_id: Option<String>,
    /// The client's `messageId` (short) and `taskId`, if any.
    message_id: Option<String>,
    task_id: Option<String>,
    return_immediately: bool,
}

/// Ids a client chooses and the server keeps or echoes.
fn short_id(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty() && s.len() <= super::MAX_RPC_ID_BYTES).map(str::to_string)
}

fn parse_ask(params: &Value) -> Result<Ask, (i64, &'static str, String)> {
    let invalid = |m: &str| (INVALID_PARAMS, "invalid-request", m.to_string());
    let msg = params.get("message").filter(|m| m.is_object()).ok_or_else(|| invalid("`message` is required"))?;
    let parts = msg["parts"].as_array().ok_or_else(|| invalid("`message.parts` must be a list"))?;
    let mut text = Vec::new();
    for part in parts {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push(t.to_string());
        } else if let Some(data) = part.get("data") {
            // Agents take text: structured input reaches them as JSON text.
            text.push(data.to_string());
        } else {
            return Err((CONTENT_TYPE_NOT_SUPPORTED, "content-type-not-supported", "only text and data parts are accepted".into()));
        }
    }
    let text = text.join("\n");
    if text.trim().is_empty() {
        return Err(invalid("the message has no text"));
    }
    let metadata = &msg["metadata"];
    let agents = match (&metadata["agent"], &metadata["agents"]) {
        (Value::String(a), _) => Some(vec![a.clone()]),
        (_, Value::Array(list)) => {
            Some(list.iter().map(|a| a.as_str().map(str::to_string).ok_or_else(|| invalid("`metadata.agents` must be names"))).collect::<Result<_, _>>()?)
        }
        _ => None,
    };
    Ok(Ask {
        text,
        agents,
        context_id: msg["contextId"].as_str().filter(|c| !c.is_empty()).map(str::to_string),
        message_id: short_id(&msg["messageId"]),
        task_id: msg["taskId"].as_str().filter(|t| !t.is_empty()).map(str::to_string),
        return_immediately: params["configuration"]["returnImmediately"].as_bool().unwrap_or(false),
    })
}

async fn send(app: Arc<App>, caller: Caller, parent: Option<TraceParent>, id: Value, params: Value, streaming: bool) -> Response {
    let ask = match parse_ask(&params) {
        Ok(a) => a,
        Err((code, reason, msg)) => return answer(rpc_error(&id, code, reason, msg)),
    };
    let owner = caller.principal().name;
    // A follow-up to a task continues its context; a finished task takes
    // no more input (none of ours ever asks for it).
    let mut context_id = ask.context_id.clone();
    if let Some(task) = ask.task_id.as_deref() {
        match app.a2a_tasks.context_of(&owner, task) {
            Err(e) => return answer(task_answer(&id, Err(e))),
            Ok((_, state)) if state.is_terminal() => {
                let msg = format!("task {task} has ended ({}); send a new message in its context instead", state.wire());
                return answer(rpc_error(&id, UNSUPPORTED_OPERATION, "task-ended", msg));
            }
            Ok((context, _)) => context_id = Some(context),
        }
    }
    let req = ChatRequest { message: ask.text.clone(), session: context_id.clone(), agents: ask.agents, ..ChatRequest::default() };
    let accepted = match app.chat.accept(&req, &caller.principal(), Conversation::Session { id: context_id }).await {
        Ok(a) => a.traced("/a2a", parent),
        Err(e) => return answer(chat_refusal(&id, &e)),
    };
    let context_id = accepted.session().to_string();
    let task_id = format!("t-{}", &agentkernel_core::chat::new_session_id()[2..]);
    // What the task keeps of the client's message: its text (data parts
    // as JSON text), not whatever else the client sent along.
    let mut user_message = message("ROLE_USER", &task_id, &context_id, vec![json!({"text": ask.text})]);
    if let Some(message_id) = ask.message_id {
        user_message["messageId"] = json!(message_id);
    }
    // A place for the run first: a refusal leaves no task behind.
    let Ok(place) = app.detached_runs.try_acquire(&owner) else {
        let msg = "too many requests are running on this host; try again later";
        return answer(rpc_error(&id, TOO_MANY_TASKS, RunsBusy::CODE, msg));
    };
    let submitted = match app.a2a_tasks.create(&owner, &task_id, &context_id, user_message) {
        Ok(t) => t,
        Err(e) => return answer(task_answer(&id, Err(e))),
    };
    let (events, run) = if streaming {
        let (events, run) = super::chat::spawn_streaming(app.clone(), accepted, place);
        (Some(events), run)
    } else {
        (None, super::chat::spawn_run(app.clone(), accepted, None, place))
    };
    app.a2a_tasks.start(&owner, &task_id, run.abort_handle());
    let finished = tokio::spawn(finish(app.clone(), owner.clone(), task_id.clone(), context_id.clone(), run));
    match events {
        Some(events) => {
            let stream = progress_then_end(id, submitted, task_id, context_id, events, finished);
            Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
        }
        None if ask.return_immediately => {
            let now = app.a2a_tasks.get(&owner, &task_id, None).unwrap_or(submitted);
            answer(rpc_result(&id, json!({"task": now})))
        }
        None => match finished.await {
            Ok(Some(task)) => answer(rpc_result(&id, json!({"task": task}))),
            _ => answer(rpc_error(&id, INTERNAL_ERROR, "internal", "the task was lost")),
        },
    }
}

/// A request the chat service refused before any agent ran.
fn chat_refusal(id: &Value, e: &ChatError) -> Value {
    let code = match e {
        ChatError::InvalidRequest(_) | ChatError::UnknownAgent(_) => INVALID_PARAMS,
        ChatError::NoRouter => UNSUPPORTED_OPERATION,
        ChatError::Storage(_) => INTERNAL_ERROR,
    };
    rpc_error(id, code, e.code(), e.to_string())
}

/// Waits for the request and records how its task ended; the task then.
async fn finish(app: Arc<App>, owner: String, task_id: String, context_id: String, run: JoinHandle<Result<ChatResponse, ChatError>>) -> Option<Value> {
    let (state, answer, artifacts) = match run.await {
        Ok(Ok(resp)) => {
            let reply = message("ROLE_AGENT", &task_id, &context_id, vec![json!({"text": resp.answer})]);
            (TaskState::of(&resp), Some(reply), vec![artifact(&resp)])
        }
        Ok(Err(e)) => {
            let reply = message("ROLE_AGENT", &task_id, &context_id, vec![json!({"text": format!("{}: {e}", e.code())})]);
            (TaskState::Failed, Some(reply), Vec::new())
        }
        // Aborted by CancelTask, which already recorded it.
        Err(_) => (TaskState::Canceled, None, Vec::new()),
    };
    app.a2a_tasks.finish(&owner, &task_id, state, answer, artifacts)
}

/// The answer, and everything the chat response says about it as data.
fn artifact(resp: &ChatResponse) -> Value {
    json!({
        "artifactId": "answer",
        "name": "answer",
        "parts": [
            {"text": resp.answer},
            {"data": {"status": resp.status, "agents": resp.agents, "route": resp.route, "results": resp.results, "usage": resp.usage},
             "mediaType": "application/json"},
        ],
    })
}

fn sse(id: &Value, result: Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().json_data(rpc_result(id, result)).unwrap_or_default())
}

/// The task as submitted, a working status update per progress event,
/// then the answer as an artifact and the final status.
fn progress_then_end(
    id: Value,
    submitted: Value,
    task_id: String,
    context_id: String,
    events: tokio::sync::mpsc::Receiver<Event>,
    finished: JoinHandle<Option<Value>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let first = stream::once({
        let id = id.clone();
        async move { sse(&id, json!({"task": submitted})) }
    });
    let progress = stream::unfold((events, 0u64), {
        let (id, task_id, context_id) = (id.clone(), task_id.clone(), context_id.clone());
        move |(mut events, mut step)| {
            let (id, task_id, context_id) = (id.clone(), task_id.clone(), context_id.clone());
            async move {
                loop {
                    let (text, agent) = match events.recv().await? {
                        Event::Route { agents, by, .. } => (format!("routed to {} by {by}", agents.join(", ")), None),
                        Event::AgentStart { agent, role, .. } => (format!("{agent} ({role}) started"), Some(agent)),
                        Event::AgentEnd { agent, outcome, .. } => (format!("{agent}: {outcome}"), Some(agent)),
                        Event::Lagged { missed } => (format!("{missed} progress events missed"), None),
                        Event::Token { .. } => continue,
                    };
                    let mut status_message = message("ROLE_AGENT", &task_id, &context_id, vec![json!({"text": text})]);
                    step += 1;
                    status_message["messageId"] = json!(format!("{task_id}-progress-{step}"));
                    if let Some(agent) = agent {
                        status_message["metadata"] = json!({"agent": agent});
                    }
                    let update = json!({"statusUpdate": {
                        "taskId": task_id, "contextId": context_id,
                        "status": {"state": TaskState::Working.wire(), "message": status_message, "timestamp": tasks::timestamp()},
                    }});
                    return Some((sse(&id, update), (events, step)));
                }
            }
        }
    });
    let end = stream::once(async move {
        let task = finished.await.ok().flatten();
        let Some(task) = task else {
            return vec![Ok(SseEvent::default().event("error").json_data(rpc_error(&id, INTERNAL_ERROR, "internal", "the task was lost")).unwrap_or_default())];
        };
        let mut out = Vec::new();
        for artifact in task["artifacts"].as_array().into_iter().flatten() {
            let update = json!({"artifactUpdate": {"taskId": task_id, "contextId": context_id, "artifact": artifact, "lastChunk": true}});
            out.push(sse(&id, update));
        }
        out.push(sse(&id, json!({"statusUpdate": {"taskId": task_id, "contextId": context_id, "status": task["status"]}})));
        out
    });
    use futures_util::StreamExt;
    first.chain(progress).chain(end.flat_map(stream::iter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_its_text_and_data_parts_and_names_its_agents() {
        let params = json!({"message": {
            "messageId": "m1", "role": "ROLE_USER", "contextId": "c-1",
            "parts": [{"text": "hello"}, {"data": {"n": 1}}],
            "metadata": {"agents": ["echo", "notes"]},
        }, "configuration": {"returnImmediately": true}});
        let ask = parse_ask(&params).unwrap();
        assert_eq!(ask.text, "hello\n{\"n\":1}");
        assert_eq!(ask.agents, Some(vec!["echo".to_string(), "notes".to_string()]));
        assert_eq!(ask.context_id.as_deref(), Some("c-1"));
        assert!(ask.return_immediately);
    }

    #[test]
    fn files_empty_messages_and_bad_agent_lists_are_refused() {
        let file = json!({"message": {"messageId": "m", "parts": [{"url": "https://x/y.pdf"}]}});
        assert_eq!(parse_ask(&file).err().unwrap().0, CONTENT_TYPE_NOT_SUPPORTED);
        let empty = json!({"message": {"messageId": "m", "parts": [{"text": "  "}]}});
        assert_eq!(parse_ask(&empty).err().unwrap().0, INVALID_PARAMS);
        let bad = json!({"message": {"messageId": "m", "parts": [{"text": "x"}], "metadata": {"agents": [1]}}});
        assert_eq!(parse_ask(&bad).err().unwrap().0, INVALID_PARAMS);
        assert_eq!(parse_ask(&json!({})).err().unwrap().0, INVALID_PARAMS);
    }
}
