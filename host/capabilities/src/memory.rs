//! `memory`: namespaced key-value data and per-session history, backed by
//! [`Storage`] (SQLite by default).
//!
//! Scope: the namespace policy assigns (the agent's own name by default)
//! and its quotas. Per-instance state: the storage handle, that namespace,
//! the quotas and the host-call timeout. Every operation is a
//! [`StorageCall`] the backend runs off the executor (SQLite: its
//! group-commit writer) and is waited for under the timeout, so a slow disk
//! is reported to the guest as `unavailable`, not a stall; writes go through
//! a [`CommitGate`] so that `unavailable` really means "not applied" (see
//! [`MemoryState::write`]).
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

use agentkernel_runtime::bindings::agentkernel::agent::memory::{self as wit, BatchOp, MemoryError};
use agentkernel_runtime::bindings::agentkernel::agent::types::{Role, Turn};
use agentkernel_runtime::{
    CallInfo, CapabilityStates, Grant, HostCapability, InstanceState, LoadedAgent, PrepareError, PreparedCapability, parse_scope,
};
use agentkernel_storage::{
    CommitGate, HistoryQuota, KvOp, KvOutcome, KvQuota, Storage, StorageAnswer, StorageCall, StorageError, StoredTurn,
    WriteRefused,
};

pub const MAX_KEY_BYTES: usize = 512;
pub const MAX_VALUE_BYTES: usize = 1 << 20;
pub const MAX_TURN_BYTES: usize = 64 * 1024;
pub const MAX_SESSION_ID_BYTES: usize = 256;
/// Most keys or turns returned by one call.
pub const MAX_LIST: u32 = 1000;
/// Most steps in one `batch`.
pub const MAX_BATCH_OPS: usize = 64;
/// Most bytes (keys and values) in one `batch`.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How long a write that began to commit when the host-call timeout fired
/// is still waited for before the guest is told `outcome-unknown`.
pub const COMMIT_GRACE: Duration = Duration::from_secs(1);

/// Scope of a `memory` grant.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryScope {
    /// Namespace the agent reads and writes; defaults to the agent's own
    /// name. Two agents given the same namespace share their data.
    pub namespace: Option<String>,
    /// Most keys the namespace may hold (default 100,000).
    pub max_keys: Option<u64>,
    /// Most bytes (keys + values) the namespace may hold (default 64 MiB).
    pub max_bytes: Option<u64>,
    /// Most history turns one session keeps (default 1,000); older turns
    /// are dropped to make room.
    pub max_session_turns: Option<u64>,
    /// Most history bytes (turn contents) one session keeps (default 4 MiB);
    /// older turns are dropped to make room.
    pub max_session_bytes: Option<u64>,
    /// Most history turns the namespace keeps across sessions (default
    /// 100,000); past that, appends are refused.
    pub max_history_turns: Option<u64>,
    /// Most history bytes the namespace keeps across sessions (default
    /// 64 MiB); past that, appends are refused.
    pub max_history_bytes: Option<u64>,
}

impl MemoryScope {
    pub const DEFAULT_MAX_KEYS: u64 = 100_000;
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
    pub const DEFAULT_MAX_SESSION_TURNS: u64 = 1_000;
    pub const DEFAULT_MAX_SESSION_BYTES: u64 = 4 << 20;
    pub const DEFAULT_MAX_HISTORY_TURNS: u64 = 100_000;
    pub const DEFAULT_MAX_HISTORY_BYTES: u64 = 64 << 20;

    pub fn quota(&self) -> Quota {
        Quota {
            kv: KvQuota {
                max_keys: self.max_keys.unwrap_or(Self::DEFAULT_MAX_KEYS),
                max_bytes: self.max_bytes.unwrap_or(Self::DEFAULT_MAX_BYTES),
            },
            history: HistoryQuota {
                session_turns: self.max_session_turns.unwrap_or(Self::DEFAULT_MAX_SESSION_TURNS),
                session_bytes: self.max_session_bytes.unwrap_or(Self::DEFAULT_MAX_SESSION_BYTES),
                namespace_turns: self.max_history_turns.unwrap_or(Self::DEFAULT_MAX_HISTORY_TURNS),
                namespace_bytes: self.max_history_bytes.unwrap_or(Self::DEFAULT_MAX_HISTORY_BYTES),
            },
        }
    }
}

