//! Deterministic capability doubles for benchmarks: memory is a fresh
//! in-memory SQLite database seeded from the case, and the LLM is a
//! loopback OpenAI-compatible server answering from the case's script (the
//! real client path, with no network). Clocks and random numbers are the
//! run's seeded ones ([`super::environment`]).
//!
//! `aws-ec2` is not doubled: a granted agent keeps its policy, forced to
//! dry run, against an endpoint nothing listens on, so every call fails
//! as `unavailable` and nothing anywhere changes (what is benchmarked is
//! how the agent copes; see [`super::bench`]). `http` has no host side
//! yet, so a candidate importing it fails to load.
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use agentkernel_storage::sqlite::SqliteStorage;
use agentkernel_storage::{
    CommitGate, HistoryQuota, HistoryUsage, KvOp, KvOutcome, KvQuota, LlmTotals, LlmUsageRecord, NamespaceUsage, Storage,
    StorageError, StoredTurn, WriteRefused,
};

/// A [`Storage`] whose database is replaced, seeded, before each case.
pub struct CaseStorage {
    current: RwLock<Arc<SqliteStorage>>,
}

impl CaseStorage {
    pub fn new() -> Result<Self, StorageError> {
        Ok(CaseStorage { current: RwLock::new(Arc::new(SqliteStorage::in_memory()?)) })
    }

    /// A fresh database holding `seed` in `namespace`.
    pub fn reset(&self, namespace: Option<&str>, seed: &BTreeMap<String, String>) -> Result<(), StorageError> {
        let db = SqliteStorage::in_memory()?;
        if let Some(ns) = namespace {
            for (k, v) in seed {
                db.seed(ns, k, v.as_bytes())?;
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(db);
        Ok(())
    }

    fn db(&self) -> Arc<SqliteStorage> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Storage for CaseStorage {
    fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.db().kv_get(ns, key)
    }
    fn kv_apply(
        &self,
        ns: &str,
        ops: &[KvOp],
        quota: &KvQuota,
        gate: &CommitGate,
    ) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
        self.db().kv_apply(ns, ops, quota, gate)
    }
    fn kv_list(&self, ns: &str, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        self.db().kv_list(ns, prefix, limit)
    }
    fn kv_usage(&self, ns: &str) -> Result<NamespaceUsage, StorageError> {
        self.db().kv_usage(ns)
    }
    fn history_append(
        &self,
        ns: &str,
        session: &str,
        turn: &StoredTurn,
        quota: &HistoryQuota,
        gate: &CommitGate,
    ) -> Result<Result<(), WriteRefused>, StorageError> {
        self.db().history_append(ns, session, turn, quota, gate)
    }
    fn history_usage(&self, ns: &str) -> Result<HistoryUsage, StorageError> {
        self.db().history_usage(ns)
    }
    fn history_tail(&self, ns: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError> {
        self.db().history_tail(ns, session, limit)
    }
    fn llm_record(&self, record: &LlmUsageRecord) -> Result<(), StorageError> {
        self.db().llm_record(record)
    }
    fn llm_usage(&self, agent: Option<&str>, since: i64) -> Result<Vec<LlmUsageRecord>, StorageError> {
        self.db().llm_usage(agent, since)
    }
    fn llm_totals(&self, agent: &str, since: i64) -> Result<LlmTotals, StorageError> {
        self.db().llm_totals(agent, since)
    }
}

#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<String>>>,
    calls: Arc<Mutex<u32>>,
}

/// The scripted LLM: a loopback server the benchmark runtime's LLM service
/// is pointed at. Replies come from the current case's script, in order;
/// a call beyond the script gets an error (as a real outage would).
pub struct ScriptedLlmDouble {
    addr: SocketAddr,
    script: Script,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedLlmDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedLlmDouble {
    pub async fn start() -> std::io::Result<Self> {
        let script = Script::default();
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/v1/models", get(|| async { axum::Json(json!({"object": "list", "data": []})) }))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ScriptedLlmDouble { addr, script, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the script (and resets the call count) for the next case.
    pub fn set_script(&self, replies: &[String]) {
        *self.script.replies.lock().unwrap_or_else(|p| p.into_inner()) = replies.iter().cloned().collect();
        *self.script.calls.lock().unwrap_or_else(|p| p.into_inner()) = 0;
    }

    /// LLM calls made since the script was set.
    pub fn calls(&self) -> u32 {
        *self.script.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn complete(State(script): State<Script>, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("scripted").to_string();
    *script.calls.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let Some(content) = script.replies.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
        let body = json!({"error": {"message": "the benchmark case scripts no more LLM replies", "type": "invalid_request_error", "param": null, "code": null}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    // Token counts are a deterministic function of the text.
    let prompt_tokens = body.len() as u64 / 4;
    let completion_tokens = content.len() as u64 / 4;
    axum::Json(json!({
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    }))
    .into_response()
}
