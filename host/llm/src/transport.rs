//! Where completions come from: an OpenAI-compatible server through
//! async-openai ([`OpenAiTransport`], what `[llm]` configures), or any
//! other [`ChatTransport`] (the evolution benchmark's scripted one). The
//! service around it keeps policy, budgets, timeouts and the ledger, so a
//! transport only turns a request into a reply.
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::CreateChatCompletionRequest;
use futures_util::future::BoxFuture;

use agentkernel_runtime::bindings::agentkernel::agent::llm::{ChatReply, LlmError, Usage};

use crate::Endpoint;

/// A source of chat completions. `request` is the OpenAI wire format
/// (validated by async-openai's types); replies longer than
/// `max_reply_bytes` are errors.
pub trait ChatTransport: Send + Sync + 'static {
    fn complete<'a>(&'a self, request: CreateChatCompletionRequest, max_reply_bytes: u64) -> BoxFuture<'a, Result<ChatReply, LlmError>>;

    /// A streamed completion: each piece of text goes to `on_delta` as it
    /// arrives; the reply is returned whole. A transport that cannot
    /// stream may answer at once and pass the text in one piece.
    fn stream<'a>(
        &'a self,
        request: CreateChatCompletionRequest,
        max_reply_bytes: u64,
        on_delta: &'a (dyn Fn(&str) + Sync),
    ) -> BoxFuture<'a, Result<ChatReply, LlmError>>;

    /// The models the backend offers (`doctor`'s reachability probe).
    fn models(&self) -> BoxFuture<'_, Result<Vec<String>, String>>;
}

/// An OpenAI-compatible server through async-openai (one HTTP client).
pub struct OpenAiTransport {
    client: Client<OpenAIConfig>,
}

impl OpenAiTransport {
    pub fn new(endpoint: &Endpoint, key: Option<String>) -> Self {
        let config = OpenAIConfig::new()
            .with_api_base(endpoint.base_url.clone())
            // Local servers take any key; the client insists on sending one.
            .with_api_key(key.unwrap_or_else(|| "none".into()));
        OpenAiTransport { client: Client::with_config(config) }
    }
}

impl ChatTransport for OpenAiTransport {
    fn complete<'a>(&'a self, request: CreateChatCompletionRequest, max_reply_bytes: u64) -> BoxFuture<'a, Result<ChatReply, LlmError>> {
        Box::pin(async move {
            let response = self.client.chat().create(request).await.map_err(map_error)?;
            crate::parse_response(response, max_reply_bytes)
        })
    }

    fn stream<'a>(
        &'a self,
        request: CreateChatCompletionRequest,
        max_reply_bytes: u64,
        on_delta: &'a (dyn Fn(&str) + Sync),
    ) -> BoxFuture<'a, Result<ChatReply, LlmError>> {
        Box::pin(stream_reply(&self.client, request, max_reply_bytes, on_delta))
    }

    fn models(&self) -> BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(async move {
            let list = self.client.models().list().await.map_err(|e| e.to_string())?;
            Ok(list.data.into_iter().map(|m| m.id).collect())
        })
    }
}

/// A streamed completion, put together as the agent expects it whole;
/// each piece of text is passed to `on_delta` as it arrives. Unlike a
/// buffered reply, an oversized one is cut off as soon as it passes the limit.
async fn stream_reply(
    client: &Client<OpenAIConfig>,
    request: CreateChatCompletionRequest,
    max_reply_bytes: u64,
    on_delta: &(dyn Fn(&str) + Sync),
) -> Result<ChatReply, LlmError> {
    use futures_util::StreamExt;
    let mut stream = client.chat().create_stream(request).await.map_err(map_error)?;
    let (mut content, mut finish, mut model) = (String::new(), None, String::new());
    let mut usage = Usage { prompt_tokens: 0, completion_tokens: 0 };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(map_error)?;
        if model.is_empty() {
            model = chunk.model.clone();
        }
        if let Some(u) = &chunk.usage {
            usage = Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens };
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                if (content.len() + text.len()) as u64 > max_reply_bytes {
                    return Err(LlmError::BadResponse(format!("reply passed the limit of {max_reply_bytes} bytes")));
                }
                on_delta(&text);
                content.push_str(&text);
            }
            if let Some(reason) = choice.finish_reason {
                finish = serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(String::from));
            }
        }
    }
    Ok(ChatReply { content, tool_calls: Vec::new(), finish_reason: finish.unwrap_or_else(|| "unknown".into()), model, usage })
}

fn map_error(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            if status == 429 {
                LlmError::RateLimited(api.to_string())
            } else {
                LlmError::Upstream(api.to_string())
            }
        }
        OpenAIError::Reqwest(r) if r.is_timeout() => LlmError::Timeout,
        OpenAIError::Reqwest(r) if r.is_decode() => LlmError::BadResponse(r.to_string()),
        OpenAIError::Reqwest(r) => match r.status() {
            Some(s) if s.as_u16() == 429 => LlmError::RateLimited(r.to_string()),
            _ => LlmError::Upstream(r.to_string()),
        },
        OpenAIError::JSONDeserialize(err, content) => {
            let preview: String = content.chars().take(200).collect();
            LlmError::BadResponse(format!("{err}; reply began: {preview:?}"))
        }
        other => LlmError::Upstream(other.to_string()),
    }
}
