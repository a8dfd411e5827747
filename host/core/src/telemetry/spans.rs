//! A request's trace as OpenTelemetry spans, named and attributed as the
//! GenAI semantic conventions ask: `invoke_agent {agent}` for each agent
//! call (router, agents, callees, synthesizer) and `chat {model}` for each
//! model call, under one server span for the request.
use agentkernel_runtime::trace::Trace;

use super::TraceParent;
use super::otlp::{SpanData, SpanKind, Value};

/// What the exporter knows of the request beyond its trace.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    /// `POST /v1/chat`, `POST /mcp`, ... (the span's name and `http.route`).
    pub method: &'static str,
    pub route: &'static str,
    /// The incoming `traceparent`, if the client sent one.
    pub parent: Option<TraceParent>,
    /// The chat session, when there is one (`gen_ai.conversation.id`).
    pub session: Option<String>,
    /// `ok`, `partial`, `failed`, `no-match`, or an error code.
    pub status: String,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // An id only has to be unique; should the OS source fail, the clock is.
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(1);
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = (nanos >> ((i % 16) * 8)) as u8 | 1;
        }
    }
    b
}

fn at(trace: &Trace, ms: f64) -> u64 {
    trace.started_unix_nanos().saturating_add((ms.max(0.0) * 1e6) as u64)
}

