//! Guest `llm-probe`: calls the `llm` capability as told by the request's
//! JSON context and reports exactly what it got, so tests can check every
//! mapping. Context: `{"profile": "fast", "max_tokens": 10, "json": true,
//! "tool": true}`. With `tool`, it offers an `add` tool, runs the calls the
//! model asks for and sends the results back (one round).
use agentkernel_sdk::llm::{ChatMessage, ChatOptions, ChatReply, LlmError, ResponseFormat, ToolDefinition};
use agentkernel_sdk::prelude::*;
use serde_json::{Value, json};

struct Probe;

fn message(role: &str, content: &str) -> ChatMessage {
    ChatMessage { role: role.into(), content: content.into(), tool_call_id: None, tool_calls: vec![] }
}

fn add(arguments: &str) -> String {
    let v: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    (v["a"].as_i64().unwrap_or(0) + v["b"].as_i64().unwrap_or(0)).to_string()
}

fn run(req: &Request) -> Result<(ChatReply, u32), LlmError> {
    let ctx: Value = req.context.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or(Value::Null);
    let tools = if ctx["tool"].as_bool() == Some(true) {
        vec![ToolDefinition {
            name: "add".into(),
            description: "Adds a and b".into(),
            parameters_schema: r#"{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}}}"#.into(),
        }]
    } else {
        vec![]
    };
    let options = ChatOptions {
        profile: ctx["profile"].as_str().unwrap_or("fast").into(),
        temperature: None,
        max_tokens: ctx["max_tokens"].as_u64().map(|m| m as u32),
        response_format: if ctx["json"].as_bool() == Some(true) { ResponseFormat::JsonObject } else { ResponseFormat::Text },
        tools,
    };
    let mut messages = vec![message("user", &req.text)];
    let reply = llm::chat_with_options(&messages, &options)?;
    if reply.tool_calls.is_empty() {
        return Ok((reply, 1));
    }
    let mut assistant = message("assistant", &reply.content);
    assistant.tool_calls = reply.tool_calls.clone();
    messages.push(assistant);
    for call in &reply.tool_calls {
        let mut result = message("tool", &add(&call.arguments));
        result.tool_call_id = Some(call.id.clone());
        messages.push(result);
    }
    Ok((llm::chat_with_options(&messages, &options)?, 2))
}

impl Agent for Probe {
    fn describe() -> Manifest {
        Manifest::new("llm-probe", "0.1.0", "Calls the LLM capability and reports what happened.")
            .capability("llm", "the thing under test")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        Ok(match run(&req) {
            Ok((reply, rounds)) => Response::text(reply.content.clone()).with_data(&json!({
                "ok": true, "model": reply.model, "finish_reason": reply.finish_reason, "rounds": rounds,
                "prompt_tokens": reply.usage.prompt_tokens, "completion_tokens": reply.usage.completion_tokens,
            })),
            Err(e) => Response::text("error").with_data(&json!({"ok": false, "error": e.code(), "message": format!("{e:?}")})),
        })
    }
}

export_agent!(Probe);
