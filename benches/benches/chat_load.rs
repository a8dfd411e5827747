//! Load on the chat service over loopback HTTP, with a zero-latency scripted
//! LLM: requests/s and p50/p99 for a single-agent and a three-agent route at
//! 64 connections, against a baseline measured in the same run (the direct
//! agent-call endpoint: the same HTTP stack and agent, no orchestration),
//! and the host's own time per agent hop. The HTTP floor runs first: a
//! no-Wasm axum server answering the direct-call route's JSON on the same
//! server runtime, under the same load (the peer a fresh instance per call
//! is measured against).
//!
//! Run: `cargo bench -p agentkernel-benches --bench chat_load`
//! (`AGENTKERNEL_LOAD_SECS`, default 10, sets each phase's length). The
//! server runs on its own 2-thread runtime, the load generator on another.
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use sandbox_tests::llm_server::ScriptedLlm;
use sandbox_tests::{TestHost, load};
use serde_json::{Value, json};

/// The HTTP floor: the direct-call route with no Wasm, no policy and no
/// metrics, answering what `echo` answers.
async fn axum_floor() -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/v1/agents/echo/call",
        post(|Json(req): Json<Value>| async move {
            let text = req["text"].as_str().unwrap_or_default().to_string();
            Json(json!({"text": text, "data": null}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn main() {
    let secs: u64 = std::env::var("AGENTKERNEL_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let phase = Duration::from_secs(secs);
    let connections = 64;

    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let floor_addr = server.block_on(axum_floor());
    let (h, addr, _llm) = server.block_on(async {
        let llm = ScriptedLlm::start(vec![]).await; // answers "ok" at once
        let h = TestHost::new(&format!(
            "{}\n[host]\nmax_instances = 1000\n[agents.summarizer]\nllm = {{ profiles = [\"fast\"] }}\n\
             [agents.synthesizer]\nllm = {{ profiles = [\"fast\"] }}\n",
            llm.config()
        ));
        for (krate, file) in [("echo", "echo.wasm"), ("notes", "notes.wasm"), ("summarizer", "summarizer.wasm"), ("synthesizer", "synthesizer.wasm")] {
            h.install(krate, file);
        }
        let addr = h.serve().await;
        (h, addr, llm)
    });
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let report = |name: &str, r: &load::LoadReport| {
        println!("{name:<28} {}", r.summary());
        assert!(r.failures.is_empty(), "{name}: {:?}", &r.failures[..r.failures.len().min(3)]);
    };
    let warm = client.block_on(load::run(addr, "/v1/agents/echo/call", 8, Duration::from_secs(1), false, |i| json!({"text": format!("w{i}")})));
    assert!(warm.failures.is_empty());

    let floor = client.block_on(load::run(floor_addr, "/v1/agents/echo/call", connections, phase, false, |i| {
        json!({"session_id": "load", "text": format!("hello {i}")})
    }));
    report("floor: axum, no Wasm", &floor);
    let baseline = client.block_on(load::run(addr, "/v1/agents/echo/call", connections, phase, false, |i| {
        json!({"session_id": "load", "text": format!("hello {i}")})
    }));
    report("baseline: direct call", &baseline);
    println!(
        "direct call (a fresh instance per call): {:.2}x the axum floor's req/s",
        baseline.requests_per_second() / floor.requests_per_second()
    );
    let single = client.block_on(load::run(addr, "/v1/chat", connections, phase, false, |i| {
        json!({"message": format!("hello {i}"), "agents": ["echo"]})
    }));
    report("chat: single-agent route", &single);
    let three = client.block_on(load::run(addr, "/v1/chat", connections, phase, false, |i| {
        json!({"message": format!("remember item {i}"), "agents": ["echo", "notes", "summarizer"]})
    }));
    report("chat: three-agent route", &three);
    println!(
        "single-agent route: {:.2}x the baseline's req/s; three-agent route: {:.2}x",
        single.requests_per_second() / baseline.requests_per_second(),
        three.requests_per_second() / baseline.requests_per_second()
    );

    // The host's own time per hop, with no queueing (one connection): the
    // chat route's latency minus the direct call's (same HTTP stack, same
    // agent) is what routing, budget, trace and the transcript commit cost;
    // the agent span (instantiation + guest) is read from the trace.
    let quiet_secs = Duration::from_secs(secs.min(3));
    let direct = client.block_on(load::run(addr, "/v1/agents/echo/call", 1, quiet_secs, false, |i| json!({"text": format!("hello {i}")})));
    let chat = client.block_on(load::run(addr, "/v1/chat", 1, quiet_secs, true, |i| {
        json!({"message": format!("hello {i}"), "agents": ["echo"]})
    }));
    // The OpenAI facade is stateless: the same route with no transcript.
    let stateless = client.block_on(load::run(addr, "/v1/chat/completions", 1, quiet_secs, false, |i| {
        json!({"model": "echo", "messages": [{"role": "user", "content": format!("hello {i}")}]})
    }));
    let mut span: Vec<f64> = chat.bodies.iter().map(|b| b["trace"][0]["elapsed_ms"].as_f64().unwrap()).collect();
    span.sort_by(f64::total_cmp);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (direct, stateless, chat) = (us(direct.percentile(0.5)), us(stateless.percentile(0.5)), us(chat.percentile(0.5)));
    println!(
        "one connection, p50: direct call {direct:.1} µs, stateless chat (facade) {stateless:.1} µs, chat with transcript {chat:.1} µs"
    );
    println!(
        "=> host overhead per agent hop (routing, budget, trace) {:.1} µs; transcript commit per request {:.1} µs; agent span {:.1} µs",
        stateless - direct,
        chat - stateless,
        span[span.len() / 2] * 1000.0
    );
    drop(h);
}
