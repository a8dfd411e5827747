//! The chat service over real HTTP: routing (offline and by LLM), parallel
//! agents, synthesis, agent-to-agent collaboration in the trace, per-request
//! budgets, sessions, streaming, auth and rate limits.
use std::net::SocketAddr;
use std::time::Duration;

use sandbox_tests::TestHost;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use serde_json::{Value, json};

/// Grants the chat service's own agents the LLM (used only if configured).
const CHAT_AGENTS: &str = "
[agents.router]
llm = { profiles = [\"fast\"] }
[agents.synthesizer]
llm = { profiles = [\"fast\"] }
[agents.summarizer]
llm = { profiles = [\"fast\"] }
[agents.relay]
agents = { call = [\"echo\", \"relay\", \"notes\"] }
";

fn install_chat_agents(h: &TestHost) {
    for (krate, file) in [
        ("router", "router.wasm"),
        ("synthesizer", "synthesizer.wasm"),
        ("echo", "echo.wasm"),
        ("notes", "notes.wasm"),
        ("summarizer", "summarizer.wasm"),
        ("relay", "relay.wasm"),
    ] {
        h.install(krate, file);
    }
}

async fn chat_host(extra: &str) -> (TestHost, SocketAddr) {
    let h = TestHost::new(&format!("{CHAT_AGENTS}\n{extra}"));
    install_chat_agents(&h);
    let addr = h.serve().await;
    (h, addr)
}

async fn post_as(addr: SocketAddr, token: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
    let mut r = reqwest::Client::new().post(format!("http://{addr}{path}")).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    post_as(addr, None, path, body).await
}

async fn get_as(addr: SocketAddr, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut r = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn span_agents(resp: &Value) -> Vec<(String, String)> {
    resp["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["agent"].as_str().unwrap().to_string(), s["role"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_routing_picks_agents_by_skill_and_sessions_persist() {
    let (_h, addr) = chat_host("").await;

    let (s, r) = post(addr, "/v1/chat", &json!({"message": "remember that the door code is 1234"})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["agents"], json!(["notes"]));
    assert_eq!(r["route"]["by"], "router");
    assert!(r["route"]["reason"].as_str().unwrap().contains("remember"), "{}", r["route"]);
    assert_eq!(r["answer"], "Noted: the door code is 1234");
    assert_eq!(r["status"], "ok");
    assert_eq!(span_agents(&r), [("router".into(), "router".into()), ("notes".into(), "agent".into())]);
    for span in r["trace"].as_array().unwrap() {
        assert!(span["fuel"].as_u64().unwrap() > 0, "fuel recorded per span: {span}");
        assert!(span["elapsed_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(span["outcome"], "ok");
    }
    assert_eq!(r["usage"]["calls"], 2);
    let session = r["session"].as_str().unwrap().to_string();

    // Same session: the agent sees the earlier turns and its own notes.
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "recall my notes", "session": session})).await;
    assert_eq!(r["agents"], json!(["notes"]), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("1234"), "{r}");

    let (s, t) = get_as(addr, None, &format!("/v1/sessions/{session}")).await;
    assert_eq!(s, 200, "{t}");
    let turns = t["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 4);
    assert_eq!(turns[0]["role"], "user");
    assert_eq!(turns[0]["text"], "remember that the door code is 1234");
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(turns[1]["agents"], json!(["notes"]));
    assert_eq!(turns[1]["detail"]["trace"].as_array().unwrap().len(), 2, "the trace is kept with the turn");

    // Nothing fits: a polite list of what is available, not an error.
    let (s, r) = post(addr, "/v1/chat", &json!({"message": "what is the capital of France"})).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("no-match")), "{r}");
    assert!(r["answer"].as_str().unwrap().contains("notes:"), "{r}");
    assert!(!r["answer"].as_str().unwrap().contains("router:"), "internal agents are not offered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_agents_run_in_parallel_and_the_synthesizer_merges() {
    let (_h, addr) = chat_host("").await;
    let (s, r) = post(addr, "/v1/chat", &json!({"message": "say hi", "agents": ["echo", "summarizer"]})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["route"]["by"], "request");
    assert_eq!(r["agents"], json!(["echo", "summarizer"]));
    let roles = span_agents(&r);
    assert!(roles.contains(&("synthesizer".into(), "synthesizer".into())), "{roles:?}");
    // Offline, the synthesizer folds identical answers (both return the text).
    assert_eq!(r["answer"], "say hi", "{r}");
    assert_eq!(r["results"].as_array().unwrap().len(), 2);

    // Errors: unknown agent, empty message, malformed body.
    let (s, e) = post(addr, "/v1/chat", &json!({"message": "x", "agents": ["nope"]})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not-found")));
    let (s, e) = post(addr, "/v1/chat", &json!({"message": "  "})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid-request")));
    let (s, e) = post(addr, "/v1/chat", &json!({"mesage": "typo"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (422, Some("invalid-request")), "{e}");
    let (s, e) = post(addr, "/v1/chat", &json!({"message": "x", "session": "../etc"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid-request")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_agents_run_at_once_unless_max_parallel_says_otherwise() {
    // Two slow agents: a CPU-bound loop, and the summarizer waiting on a
    // model that never answers (until the 300 ms LLM timeout).
    let llm = ScriptedLlm::start(vec![Scripted::Hang]).await;
    let h = TestHost::new(&format!("{CHAT_AGENTS}\n{}", llm.config_with("timeout_ms = 300")));
    install_chat_agents(&h);
    h.install("spin-loop", "spin.wasm");
    let addr = h.serve().await;
    let end = |s: &Value| s["start_ms"].as_f64().unwrap() + s["elapsed_ms"].as_f64().unwrap();
    let body = json!({"message": "30000000", "agents": ["summarizer", "spin-loop"], "limits": {}});

    let (_, r) = post(addr, "/v1/chat", &body).await;
    let trace = r["trace"].as_array().unwrap();
    let (a, b) = (&trace[0], &trace[1]);
    assert!(b["start_ms"].as_f64().unwrap() < end(a), "the second started before the first ended: {trace:?}");

    llm.push(Scripted::Hang);
    let mut body = body;
    body["limits"]["max_parallel"] = json!(1);
    let (_, r) = post(addr, "/v1/chat", &body).await;
    let trace = r["trace"].as_array().unwrap();
    let (a, b) = (&trace[0], &trace[1]);
    assert!(b["start_ms"].as_f64().unwrap() >= end(a), "one at a time: {trace:?}");
    assert_eq!(r["status"], "ok", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collaboration_shows_nested_calls_and_budgets_bound_the_tree() {
    let (_h, addr) = chat_host("").await;
    let (s, r) = post(addr, "/v1/chat", &json!({"message": "@echo ping", "agents": ["relay"]})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["answer"], "relay got: ping");
    let trace = r["trace"].as_array().unwrap();
    assert_eq!(trace.len(), 2, "{trace:?}");
    assert_eq!((trace[1]["agent"].as_str(), trace[1]["role"].as_str()), (Some("echo"), Some("callee")));
    assert_eq!(trace[1]["parent"], trace[0]["id"], "the callee's parent is the relay's span");

    // A request that allows one call cannot make the nested one.
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "@echo ping", "agents": ["relay"], "limits": {"max_calls": 1}})).await;
    assert_eq!(r["results"][0]["data"]["error"], "budget-exceeded", "{r}");
    assert_eq!(r["usage"]["calls"], 1);
    // max_depth = 1: no agent-to-agent calls at all.
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "@echo ping", "agents": ["relay"], "limits": {"max_depth": 1}})).await;
    assert_eq!(r["results"][0]["data"]["error"], "depth-exceeded", "{r}");
    // A relay told to call itself is a cycle, refused at once.
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "@relay again", "agents": ["relay"]})).await;
    assert_eq!(r["results"][0]["data"]["error"], "depth-exceeded", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_fuel_budget_stops_a_spinning_agent() {
    let h = TestHost::new(CHAT_AGENTS);
    install_chat_agents(&h);
    h.install("spin-loop", "spin.wasm");
    let addr = h.serve().await;
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "100000000", "agents": ["spin-loop"], "limits": {"fuel": 1_000_000}})).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["results"][0]["error"]["code"], "budget-exceeded", "{r}");
    assert!(r["usage"]["fuel"].as_u64().unwrap() >= 1_000_000);
    // The same work within budget completes.
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "1000", "agents": ["spin-loop"], "limits": {"fuel": 1_000_000}})).await;
    assert_eq!(r["status"], "ok", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_agents_in_the_mix_do_not_hold_up_others() {
    // Unmetered, so the spinner runs until its deadline.
    let h = TestHost::new(&format!("{CHAT_AGENTS}\n[agents.spin-loop.limits]\ndeadline_ms = 8000\nfuel = \"off\"\n"));
    install_chat_agents(&h);
    h.install("spin-loop", "spin.wasm");
    h.install("memory-bomb", "bomb.wasm");
    let addr = h.serve().await;

    // A request mixing hostile agents with echo, and plain spinning
    // requests, all at once.
    let mix = tokio::spawn(async move {
        post(addr, "/v1/chat", &json!({"message": "forever", "agents": ["spin-loop", "memory-bomb", "echo"]})).await
    });
    let mut hostile: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { post(addr, "/v1/chat", &json!({"message": "forever", "agents": ["spin-loop"]})).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        let (s, r) = post(addr, "/v1/chat", &json!({"message": format!("hi {i}"), "agents": ["echo"]})).await;
        assert_eq!((s, r["answer"].as_str()), (200, Some(format!("hi {i}").as_str())));
    }
    // Every echo was answered while every spinner was still spinning: none
    // waited for a hostile request to end.
    if let Some(done) = hostile.iter_mut().find(|t| t.is_finished()) {
        panic!("a spinner ended before the echo requests were served: {:?}", done.await.unwrap());
    }
    assert!(!mix.is_finished());

    // The mixed request answers from echo; the others fail with their own limit errors.
    let (_, r) = mix.await.unwrap();
    assert_eq!(r["status"], "partial", "{r}");
    assert_eq!(r["answer"], "forever");
    assert_eq!(r["agents"], json!(["echo"]));
    let codes: Vec<&str> = r["results"].as_array().unwrap().iter().filter_map(|x| x["error"]["code"].as_str()).collect();
    assert_eq!(codes, ["deadline", "memory-limit"], "{r}");
    for t in hostile {
        let (_, r) = t.await.unwrap();
        assert_eq!(r["status"], "failed", "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_llm_the_router_and_synthesizer_use_it_and_tokens_are_counted() {
    let llm = ScriptedLlm::start(vec![
        Scripted::reply(r#"{"agents": ["echo", "summarizer", "not-an-agent"], "reason": "both fit"}"#),
        // The summarizer's own call, then the synthesizer's.
        Scripted::reply("A summary."),
        Scripted::reply("Combined answer."),
    ])
    .await;
    let (_h, addr) = chat_host(&llm.config()).await;
    let (s, r) = post(addr, "/v1/chat", &json!({"message": "anything at all"})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["route"]["reason"], "LLM: both fit");
    assert_eq!(r["agents"], json!(["echo", "summarizer"]), "unknown names from the model are dropped");
    assert_eq!(r["answer"], "Combined answer.");
    // Three LLM calls of 15 tokens each, charged to their spans.
    assert_eq!(r["usage"]["tokens"], 45, "{}", r["usage"]);
    let trace = r["trace"].as_array().unwrap();
    for agent in ["router", "summarizer", "synthesizer"] {
        let span = trace.iter().find(|s| s["agent"] == agent).unwrap();
        assert_eq!(span["tokens"], 15, "{span}");
    }
    assert_eq!(trace.iter().find(|s| s["agent"] == "echo").unwrap()["tokens"], 0);
    let cost = r["usage"]["cost_usd"].as_f64().unwrap();
    assert!((cost - 3.0 * (10.0 + 10.0) / 1e6).abs() < 1e-9, "cost {cost}");

    // A request token budget caps what the router may ask for; once spent,
    // the summarizer is refused before reaching the model and degrades.
    let before = llm.requests().len();
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "tl;dr this", "limits": {"tokens": 10}})).await;
    let sent = llm.requests();
    assert_eq!(sent.len(), before + 1, "only the router reached the model: {r}");
    assert_eq!(sent[before]["max_tokens"], 10);
    // The scripted "ok" is no routing choice: the router falls back to skills.
    assert!(r["route"]["reason"].as_str().unwrap().starts_with("skill keywords"), "{r}");
    assert_eq!(r["agents"], json!(["summarizer"]));
    assert_eq!(r["results"][0]["data"]["method"], "extractive", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_shows_the_work_as_it_happens() {
    let (_h, addr) = chat_host("").await;
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat"))
        .json(&json!({"message": "@echo ping", "agents": ["relay"], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let body = resp.text().await.unwrap();
    let events: Vec<(String, Value)> = body
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["route", "agent-start", "agent-start", "agent-end", "agent-end", "done"], "{body}");
    assert_eq!(events[2].1["agent"], "echo");
    assert_eq!(events[2].1["parent"], events[1].1["span"], "nested work is shown as nested");
    assert_eq!(events[3].1["output"], "ping");
    assert_eq!(events[5].1["answer"], "relay got: ping");
}

/// Server-sent events of a `/v1/chat` stream, as (event name, data).
async fn stream_events(addr: SocketAddr, body: &Value) -> Vec<(String, Value)> {
    let resp = reqwest::Client::new().post(format!("http://{addr}/v1/chat")).json(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_forwards_llm_tokens_as_they_arrive() {
    let llm = ScriptedLlm::start(vec![Scripted::reply("Cats sleep a lot.")]).await;
    let (_h, addr) = chat_host(&llm.config()).await;
    let events = stream_events(addr, &json!({"message": "Cats sleep sixteen hours a day.", "agents": ["summarizer"], "stream": true})).await;
    let tokens: Vec<&Value> = events.iter().filter(|(n, _)| n == "token").map(|(_, d)| d).collect();
    assert_eq!(tokens.len(), 4, "one event per streamed word: {events:?}");
    let text: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(text, "Cats sleep a lot.");
    assert!(tokens.iter().all(|t| t["agent"] == "summarizer" && t["span"] == 0));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let (first_token, end) = (names.iter().position(|n| *n == "token").unwrap(), names.iter().position(|n| *n == "agent-end").unwrap());
    assert!(names[first_token - 1] == "agent-start" && first_token < end, "tokens come while the agent runs: {names:?}");
    let (_, done) = events.last().unwrap();
    assert_eq!(done["answer"], "Cats sleep a lot.");
    assert_eq!(done["usage"]["tokens"], 15, "usage arrives with the stream");
    assert_eq!(llm.requests()[0]["stream"], true);
    // Without streaming, the same agent gets its reply in one piece.
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "Dogs bark.", "agents": ["summarizer"]})).await;
    assert_eq!(r["answer"], "ok");
    assert!(llm.requests()[1].get("stream").is_none_or(|s| s == false));
}

fn auth_config(extra: &str) -> String {
    format!(
        "[[host.tokens]]\nname = \"alice\"\ntoken = \"alice-secret-0123456789\"\nscopes = [\"chat\"]\n\
         [[host.tokens]]\nname = \"bob\"\ntoken = \"bob-secret-0123456789ab\"\nscopes = [\"chat\"]\nrequests_per_minute = 3\n\
         [[host.tokens]]\nname = \"ops\"\ntoken = \"ops-secret-0123456789ab\"\nscopes = [\"admin\"]\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_sessions_and_rate_limits() {
    let (_h, addr) = chat_host(&auth_config("")).await;
    let alice = Some("alice-secret-0123456789");
    let ops = Some("ops-secret-0123456789ab");

    let (s, e) = post(addr, "/v1/chat", &json!({"message": "say hi", "agents": ["echo"]})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (s, _) = post_as(addr, Some("wrong-token-0123456789"), "/v1/chat", &json!({"message": "hi", "agents": ["echo"]})).await;
    assert_eq!(s, 401);
    let (s, r) = post_as(addr, alice, "/v1/chat", &json!({"message": "say hi", "agents": ["echo"]})).await;
    assert_eq!(s, 200, "{r}");
    let session = r["session"].as_str().unwrap();

    // A chat token cannot reach admin endpoints; an admin token can.
    let (s, e) = get_as(addr, alice, "/metrics").await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")));
    let r = reqwest::Client::new().get(format!("http://{addr}/metrics")).bearer_auth(ops.unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("agentkernel_http_requests_total"));

    // Sessions belong to their token.
    assert_eq!(get_as(addr, alice, &format!("/v1/sessions/{session}")).await.0, 200);
    assert_eq!(get_as(addr, ops, &format!("/v1/sessions/{session}")).await.0, 404);

    // Public endpoints need no token.
    assert_eq!(get_as(addr, None, "/healthz").await.0, 200);
    assert_eq!(reqwest::get(format!("http://{addr}/")).await.unwrap().status(), 200);

    // bob may make 3 requests a minute.
    let bob = Some("bob-secret-0123456789ab");
    for _ in 0..3 {
        assert_eq!(get_as(addr, bob, "/v1/agents").await.0, 200);
    }
    let r = reqwest::Client::new().get(format!("http://{addr}/v1/agents")).bearer_auth(bob.unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate-limited");
    assert_eq!(get_as(addr, alice, "/v1/agents").await.0, 200, "limits are per token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tokens_naming_the_same_session_do_not_share_agent_memory() {
    let (_h, addr) = chat_host(&auth_config("")).await;
    let (alice, ops) = (Some("alice-secret-0123456789"), Some("ops-secret-0123456789ab"));
    let remember = json!({"message": "remember that the door code is 1234", "session": "shared", "agents": ["notes"]});
    let (s, r) = post_as(addr, alice, "/v1/chat", &remember).await;
    assert_eq!((s, r["answer"].as_str()), (200, Some("Noted: the door code is 1234")), "{r}");

    // The other token names the same session, and even alice's scoped id.
    for session in ["shared", "alice:shared"] {
        let (s, r) = post_as(addr, ops, "/v1/chat", &json!({"message": "recall my notes", "session": session, "agents": ["notes"]})).await;
        assert_eq!(s, 200, "{r}");
        assert!(!r["answer"].as_str().unwrap().contains("1234"), "{session}: {r}");
        let (s, r) = post_as(addr, ops, "/v1/agents/notes/call", &json!({"session_id": session, "text": "recall"})).await;
        assert_eq!((s, &r["data"]), (200, &json!([])), "direct call, {session}: {r}");
    }
    // A callee runs in its caller's session, whatever the caller asks.
    let (_, r) = post_as(addr, ops, "/v1/chat", &json!({"message": "@notes recall", "session": "shared", "agents": ["relay"]})).await;
    assert_eq!(r["results"][0]["data"]["ok"], true, "{r}");
    assert!(!r["answer"].as_str().unwrap().contains("1234"), "{r}");

    // The owner still finds the note, through chat, a callee and a direct call.
    let (_, r) = post_as(addr, alice, "/v1/chat", &json!({"message": "recall my notes", "session": "shared", "agents": ["notes"]})).await;
    assert!(r["answer"].as_str().unwrap().contains("1234"), "{r}");
    let (_, r) = post_as(addr, alice, "/v1/chat", &json!({"message": "@notes recall", "session": "shared", "agents": ["relay"]})).await;
    assert!(r["answer"].as_str().unwrap().contains("1234"), "{r}");
    let (_, r) = post_as(addr, alice, "/v1/agents/notes/call", &json!({"session_id": "shared", "text": "recall"})).await;
    assert_eq!(r["data"], json!(["the door code is 1234"]), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mistakes_are_json_errors_even_when_streaming() {
    let (_h, addr) = chat_host("").await;
    let cases = [
        ("/v1/chat", json!({"message": "  ", "stream": true}), 400, "invalid-request"),
        ("/v1/chat", json!({"message": "x", "agents": ["nope"], "stream": true}), 404, "not-found"),
        ("/v1/chat", json!({"message": "x", "session": "../etc", "stream": true}), 400, "invalid-request"),
        ("/v1/chat", json!({"message": "x", "agents": ["echo", "notes"], "limits": {"max_agents": 1}, "stream": true}), 400, "invalid-request"),
        ("/v1/chat", json!({"message": "x", "limits": {"max_calls": 0}}), 400, "invalid-request"),
        ("/v1/chat", json!({"message": "x", "agents": ["router"]}), 400, "invalid-request"),
        ("/v1/chat/completions", json!({"model": "nope", "messages": [{"role": "user", "content": "x"}], "stream": true}), 404, "not-found"),
        ("/v1/chat/completions", json!({"model": "echo", "messages": [{"role": "user", "content": ""}], "stream": true}), 400, "invalid-request"),
        ("/v1/chat/completions", json!({"model": "synthesizer", "messages": [{"role": "user", "content": "x"}]}), 400, "invalid-request"),
    ];
    for (path, body, status, code) in cases {
        let r = reqwest::Client::new().post(format!("http://{addr}{path}")).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{path} {body}: not a stream");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{path} {body}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_working_router_the_host_matches_skills() {
    // No router agent loaded.
    let h = TestHost::new("");
    h.install("echo", "echo.wasm");
    h.install("notes", "notes.wasm");
    let addr = h.serve().await;
    let (s, r) = post(addr, "/v1/chat", &json!({"message": "remember that the door code is 1234"})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["route"]["by"], "host");
    let reason = r["route"]["reason"].as_str().unwrap();
    assert!(reason.contains("not loaded") && reason.contains("remember"), "{reason}");
    assert_eq!(r["answer"], "Noted: the door code is 1234");
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "what is the capital of France"})).await;
    assert_eq!(r["status"], "no-match", "{r}");

    // A router that traps: the host routes, and the failed call is in the trace.
    let h = TestHost::new("[chat]\nrouter = \"panicker\"\n");
    h.install("echo", "echo.wasm");
    h.install("notes", "notes.wasm");
    h.install("panicker", "panicker.wasm");
    let addr = h.serve().await;
    let (s, r) = post(addr, "/v1/chat", &json!({"message": "please repeat this"})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!((r["route"]["by"].as_str(), r["agents"].clone()), (Some("host"), json!(["echo"])), "{r}");
    assert!(r["route"]["reason"].as_str().unwrap().contains("`panicker` failed"), "{r}");
    assert_eq!(r["answer"], "please repeat this");
    assert_eq!(r["trace"][0]["agent"], "panicker");
    assert_ne!(r["trace"][0]["outcome"], "ok");
}

#[test]
fn an_open_api_must_stay_on_loopback() {
    let e = agentkernel::config::HostConfig::parse("[host]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err();
    assert!(e.to_string().contains("[[host.tokens]]"), "{e}");
    assert!(agentkernel::config::HostConfig::parse(&format!("[host]\nlisten = \"0.0.0.0:8080\"\n{}", auth_config(""))).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_router_the_client_must_name_agents() {
    let h = TestHost::new("[chat]\nrouter = \"\"\nsynthesizer = \"\"\n");
    h.install("echo", "echo.wasm");
    h.install("notes", "notes.wasm");
    let addr = h.serve().await;
    let (s, e) = post(addr, "/v1/chat", &json!({"message": "hello"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("no-router")), "{e}");
    // Several answers and no synthesizer: the host merges them.
    let (_, r) = post(addr, "/v1/chat", &json!({"message": "remember milk", "agents": ["echo", "notes"]})).await;
    assert_eq!(r["answer"], "echo: remember milk\n\nnotes: Noted: milk", "{r}");
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let (_h, addr) = chat_host("").await;
    let doc: Value = reqwest::get(format!("http://{addr}/openapi.json")).await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/chat", "post"),
        ("/v1/chat/completions", "post"),
        ("/v1/models", "get"),
        ("/v1/sessions/{id}", "get"),
        ("/v1/agents", "get"),
        ("/v1/agents/{name}", "get"),
        ("/v1/agents/{name}/call", "post"),
        ("/mcp", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing from /openapi.json");
    }
    // And nothing is documented that the server does not answer.
    for path in paths.keys() {
        let concrete = path.replace("{id}", "x").replace("{name}", "echo");
        let r = reqwest::Client::new().get(format!("http://{addr}{concrete}")).send().await.unwrap();
        let body = r.text().await.unwrap();
        assert!(!body.contains("no such endpoint"), "{path} is documented but not served");
    }
}
