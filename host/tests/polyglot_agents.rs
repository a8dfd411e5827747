//! Agents written in Python (componentize-py) and JavaScript
//! (componentize-js), built by `scripts/deps/polyglot.sh`'s
//! `build_polyglot_agents`: loaded, checked against policy, routed to by
//! chat, using `memory` and `llm`, and held by the same limits as a Rust
//! agent when hostile (an endless loop, memory growth).
use std::net::SocketAddr;

use sandbox_tests::TestHost;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use serde_json::{Value, json};

async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("http://{addr}{path}")).json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn chat(addr: SocketAddr, message: &str) -> Value {
    let (status, r) = post(addr, "/v1/chat", &json!({"message": message, "session": "poly-1"})).await;
    assert_eq!(status, 200, "{r}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_agents_are_routed_to_and_use_memory_and_the_llm() {
    let llm = ScriptedLlm::start(vec![]).await;
    let config = format!(
        "[agents.router]\nllm = {{ profiles = [\"fast\"] }}\n[agents.journal-py]\nllm = {{ profiles = [\"fast\"] }}\n\
         [agents.tally-js]\nllm = {{ profiles = [\"fast\"] }}\n{}",
        llm.config()
    );
    let h = TestHost::new(&config);
    for (krate, file) in [("router", "router.wasm"), ("echo", "echo.wasm"), ("journal-py", "journal-py.wasm"), ("tally-js", "tally-js.wasm")] {
        h.install(krate, file);
    }
    let addr = h.serve().await;

    // Loaded with the imports their narrowed worlds declare, nothing else.
    let agents: Value = reqwest::get(format!("http://{addr}/v1/agents")).await.unwrap().json().await.unwrap();
    let failed = &agents["failed_files"];
    assert!(failed.as_array().is_none_or(|f| f.is_empty()), "{failed}");
    for name in ["journal-py", "tally-js"] {
        let a = agents["agents"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("{name}: {agents}"));
        let imports: Vec<&str> = a["imports"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(imports, ["llm", "log", "memory"], "{name}: {a}");
    }

    // The router agent's model answers no choice, so it matches keywords:
    // each agent is picked by its manifest's skills. Memory keeps state
    // between calls, each in a fresh instance.
    let no_choice = || Scripted::reply("no routing choice here");
    llm.push(no_choice());
    let r = chat(addr, "journal: bought milk and eggs. Then coffee.").await;
    assert_eq!(r["agents"], json!(["journal-py"]), "{r}");
    assert_eq!(r["status"], "ok", "{r}");
    llm.push(no_choice());
    let r = chat(addr, "read my journal").await;
    assert!(r["answer"].as_str().unwrap().contains("bought milk and eggs"), "{r}");
    llm.push(no_choice());
    llm.push(Scripted::reply("You bought groceries."));
    let r = chat(addr, "summarize my journal").await;
    assert!(r["answer"].as_str().unwrap().contains("You bought groceries."), "from the model: {r}");
    let journal = r["trace"].as_array().unwrap().iter().find(|s| s["agent"] == "journal-py").unwrap();
    assert_eq!(journal["tokens"], 15, "the Python agent's LLM call is charged to its span: {journal}");

    llm.push(no_choice());
    let r = chat(addr, "count coffee").await;
    assert_eq!(r["agents"], json!(["tally-js"]), "{r}");
    llm.push(no_choice());
    let r = chat(addr, "count coffee").await;
    assert!(r["answer"].as_str().unwrap().contains('2'), "a counter in memory: {r}");
    llm.push(no_choice());
    llm.push(Scripted::reply("Plenty of coffee."));
    let r = chat(addr, "tally report").await;
    assert!(r["answer"].as_str().unwrap().contains("Plenty of coffee."), "from the model: {r}");
    let tally = r["trace"].as_array().unwrap().iter().find(|s| s["agent"] == "tally-js").unwrap();
    assert_eq!(tally["tokens"], 15, "{tally}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_or_javascript_agent_without_a_grant_is_refused_at_load() {
    // `llm` is not granted by default: the import check names the line to add.
    let h = TestHost::new("");
    for name in ["journal-py", "tally-js"] {
        let err = h.load(name).await.err().unwrap_or_else(|| panic!("{name} loaded without an llm grant"));
        let msg = err.to_string();
        assert!(msg.contains("llm") && msg.contains(&format!("[agents.{name}]")), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_python_and_javascript_agents_are_stopped_by_the_same_limits() {
    let h = TestHost::new("[limits]\nfuel = 2000000000\nmemory_bytes = 67108864\n");
    for (krate, file) in [("echo", "echo.wasm"), ("hostile-py", "hostile-py.wasm"), ("hostile-js", "hostile-js.wasm")] {
        h.install(krate, file);
    }
    let addr = h.serve().await;
    for agent in ["hostile-py", "hostile-js"] {
        let (status, r) = post(addr, &format!("/v1/agents/{agent}/call"), &json!({"text": "hello"})).await;
        assert_eq!(status, 200, "{agent} answers a harmless request: {r}");

        let (_, r) = post(addr, &format!("/v1/agents/{agent}/call"), &json!({"text": "spin"})).await;
        assert_eq!(r["error"]["code"], "fuel-exhausted", "{agent}: {r}");

        let (_, r) = post(addr, &format!("/v1/agents/{agent}/call"), &json!({"text": "grow"})).await;
        let code = r["error"]["code"].as_str().unwrap_or_default();
        // The runtime's allocator either traps on the refused growth or
        // reports it as the agent's own error; either way the call ends.
        assert!(matches!(code, "memory-limit" | "agent-error" | "trap"), "{agent}: {r}");
        assert!(r["error"]["message"].as_str().unwrap_or_default().len() < 64 * 1024, "{agent}");

        // The host is unharmed: other agents and this one still answer.
        let (status, _) = post(addr, "/v1/agents/echo/call", &json!({"text": "still here"})).await;
        assert_eq!(status, 200);
        let (status, _) = post(addr, &format!("/v1/agents/{agent}/call"), &json!({"text": "hello"})).await;
        assert_eq!(status, 200, "{agent} recovers: each call is a fresh instance");
    }
}
