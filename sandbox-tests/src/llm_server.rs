//! A scripted OpenAI-compatible server on loopback, so tests exercise the
//! real async-openai client over HTTP: scripted replies, tool calls, error
//! statuses, hangs, malformed and oversized bodies. It records every
//! request it receives.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// One scripted answer to `POST /v1/chat/completions`.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// A completion with this content and token usage.
    Reply { content: String, prompt_tokens: u32, completion_tokens: u32 },
    /// A completion asking for tool calls: `(id, name, arguments JSON)`.
    ToolCalls(Vec<(String, String, String)>),
    /// An OpenAI-style error body with this status (429, 500, ...).
    Status(u16),
    /// Never answers (within any test's patience).
    Hang,
    /// This exact body, status 200, JSON content type.
    Raw(String),
}

impl Scripted {
    pub fn reply(content: &str) -> Self {
        Scripted::Reply { content: content.into(), prompt_tokens: 10, completion_tokens: 5 }
    }
}

#[derive(Clone, Default)]
struct Shared {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

pub struct ScriptedLlm {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedLlm {
    /// Starts the server on 127.0.0.1 with `script`; once the script runs
    /// out, every request gets `Scripted::reply("ok")`.
    pub async fn start(script: Vec<Scripted>) -> Self {
        let shared = Shared::default();
        shared.script.lock().unwrap().extend(script);
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/models", get(models))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptedLlm { addr, shared, task }
    }

    /// What to put in `[llm] base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `[llm]` configuration pointing at this server, with the `fast`
    /// profile mapped to `test-model` priced at $1/$2 per million tokens.
    pub fn config(&self) -> String {
        self.config_with("")
    }

    /// Like [`ScriptedLlm::config`] with `extra` lines in the `[llm]` table.
    pub fn config_with(&self, extra: &str) -> String {
        format!(
            "[llm]\nbase_url = \"{}\"\napi_key_env = \"AGENTKERNEL_TEST_UNSET_KEY\"\n\
             profiles = {{ fast = \"test-model\", smart = \"big-model\" }}\n{extra}\n\
             [llm.prices.\"test-model\"]\nprompt = 1.0\ncompletion = 2.0\n",
            self.base_url()
        )
    }

    pub fn push(&self, s: Scripted) {
        self.shared.script.lock().unwrap().push_back(s);
    }

    /// Bodies of the chat requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [
        {"id": "test-model", "object": "model", "created": 0, "owned_by": "test"}
    ]}))
    .into_response()
}

async fn completions(State(shared): State<Shared>, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("unknown").to_string();
    let stream = request["stream"].as_bool() == Some(true);
    shared.requests.lock().unwrap().push(request);
    let next = shared.script.lock().unwrap().pop_front().unwrap_or_else(|| Scripted::reply("ok"));
    let completion = |message: Value, finish: &str, p: u32, c: u32| {
        axum::Json(json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        }))
        .into_response()
    };
    match next {
        // Streamed as the OpenAI API does: one chunk per word, then the
        // finish reason, then usage (asked for with stream_options), then [DONE].
        Scripted::Reply { content, prompt_tokens, completion_tokens } if stream => {
            let chunk = |delta: Value, finish: Value, usage: Value| {
                let choices = if delta.is_null() { json!([]) } else { json!([{"index": 0, "delta": delta, "finish_reason": finish}]) };
                format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model,
                           "choices": choices, "usage": usage})
                )
            };
            let mut body = chunk(json!({"role": "assistant", "content": ""}), Value::Null, Value::Null);
            for word in content.split_inclusive(' ') {
                body += &chunk(json!({"content": word}), Value::Null, Value::Null);
            }
            body += &chunk(json!({}), json!("stop"), Value::Null);
            let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                               "total_tokens": prompt_tokens + completion_tokens});
            body += &chunk(Value::Null, Value::Null, usage);
            body += "data: [DONE]\n\n";
            ([("content-type", "text/event-stream")], body).into_response()
        }
        Scripted::Reply { content, prompt_tokens, completion_tokens } => {
            completion(json!({"role": "assistant", "content": content}), "stop", prompt_tokens, completion_tokens)
        }
        Scripted::ToolCalls(calls) => {
            let calls: Vec<Value> = calls
                .into_iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            completion(json!({"role": "assistant", "content": null, "tool_calls": calls}), "tool_calls", 10, 5)
        }
        Scripted::Status(code) => {
            let kind = if code == 429 { "rate_limit_error" } else { "server_error" };
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(json!({"error": {"message": format!("scripted {code}"), "type": kind, "param": null, "code": null}})))
                .into_response()
        }
        Scripted::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Scripted::Raw(body) => ([("content-type", "application/json")], body).into_response(),
    }
}
