//! The low-level HTTP API, exercised over real HTTP on loopback.
use std::net::SocketAddr;

use sandbox_tests::TestHost;
use serde_json::{Value, json};


async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("http://{addr}{path}")).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_agents_and_calls() {
    let h = TestHost::new("");
    h.install("echo", "echo.wasm");
    h.install("notes", "notes.wasm");
    let addr = h.serve().await;

    let (s, health) = get(addr, "/healthz").await;
    assert_eq!((s, health["status"].as_str(), health["agents"].as_u64()), (200, Some("ok"), Some(2)));

    let (s, list) = get(addr, "/v1/agents").await;
    assert_eq!(s, 200);
    let agents = list["agents"].as_array().unwrap();
    let notes = agents.iter().find(|a| a["name"] == "notes").expect("notes listed");
    assert_eq!(notes["imports"], json!(["log", "memory"]));
    assert_eq!(notes["grants"], json!(["log", "memory"]));
    assert_eq!(notes["memory_namespace"], "notes");
    assert_eq!(notes["status"], "ready");
    assert!(notes["manifest"]["skills"].as_array().unwrap().iter().any(|s| s["name"] == "remember"));
    let echo = agents.iter().find(|a| a["name"] == "echo").unwrap();
    assert_eq!(echo["imports"], json!([]));

    let body = json!({"session_id": "s1", "text": "hi", "history": [{"role": "user", "content": "before"}], "context": {"k": 1}});
    let (s, r) = post(addr, "/v1/agents/echo/call", &body).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["text"], "hi");
    assert_eq!(r["data"]["history_len"], 1);
    assert_eq!(r["data"]["context"], r#"{"k":1}"#);
    assert!(r["fuel_used"].as_u64().unwrap() > 0);

    let (s, r) = post(addr, "/v1/agents/notes/call", &json!({"session_id": "a", "text": "remember the cake"})).await;
    assert_eq!((s, r["text"].as_str()), (200, Some("Noted: the cake")));
    let (_, r) = post(addr, "/v1/agents/notes/call", &json!({"session_id": "a", "text": "recall"})).await;
    assert_eq!(r["data"], json!(["the cake"]));
    let (_, r) = post(addr, "/v1/agents/notes/call", &json!({"session_id": "b", "text": "recall"})).await;
    assert_eq!(r["data"], json!([]), "sessions are separate");
}

