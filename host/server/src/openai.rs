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
use super::trace_context::IncomingTrace;
use super::chat::{chat_error, spawn_streaming};
use super::{App, error, json_rejection};
use agentkernel_runtime::bindings::{Role, Turn};
use agentkernel_core::chat::{ChatRequest, ChatResponse, Conversation};
use agentkernel_runtime::trace::Event;

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
    format!("chatcmpl-{}", agentkernel_core::chat::new_session_id().trim_start_matches("s-"))
}

fn created() -> u64 {
    (agentkernel_core::chat::now_ms() / 1000) as u64
}

/// What agentkernel adds to an OpenAI response (clients ignore unknown fields).
fn extension(resp: &ChatResponse) -> Value {
    json!({"status": resp.status, "agents": resp.agents, "route": resp.route, "trace": resp.trace, "usage": resp.usage})
}

fn usage(resp: &ChatResponse) -> Value {
    // Agents' LLM calls are all the tokens there are (the facade has no
    // prompt of its own): the request's prompt and completion tokens summed
    // over every call, nested ones included.
    let u = &resp.usage;
    let completion = u.tokens.saturating_sub(u.prompt_tokens);
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": completion, "total_tokens": u.tokens})
}

pub(super) async fn completions(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    IncomingTrace(parent): IncomingTrace,
    body: Result<Json<CompletionRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(rej) => return json_rejection(rej),
    };
    let (req, history) = match body.to_chat() {
        Ok(r) => r,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid-request", why),
    };
    // The facade keeps no transcript, but agents still see a session id
    // scoped to the caller.
    let conversation = Conversation::Stateless { history };
    let accepted = match app.chat.accept(&req, &caller.principal(), conversation).await {
        Ok(a) => a.traced("/v1/chat/completions", parent),
        Err(e) => return chat_error(&e),
    };
    let model = body.model.clone();
    if !body.stream {
        return match app.chat.run(accepted, None).await {
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
    let Ok(place) = app.detached_runs.try_acquire(&caller.principal().name) else { return super::chat::busy_response() };
    let (events, task) = spawn_streaming(app, accepted, place);
    Sse::new(completion_chunks(model, events, task)).keep_alive(KeepAlive::default()).into_response()
}

/// Which spans' LLM tokens are the answer, learned from the request's
/// events: the one chosen agent's own span (not its callees'), or the
/// synthesizer's when several agents answer. The router's tokens are not.
/// After a `Lagged` event (the client read too slowly and tokens were
/// dropped) no more tokens are forwarded, so what was streamed stays a
/// prefix of the model's text and the final chunk carries the rest.
#[derive(Default)]
struct AnswerSpans {
    single_agent: bool,
    spans: Vec<u32>,
    lagged: bool,
}

impl AnswerSpans {
    /// Notes an event; returns the text of a token that belongs to the answer.
    fn observe(&mut self, event: Event) -> Option<String> {
        match event {
            Event::Route { agents, .. } => self.single_agent = agents.len() == 1,
            Event::AgentStart { span, parent: None, role: "agent", .. } if self.single_agent => self.spans.push(span),
            Event::AgentStart { span, role: "synthesizer", .. } => self.spans = vec![span],
            Event::Lagged { .. } => self.lagged = true,
            Event::Token { span, text, .. } if !self.lagged && self.spans.contains(&span) => return Some(text),
            _ => {}
        }
        None
    }
}

/// What to send after `streamed` once the whole `answer` is known. An
/// agent may change what its model said (or fall back after a failed
/// model call); a client cannot take back deltas, so a differing answer
/// follows what was streamed after a blank line.
fn remainder(streamed: &str, answer: &str) -> String {
    if let Some(rest) = answer.strip_prefix(streamed) {
        rest.to_string()
    } else if streamed.trim() == answer.trim() {
        String::new()
    } else {
        format!("\n\n{answer}")
    }
}

/// `chat.completion.chunk`s: the role first, then the answering agent's
/// LLM tokens as they arrive (one chunk each), then whatever of the answer
/// was not streamed, a final chunk with `finish_reason` and `usage`, then
/// `[DONE]`. The host's own progress events are not part of the OpenAI
/// stream.
fn completion_chunks(
    model: String,
    events: tokio::sync::mpsc::Receiver<Event>,
    task: tokio::task::JoinHandle<Result<ChatResponse, agentkernel_core::chat::ChatError>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let id = completion_id();
    let chunk = move |delta: Value, finish: Value, extra: Option<(Value, Value)>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created(), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some((usage, extension)) = extra {
            c["usage"] = usage;
            c["agentkernel"] = extension;
        }
        SseEvent::default().data(c.to_string())
    };
    let head = chunk(json!({"role": "assistant", "content": ""}), Value::Null, None);
    let state = (events, Some(task), AnswerSpans::default(), String::new());
    let body = stream::unfold(state, move |(mut events, task, mut answer, mut streamed)| {
        let chunk = chunk.clone();
        async move {
            let task = task?;
            // The sender lives in the request's scope: the channel closes
            // when the request is over, and the result follows.
            while let Some(event) = events.recv().await {
                if let Some(text) = answer.observe(event) {
                    streamed.push_str(&text);
                    let sse = chunk(json!({"content": text}), Value::Null, None);
                    return Some((vec![sse], (events, Some(task), answer, streamed)));
                }
            }
            let last = match task.await {
                Ok(Ok(resp)) => {
                    let rest = remainder(&streamed, &resp.answer);
                    let mut out = Vec::new();
                    if !rest.is_empty() {
                        out.push(chunk(json!({"content": rest}), Value::Null, None));
                    }
                    out.push(chunk(json!({}), json!("stop"), Some((usage(&resp), extension(&resp)))));
                    out
                }
                Ok(Err(e)) => vec![SseEvent::default().data(json!({"error": {"code": e.code(), "message": e.to_string()}}).to_string())],
                Err(e) => vec![SseEvent::default().data(json!({"error": {"code": "host-error", "message": e.to_string()}}).to_string())],
            };
            Some((last, (events, None, answer, streamed)))
        }
    })
    .flat_map(stream::iter);
    stream::once(async { head }).chain(body).chain(stream::once(async { SseEvent::default().data("[DONE]") })).map(Ok)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answering_agents_tokens_are_forwarded() {
        let token = |span: u32, text: &str| Event::Token { span, agent: "a".into(), text: text.into() };
        let start = |span: u32, parent: Option<u32>, role: &'static str| Event::AgentStart { span, parent, agent: "a".into(), role };
        let mut a = AnswerSpans::default();
        assert_eq!(a.observe(start(0, None, "router")), None);
        assert_eq!(a.observe(token(0, "{\"agents\"")), None, "the router's tokens are not the answer");
        a.observe(Event::Route { agents: vec!["a".into()], by: "router".into(), reason: String::new() });
        a.observe(start(1, None, "agent"));
        a.observe(start(2, Some(1), "callee"));
        assert_eq!(a.observe(token(2, "inner")), None, "a callee's tokens are not the answer");
        assert_eq!(a.observe(token(1, "Hello")).as_deref(), Some("Hello"));

        let mut many = AnswerSpans::default();
        many.observe(Event::Route { agents: vec!["a".into(), "b".into()], by: "request".into(), reason: String::new() });
        many.observe(start(0, None, "agent"));
        assert_eq!(many.observe(token(0, "part")), None, "with several agents only the synthesis is the answer");
        many.observe(start(2, None, "synthesizer"));
        assert_eq!(many.observe(token(2, "Both")).as_deref(), Some("Both"));

        // Once tokens were dropped, the rest of the answer comes whole at the end.
        a.observe(Event::Lagged { missed: 3 });
        assert_eq!(a.observe(token(1, " world")), None);
        assert_eq!(remainder("Hello", "Hello there, world"), " there, world");
    }

    #[test]
    fn the_rest_of_the_answer_follows_what_was_streamed() {
        assert_eq!(remainder("", "whole"), "whole");
        assert_eq!(remainder("Cats sleep", "Cats sleep a lot."), " a lot.");
        assert_eq!(remainder(" Cats. ", "Cats."), "");
        assert_eq!(remainder("Cats sl", "Fallback."), "\n\nFallback.");
    }
}
