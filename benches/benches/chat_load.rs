//! Load on the chat service over loopback HTTP, with a zero-latency scripted
//! LLM: requests/s and p50/p99 for a single-agent and a three-agent route at
//! 64 connections, against a baseline measured in the same run (the direct
//! agent-call endpoint: the same HTTP stack and agent, no orchestration),
//! and the host's own time per agent hop. The HTTP floor runs first: a
//! no-Wasm axum server answering the direct-call route's JSON on the same
//! server runtime, under the same load (the peer a fresh instance per call
//! is measured against).
//!
//! Two peers run under the same load generator and connection count when
//! installed (`source scripts/deps/wasmtime-cli.sh scripts/deps/python-stack.sh`,
//! which `scripts/test` does; each is skipped with a message otherwise):
//! `wasmtime serve` of the same wasmtime version on an equivalent `wasi:http`
//! echo component (sandbox-tests/guests/http-echo), and the Python agent
//! stack a user would otherwise pick (benches/peers/python_stack.py: FastAPI
//! on uvicorn, two workers, the official `openai` client, SQLite) on the same
//! scripted LLM and the same one-agent and three-agent routes.
//!
//! Run: `cargo bench -p agentkernel-benches --bench chat_load`
//! (`AGENTKERNEL_LOAD_SECS`, default 10, sets each phase's length). The
//! server runs on its own 2-thread runtime, the load generator on another.
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use axum::Json;
use axum::routing::post;
use sandbox_tests::llm_server::ScriptedLlm;
use sandbox_tests::child::{ChildServer, free_loopback_addr};
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

/// A peer server in a child process on a free loopback port
/// ([`ChildServer`]: its whole process group is killed when dropped).
struct Peer {
    name: &'static str,
    server: ChildServer,
    addr: SocketAddr,
}

impl Peer {
    /// Starts `command` (which must listen on `addr`) and waits until `probe`
    /// answers 200 on `path`; `None`, with the reason printed, if it never does.
    fn start(
        rt: &Runtime,
        name: &'static str,
        mut command: Command,
        addr: SocketAddr,
        path: &str,
        probe: Value,
    ) -> Option<Peer> {
        let server = match ChildServer::spawn(command.stdout(Stdio::null())) {
            Ok(s) => s,
            Err(e) => {
                println!("{name}: skipped, cannot start it: {e}");
                return None;
            }
        };
        let mut peer = Peer { name, server, addr };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = peer.server.exited() {
                println!("{name}: skipped, it exited at start ({status})");
                return None;
            }
            let answered = rt.block_on(
                client
                    .post(format!("http://{addr}{path}"))
                    .json(&probe)
                    .send(),
            );
            if answered.is_ok_and(|r| r.status() == 200) {
                return Some(peer);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("{name}: skipped, it did not answer {path} within 60 s");
        None
    }
}

/// `wasmtime serve` (`AGENTKERNEL_WASMTIME_CLI`) on the wasi:http echo
/// component, with its defaults: a fresh instance per request, as here.
fn wasmtime_serve(rt: &Runtime) -> Option<Peer> {
    let Ok(cli) = std::env::var("AGENTKERNEL_WASMTIME_CLI") else {
        println!("wasmtime serve: skipped (source scripts/deps/wasmtime-cli.sh to install it)");
        return None;
    };
    let addr = free_loopback_addr();
    let mut command = Command::new(cli);
    // `-Scli`: the component is built by plain cargo for wasm32-wasip2, so
    // Rust's std imports wasi:cli (as the agents' do; the host links it too).
    command
        .args(["serve", "-Scli", "--addr"])
        .arg(addr.to_string())
        .arg(sandbox_tests::wasm_path("http-echo"));
    Peer::start(
        rt,
        "wasmtime serve",
        command,
        addr,
        "/v1/agents/echo/call",
        json!({"text": "probe"}),
    )
}

/// The Python stack (`AGENTKERNEL_PYSTACK_PYTHON`) on the scripted LLM at
/// `llm_base_url`, its SQLite database in `dir`.
fn python_stack(rt: &Runtime, llm_base_url: &str, dir: &std::path::Path) -> Option<Peer> {
    let Ok(python) = std::env::var("AGENTKERNEL_PYSTACK_PYTHON") else {
        println!("python stack: skipped (source scripts/deps/python-stack.sh to install it)");
        return None;
    };
    let addr = free_loopback_addr();
    let app_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "uvicorn",
            "python_stack:app",
            "--workers",
            "2",
            "--no-access-log",
            "--log-level",
            "warning",
        ])
        .arg("--app-dir")
        .arg(app_dir)
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
        .env("PYSTACK_DB", dir.join("python-stack.db"))
        .env("PYSTACK_LLM_BASE_URL", llm_base_url);
    Peer::start(
        rt,
        "python stack",
        command,
        addr,
        "/v1/chat",
        json!({"message": "probe", "agents": ["echo"]}),
    )
}

/// The three routes every stack is measured on, the same bodies for each.
struct Routes {
    direct: load::LoadReport,
    single: load::LoadReport,
    three: load::LoadReport,
}

fn report(name: &str, r: &load::LoadReport) {
    println!("{name:<34} {}", r.summary());
    assert!(
        r.failures.is_empty(),
        "{name}: {:?}",
        &r.failures[..r.failures.len().min(3)]
    );
}

