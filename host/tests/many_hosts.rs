//! Several `agentkernel serve` processes sharing one PostgreSQL database,
//! as operators run them behind a load balancer: a conversation continues
//! on any host, agent memory and its quota are one across hosts, and a host
//! killed mid-load (`kill -9`) loses no write it acknowledged while the
//! others keep serving. Each test takes a fresh database in the cluster
//! `scripts/deps/postgres.sh` starts (skipped, saying so, without one).
use std::path::Path;
use std::time::Duration;

use agentkernel::storage::Storage;
use agentkernel::storage::postgres::{PostgresStorage, testing};
use sandbox_tests::llm_server::ScriptedLlm;
use sandbox_tests::served::Served;
use serde_json::{Value, json};

/// A `serve` host on `database` with `echo` and `notes`.
fn serve(database: &str, config_extra: &str) -> Served {
    serve_with(database, config_extra, &["echo", "notes"])
}

fn serve_with(database: &str, config_extra: &str, agents: &[&str]) -> Served {
    Served::start(Path::new(env!("CARGO_BIN_EXE_agentkernel")), &format!("[storage]\nurl = \"{database}\"\n{config_extra}"), agents)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    match client.post(url).json(&body).timeout(Duration::from_secs(30)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn call_notes(client: &reqwest::Client, host: &Served, session: &str, text: &str) -> (u16, Value) {
    post(client, format!("{}/v1/agents/notes/call", host.url), json!({"text": text, "session_id": session})).await
}

async fn recall(client: &reqwest::Client, host: &Served, session: &str) -> Vec<String> {
    let (status, body) = call_notes(client, host, session, "recall").await;
    assert_eq!(status, 200, "recall on {}: {body}", host.url);
    serde_json::from_value(body["data"].clone()).unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn a_conversation_and_agent_memory_continue_on_any_host() {
    let Some(database) = testing::fresh_database("conversation_on_any_host") else { return };
    let (a, b) = (serve(&database, ""), serve(&database, ""));
    runtime().block_on(async {
        let client = reqwest::Client::new();
        // One chat session, turns alternating between the hosts.
        let mut session: Option<String> = None;
        for (i, host) in [&a, &b, &a, &b].into_iter().enumerate() {
            let (status, body) = post(
                &client,
                format!("{}/v1/chat", host.url),
                json!({"message": format!("remember item {i}"), "session": session, "agents": ["notes"]}),
            )
            .await;
            assert_eq!(status, 200, "turn {i} on {}: {body}", host.url);
            session = Some(body["session"].as_str().expect("the session id").to_string());
        }
        let session = session.unwrap();
        // Both hosts read the same transcript, in order.
        for host in [&a, &b] {
            let transcript: Value =
                client.get(format!("{}/v1/sessions/{session}", host.url)).send().await.unwrap().json().await.unwrap();
            let said: Vec<&str> = transcript["turns"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["role"] == "user")
                .filter_map(|t| t["text"].as_str())
                .collect();
            assert_eq!(said, ["remember item 0", "remember item 1", "remember item 2", "remember item 3"], "on {}", host.url);
        }
        // The agent's memory is one: what was noted through A is recalled through B.
        for (i, host) in [&a, &b].into_iter().enumerate() {
            let (status, _) = call_notes(&client, host, "direct", &format!("remember direct {i}")).await;
            assert_eq!(status, 200);
        }
        assert_eq!(recall(&client, &a, "direct").await, ["direct 0", "direct 1"]);
        assert_eq!(recall(&client, &b, "direct").await, ["direct 0", "direct 1"]);
    });
}

/// A memory quota is one across hosts: with `max_keys = 20` (one key is the
/// session's note counter) exactly 19 of 48 concurrent notes land, spread
/// over two hosts, where two hosts on their own databases would take 38.
#[test]
fn a_memory_quota_holds_across_hosts() {
    let Some(database) = testing::fresh_database("quota_across_hosts") else { return };
    let config = "[agents.notes]\nmemory = { max_keys = 20 }\n";
    let (a, b) = (serve(&database, config), serve(&database, config));
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let (status, _) = call_notes(&client, &a, "q", "remember first").await;
        assert_eq!(status, 200);
        let calls = (1..48).map(|i| {
            let (client, host) = (client.clone(), if i % 2 == 0 { &a } else { &b });
            async move { call_notes(&client, host, "q", &format!("remember note {i}")).await }
        });
        let results = futures_util::future::join_all(calls).await;
        let accepted = 1 + results.iter().filter(|(s, _)| *s == 200).count();
        let refused: Vec<&Value> = results.iter().filter(|(s, _)| *s != 200).map(|(_, b)| b).collect();
        assert_eq!(accepted, 19, "exactly the quota's worth of notes lands across both hosts");
        assert!(
            refused.iter().all(|b| b.to_string().to_lowercase().contains("quota")),
            "every refusal is the quota's: {:?}",
            refused.iter().find(|b| !b.to_string().to_lowercase().contains("quota"))
        );
        assert_eq!(recall(&client, &a, "q").await.len(), 19);
        assert_eq!(recall(&client, &b, "q").await.len(), 19);
    });
}

/// `kill -9` of one host mid-load: every note it acknowledged is there
/// afterwards, and the other host answers every call throughout.
#[test]
fn a_killed_host_loses_no_acknowledged_write_and_the_others_keep_serving() {
    let Some(database) = testing::fresh_database("killed_host") else { return };
    let (mut a, b) = (serve(&database, ""), serve(&database, ""));
    let rt = runtime();
    let client = reqwest::Client::new();
    let acked_on_a = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = |host_url: String, tag: &'static str, n: usize| {
        let (client, acked_on_a) = (client.clone(), acked_on_a.clone());
        rt.spawn(async move {
            // (session, note): `recall` lists up to 100 notes, so 50 a session.
            let mut acknowledged: Vec<(String, String)> = Vec::new();
            let mut failed = 0;
            for i in 0..n {
                let session = format!("load-{tag}-{}", i / 50);
                let body = json!({"text": format!("remember {tag}-{i}"), "session_id": session});
                let (status, _) = post(&client, format!("{host_url}/v1/agents/notes/call"), body).await;
                if status == 200 {
                    if tag == "a" {
                        acked_on_a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    acknowledged.push((session, format!("{tag}-{i}")));
                } else {
                    failed += 1;
                }
            }
            (acknowledged, failed)
        })
    };
    let on_a = load(a.url.clone(), "a", 400);
    let on_b = load(b.url.clone(), "b", 150);
    // Mid-load: once host A has acknowledged some notes, however fast it is.
    let waiting = std::time::Instant::now();
    while acked_on_a.load(std::sync::atomic::Ordering::SeqCst) < 40 && waiting.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    a.child.kill().unwrap(); // SIGKILL
    let _ = a.child.wait();
    let (acked_a, _) = rt.block_on(on_a).unwrap();
    let (acked_b, failed_b) = rt.block_on(on_b).unwrap();
    assert!(!acked_a.is_empty() && acked_a.len() < 400, "the kill landed mid-load ({} acknowledged)", acked_a.len());
    assert_eq!(failed_b, 0, "the other host kept serving");
    rt.block_on(async {
        let mut stored_a = 0;
        for chunk in 0..8 {
            let session = format!("load-a-{chunk}");
            let stored = recall(&client, &b, &session).await;
            stored_a += stored.len();
            for (_, note) in acked_a.iter().filter(|(s, _)| *s == session) {
                assert!(stored.contains(note), "acknowledged by the killed host, then lost: {note}");
            }
        }
        // At most the call in flight at the kill landed unacknowledged.
        assert!(stored_a <= acked_a.len() + 1, "{stored_a} stored, {} acknowledged", acked_a.len());
        for chunk in 0..3 {
            let session = format!("load-b-{chunk}");
            let expected: Vec<String> = acked_b.iter().filter(|(s, _)| *s == session).map(|(_, n)| n.clone()).collect();
            assert_eq!(recall(&client, &b, &session).await, expected);
        }
    });
}

/// A daily LLM token budget holds across hosts: 40 calls at once, half
/// through each host, each reply using 15 tokens, under `tokens_per_day =
/// 100`. Each call reserves its prompt's bound (24: 20 bytes + 4) and its 5
/// `max_tokens` in the ledger before it reaches the model, so the calls
/// that ran used at most the budget — where checking the day's total first
/// would let every one of them through (600 tokens).
#[test]
fn a_daily_llm_budget_holds_across_hosts() {
    let Some(database) = testing::fresh_database("llm_budget_across_hosts") else { return };
    let rt = runtime();
    let llm = rt.block_on(ScriptedLlm::start(vec![]));
    let config = format!("{}\n[agents.llm-probe]\nllm = {{ tokens_per_day = 100 }}\n", llm.config());
    let (a, b) = (
        serve_with(&database, &config, &["llm-probe"]),
        serve_with(&database, &config, &["llm-probe"]),
    );
    let answers = rt.block_on(async {
        let client = reqwest::Client::new();
        let calls = (0..40).map(|i| {
            let (client, host) = (client.clone(), if i % 2 == 0 { &a } else { &b });
            async move {
                let body = json!({"text": "x".repeat(20), "session_id": format!("s{i}"), "context": {"max_tokens": 5}});
                post(&client, format!("{}/v1/agents/llm-probe/call", host.url), body).await
            }
        });
        futures_util::future::join_all(calls).await
    });
    assert!(answers.iter().all(|(status, _)| *status == 200), "{:?}", answers.iter().find(|(s, _)| *s != 200));
    let refused = answers.iter().filter(|(_, body)| body["data"]["error"] == "budget-exceeded").count();
    let ledger = PostgresStorage::connect(&database, 1).unwrap().llm_usage(Some("llm-probe"), 0).unwrap();
    let reached: Vec<_> = ledger.iter().filter(|r| r.outcome == "ok").collect();
    let tokens: u64 = ledger.iter().map(|r| r.prompt_tokens + r.completion_tokens).sum();
    assert!(!reached.is_empty(), "some calls reached the model: {ledger:?}");
    assert!(tokens <= 100, "{tokens} tokens recorded against a budget of 100 ({} calls reached the model)", reached.len());
    assert_eq!(refused, 40 - reached.len(), "the rest were refused as over budget");
    assert!(ledger.iter().all(|r| r.outcome != "reserved"), "every reservation was settled");
    assert_eq!(llm.requests().len(), reached.len(), "only admitted calls reached the model");
}
