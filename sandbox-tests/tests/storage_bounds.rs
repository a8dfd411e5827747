//! Storage bounds: a hostile agent cannot take more disk than its `memory`
//! grant allows (history included, sizes counted in bytes), concurrent
//! writers cannot lose each other's updates or overshoot a quota, and a
//! write the agent was told failed never lands later.
use std::net::SocketAddr;

use agentkernel::host::Host;
use agentkernel::storage::Storage;
use sandbox_tests::{TestHost, request};
use serde_json::{Value, json};

const NS: &str = "memory-abuse";

async fn abuse(h: &TestHost, session: &str, text: &str) -> String {
    let agent = h.load(NS).await.unwrap_or_else(|e| panic!("memory-abuse loads: {e}"));
    agent.call(&request(session, text)).await.unwrap_or_else(|e| panic!("`{text}`: {e}")).response.text
}

fn storage(h: &TestHost) -> std::sync::Arc<dyn Storage> {
    h.host.storage()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_flood_keeps_only_the_sessions_window() {
    // Default quota: a session keeps at most 1,000 turns and 4 MiB.
    let h = TestHost::new("[agents.memory-abuse.limits]\ndeadline_ms = 60000\n");
    let answer = abuse(&h, "s", "flood-history 300").await;
    assert_eq!(answer, "appended 300", "a session is a window: appends are never refused for it");
    let kept = storage(&h).history_tail(NS, "s", 1000).unwrap();
    let bytes: usize = kept.iter().map(|t| t.content.len()).sum();
    assert!(bytes <= 4 << 20, "{} turns, {bytes} bytes kept of 300 x 64 KiB", kept.len());
    assert_eq!(kept.len(), 64, "the newest turns that fit 4 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_across_sessions_is_refused_at_the_namespace_quota() {
    let h = TestHost::new(
        "[agents.memory-abuse]\nmemory = { max_history_bytes = 2_000_000 }\n\
         [agents.memory-abuse.limits]\ndeadline_ms = 60000\n",
    );
    let answer = abuse(&h, "s", "flood-sessions").await;
    assert!(answer.starts_with("refused after 30: MemoryError::QuotaExceeded("), "{answer}");
    let usage = storage(&h).history_usage(NS).unwrap();
    assert!(usage.bytes <= 2_000_000, "{usage:?}");
    assert_eq!(storage(&h).history_tail(NS, "flood-0", 10).unwrap().len(), 1, "no session's turns were dropped for another");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_counted_in_bytes_whatever_they_hold() {
    let h = TestHost::new("[agents.memory-abuse]\nmemory = { max_bytes = 50_000 }\n");
    let answer = abuse(&h, "s", "odd-keys").await;
    assert!(answer.starts_with("refused after "), "{answer}");
    // What is really on disk: every key and value, in bytes.
    let keys = storage(&h).kv_list(NS, "", 100_000).unwrap();
    let stored: usize = keys.iter().map(|k| k.len() + storage(&h).kv_get(NS, k).unwrap().unwrap().len()).sum();
    assert!(stored <= 50_000, "{} keys hold {stored} bytes under a 50,000-byte quota", keys.len());
    assert!(stored > 49_000, "the quota was used, not refused early: {stored}");
    assert_eq!(storage(&h).kv_usage(NS).unwrap().bytes, stored as u64, "usage is the real size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reported_unavailable_never_lands() {
    let h = TestHost::new("[limits]\nhost_call_timeout_ms = 300\n");
    assert_eq!(abuse(&h, "s", "get k").await, "None");
    // Another process holds the database's write lock: the host's write
    // waits (SQLite's busy timeout is 5 s) past the 300 ms host-call timeout.
    let other = rusqlite::Connection::open(Host::database_path(&h.host.config)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let answer = abuse(&h, "s", "set k late").await;
    assert!(answer.starts_with("MemoryError::Unavailable("), "{answer}");
    assert!(answer.contains("not applied"), "{answer}");
    // The lock goes; the host's write, still waiting, now gets it and must
    // roll back. The next call queues behind it on the host's connection.
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(abuse(&h, "s", "get k").await, "None", "`unavailable` means the write was not applied");
    assert_eq!(abuse(&h, "s", "set k now").await, "ok");
    assert_eq!(abuse(&h, "s", "get k").await, "Some(\"now\")");
}

async fn chat(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("http://{addr}/v1/chat")).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_remembers_in_one_session_are_all_recalled() {
    let h = TestHost::new("");
    h.install("notes", "notes.wasm");
    let addr = h.serve().await;
    let (s, r) = chat(addr, &json!({"message": "recall", "agents": ["notes"]})).await;
    assert_eq!(s, 200, "{r}");
    let session = r["session"].as_str().unwrap().to_string();

    let clients: Vec<_> = (0..16)
        .map(|c| {
            let session = session.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0..5 {
                    let note = format!("note-c{c:02}-i{i}");
                    let body = json!({"message": format!("remember {note}"), "session": session, "agents": ["notes"]});
                    let (s, r) = chat(addr, &body).await;
                    if s == 200 && r["answer"] == format!("Noted: {note}") {
                        acknowledged.push(note);
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for c in clients {
        acknowledged.extend(c.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 80, "every remember was acknowledged");

    let (s, r) = chat(addr, &json!({"message": "recall", "session": session, "agents": ["notes"]})).await;
    assert_eq!(s, 200, "{r}");
    let answer = r["answer"].as_str().unwrap();
    let lost: Vec<_> = acknowledged.iter().filter(|n| !answer.contains(n.as_str())).collect();
    assert!(lost.is_empty(), "{} acknowledged notes lost: {lost:?}", lost.len());
}