/// Per-namespace quotas, from the `memory` grant's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub kv: KvQuota,
    pub history: HistoryQuota,
}

pub struct MemoryState {
    storage: Arc<dyn Storage>,
    namespace: Arc<str>,
    quota: Quota,
    timeout: Duration,
    commit_grace: Duration,
}

impl MemoryState {
    pub fn new(storage: Arc<dyn Storage>, namespace: Arc<str>, quota: Quota, timeout: Duration) -> Self {
        MemoryState { storage, namespace, quota, timeout, commit_grace: COMMIT_GRACE }
    }

    /// Runs a read, bounded by the timeout.
    async fn read(&self, call: StorageCall) -> Result<StorageAnswer, MemoryError> {
        match tokio::time::timeout(self.timeout, self.storage.clone().submit(call)).await {
            Ok(answer) => answer.map_err(|e| self.backend_error(e)),
            Err(_) => Err(MemoryError::Unavailable(format!("storage did not answer within {:?}", self.timeout))),
        }
    }

    /// Runs a write, bounded by the timeout, with a definite answer: on
    /// timeout the write's `gate` is cancelled, so either it had not reached
    /// COMMIT and never will (`unavailable`: not applied), or COMMIT had
    /// begun and its real outcome is awaited a little longer
    /// ([`COMMIT_GRACE`]) before `outcome-unknown`.
    async fn write(&self, call: StorageCall, gate: &CommitGate) -> Result<StorageAnswer, MemoryError> {
        let mut answer = self.storage.clone().submit(call);
        let finished = match tokio::time::timeout(self.timeout, &mut answer).await {
            Ok(finished) => finished,
            Err(_) if gate.cancel() => {
                return Err(MemoryError::Unavailable(format!(
                    "storage did not answer within {:?}; the write was cancelled and not applied",
                    self.timeout
                )));
            }
            Err(_) => match tokio::time::timeout(self.commit_grace, answer).await {
                Ok(finished) => finished,
                Err(_) => {
                    return Err(MemoryError::OutcomeUnknown(format!(
                        "storage did not finish committing within {:?}; the write may or may not have been applied",
                        self.timeout + self.commit_grace
                    )));
                }
            },
        };
        match finished {
            Ok(answer) => Ok(answer),
            // A failure once COMMIT was sent (a networked backend's
            // connection dropped, its call timed out, a panic) may have
            // committed.
            Err(e) if gate.is_committing() => {
                tracing::warn!(namespace = %self.namespace, "memory backend error while committing: {e}");
                Err(MemoryError::OutcomeUnknown(format!("storage failed while committing ({e}); the write may or may not have been applied")))
            }
            Err(e) => Err(self.backend_error(e)),
        }
    }

    fn backend_error(&self, e: StorageError) -> MemoryError {
        tracing::warn!(namespace = %self.namespace, "memory backend error: {e}");
        MemoryError::Unavailable(e.to_string())
    }

    /// Key-value steps, all or nothing, under the namespace's quota.
    async fn apply(&self, ops: Vec<KvOp>) -> Result<Vec<KvOutcome>, MemoryError> {
        let gate = CommitGate::new();
        let call = StorageCall::KvApply { namespace: self.namespace.clone(), ops, quota: self.quota.kv, gate: gate.clone() };
        match self.write(call, &gate).await? {
            StorageAnswer::Applied(applied) => applied.map_err(refused_error),
            other => Err(self.backend_error(other.mismatch("key-value outcomes"))),
        }
    }

    /// One key-value write of a single step.
    async fn kv_write(&self, op: KvOp) -> Result<KvOutcome, MemoryError> {
        let mut outcomes = self.apply(vec![op]).await?;
        match outcomes.pop() {
            Some(outcome) if outcomes.is_empty() => Ok(outcome),
            _ => Err(MemoryError::Unavailable("storage answered one step with another number of outcomes".into())),
        }
    }
}

