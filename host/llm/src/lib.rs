//! The LLM service behind the `llm` capability: configuration (`[llm]`),
//! the async-openai client, budgets, retries/timeouts and the usage ledger.
//!
//! ```toml
//! [llm]
//! base_url = "http://127.0.0.1:11434/v1"   # else $OPENAI_BASE_URL, else OpenAI when a key is set
//! api_key_env = "OPENAI_API_KEY"            # the key is read from the environment, never the file
//! timeout_ms = 60000
//! [llm.profiles]                            # agents ask for profiles; operators map them to models
//! fast = "gpt-4o-mini"
//! [llm.prices."gpt-4o-mini"]                # USD per million tokens (optional)
//! prompt = 0.15
//! completion = 0.60
//! ```
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_openai::types::chat::{CreateChatCompletionRequest, CreateChatCompletionResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use agentkernel_runtime::bindings::agentkernel::agent::llm::{
    ChatMessage, ChatOptions, ChatReply, LlmError, ResponseFormat, ToolCall, Usage,
};
mod budget;
pub mod capability;
pub mod transport;
pub use capability::{Llm, LlmScope};
pub use transport::{ChatTransport, OpenAiTransport};
use agentkernel_runtime::trace::{LlmCallRecord, RequestScope};
use agentkernel_storage::{LlmUsageRecord, Storage, StorageCall, StorageError, blocking};

/// `[llm]` in `agentkernel.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    pub base_url: Option<String>,
    #[serde(default = "default_key_env")]
    pub api_key_env: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest reply content accepted, in bytes.
    #[serde(default = "default_max_reply")]
    pub max_reply_bytes: u64,
    #[serde(default = "default_profiles")]
    pub profiles: BTreeMap<String, String>,
    /// USD per million tokens, by model name.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub prompt: f64,
    pub completion: f64,
}

fn default_key_env() -> String {
    "OPENAI_API_KEY".into()
}
fn default_timeout_ms() -> u64 {
    60_000
}
fn default_max_reply() -> u64 {
    1 << 20
}
fn default_profiles() -> BTreeMap<String, String> {
    [("fast", "gpt-4o-mini"), ("smart", "gpt-4o"), ("code", "gpt-4o")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            base_url: None,
            api_key_env: default_key_env(),
            timeout_ms: default_timeout_ms(),
            max_reply_bytes: default_max_reply(),
            profiles: default_profiles(),
            prices: BTreeMap::new(),
        }
    }
}

/// Where the endpoint and key came from, for `doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub base_url: String,
    pub api_key_present: bool,
}

/// Resolves the endpoint from config, then the usual environment variables.
/// `None` means no LLM is configured: the host runs and agents get `not-configured`.
pub fn resolve_endpoint(cfg: &LlmConfig) -> Option<(Endpoint, Option<String>)> {
    let key = std::env::var(&cfg.api_key_env).ok().filter(|k| !k.is_empty());
    let base = cfg.base_url.clone().or_else(|| std::env::var("OPENAI_BASE_URL").ok().filter(|u| !u.is_empty()));
    let base_url = match (base, &key) {
        (Some(b), _) => b,
        (None, Some(_)) => "https://api.openai.com/v1".to_string(),
        (None, None) => return None,
    };
    Some((Endpoint { base_url: base_url.trim_end_matches('/').to_string(), api_key_present: key.is_some() }, key))
}

/// Shared by every instance: the transport (one HTTP client), the config
/// and the ledger. Policy, budgets, timeouts and accounting are the
/// service's; where completions come from is the [`ChatTransport`]'s.
pub struct LlmService {
    config: LlmConfig,
    transport: Option<Arc<dyn ChatTransport>>,
    endpoint: Option<Endpoint>,
    storage: Arc<dyn Storage>,
    metrics: Option<Arc<agentkernel_runtime::metrics::Metrics>>,
}