fn direct_call(
    client: &Runtime,
    addr: SocketAddr,
    connections: usize,
    phase: Duration,
) -> load::LoadReport {
    client.block_on(load::run(
        addr,
        "/v1/agents/echo/call",
        connections,
        phase,
        false,
        |i| json!({"session_id": "load", "text": format!("hello {i}")}),
    ))
}

/// Direct call, single-agent chat and three-agent chat against `addr`.
fn measure_routes(
    stack: &str,
    client: &Runtime,
    addr: SocketAddr,
    connections: usize,
    phase: Duration,
) -> Routes {
    let direct = direct_call(client, addr, connections, phase);
    report(&format!("{stack}: direct call"), &direct);
    let single = client.block_on(load::run(
        addr,
        "/v1/chat",
        connections,
        phase,
        false,
        |i| json!({"message": format!("hello {i}"), "agents": ["echo"]}),
    ));
    report(&format!("{stack}: single-agent chat"), &single);
    let three = client.block_on(load::run(addr, "/v1/chat", connections, phase, false, |i| {
        json!({"message": format!("remember item {i}"), "agents": ["echo", "notes", "summarizer"]})
    }));
    report(&format!("{stack}: three-agent chat"), &three);
    Routes {
        direct,
        single,
        three,
    }
}

fn main() {
    let secs: u64 = std::env::var("AGENTKERNEL_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let phase = Duration::from_secs(secs);
    let connections = 64;

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let floor_addr = server.block_on(axum_floor());
    let (h, addr, llm) = server.block_on(async {
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
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let warm = client.block_on(load::run(
        addr,
        "/v1/agents/echo/call",
        8,
        Duration::from_secs(1),
        false,
        |i| json!({"text": format!("w{i}")}),
    ));
    assert!(warm.failures.is_empty());

    let floor = direct_call(&client, floor_addr, connections, phase);
    report("floor: axum, no Wasm", &floor);
    let ratio = |a: &load::LoadReport, b: &load::LoadReport| {
        a.requests_per_second() / b.requests_per_second()
    };
    if let Some(peer) = wasmtime_serve(&client) {
        let serve = direct_call(&client, peer.addr, connections, phase);
        report(peer.name, &serve);
        println!(
            "wasmtime serve (a fresh instance per request): {:.2}x the axum floor's req/s",
            ratio(&serve, &floor)
        );
    }
    let ours = measure_routes("agentkernel", &client, addr, connections, phase);
    println!(
        "agentkernel: direct call (a fresh instance per call) {:.2}x the axum floor; single-agent chat {:.2}x the direct call; three-agent {:.2}x",
        ratio(&ours.direct, &floor),
        ratio(&ours.single, &ours.direct),
        ratio(&ours.three, &ours.direct)
    );
    let peer_dir = tempfile::tempdir().unwrap();
    if let Some(peer) = python_stack(&client, &llm.base_url(), peer_dir.path()) {
        let py = measure_routes(peer.name, &client, peer.addr, connections, phase);
        println!(
            "agentkernel vs the python stack, req/s: direct call {:.2}x, single-agent chat {:.2}x, three-agent chat {:.2}x",
            ratio(&ours.direct, &py.direct),
            ratio(&ours.single, &py.single),
            ratio(&ours.three, &py.three)
        );
    }
    host_overhead_per_hop(&client, addr, Duration::from_secs(secs.min(3)));
    drop(h);
}

/// The host's own time per hop, with no queueing (one connection): the
/// chat route's latency minus the direct call's (same HTTP stack, same
/// agent) is what routing, budget, trace and the transcript commit cost;
/// the agent span (instantiation + guest) is read from the trace.
fn host_overhead_per_hop(client: &Runtime, addr: SocketAddr, quiet_secs: Duration) {
    let direct = client.block_on(load::run(
        addr,
        "/v1/agents/echo/call",
        1,
        quiet_secs,
        false,
        |i| json!({"text": format!("hello {i}")}),
    ));
    let chat = client.block_on(load::run(
        addr,
        "/v1/chat",
        1,
        quiet_secs,
        true,
        |i| json!({"message": format!("hello {i}"), "agents": ["echo"]}),
    ));
    // The OpenAI facade is stateless: the same route with no transcript.
    let stateless = client.block_on(load::run(addr, "/v1/chat/completions", 1, quiet_secs, false, |i| {
        json!({"model": "echo", "messages": [{"role": "user", "content": format!("hello {i}")}]})
    }));
    let mut span: Vec<f64> = chat
        .bodies
        .iter()
        .map(|b| b["trace"][0]["elapsed_ms"].as_f64().unwrap())
        .collect();
    span.sort_by(f64::total_cmp);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (direct, stateless, chat) = (
        us(direct.percentile(0.5)),
        us(stateless.percentile(0.5)),
        us(chat.percentile(0.5)),
    );
    println!(
        "one connection, p50: direct call {direct:.1} µs, stateless chat (facade) {stateless:.1} µs, chat with transcript {chat:.1} µs"
    );
    println!(
        "=> host overhead per agent hop (routing, budget, trace) {:.1} µs; transcript commit per request {:.1} µs; agent span {:.1} µs",
        stateless - direct,
        chat - stateless,
        span[span.len() / 2] * 1000.0
    );
}
