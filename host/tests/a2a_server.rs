//! The A2A server (`/.well-known/agent-card.json`, `POST /a2a`), driven by
//! the official `a2a-sdk` Python client (installed by
//! `scripts/deps/a2a-client.sh`, which exports `AGENTKERNEL_A2A_PYTHON`)
//! through `host/tests/a2a_client.py`, and by hand for what that client
//! never sends.
use std::net::SocketAddr;
use std::time::Duration;

use sandbox_tests::TestHost;
use serde_json::{Value, json};

const TOKEN: &str = "a2a-secret-0123456789";

fn python() -> String {
    std::env::var("AGENTKERNEL_A2A_PYTHON")
        .expect("AGENTKERNEL_A2A_PYTHON is unset: run ./scripts/test (scripts/deps/a2a-client.sh installs the client)")
}

async fn serve(config: &str, agents: &[(&str, &str)]) -> (TestHost, SocketAddr) {
    let h = TestHost::new(config);
    for (krate, file) in agents {
        h.install(krate, file);
    }
    let addr = h.serve().await;
    (h, addr)
}

/// What the official client saw doing `args` (with `token`, if any).
async fn client(addr: SocketAddr, token: Option<&str>, args: &[&str]) -> Value {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/a2a_client.py")).arg(format!("http://{addr}")).args(args);
    match token {
        Some(t) => cmd.env("AGENTKERNEL_A2A_TOKEN", t),
        None => cmd.env_remove("AGENTKERNEL_A2A_TOKEN"),
    };
    let out = cmd.output().await.expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed ({args:?}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("client printed no JSON ({e}): {stdout}"))
}