/// The request's spans: one per agent call, one per model call, then the
/// server span of the request. `end_unix_nanos` closes spans the request left open
/// (a call still running when its deadline passed).
pub fn request_spans(request: &RequestSpan, trace: &Trace, end_unix_nanos: u64) -> Vec<SpanData> {
    let trace_id = request.parent.as_ref().map(|p| p.trace_id).unwrap_or_else(random);
    let root_id: [u8; 8] = random();
    let agent_spans = trace.snapshot();
    let ids: Vec<[u8; 8]> = agent_spans.iter().map(|_| random()).collect();
    let mut out = Vec::with_capacity(1 + agent_spans.len());

    // `partial` and `no-match` are answers; `failed` and refusals are not.
    let failed = !matches!(request.status.as_str(), "ok" | "partial" | "no-match");
    let mut attributes = vec![
        ("http.request.method", Value::from(request.method)),
        ("http.route", Value::from(request.route)),
        ("agentkernel.status", Value::from(request.status.as_str())),
    ];
    if let Some(session) = &request.session {
        attributes.push(("gen_ai.conversation.id", Value::from(session.as_str())));
    }
    out.push(SpanData {
        trace_id,
        span_id: root_id,
        parent_span_id: request.parent.as_ref().map(|p| p.parent_span_id),
        name: format!("{} {}", request.method, request.route),
        kind: SpanKind::Server,
        start_unix_nanos: trace.started_unix_nanos(),
        end_unix_nanos,
        attributes,
        error: failed.then(|| request.status.clone()),
    });

    for (span, id) in agent_spans.iter().zip(&ids) {
        let parent = span.parent.and_then(|p| ids.get(p as usize)).copied().unwrap_or(root_id);
        let outcome = span.outcome.clone().unwrap_or_else(|| "unfinished".to_string());
        let mut attributes = vec![
            ("gen_ai.operation.name", Value::from("invoke_agent")),
            ("gen_ai.agent.name", Value::from(span.agent.as_str())),
            ("agentkernel.role", Value::from(span.role)),
            ("agentkernel.outcome", Value::from(outcome.as_str())),
        ];
        if let Some(fuel) = span.fuel {
            attributes.push(("agentkernel.fuel", Value::from(fuel)));
        }
        if span.tokens > 0 {
            attributes.push(("agentkernel.llm_tokens", Value::from(span.tokens)));
        }
        if outcome != "ok" {
            attributes.push(("error.type", Value::from(outcome.as_str())));
        }
        let start = at(trace, span.start_ms);
        out.push(SpanData {
            trace_id,
            span_id: *id,
            parent_span_id: Some(parent),
            name: format!("invoke_agent {}", span.agent),
            kind: SpanKind::Internal,
            start_unix_nanos: start,
            end_unix_nanos: span.elapsed_ms.map(|e| at(trace, span.start_ms + e)).unwrap_or(end_unix_nanos),
            attributes,
            error: (outcome != "ok").then_some(outcome),
        });
    }

    for call in trace.llm_calls() {
        let parent = ids.get(call.span as usize).copied().unwrap_or(root_id);
        let mut attributes = vec![
            ("gen_ai.operation.name", Value::from("chat")),
            ("gen_ai.provider.name", Value::from("openai")),
            ("gen_ai.request.model", Value::from(call.request_model.as_str())),
            ("gen_ai.usage.input_tokens", Value::from(call.prompt_tokens)),
            ("gen_ai.usage.output_tokens", Value::from(call.completion_tokens)),
        ];
        if !call.response_model.is_empty() {
            attributes.push(("gen_ai.response.model", Value::from(call.response_model.as_str())));
        }
        if let Some(agent) = agent_spans.get(call.span as usize) {
            attributes.push(("gen_ai.agent.name", Value::from(agent.agent.as_str())));
        }
        let failed = call.outcome != "ok";
        if failed {
            attributes.push(("error.type", Value::from(call.outcome.as_str())));
        }
        out.push(SpanData {
            trace_id,
            span_id: random(),
            parent_span_id: Some(parent),
            name: format!("chat {}", call.request_model),
            kind: SpanKind::Client,
            start_unix_nanos: at(trace, call.start_ms),
            end_unix_nanos: at(trace, call.start_ms + call.elapsed_ms),
            attributes,
            error: failed.then_some(call.outcome),
        });
    }
    // The request's own span last: a receiver that has it has the rest.
    out.rotate_left(1);
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use agentkernel_runtime::trace::LlmCallRecord;

    use super::*;

    #[test]
    fn agent_and_model_spans_hang_under_the_request_and_its_parent() {
        let trace = Trace::new(None);
        let router = trace.open(None, "router", "router");
        trace.close(router, "ok", Duration::from_millis(1), Some(10), "");
        let agent = trace.open(None, "notes", "agent");
        let callee = trace.open(Some(agent), "echo", "callee");
        trace.close(callee, "fuel-exhausted", Duration::from_millis(1), Some(99), "");
        let call = LlmCallRecord {
            span: agent,
            request_model: "m".into(),
            response_model: "m-2".into(),
            start_ms: 0.0,
            elapsed_ms: 1.0,
            prompt_tokens: 7,
            completion_tokens: 3,
            outcome: "ok".into(),
        };
        trace.record_llm_call(call, Instant::now());
        let parent = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let request =
            RequestSpan { method: "POST", route: "/v1/chat", parent: Some(parent.clone()), session: None, status: "partial".into() };
        let spans = request_spans(&request, &trace, trace.started_unix_nanos() + 5_000_000);

        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["invoke_agent router", "invoke_agent notes", "invoke_agent echo", "chat m", "POST /v1/chat"]);
        let spans: Vec<SpanData> = spans[4..].iter().chain(&spans[..4]).cloned().collect();
        assert!(spans.iter().all(|s| s.trace_id == parent.trace_id), "the client's trace continues");
        assert_eq!(spans[0].parent_span_id, Some(parent.parent_span_id));
        assert_eq!(spans[1].parent_span_id, Some(spans[0].span_id));
        assert_eq!(spans[3].parent_span_id, Some(spans[2].span_id), "a callee hangs under its caller");
        assert_eq!(spans[4].parent_span_id, Some(spans[2].span_id), "a model call under the agent that made it");
        assert_eq!(spans[3].error.as_deref(), Some("fuel-exhausted"));
        assert_eq!(spans[2].end_unix_nanos, trace.started_unix_nanos() + 5_000_000, "an unfinished call ends with the request");
        assert!(spans[4].attributes.contains(&("gen_ai.usage.input_tokens", Value::Int(7))));
        assert!(spans[0].error.is_none(), "partial is not a failed request");
    }
}