#[tokio::test]
async fn errors_are_json_with_stable_codes() {
    let h = TestHost::new("[limits]\nfuel = 10_000_000\n");
    h.install("echo", "echo.wasm");
    h.install("spin-loop", "spin.wasm");
    let addr = h.serve().await;

    let (s, r) = post(addr, "/v1/agents/nobody/call", &json!({"text": "x"})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (404, Some("not-found")));

    let (s, r) = get(addr, "/v1/agents/nobody").await;
    assert_eq!((s, r["error"]["code"].as_str()), (404, Some("not-found")));

    let raw = reqwest::Client::new()
        .post(format!("http://{addr}/v1/agents/echo/call"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let r: Value = raw.json().await.unwrap();
    assert_eq!(r["error"]["code"], "invalid-request");

    let (s, r) = post(addr, "/v1/agents/echo/call", &json!({"txt": "typo"})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (422, Some("invalid-request")), "{r}");

    let huge = "x".repeat(2 << 20);
    let (s, r) = post(addr, "/v1/agents/echo/call", &json!({"text": huge})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (413, Some("payload-too-large")), "{r}");

    let (s, r) = post(addr, "/v1/agents/spin-loop/call", &json!({"text": "go"})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (500, Some("fuel-exhausted")), "{r}");

    let (s, r) = get(addr, "/nowhere").await;
    assert_eq!((s, r["error"]["code"].as_str()), (404, Some("not-found")));
}

#[tokio::test]
async fn memory_namespaces_follow_policy() {
    let h = TestHost::new("[agents.notes]\nmemory = { namespace = \"team\" }\n");
    let notes = h.load("notes").await.unwrap();
    assert_eq!(agentkernel::capabilities::memory::namespace_of(&notes), Some("team"));
    notes.call(&sandbox_tests::request("s", "remember shared fact")).await.unwrap();
    let storage = h.host.storage();
    assert_eq!(storage.kv_list("team", "session/s/note/", 10).unwrap().len(), 1);
    assert_eq!(storage.kv_get("team", "session/s/next-note").unwrap(), Some(b"1".to_vec()), "the note counter");
    assert!(storage.kv_list("notes", "", 10).unwrap().is_empty(), "nothing outside the granted namespace");
}

#[tokio::test]
async fn memory_and_compiled_cache_survive_a_restart() {
    let h = TestHost::new("");
    let notes = h.load("notes").await.unwrap();
    assert!(!notes.compile_cache_hit, "first load compiles");
    notes.call(&sandbox_tests::request("s", "remember across restarts")).await.unwrap();
    drop(notes);

    let h = h.reopen();
    let notes = h.load("notes").await.unwrap();
    assert!(notes.compile_cache_hit, "after a restart the compiled component comes from the cache");
    let out = notes.call(&sandbox_tests::request("s", "recall")).await.unwrap();
    assert_eq!(out.response.text, "You asked me to remember: across restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_calls_fuel_and_errors() {
    let h = TestHost::new("[limits]\nfuel = 10_000_000\n");
    h.install("echo", "echo.wasm");
    h.install("spin-loop", "spin.wasm");
    std::fs::write(h.agents_dir().join("junk.wasm"), b"junk").unwrap();
    let addr = h.serve().await;
    for _ in 0..3 {
        let (s, _) = post(addr, "/v1/agents/echo/call", &json!({"text": "x"})).await;
        assert_eq!(s, 200);
    }
    let (s, _) = post(addr, "/v1/agents/spin-loop/call", &json!({"text": "go"})).await;
    assert_eq!(s, 500);
    let (s, _) = post(addr, "/v1/agents/nobody/call", &json!({"text": "x"})).await;
    assert_eq!(s, 404);

    let r = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("agentkernel_agents_loaded"), 2.0);
    assert_eq!(value("agentkernel_agent_files_failed"), 1.0);
    assert_eq!(value("agentkernel_agent_calls_total{agent=\"echo\",outcome=\"ok\"}"), 3.0);
    assert_eq!(value("agentkernel_agent_calls_total{agent=\"spin-loop\",outcome=\"fuel-exhausted\"}"), 1.0);
    assert!(value("agentkernel_agent_fuel_consumed_total{agent=\"echo\"}") > 0.0);
    assert_eq!(value("agentkernel_agent_call_duration_seconds_count{agent=\"echo\"}"), 3.0);
    let route = "route=\"/v1/agents/{name}/call\"";
    assert_eq!(value(&format!("agentkernel_http_requests_total{{method=\"POST\",{route},status=\"200\"}}")), 3.0);
    assert_eq!(value(&format!("agentkernel_http_requests_total{{method=\"POST\",{route},status=\"404\"}}")), 1.0);
    assert_eq!(value(&format!("agentkernel_http_request_duration_seconds_count{{{route}}}")), 5.0);
    // Every sample line is `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok(), "bad sample: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_api_answers_only_loopback_host_names() {
    let h = TestHost::new("");
    h.install("echo", "echo.wasm");
    let addr = h.serve().await;
    let get_with_host = |host: String| async move {
        let r = reqwest::Client::new().get(format!("http://{addr}/v1/agents")).header("host", host).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    // A page on another origin reaching 127.0.0.1 by DNS rebinding sends its own name.
    for host in [format!("evil.example:{}", addr.port()), "attacker.test".to_string()] {
        let (s, r) = get_with_host(host.clone()).await;
        assert_eq!((s, r["error"]["code"].as_str()), (403, Some("host-not-allowed")), "{host}: {r}");
    }
    for host in [format!("localhost:{}", addr.port()), addr.to_string(), "[::1]:8080".to_string()] {
        assert_eq!(get_with_host(host.clone()).await.0, 200, "{host}");
    }
    // The chat page itself is public and harmless; the API behind it is not.
    let r = reqwest::Client::new().get(format!("http://{addr}/")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_api_refuses_to_serve_beyond_loopback() {
    let h = TestHost::new("");
    // However the address was chosen (config file, `--listen`, code).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let e = agentkernel::server::serve(listener, &h.host, std::future::pending()).await.unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}
