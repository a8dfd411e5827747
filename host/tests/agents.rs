//! Agent-to-agent calls through the `agents` capability: policy, cycles,
//! depth, and the caller's deadline bounding the callee.
use std::time::{Duration, Instant};

use sandbox_tests::{TestHost, request};
use serde_json::{Value, json};

async fn relay(h: &TestHost, context: Value) -> (String, Value) {
    let relay = h.host.registry.get("relay").expect("relay loaded");
    let mut req = request("s", "hello");
    req.context = Some(context.to_string());
    let out = relay.call(&req).await.expect("relay answers");
    (out.response.text, out.response.data.map(|d| serde_json::from_str(&d).unwrap()).unwrap_or(Value::Null))
}

async fn host_with(config: &str) -> TestHost {
    let h = TestHost::new(config);
    h.install("relay", "relay.wasm");
    h.install("echo", "echo.wasm");
    h.install("notes", "notes.wasm");
    h.install("spin-loop", "spin.wasm");
    h.host.registry.scan().await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_calls_go_through_and_others_are_refused() {
    let h = host_with("[agents.relay]\nagents = { call = [\"echo\", \"relay\"] }\n").await;
    let (text, _) = relay(&h, json!({"to": "echo", "text": "ping"})).await;
    assert_eq!(text, "relay got: ping");
    let (_, data) = relay(&h, json!({"to": "notes", "text": "recall"})).await;
    assert_eq!(data["error"], "not-allowed", "{data}");
    let (text, _) = relay(&h, json!({"list": true})).await;
    assert_eq!(text, "echo", "lists only callable agents, not itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_missing_agents_and_cycles_are_refused() {
    let h = host_with("[agents.relay]\nagents = true\n").await;
    let (_, data) = relay(&h, json!({"to": "nobody"})).await;
    assert_eq!(data["error"], "not-found");
    // relay → relay: a cycle, refused before any instance is made.
    let (_, data) = relay(&h, json!({})).await;
    assert_eq!(data["error"], "depth-exceeded", "{data}");
    assert!(data["message"].as_str().unwrap().contains("cycle: relay → relay"), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_longer_than_max_depth_are_refused() {
    let h = host_with("[agents.relay]\nagents = { max_depth = 1 }\n").await;
    let (_, data) = relay(&h, json!({"to": "echo"})).await;
    assert_eq!(data["error"], "depth-exceeded", "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_never_outlives_its_callers_deadline() {
    let h = host_with(
        "[agents.relay]\nagents = true\nlimits = { deadline_ms = 400 }\n\
         [agents.spin-loop.limits]\nfuel = \"off\"\ndeadline_ms = 10000\n",
    )
    .await;
    let start = Instant::now();
    let relay_agent = h.host.registry.get("relay").unwrap();
    let mut req = request("s", "go");
    req.context = Some(json!({"to": "spin-loop", "text": "go"}).to_string());
    let result = relay_agent.call(&req).await;
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "the chain stopped at the caller's deadline: {elapsed:?}");
    // Either the callee hit the inherited deadline and relay reported it,
    // or relay itself ran out of time: both end within the caller's budget.
    match result {
        Ok(out) => assert!(out.response.data.unwrap().contains("deadline"), "callee stopped by the deadline"),
        Err(e) => assert_eq!(e.code(), "deadline"),
    }
}

#[tokio::test]
async fn agents_is_not_granted_by_default() {
    let h = TestHost::new("");
    let msg = h.load("relay").await.err().expect("refused").to_string();
    assert!(msg.contains("`agents`") && msg.contains("agents = true"), "{msg}");
}