fn refused_error(refused: WriteRefused) -> MemoryError {
    match refused {
        WriteRefused::Quota(m) => MemoryError::QuotaExceeded(m),
        WriteRefused::InvalidValue(m) => MemoryError::InvalidValue(m),
        WriteRefused::Conflict(m) => MemoryError::Conflict(m),
    }
}

/// `memory` configured for one agent: its namespace and quota.
pub struct Prepared {
    pub storage: Arc<dyn Storage>,
    pub namespace: Arc<str>,
    pub quota: Quota,
}

impl PreparedCapability for Prepared {
    fn instance_state(&self, call: &CallInfo<'_>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(Box::new(MemoryState::new(self.storage.clone(), self.namespace.clone(), self.quota, call.limits.host_call_timeout)))
    }
}

/// The memory namespace `agent` reads and writes, if it imports `memory`.
pub fn namespace_of(agent: &LoadedAgent) -> Option<&str> {
    agent.prepared::<Prepared>().map(|p| &*p.namespace)
}

struct HasMemory;
impl HasData for HasMemory {
    type Data<'a> = &'a mut MemoryState;
}

/// Links `memory` into any store whose data keeps capability states.
pub fn add_to_linker<T: CapabilityStates>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasMemory>(linker, |s| s.state::<MemoryState>())
}

/// The `memory` capability: a namespace of keys and session history in
/// the host's [`Storage`], under the grant's quotas. Granted by default,
/// in the agent's own namespace.
pub struct Memory;

impl HostCapability for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn granted_by_default(&self) -> bool {
        true
    }
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String> {
        parse_scope::<MemoryScope>(scope).map(drop)
    }
    fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn prepare(&self, grant: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError> {
        let scope = parse_scope::<MemoryScope>(grant.scope).map_err(PrepareError::Scope)?;
        let storage = grant.services.require::<dyn Storage>("storage backend")?;
        let namespace = scope.namespace.clone().unwrap_or_else(|| grant.agent.to_string());
        Ok(Box::new(Prepared { storage, namespace: Arc::from(namespace), quota: scope.quota() }))
    }
}

fn check_len(what: &str, len: usize, max: usize) -> Result<(), MemoryError> {
    if len > max {
        return Err(MemoryError::TooLarge(format!("{what} is {len} bytes; the limit is {max}")));
    }
    Ok(())
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Agent => "agent",
    }
}

fn role_from_name(s: &str) -> Role {
    match s {
        "system" => Role::System,
        "assistant" => Role::Assistant,
        "agent" => Role::Agent,
        _ => Role::User,
    }
}

/// A guest's batch as storage steps, after the size checks.
fn batch_ops(ops: Vec<BatchOp>) -> Result<Vec<KvOp>, MemoryError> {
    if ops.len() > MAX_BATCH_OPS {
        return Err(MemoryError::TooLarge(format!("a batch has {} steps; the limit is {MAX_BATCH_OPS}", ops.len())));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let (key, value_len) = match &op {
            BatchOp::Set((k, v)) => (k, v.len()),
            BatchOp::Delete(k) => (k, 0),
            BatchOp::Expect((k, v)) => (k, v.as_ref().map_or(0, Vec::len)),
        };
        check_len("key", key.len(), MAX_KEY_BYTES)?;
        check_len("value", value_len, MAX_VALUE_BYTES)?;
        total += key.len() + value_len;
        out.push(match op {
            BatchOp::Set((key, value)) => KvOp::Set { key, value },
            BatchOp::Delete(key) => KvOp::Delete { key },
            BatchOp::Expect((key, value)) => KvOp::Expect { key, value },
        });
    }
    check_len("batch", total, MAX_BATCH_BYTES)?;
    Ok(out)
}