/// Who is asking, for policy and accounting.
pub struct LlmCaller<'a> {
    pub agent: &'a str,
    pub session: &'a str,
    pub scope: &'a LlmScope,
    /// The calling instance's deadline: the model call gives up before it.
    pub deadline: Instant,
    /// The chat request this call is part of and the caller's span in it:
    /// tokens are charged to the request's budget and shown in its trace.
    pub request: Option<(&'a RequestScope, u32)>,
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Start of the current UTC day, in unix seconds.
pub fn utc_day_start(now: i64) -> i64 {
    now - now.rem_euclid(86_400)
}

impl LlmService {
    pub fn new(config: LlmConfig, storage: Arc<dyn Storage>) -> Self {
        match resolve_endpoint(&config) {
            Some((endpoint, key)) => {
                let transport: Arc<dyn ChatTransport> = Arc::new(OpenAiTransport::new(&endpoint, key));
                LlmService { config, transport: Some(transport), endpoint: Some(endpoint), storage, metrics: None }
            }
            None => LlmService { config, transport: None, endpoint: None, storage, metrics: None },
        }
    }

    /// A service whose completions come from `transport` (the evolution
    /// benchmark's scripted one, or any other backend) instead of `[llm]`'s
    /// endpoint; everything else (profiles, policy, budgets, ledger) as
    /// configured.
    pub fn with_transport(config: LlmConfig, storage: Arc<dyn Storage>, transport: Arc<dyn ChatTransport>) -> Self {
        LlmService { config, transport: Some(transport), endpoint: None, storage, metrics: None }
    }

    /// Also counts calls, tokens and spend in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<agentkernel_runtime::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// Lists the server's models: `doctor`'s reachability probe.
    pub async fn probe(&self, timeout: Duration) -> Result<Vec<String>, String> {
        let Some(transport) = &self.transport else { return Err("no LLM configured".into()) };
        match tokio::time::timeout(timeout, transport.models()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    fn price(&self, model: &str) -> Option<Price> {
        self.config.prices.get(model).copied()
    }

    /// One chat completion on behalf of `caller`, within its policy and budget.
    /// Every attempt that reaches the model is written to the ledger.
    pub async fn chat(&self, caller: &LlmCaller<'_>, messages: Vec<ChatMessage>, options: ChatOptions) -> Result<ChatReply, LlmError> {
        // No model, nothing to account: agents are expected to degrade.
        let Some(transport) = &self.transport else { return Err(LlmError::NotConfigured) };
        let profile = options.profile.clone();
        let model = self.config.profiles.get(&profile).cloned().unwrap_or_default();
        let started = Instant::now();
        let (result, admitted) = match self.admit(caller, &profile, &model, &messages, &options).await {
            Ok(admitted) => {
                let max_tokens = admitted.max_tokens;
                (self.chat_inner(&**transport, caller, &model, messages, options, max_tokens).await, Some(admitted))
            }
            Err(e) => (Err(e), None),
        };
        let reservation = admitted.as_ref().and_then(|a| a.reservation);
        let reserved = admitted.as_ref().filter(|a| a.reservation.is_some()).map(|a| a.reserved);
        let (prompt, completion, answered_model) = match (&result, reserved) {
            (Ok(r), _) if r.usage.prompt_tokens > 0 || r.usage.completion_tokens > 0 => {
                (u64::from(r.usage.prompt_tokens), u64::from(r.usage.completion_tokens), r.model.clone())
            }
            // Under a budget, a call whose use is unknown — the server did
            // not say, or it may have worked on the request before the
            // timeout or failure — is charged what it reserved.
            (Ok(r), Some((p, c))) => (p, c, r.model.clone()),
            (Err(LlmError::Timeout | LlmError::Upstream(_) | LlmError::BadResponse(_)), Some((p, c))) => (p, c, model.clone()),
            (Ok(r), None) => (u64::from(r.usage.prompt_tokens), u64::from(r.usage.completion_tokens), r.model.clone()),
            (Err(_), _) => (0, 0, model.clone()),
        };
        let cost = self.price(&answered_model).or_else(|| self.price(&model)).map(|p| {
            (prompt as f64 * p.prompt + completion as f64 * p.completion) / 1_000_000.0
        });
        let record = LlmUsageRecord {
            at: now_unix(),
            agent: caller.agent.to_string(),
            session: caller.session.to_string(),
            profile,
            model: answered_model,
            prompt_tokens: prompt,
            completion_tokens: completion,
            latency_ms: started.elapsed().as_millis() as u64,
            cost_usd: cost,
            outcome: match &result {
                Ok(_) => "ok".to_string(),
                Err(e) => error_code(e).to_string(),
            },
        };
        if let Some((scope, span)) = caller.request {
            let tokens = record.prompt_tokens + record.completion_tokens;
            scope.budget.charge_llm_tokens(record.prompt_tokens, record.completion_tokens);
            scope.trace.add_llm_usage(span, tokens, record.cost_usd.unwrap_or(0.0));
            let call = LlmCallRecord {
                span,
                request_model: model.clone(),
                response_model: record.model.clone(),
                start_ms: 0.0,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                prompt_tokens: record.prompt_tokens,
                completion_tokens: record.completion_tokens,
                outcome: record.outcome.clone(),
            };
            scope.trace.record_llm_call(call, started);
        }
        if let Some(m) = &self.metrics {
            m.llm_call(&record.agent, &record.outcome, record.prompt_tokens, record.completion_tokens, record.cost_usd);
        }
        // The ledger is what budgets read, so the write is awaited; a
        // reservation is replaced by what the call used.
        let write = match reservation {
            Some(id) => StorageCall::LlmSettle { id, record },
            None => StorageCall::LlmRecord(record),
        };
        let written = match tokio::time::timeout(blocking::DEFAULT_TIMEOUT, self.storage.clone().submit(write)).await {
            Ok(written) => written.map(drop),
            Err(_) => Err(StorageError::Timeout(blocking::DEFAULT_TIMEOUT)),
        };
        if let Err(e) = written {
            tracing::error!("llm usage ledger write failed: {e}");
        }
        result
    }

    /// The model call itself, once [`admit`](Self::admit) let it through;
    /// [`chat`](Self::chat) accounts for it.
    async fn chat_inner(
        &self,
        transport: &dyn ChatTransport,
        caller: &LlmCaller<'_>,
        model: &str,
        messages: Vec<ChatMessage>,
        options: ChatOptions,
        max_tokens: Option<u32>,
    ) -> Result<ChatReply, LlmError> {
        // A chat request whose client is watching gets the tokens as they
        // come (tool calls are not streamed: the agent needs them whole).
        let stream_to = caller.request.filter(|(scope, _)| scope.trace.streaming() && options.tools.is_empty());
        let request = build_request(model, &messages, &options, max_tokens, stream_to.is_some())?;
        let timeout = caller
            .deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Duration::from_millis(50))
            .min(Duration::from_millis(self.config.timeout_ms));
        if let Some((scope, span)) = stream_to {
            let on_delta = |text: &str| {
                scope.trace.emit(agentkernel_runtime::trace::Event::Token { span, agent: caller.agent.to_string(), text: text.to_string() });
            };
            let streamed = transport.stream(request, self.config.max_reply_bytes, &on_delta);
            return match tokio::time::timeout(timeout, streamed).await {
                Ok(result) => result,
                Err(_) => Err(LlmError::Timeout),
            };
        }
        match tokio::time::timeout(timeout, transport.complete(request, self.config.max_reply_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout),
        }
    }
}

/// Stable code of an LLM error. The SDK's `LlmError::code` is its guest-side
/// twin (a different generated type); `tests/llm.rs` checks they agree.
pub fn error_code(e: &LlmError) -> &'static str {
    match e {
        LlmError::NotConfigured => "not-configured",
        LlmError::BudgetExceeded(_) => "budget-exceeded",
        LlmError::ModelNotAllowed(_) => "model-not-allowed",
        LlmError::RateLimited(_) => "rate-limited",
        LlmError::Timeout => "timeout",
        LlmError::BadResponse(_) => "bad-response",
        LlmError::Upstream(_) => "upstream",
    }
}

/// WIT messages and options → the OpenAI wire format → async-openai's type
/// (which validates it).
fn build_request(
    model: &str,
    messages: &[ChatMessage],
    options: &ChatOptions,
    max_tokens: Option<u32>,
    stream: bool,
) -> Result<CreateChatCompletionRequest, LlmError> {
    let mut wire_messages = Vec::with_capacity(messages.len());
    for m in messages {
        let mut msg = json!({"role": m.role, "content": m.content});
        match m.role.as_str() {
            "system" | "user" => {}
            "assistant" => {
                if !m.tool_calls.is_empty() {
                    msg["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}))
                        .collect();
                }
            }
            "tool" => {
                let Some(id) = &m.tool_call_id else {
                    return Err(LlmError::BadResponse("a `tool` message needs tool-call-id".into()));
                };
                msg["tool_call_id"] = json!(id);
            }
            other => return Err(LlmError::BadResponse(format!("unknown message role `{other}`"))),
        }
        wire_messages.push(msg);
    }
    let mut body = json!({"model": model, "messages": wire_messages});
    if let Some(t) = options.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = max_tokens {
        body["max_tokens"] = json!(m);
    }
    if matches!(options.response_format, ResponseFormat::JsonObject) {
        body["response_format"] = json!({"type": "json_object"});
    }
    if !options.tools.is_empty() {
        let mut tools = Vec::new();
        for t in &options.tools {
            let schema: Value = serde_json::from_str(&t.parameters_schema)
                .map_err(|e| LlmError::BadResponse(format!("tool `{}` schema is not JSON: {e}", t.name)))?;
            tools.push(json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": schema}}));
        }
        body["tools"] = Value::Array(tools);
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    serde_json::from_value(body).map_err(|e| LlmError::BadResponse(format!("cannot build request: {e}")))
}

/// async-openai's response → the WIT reply, read through its JSON form so
/// this does not depend on the crate's enum layout.
pub(crate) fn parse_response(resp: CreateChatCompletionResponse, max_reply_bytes: u64) -> Result<ChatReply, LlmError> {
    let v = serde_json::to_value(&resp).map_err(|e| LlmError::BadResponse(e.to_string()))?;
    let choice = v["choices"].get(0).ok_or_else(|| LlmError::BadResponse("reply has no choices".into()))?;
    let msg = &choice["message"];
    let content = msg["content"].as_str().unwrap_or_default().to_string();
    if content.len() as u64 > max_reply_bytes {
        return Err(LlmError::BadResponse(format!("reply is {} bytes; the limit is {max_reply_bytes}", content.len())));
    }
    let tool_calls = msg["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
                    arguments: c["function"]["arguments"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = Usage {
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0).min(u32::MAX as u64) as u32,
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0).min(u32::MAX as u64) as u32,
    };
    Ok(ChatReply {
        content,
        tool_calls,
        finish_reason: choice["finish_reason"].as_str().unwrap_or("unknown").to_string(),
        model: v["model"].as_str().unwrap_or_default().to_string(),
        usage,
    })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_day_start_is_midnight() {
        assert_eq!(utc_day_start(86_400 * 3 + 5), 86_400 * 3);
        assert_eq!(utc_day_start(86_400 * 3), 86_400 * 3);
    }

    #[test]
    fn requests_carry_tools_and_tool_messages() {
        let messages = vec![
            ChatMessage { role: "user".into(), content: "add".into(), tool_call_id: None, tool_calls: vec![] },
            ChatMessage {
                role: "assistant".into(),
                content: String::new(),
                tool_call_id: None,
                tool_calls: vec![ToolCall { id: "c1".into(), name: "add".into(), arguments: "{}".into() }],
            },
            ChatMessage { role: "tool".into(), content: "3".into(), tool_call_id: Some("c1".into()), tool_calls: vec![] },
        ];
        let options = ChatOptions {
            profile: "fast".into(),
            temperature: Some(0.5),
            max_tokens: None,
            response_format: ResponseFormat::JsonObject,
            tools: vec![agentkernel_runtime::bindings::agentkernel::agent::llm::ToolDefinition {
                name: "add".into(),
                description: "adds".into(),
                parameters_schema: r#"{"type":"object"}"#.into(),
            }],
        };
        let req = build_request("m", &messages, &options, Some(7), false).unwrap();
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["max_tokens"], 7);
        assert_eq!(v["messages"][1]["tool_calls"][0]["function"]["name"], "add");
        assert_eq!(v["messages"][2]["tool_call_id"], "c1");
        assert_eq!(v["tools"][0]["function"]["parameters"]["type"], "object");
        assert_eq!(v["response_format"]["type"], "json_object");
    }

    #[test]
    fn bad_messages_are_refused_before_sending() {
        let bad = vec![ChatMessage { role: "tool".into(), content: "x".into(), tool_call_id: None, tool_calls: vec![] }];
        let options = ChatOptions { profile: "fast".into(), temperature: None, max_tokens: None, response_format: ResponseFormat::Text, tools: vec![] };
        assert!(build_request("m", &bad, &options, None, false).is_err());
    }
}
