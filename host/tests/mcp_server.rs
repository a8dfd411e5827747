//! `POST /mcp`, driven by the official `mcp` Python client (installed by
//! `scripts/deps/mcp-client.sh`, which exports `AGENTKERNEL_MCP_PYTHON`),
//! and by hand for what that client never sends (foreign origins, bad
//! bodies, unknown methods).
use sandbox_tests::TestHost;
use serde_json::{Value, json};

const TOKEN: &str = "mcp-secret-0123456789";

fn python() -> String {
    std::env::var("AGENTKERNEL_MCP_PYTHON")
        .expect("AGENTKERNEL_MCP_PYTHON is unset: run ./scripts/test (scripts/deps/mcp-client.sh installs the client)")
}

/// A host serving `echo`, `notes` and the hostile `spin-loop` (a tight
/// loop that only its limits stop), with one chat-scoped token.
async fn serve() -> (TestHost, std::net::SocketAddr) {
    let h = TestHost::new(&format!(
        "[[host.tokens]]\nname = \"tools\"\ntoken = \"{TOKEN}\"\nscopes = [\"chat\"]\n\
         [limits]\nfuel = 50000000\n"
    ));
    for (krate, file) in [("router", "router.wasm"), ("echo", "echo.wasm"), ("notes", "notes.wasm"), ("spin-loop", "spin-loop.wasm")] {
        h.install(krate, file);
    }
    let addr = h.serve().await;
    (h, addr)
}

/// What the official client saw doing `args`.
async fn client(addr: std::net::SocketAddr, token: &str, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .arg(format!("http://{addr}"))
        .arg(token)
        .args(args)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed ({args:?}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("client printed no JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_mcp_client_lists_and_calls_agents_as_tools() {
    let (_h, addr) = serve().await;

    let listed = client(addr, TOKEN, &["list"]).await;
    assert_eq!(listed["server"]["name"], "agentkernel");
    assert_eq!(listed["protocol"], "2025-11-25");
    let names: Vec<&str> = listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["auto", "echo", "notes", "spin-loop"], "every agent but the router, and auto");
    let echo = &listed["tools"][1];
    assert!(echo["description"].as_str().unwrap().to_lowercase().contains("echo"), "from the manifest: {echo}");
    assert_eq!(echo["inputSchema"]["required"], json!(["text"]));
    assert_eq!(echo["outputSchema"]["type"], "object");

    // One JSON response, and the client checks the structured content
    // against the tool's output schema.
    let plain = client(addr, TOKEN, &["call-plain", "echo", "hello there"]).await;
    assert_eq!(plain["isError"], false, "{plain}");
    assert_eq!(plain["text"], "hello there");
    assert_eq!(plain["structured"]["agents"], json!(["echo"]));
    assert_eq!(plain["structured"]["status"], "ok");
    assert_eq!(plain["progress"], json!([]));

    // Asking for progress: server-sent events, a notification as the agent
    // starts and one as it ends, then the same result.
    let streamed = client(addr, TOKEN, &["call", "echo", "hello again"]).await;
    assert_eq!(streamed["text"], "hello again", "{streamed}");
    let messages: Vec<&str> = streamed["progress"].as_array().unwrap().iter().map(|p| p["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.starts_with("echo") && m.contains("started")), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("echo:")), "{messages:?}");
    let steps: Vec<f64> = streamed["progress"].as_array().unwrap().iter().map(|p| p["progress"].as_f64().unwrap()).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "progress only increases: {steps:?}");

    // `auto` routes as chat does (the router's keywords pick notes).
    let routed = client(addr, TOKEN, &["call-plain", "auto", "remember that the milk is gone"]).await;
    assert_eq!(routed["structured"]["agents"], json!(["notes"]), "{routed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_stopped_by_its_limits_is_a_typed_tool_error() {
    let (_h, addr) = serve().await;
    let out = client(addr, TOKEN, &["call-plain", "spin-loop", "spin"]).await;
    assert_eq!(out["isError"], true, "{out}");
    let error = &out["structured"]["results"][0]["error"];
    assert_eq!(error["code"], "fuel-exhausted", "the limit that stopped it, by its code: {out}");
    assert_eq!(out["structured"]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_valid_token_is_refused() {
    let (_h, addr) = serve().await;
    for token in ["-", "not-the-token-0123456789"] {
        let out = client(addr, token, &["noauth"]).await;
        assert!(out["error"].is_string(), "initialize must fail without a valid token ({token}): {out}");
        assert_eq!(out["type"], "MCPError", "{out}");
    }
}

/// What the official client never sends: each is refused with a clear
/// error, and JSON-RPC errors keep the request's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_bad_messages_and_unknown_names_are_refused() {
    let (_h, addr) = serve().await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/mcp");
    let post = |body: String| http.post(&url).bearer_auth(TOKEN).header("content-type", "application/json").body(body);

    // A page on another site (DNS rebinding) is refused before anything runs.
    let r = post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden-origin", "the one error shape: {body}");

    let r = post("{not json".into()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32700);

    let rpc = |body: Value| async move {
        let r = post(body.to_string()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let unknown = rpc(json!({"jsonrpc": "2.0", "id": "a", "method": "resources/list"})).await;
    assert_eq!((&unknown["id"], &unknown["error"]["code"]), (&json!("a"), &json!(-32601)), "{unknown}");
    let no_tool = rpc(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "router", "arguments": {"text": "x"}}})).await;
    assert_eq!(no_tool["error"]["code"], -32602, "the router is not a tool: {no_tool}");
    // Arguments that do not fit the schema: a tool error the model can
    // read, its structured content still the output schema's shape.
    let bad_args = rpc(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": 5}}})).await;
    assert_eq!(bad_args["result"]["isError"], true, "{bad_args}");
    assert_eq!(bad_args["result"]["structuredContent"]["error"]["code"], "invalid-arguments", "{bad_args}");
    assert_eq!(bad_args["result"]["structuredContent"]["status"], "refused", "{bad_args}");

    // One message per request, and a request has an id.
    let r = post(json!([{"jsonrpc": "2.0", "id": 5, "method": "ping"}]).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32600, "a batch");
    let r = post(json!({"jsonrpc": "2.0", "id": null, "method": "ping"}).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400, "a null id is not a notification");
    // Ids and progress tokens are echoed in every answer and event: short only.
    let r = post(json!({"jsonrpc": "2.0", "id": "i".repeat(100_000), "method": "ping"}).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400, "a 100 kB id");
    let r = post(json!({"jsonrpc": "2.0", "id": {"nested": [1, 2]}, "method": "ping"}).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400, "an object id");
    let big_token = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": {"progressToken": "p".repeat(100_000)}}});
    assert_eq!(rpc(big_token).await["error"]["code"], -32602, "a 100 kB progress token");

    // Notifications are accepted with no body; there is no stream to open.
    let r = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = post(json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}).to_string())
        .header("mcp-protocol-version", "1999-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an unknown protocol revision");
}
