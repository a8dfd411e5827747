//! Deterministic backends for benchmarks, chosen where the benchmark
//! runtime is assembled (the agent's policy is production's): memory is a
//! fresh in-memory SQLite database seeded from the case, and the LLM
//! transport answers from the case's script. Clocks and random numbers are
//! the run's seeded ones ([`super::environment`]). EC2 is
//! `Ec2Service::unreachable_dry_run` (see `ServiceSet::benchmark`).
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use agentkernel_llm::ChatTransport;
use agentkernel_runtime::bindings::agentkernel::agent::llm::{ChatReply, LlmError, Usage};
use async_openai::types::chat::CreateChatCompletionRequest;
use futures_util::future::BoxFuture;

use agentkernel_storage::http::{HttpRecord, HttpStore};
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

    fn llm_reserve(
        &self,
        hold: &agentkernel_storage::LlmUsageRecord,
        since: i64,
        budget: &agentkernel_storage::LlmBudget,
    ) -> Result<Result<(i64, u64), agentkernel_storage::LlmTotals>, StorageError> {
        self.db().llm_reserve(hold, since, budget)
    }

    fn llm_settle(&self, id: i64, record: &agentkernel_storage::LlmUsageRecord) -> Result<(), StorageError> {
        self.db().llm_settle(id, record)
    }
}

/// The request log and daily budget of `http`, per case like memory.
impl HttpStore for CaseStorage {
    fn http_reserve(&self, intent: &HttpRecord, day_start: i64, per_day: u64) -> Result<Option<i64>, StorageError> {
        self.db().http_reserve(intent, day_start, per_day)
    }
    fn http_note(&self, record: &HttpRecord, day_start: i64, max_per_day: u64) -> Result<bool, StorageError> {
        self.db().http_note(record, day_start, max_per_day)
    }
    fn http_finish(&self, id: i64, record: &HttpRecord) -> Result<(), StorageError> {
        self.db().http_finish(id, record)
    }
    fn http_log(&self, agent: Option<&str>, limit: u32) -> Result<Vec<HttpRecord>, StorageError> {
        self.db().http_log(agent, limit)
    }
}

#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<String>>>,
    calls: Arc<Mutex<u32>>,
}

/// The scripted LLM: the benchmark runtime's LLM transport (the service
/// around it, with the agent's own policy and budgets, is production's).
/// Replies come from the current case's script, in order; a call beyond
/// the script gets an `upstream` error (as a real outage would).
#[derive(Clone, Default)]
pub struct ScriptedLlmDouble {
    script: Script,
}

impl ScriptedLlmDouble {
    pub fn new() -> Self {
        Self::default()
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

    fn answer(&self, request: &CreateChatCompletionRequest, max_reply_bytes: u64) -> Result<ChatReply, LlmError> {
        *self.script.calls.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let Some(content) = self.script.replies.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
            return Err(LlmError::Upstream("the benchmark case scripts no more LLM replies".into()));
        };
        if content.len() as u64 > max_reply_bytes {
            return Err(LlmError::BadResponse(format!("reply passed the limit of {max_reply_bytes} bytes")));
        }
        // Token counts are a deterministic function of the text.
        let prompt_tokens = serde_json::to_string(request).map_or(0, |b| b.len() / 4) as u32;
        let completion_tokens = (content.len() / 4) as u32;
        Ok(ChatReply {
            model: request.model.clone(),
            content,
            tool_calls: Vec::new(),
            finish_reason: "stop".into(),
            usage: Usage { prompt_tokens, completion_tokens },
        })
    }
}

impl ChatTransport for ScriptedLlmDouble {
    fn complete<'a>(&'a self, request: CreateChatCompletionRequest, max_reply_bytes: u64) -> BoxFuture<'a, Result<ChatReply, LlmError>> {
        Box::pin(async move { self.answer(&request, max_reply_bytes) })
    }

    fn stream<'a>(
        &'a self,
        request: CreateChatCompletionRequest,
        max_reply_bytes: u64,
        on_delta: &'a (dyn Fn(&str) + Sync),
    ) -> BoxFuture<'a, Result<ChatReply, LlmError>> {
        Box::pin(async move {
            let reply = self.answer(&request, max_reply_bytes)?;
            on_delta(&reply.content);
            Ok(reply)
        })
    }

    fn models(&self) -> BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
