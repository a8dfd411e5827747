//! The OpenAI-compatible facade: `POST /v1/chat/completions` and
//! `GET /v1/models`, so existing OpenAI clients and chat UIs talk to the
//! agents. `model` names an agent, or `auto` to let the router choose.
//!
//! The facade is stateless, as the OpenAI API is: the client sends the
//! whole conversation, the last `user` message is the request and the
//! earlier ones its history. Fields the host has no use for (`temperature`,
//! `n`, ...) are accepted and ignored.
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::chat::{chat_error, spawn_streaming};
use super::{App, error};
use crate::bindings::{Role, Turn};
use crate::chat::{ChatRequest, ChatResponse, Conversation};

/// The model name that routes instead of naming an agent.
pub const AUTO_MODEL: &str = "auto";

#[derive(Debug, Deserialize)]
pub(super) struct CompletionRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
}

/// Message content: a string, or a list of parts of which text is kept.
fn text_of(content: &Option<Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

impl CompletionRequest {
    fn to_chat(&self) -> Result<(ChatRequest, Vec<Turn>), String> {
        let (last, earlier) = self.messages.split_last().ok_or("`messages` is empty")?;
        if last.role != "user" {
            return Err(format!("the last message must be from `user`, not `{}`", last.role));
        }
        let history = earlier
            .iter()
            .filter_map(|m| {
                let role = match m.role.as_str() {
                    "system" | "developer" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    _ => return None, // tool messages mean nothing to agents
                };
                Some(Turn { role, content: text_of(&m.content) })
            })
            .collect();
        let agents = (self.model != AUTO_MODEL).then(|| vec![self.model.clone()]);
        let req = ChatRequest { message: text_of(&last.content), agents, ..ChatRequest::default() };
        Ok((req, history))
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", crate::chat::new_session_id().trim_start_matches("s-"))
}

fn created() -> u64 {
    (crate::chat::now_ms() / 1000) as u64
}

/// What agentkernel adds to an OpenAI response (clients ignore unknown fields).
fn extension(resp: &ChatResponse) -> Value {
    json!({"status": resp.status, "agents": resp.agents, "route": resp.route, "trace": resp.trace, "usage": resp.usage})
}

fn usage(resp: &ChatResponse) -> Value {
    // Agents' LLM tokens are all the tokens there are; the facade has no prompt of its own.
    json!({"prompt_tokens": 0, "completion_tokens": resp.usage.tokens, "total_tokens": resp.usage.tokens})
}

pub(super) async fn completions(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<CompletionRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), "invalid-request", rej.body_text()),
    };
    let (req, history) = match body.to_chat() {
        Ok(r) => r,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid-request", why),
    };
    let _ = caller; // authenticated; the facade keeps no session to own
    let conversation = Conversation::Stateless { history };
    let model = body.model.clone();
    if !body.stream {
        return match app.chat.chat(&req, conversation, None).await {
            Ok(resp) => Json(json!({
                "id": completion_id(),
                "object": "chat.completion",
                "created": created(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": resp.answer},
                    "finish_reason": "stop",
                }],
                "usage": usage(&resp),
                "agentkernel": extension(&resp),
            }))
            .into_response(),
            Err(e) => chat_error(&e),
        };
    }
    let (events, task) = spawn_streaming(app, req, conversation);
    Sse::new(completion_chunks(model, events, task)).keep_alive(KeepAlive::default()).into_response()
}

/// `chat.completion.chunk`s: the role first, the answer when it is ready,
/// a final chunk with `finish_reason`, then `[DONE]`. The host's own
/// progress events are not part of the OpenAI stream.
fn completion_chunks(
    model: String,
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::trace::Event>,
    task: tokio::task::JoinHandle<Result<ChatResponse, crate::chat::ChatError>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let id = completion_id();
    let chunk = move |delta: Value, finish: Value, extra: Option<Value>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created(), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(extra) = extra {
            c["agentkernel"] = extra;
        }
        SseEvent::default().data(c.to_string())
    };
    let head = stream::once({
        let chunk = chunk.clone();
        async move { chunk(json!({"role": "assistant", "content": ""}), Value::Null, None) }
    });
    let tail = stream::once(async move {
        // Drain progress until the request is over.
        while events.recv().await.is_some() {}
        match task.await {
            Ok(Ok(resp)) => vec![
                chunk(json!({"content": resp.answer}), Value::Null, None),
                chunk(json!({}), json!("stop"), Some(extension(&resp))),
            ],
            Ok(Err(e)) => vec![SseEvent::default().data(json!({"error": {"code": e.code(), "message": e.to_string()}}).to_string())],
            Err(e) => vec![SseEvent::default().data(json!({"error": {"code": "host-error", "message": e.to_string()}}).to_string())],
        }
    })
    .flat_map(stream::iter);
    head.chain(tail).chain(stream::once(async { SseEvent::default().data("[DONE]") })).map(Ok)
}

pub(super) async fn models(State(app): State<Arc<App>>) -> Response {
    let config = app.chat.config();
    let mut data = vec![json!({"id": AUTO_MODEL, "object": "model", "created": 0, "owned_by": "agentkernel"})];
    for a in app.registry.list().iter() {
        if a.name() != config.router && a.name() != config.synthesizer {
            data.push(json!({"id": a.name(), "object": "model", "created": 0, "owned_by": "agentkernel"}));
        }
    }
    Json(json!({"object": "list", "data": data})).into_response()
}