const AGENTS: [(&str, &str); 4] = [("router", "router.wasm"), ("echo", "echo.wasm"), ("notes", "notes.wasm"), ("spin-loop", "spin-loop.wasm")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_a2a_client_reads_the_card_sends_streams_and_gets_tasks() {
    let (_h, addr) = serve("[limits]\nfuel = 50000000\n", &AGENTS).await;

    let card = client(addr, None, &["card"]).await;
    assert_eq!(card["name"], "agentkernel", "{card}");
    assert_eq!(card["streaming"], true);
    assert_eq!(card["interfaces"], json!([{"url": format!("http://{addr}/a2a"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]));
    let skills: Vec<&str> = card["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(skills, ["auto", "echo", "notes", "spin-loop"], "every agent but the router, and auto");
    assert!(card["skills"][1]["tags"].as_array().unwrap().contains(&json!("echo")), "keywords as tags: {card}");
    assert_eq!(card["securitySchemes"], json!({}), "an open host asks for no token");

    // A message to a named agent: a completed task with the answer as an
    // artifact (text, and the chat response as data).
    let sent = client(addr, None, &["send", "hello there", "echo"]).await;
    assert_eq!(sent["kind"], "task", "{sent}");
    assert_eq!(sent["state"], "TASK_STATE_COMPLETED", "{sent}");
    assert_eq!(sent["artifactText"], "hello there");
    assert_eq!(sent["data"][0]["agents"], json!(["echo"]));
    assert_eq!(sent["data"][0]["status"], "ok");
    let (task, context) = (sent["taskId"].as_str().unwrap().to_string(), sent["contextId"].as_str().unwrap().to_string());

    // The context is the chat session: a second message continues it.
    let again = client(addr, None, &["send", "remember that the milk is gone", "", &context]).await;
    assert_eq!(again["contextId"], context.as_str());
    assert_eq!(again["data"][0]["agents"], json!(["notes"]), "routed as chat routes: {again}");
    let transcript: Value = reqwest::get(format!("http://{addr}/v1/sessions/{context}")).await.unwrap().json().await.unwrap();
    assert_eq!(transcript["turns"].as_array().unwrap().len(), 4, "two exchanges in one session: {transcript}");

    // GetTask finds it again, its history cut as asked.
    let got = client(addr, None, &["get", &task]).await;
    assert_eq!((got["state"].as_str(), got["text"].as_str()), (Some("TASK_STATE_COMPLETED"), Some("hello there")));
    assert_eq!(got["historyLength"], 2, "the user's message and the answer");
    assert_eq!(client(addr, None, &["get", &task, "1"]).await["historyLength"], 1);

    // Streaming: the task, working updates as agents start and end, the
    // answer, the final state.
    let streamed = client(addr, None, &["stream", "hello stream", "echo"]).await;
    assert_eq!(streamed["calls"][0]["method"], "send_message_streaming", "{streamed}");
    let kinds: Vec<&str> = streamed["kinds"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"task"), "{kinds:?}");
    assert_eq!(&kinds[kinds.len() - 2..], ["artifactUpdate", "statusUpdate"], "{kinds:?}");
    let progress: Vec<&str> = streamed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "TASK_STATE_WORKING")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(progress.iter().any(|t| t.starts_with("echo") && t.contains("started")), "{progress:?}");
    assert!(progress.iter().any(|t| *t == "echo: ok"), "{progress:?}");
    assert_eq!(streamed["state"], "TASK_STATE_COMPLETED");
    assert_eq!(streamed["artifactText"], "hello stream");

    // Errors, typed as the protocol's.
    let unknown = client(addr, None, &["get", "t-nope"]).await;
    assert_eq!(unknown["error"]["code"], -32001, "TaskNotFound: {unknown}");
    let ended = client(addr, None, &["cancel", &task]).await;
    assert_eq!(ended["error"]["code"], -32002, "TaskNotCancelable: {ended}");
    let no_agent = client(addr, None, &["send", "hi", "no-such-agent"]).await;
    assert_eq!(no_agent["error"]["code"], -32602, "{no_agent}");

    // An agent stopped by its limits: a failed task saying which limit.
    let spun = client(addr, None, &["send", "spin", "spin-loop"]).await;
    assert_eq!(spun["state"], "TASK_STATE_FAILED", "{spun}");
    assert_eq!(spun["data"][0]["results"][0]["error"]["code"], "fuel-exhausted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_task_stops_the_calls_of_a_running_task() {
    // One instance in the whole pool: while the spinning agent runs, no
    // other call can start, so a freed slot shows the call was stopped.
    let config = "[host]\nmax_instances = 1\n[limits]\nfuel = 100000000000000\ndeadline_ms = 120000\n[chat]\ntimeout_ms = 120000\n";
    let (_h, addr) = serve(config, &[("echo", "echo.wasm"), ("spin-loop", "spin-loop.wasm")]).await;
    let working = client(addr, None, &["send-nowait", "spin", "spin-loop"]).await;
    assert!(matches!(working["state"].as_str(), Some("TASK_STATE_WORKING" | "TASK_STATE_SUBMITTED")), "{working}");
    let task = working["taskId"].as_str().unwrap().to_string();

    let busy = reqwest::Client::new().post(format!("http://{addr}/v1/agents/echo/call")).json(&json!({"text": "x"})).send().await.unwrap();
    assert_eq!(busy.status(), 503, "the one instance is busy spinning");

    let canceled = client(addr, None, &["cancel", &task]).await;
    assert_eq!(canceled["state"], "TASK_STATE_CANCELED", "{canceled}");
    assert_eq!(client(addr, None, &["get", &task]).await["state"], "TASK_STATE_CANCELED");
    let mut freed = false;
    for _ in 0..100 {
        let r = reqwest::Client::new().post(format!("http://{addr}/v1/agents/echo/call")).json(&json!({"text": "x"})).send().await.unwrap();
        if r.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the canceled task's call still holds the instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_card_asks_for_one_and_lists_agents_only_to_a_holder() {
    let config = format!("[[host.tokens]]\nname = \"peer\"\ntoken = \"{TOKEN}\"\nscopes = [\"chat\"]\n");
    let (_h, addr) = serve(&config, &AGENTS).await;

    let card = client(addr, None, &["card"]).await;
    assert_eq!(card["securityRequirements"], json!([["bearer"]]), "{card}");
    assert_eq!(card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"], "bearer");
    let public: Vec<&str> = card["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(public, ["auto"], "agents are not listed to anyone without a token");

    let refused = client(addr, None, &["send", "hello", "echo"]).await;
    assert_eq!(refused["error"]["httpStatus"], 401, "{refused}");
    let wrong = client(addr, Some("not-the-token-000000"), &["send", "hello", "echo"]).await;
    assert_eq!(wrong["error"]["httpStatus"], 401, "{wrong}");

    let sent = client(addr, Some(TOKEN), &["send", "hello", "echo"]).await;
    assert_eq!(sent["state"], "TASK_STATE_COMPLETED", "{sent}");
    assert_eq!(sent["calls"][0]["authorized"], true);
    let extended = client(addr, Some(TOKEN), &["extended-card"]).await;
    let skills: Vec<&str> = extended["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(skills, ["auto", "echo", "notes", "spin-loop"], "{extended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_client_never_sends_gets_json_rpc_errors() {
    let (_h, addr) = serve("", &[("echo", "echo.wasm")]).await;
    let post = |body: String, version: Option<&'static str>| async move {
        let mut r = reqwest::Client::new().post(format!("http://{addr}/a2a")).header("content-type", "application/json").body(body);
        if let Some(v) = version {
            r = r.header("A2A-Version", v);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200, "JSON-RPC errors travel with HTTP 200");
        r.json::<Value>().await.unwrap()
    };
    let code = |v: &Value| v["error"]["code"].as_i64().unwrap();
    assert_eq!(code(&post("{not json".into(), None).await), -32700);
    assert_eq!(code(&post("[]".into(), None).await), -32600, "no batches");
    assert_eq!(code(&post(json!({"jsonrpc": "2.0", "id": 1, "method": "Nope"}).to_string(), None).await), -32601);
    let send = |parts: Value| json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": parts, "metadata": {"agent": "echo"}}}}).to_string();
    assert_eq!(code(&post(send(json!([{"text": "hi"}])), Some("0.3")).await), -32009, "an unsupported A2A-Version");
    assert_eq!(code(&post(send(json!([{"url": "https://example.com/x.pdf"}])), None).await), -32005, "files are not taken");
    assert_eq!(code(&post(send(json!([])), None).await), -32602, "an empty message");
    let push = json!({"jsonrpc": "2.0", "id": 3, "method": "CreateTaskPushNotificationConfig", "params": {}}).to_string();
    assert_eq!(code(&post(push, None).await), -32003);
    // A data part reaches the agent as JSON text.
    let ok = post(send(json!([{"data": {"n": 1}}])), Some("1.0")).await;
    assert_eq!(ok["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{ok}");
    assert_eq!(ok["result"]["task"]["artifacts"][0]["parts"][0]["text"], "{\"n\":1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_client_meets_the_origin_check_short_ids_and_the_detached_run_cap() {
    // Two connections' worth of runs may outlive their requests.
    let config = "[server]\nmax_connections = 2\nmax_connections_per_ip = 2\n[limits]\nfuel = 100000000000000\ndeadline_ms = 120000\n[chat]\ntimeout_ms = 120000\n";
    let (_h, addr) = serve(config, &[("echo", "echo.wasm"), ("spin-loop", "spin-loop.wasm")]).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/a2a");
    let rpc = |body: Value| http.post(&url).header("content-type", "application/json").body(body.to_string());
    let send = |id: Value, text: &str, agent: &str, now: bool| {
        json!({"jsonrpc": "2.0", "id": id, "method": "SendMessage", "params": {
            "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": text}], "metadata": {"agent": agent}},
            "configuration": {"returnImmediately": now}}})
    };

    // A page on another site cannot post a message (no preflight for text/plain).
    let r = http.post(&url).header("origin", "http://evil.example").header("content-type", "text/plain")
        .body(send(json!(1), "hi", "echo", false).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "forbidden-origin");

    // Ids are echoed: only short ones.
    let r: Value = rpc(send(json!("i".repeat(100_000)), "hi", "echo", false)).send().await.unwrap().json().await.unwrap();
    assert_eq!((r["id"].clone(), r["error"]["code"].clone()), (Value::Null, json!(-32600)), "a 100 kB id");
    let r: Value = rpc(send(json!({"a": [1]}), "hi", "echo", false)).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["error"]["code"], -32600, "an object id");

    // Runs that return at once keep running: at most max_connections of them.
    let mut tasks = Vec::new();
    for i in 0..2 {
        let r: Value = rpc(send(json!(i), "spin", "spin-loop", true)).send().await.unwrap().json().await.unwrap();
        tasks.push(r["result"]["task"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string());
    }
    let r: Value = rpc(send(json!(3), "spin", "spin-loop", true)).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["error"]["code"], -32050, "a third detached run: {r}");
    assert_eq!(r["error"]["data"][0]["reason"], "busy", "{r}");
    for task in &tasks {
        let r: Value = rpc(json!({"jsonrpc": "2.0", "id": 9, "method": "CancelTask", "params": {"id": task}})).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["result"]["status"]["state"], "TASK_STATE_CANCELED", "{r}");
    }
    // Canceled runs give their places back.
    let mut answered = Value::Null;
    for _ in 0..100 {
        answered = rpc(send(json!(10), "hi", "echo", false)).send().await.unwrap().json().await.unwrap();
        if answered["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{answered}");
    // What a task keeps of the message is its text, not the client's extras.
    let mut extra = send(json!(11), "kept", "echo", false);
    extra["params"]["message"]["metadata"]["junk"] = json!(vec![Value::Null; 10_000]);
    let r: Value = rpc(extra).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["result"]["task"]["history"][0]["parts"], json!([{"text": "kept"}]), "{r}");
    assert!(r["result"]["task"]["history"][0].get("metadata").is_none(), "{r}");
}