impl wit::Host for MemoryState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, MemoryError>> {
        if let Err(e) = check_len("key", key.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        let call = StorageCall::KvGet { namespace: self.namespace.clone(), key };
        Ok(self.read(call).await.and_then(|answer| match answer {
            StorageAnswer::Value(value) => Ok(value),
            other => Err(self.backend_error(other.mismatch("a value"))),
        }))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), MemoryError>> {
        if let Err(e) =
            check_len("key", key.len(), MAX_KEY_BYTES).and(check_len("value", value.len(), MAX_VALUE_BYTES))
        {
            return Ok(Err(e));
        }
        Ok(self.kv_write(KvOp::Set { key, value }).await.map(|_| ()))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, MemoryError>> {
        if let Err(e) = check_len("key", key.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        Ok(self.kv_write(KvOp::Delete { key }).await.map(|out| out == KvOutcome::Deleted(true)))
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Result<Vec<String>, MemoryError>> {
        if let Err(e) = check_len("prefix", prefix.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        let limit = limit.min(MAX_LIST);
        let call = StorageCall::KvList { namespace: self.namespace.clone(), prefix, limit };
        Ok(self.read(call).await.and_then(|answer| match answer {
            StorageAnswer::Keys(keys) => Ok(keys),
            other => Err(self.backend_error(other.mismatch("keys"))),
        }))
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> wasmtime::Result<Result<bool, MemoryError>> {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
        if let Err(e) = check_len("key", key.len(), MAX_KEY_BYTES)
            .and(check_len("expected value", len(&expected), MAX_VALUE_BYTES))
            .and(check_len("value", len(&new), MAX_VALUE_BYTES))
        {
            return Ok(Err(e));
        }
        let op = KvOp::CompareAndSwap { key, expected, new };
        Ok(self.kv_write(op).await.map(|out| out == KvOutcome::Swapped(true)))
    }

    async fn increment(&mut self, key: String, delta: i64) -> wasmtime::Result<Result<i64, MemoryError>> {
        if let Err(e) = check_len("key", key.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        Ok(self.kv_write(KvOp::Increment { key, delta }).await.and_then(|out| match out {
            KvOutcome::Counter(n) => Ok(n),
            other => Err(MemoryError::Unavailable(format!("storage answered an increment with {other:?}"))),
        }))
    }

    async fn batch(&mut self, ops: Vec<BatchOp>) -> wasmtime::Result<Result<(), MemoryError>> {
        let ops = match batch_ops(ops) {
            Ok(ops) => ops,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.apply(ops).await.map(drop))
    }

    async fn append_history(&mut self, session_id: String, entry: Turn) -> wasmtime::Result<Result<(), MemoryError>> {
        if let Err(e) = check_len("session id", session_id.len(), MAX_SESSION_ID_BYTES)
            .and(check_len("turn", entry.content.len(), MAX_TURN_BYTES))
        {
            return Ok(Err(e));
        }
        let turn = StoredTurn { role: role_name(entry.role).to_string(), content: entry.content };
        let gate = CommitGate::new();
        let call = StorageCall::HistoryAppend {
            namespace: self.namespace.clone(),
            session: session_id,
            turn,
            quota: self.quota.history,
            gate: gate.clone(),
        };
        Ok(self.write(call, &gate).await.and_then(|answer| match answer {
            StorageAnswer::Appended(appended) => appended.map_err(refused_error),
            other => Err(self.backend_error(other.mismatch("a history append"))),
        }))
    }

    async fn history(&mut self, session_id: String, limit: u32) -> wasmtime::Result<Result<Vec<Turn>, MemoryError>> {
        if let Err(e) = check_len("session id", session_id.len(), MAX_SESSION_ID_BYTES) {
            return Ok(Err(e));
        }
        let limit = limit.min(MAX_LIST);
        let call = StorageCall::HistoryTail { namespace: self.namespace.clone(), session: session_id, limit };
        Ok(self.read(call).await.and_then(|answer| match answer {
            StorageAnswer::Turns(turns) => {
                Ok(turns.into_iter().map(|t| Turn { role: role_from_name(&t.role), content: t.content }).collect())
            }
            other => Err(self.backend_error(other.mismatch("history turns"))),
        }))
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
