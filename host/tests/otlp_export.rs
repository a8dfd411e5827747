//! OpenTelemetry export (`[telemetry] otlp_endpoint`): the spans a request
//! produces, received on a loopback OTLP/HTTP receiver that decodes them
//! with the protocol's own messages (`opentelemetry-proto`, installed by
//! `scripts/deps/otlp-receiver.sh`), and a collector that never answers.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sandbox_tests::TestHost;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const AGENTS: &str = "
[limits]
fuel = 50000000
[agents.router]
llm = { profiles = [\"fast\"] }
[agents.synthesizer]
llm = { profiles = [\"fast\"] }
[agents.summarizer]
llm = { profiles = [\"fast\"] }
";

/// The receiver process and the spans it printed.
struct Receiver {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl Receiver {
    async fn start() -> Receiver {
        let python = std::env::var("AGENTKERNEL_OTLP_PYTHON")
            .expect("AGENTKERNEL_OTLP_PYTHON is unset: run ./scripts/test (scripts/deps/otlp-receiver.sh installs it)");
        let mut child = tokio::process::Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_receiver.py"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("receiver starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().expect("receiver prints its port");
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"].as_u64().unwrap() as u16;
        Receiver { _child: child, lines, port }
    }

    /// Spans received until one named `root_name` of `trace_id` has
    /// arrived (a request's server span is queued last); a span the
    /// receiver could not decode fails the test.
    async fn spans_until(&mut self, trace_id: Option<&str>, root_name: &str) -> Vec<Value> {
        let mut spans = Vec::new();
        let read = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                let span: Value = serde_json::from_str(&line).unwrap();
                assert!(span.get("error").is_none(), "the receiver could not decode an export: {span}");
                let done = span["name"] == root_name && trace_id.is_none_or(|t| span["trace_id"] == t);
                spans.push(span);
                if done {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.unwrap_or_else(|_| panic!("no `{root_name}` span: {spans:#?}"));
        spans
    }
}

async fn post(addr: SocketAddr, path: &str, traceparent: Option<&str>, body: &Value) -> Value {
    let mut r = reqwest::Client::new().post(format!("http://{addr}{path}")).json(body);
    if let Some(t) = traceparent {
        r = r.header("traceparent", t);
    }
    let r = r.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_request_is_exported_as_genai_spans_under_the_clients_trace() {
    let mut receiver = Receiver::start().await;
    let llm = ScriptedLlm::start(vec![
        Scripted::reply(r#"{"agents": ["echo", "summarizer"], "reason": "both fit"}"#),
        Scripted::reply("A summary."),
        Scripted::reply("Combined answer."),
    ])
    .await;
    let telemetry = format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\nservice_name = \"ak-test\"\n", receiver.port);
    let h = TestHost::new(&format!("{AGENTS}\n{}\n{telemetry}", llm.config()));
    for (krate, file) in [
        ("router", "router.wasm"),
        ("synthesizer", "synthesizer.wasm"),
        ("echo", "echo.wasm"),
        ("summarizer", "summarizer.wasm"),
        ("spin-loop", "spin-loop.wasm"),
    ] {
        h.install(krate, file);
    }
    let addr = h.serve().await;

    // A client that did not sample its trace: nothing of it is exported.
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    post(addr, "/v1/chat", Some(unsampled), &json!({"message": "x", "agents": ["echo"]})).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let r = post(addr, "/v1/chat", Some(&traceparent), &json!({"message": "anything at all", "session": "s-otel-1"})).await;
    assert_eq!(r["answer"], "Combined answer.", "{r}");
    let spans = receiver.spans_until(Some(trace_id), "POST /v1/chat").await;
    assert!(spans.iter().all(|s| s["trace_id"] != "11111111111111111111111111111111"), "an unsampled trace was exported");
    let ours: Vec<&Value> = spans.iter().filter(|s| s["trace_id"] == trace_id).collect();
    let by_name: HashMap<&str, Vec<&Value>> = ours.iter().fold(HashMap::new(), |mut m, s| {
        m.entry(s["name"].as_str().unwrap()).or_default().push(s);
        m
    });

    // The request: a server span whose parent is the client's span.
    let root = by_name["POST /v1/chat"][0];
    assert_eq!(root["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(root["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(attr(root, "http.route"), "/v1/chat");
    assert_eq!(attr(root, "gen_ai.conversation.id"), "s-otel-1");
    assert_eq!(root["resource"]["service.name"], "ak-test");
    assert_eq!(root["scope"], "agentkernel");

    // Every agent call: `invoke_agent {name}` under the request.
    for agent in ["router", "echo", "summarizer", "synthesizer"] {
        let span = by_name.get(format!("invoke_agent {agent}").as_str()).unwrap_or_else(|| panic!("no span for {agent}: {ours:#?}"))[0];
        assert_eq!(span["parent_span_id"], root["span_id"], "{agent}");
        assert_eq!(attr(span, "gen_ai.operation.name"), "invoke_agent");
        assert_eq!(attr(span, "gen_ai.agent.name"), agent);
        assert_eq!(attr(span, "agentkernel.outcome"), "ok");
        assert!(attr(span, "agentkernel.fuel").as_i64().unwrap() > 0, "metered: {span}");
        assert_eq!(span["status"]["code"], 1, "STATUS_CODE_OK");
        assert!(span["start"].as_u64().unwrap() >= root["start"].as_u64().unwrap());
        assert!(span["end"].as_u64().unwrap() <= root["end"].as_u64().unwrap());
    }
    // Every model call: `chat {model}` under the agent that made it.
    let chats = &by_name["chat test-model"];
    assert_eq!(chats.len(), 3, "router, summarizer and synthesizer each asked the model once");
    let mut callers: Vec<&str> = chats
        .iter()
        .map(|c| {
            let parent = ours.iter().find(|s| s["span_id"] == c["parent_span_id"]).expect("a chat span's parent is exported");
            assert_eq!(c["kind"], 3, "SPAN_KIND_CLIENT");
            assert_eq!(attr(c, "gen_ai.operation.name"), "chat");
            assert_eq!(attr(c, "gen_ai.request.model"), "test-model");
            assert_eq!(attr(c, "gen_ai.usage.input_tokens"), 10);
            assert_eq!(attr(c, "gen_ai.usage.output_tokens"), 5);
            attr(parent, "gen_ai.agent.name").as_str().unwrap()
        })
        .collect();
    callers.sort();
    assert_eq!(callers, ["router", "summarizer", "synthesizer"]);

    // Without a traceparent a new trace starts; an agent stopped by its
    // limits is an error span with the limit's code.
    let r = post(addr, "/v1/chat", None, &json!({"message": "spin", "agents": ["spin-loop"]})).await;
    assert_eq!(r["status"], "failed", "{r}");
    let spans = receiver.spans_until(None, "POST /v1/chat").await;
    let root = spans.iter().find(|s| s["name"] == "POST /v1/chat").unwrap();
    assert_ne!(root["trace_id"], trace_id);
    assert_eq!(root["parent_span_id"], "", "a new trace has no parent");
    assert_eq!(root["status"]["code"], 2, "a failed request is an error");
    let spin = spans.iter().find(|s| s["name"] == "invoke_agent spin-loop").unwrap();
    assert_eq!(spin["status"]["code"], 2);
    assert_eq!(attr(spin, "error.type"), "fuel-exhausted");

    // A direct call is exported too, and /metrics counts what was sent.
    post(addr, "/v1/agents/echo/call", Some(&traceparent), &json!({"text": "hi"})).await;
    let spans = receiver.spans_until(Some(trace_id), "POST /v1/agents/{name}/call").await;
    let root = spans.iter().find(|s| s["name"] == "POST /v1/agents/{name}/call").unwrap();
    assert!(spans.iter().any(|s| s["name"] == "invoke_agent echo" && s["parent_span_id"] == root["span_id"]));
    let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("agentkernel_otlp_spans_dropped_total 0"), "{metrics}");
    let exported: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("agentkernel_otlp_spans_exported_total "))
        .and_then(|n| n.parse().ok())
        .expect("exported counter");
    assert!(exported >= 10, "{exported}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_requests_nothing_and_drops_are_counted() {
    // Accepts connections and never reads nor answers them.
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = collector.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = collector.accept().await {
            conns.push(c);
        }
    });
    let h = TestHost::new(&format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nqueue_spans = 4\ntimeout_secs = 60\n"));
    h.install("echo", "echo.wasm");
    let addr = h.serve().await;

    // 20 requests of 2 spans each while the first export hangs for a
    // minute: had a request waited for the queue, these would take minutes.
    let started = std::time::Instant::now();
    for i in 0..20 {
        let r = post(addr, "/v1/agents/echo/call", None, &json!({"text": format!("m{i}")})).await;
        assert_eq!(r["text"], format!("m{i}"));
    }
    assert!(started.elapsed() < Duration::from_secs(60), "requests waited on the collector");
    let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let counter = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{name}: {metrics}"))
    };
    // At most the queue (4) and the batch in flight (taken from a queue of
    // at most 4) escaped; everything else was dropped, none exported.
    assert!(counter("agentkernel_otlp_spans_dropped_total") >= 40 - 8, "{metrics}");
    assert_eq!(counter("agentkernel_otlp_spans_exported_total"), 0);
    held.abort();
}
