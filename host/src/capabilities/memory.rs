//! `memory`: namespaced key-value data and per-session history, backed by
//! [`Storage`] (SQLite by default).
//!
//! Scope: the namespace policy assigns (the agent's own name by default)
//! and its quotas. Per-instance state: the storage handle, that namespace,
//! the quotas and the host-call timeout. Every operation runs on the
//! blocking pool under the timeout, so a slow disk is reported to the guest
//! as `unavailable`, not a stall; writes go through a [`CommitGate`] so that
//! `unavailable` really means "not applied" (see [`MemoryState::write`]).
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

use crate::bindings::agentkernel::agent::memory::{self as wit, BatchOp, MemoryError};
use crate::bindings::agentkernel::agent::types::{Role, Turn};
use crate::runtime::InstanceState;
use crate::storage::{
    CommitGate, HistoryQuota, KvOp, KvOutcome, KvQuota, Storage, StorageError, StoredTurn, WriteRefused,
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

    /// Runs a read off the executor, bounded by the timeout.
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Storage, &str) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, MemoryError> {
        let storage = self.storage.clone();
        let ns = self.namespace.clone();
        let task = tokio::task::spawn_blocking(move || op(&*storage, &ns));
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => result.map_err(|e| self.backend_error(e)),
            Ok(Err(join)) => Err(MemoryError::Unavailable(format!("storage task failed: {join}"))),
            Err(_) => Err(MemoryError::Unavailable(format!("storage did not answer within {:?}", self.timeout))),
        }
    }

    /// Runs a write off the executor, bounded by the timeout, with a
    /// definite answer: on timeout the write's [`CommitGate`] is cancelled,
    /// so either it had not reached COMMIT and never will (`unavailable`:
    /// not applied), or COMMIT had begun and its real outcome is awaited a
    /// little longer ([`COMMIT_GRACE`]) before `outcome-unknown`.
    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Storage, &str, &CommitGate) -> Result<Result<T, WriteRefused>, StorageError> + Send + 'static,
    ) -> Result<T, MemoryError> {
        let storage = self.storage.clone();
        let ns = self.namespace.clone();
        let gate = CommitGate::new();
        let task_gate = gate.clone();
        let mut task = tokio::task::spawn_blocking(move || op(&*storage, &ns, &task_gate));
        let finished = match tokio::time::timeout(self.timeout, &mut task).await {
            Ok(finished) => finished,
            Err(_) if gate.cancel() => {
                return Err(MemoryError::Unavailable(format!(
                    "storage did not answer within {:?}; the write was cancelled and not applied",
                    self.timeout
                )));
            }
            Err(_) => match tokio::time::timeout(self.commit_grace, task).await {
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
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(refused))) => Err(refused_error(refused)),
            Ok(Err(e)) => Err(self.backend_error(e)),
            // A panic after COMMIT began leaves the outcome unknown.
            Err(join) if gate.is_committing() => {
                Err(MemoryError::OutcomeUnknown(format!("storage task failed while committing: {join}")))
            }
            Err(join) => Err(MemoryError::Unavailable(format!("storage task failed: {join}"))),
        }
    }

    fn backend_error(&self, e: StorageError) -> MemoryError {
        tracing::warn!(namespace = %self.namespace, "memory backend error: {e}");
        MemoryError::Unavailable(e.to_string())
    }

    /// One key-value write of a single step.
    async fn kv_write(&self, op: KvOp) -> Result<KvOutcome, MemoryError> {
        let quota = self.quota.kv;
        self.write(move |s, ns, gate| {
            Ok(s.kv_apply(ns, std::slice::from_ref(&op), &quota, gate)?.map(|mut out| out.remove(0)))
        })
        .await
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

impl Prepared {
    pub fn state(&self, call: &super::CallInfo<'_>) -> MemoryState {
        MemoryState::new(self.storage.clone(), self.namespace.clone(), self.quota, call.limits.host_call_timeout)
    }
}

struct HasMemory;
impl HasData for HasMemory {
    type Data<'a> = &'a mut MemoryState;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    // The runtime links `memory` only for agents it built a MemoryState for.
    wit::add_to_linker::<InstanceState, HasMemory>(linker, |s| {
        s.caps.memory.as_mut().expect("memory is linked only for agents granted a namespace")
    })
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
        Ok(self.read(move |s, ns| s.kv_get(ns, &key)).await)
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
        Ok(self.read(move |s, ns| s.kv_list(ns, &prefix, limit)).await)
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
        let quota = self.quota.kv;
        Ok(self.write(move |s, ns, gate| Ok(s.kv_apply(ns, &ops, &quota, gate)?.map(|_| ()))).await)
    }

    async fn append_history(&mut self, session_id: String, entry: Turn) -> wasmtime::Result<Result<(), MemoryError>> {
        if let Err(e) = check_len("session id", session_id.len(), MAX_SESSION_ID_BYTES)
            .and(check_len("turn", entry.content.len(), MAX_TURN_BYTES))
        {
            return Ok(Err(e));
        }
        let turn = StoredTurn { role: role_name(entry.role).to_string(), content: entry.content };
        let quota = self.quota.history;
        Ok(self.write(move |s, ns, gate| s.history_append(ns, &session_id, &turn, &quota, gate)).await)
    }

    async fn history(&mut self, session_id: String, limit: u32) -> wasmtime::Result<Result<Vec<Turn>, MemoryError>> {
        if let Err(e) = check_len("session id", session_id.len(), MAX_SESSION_ID_BYTES) {
            return Ok(Err(e));
        }
        let limit = limit.min(MAX_LIST);
        let turns = self.read(move |s, ns| s.history_tail(ns, &session_id, limit)).await;
        Ok(turns.map(|ts| ts.into_iter().map(|t| Turn { role: role_from_name(&t.role), content: t.content }).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::agentkernel::agent::memory::Host;
    use crate::storage::sqlite::SqliteStorage;

    const QUOTA: Quota = Quota {
        kv: KvQuota { max_keys: 100, max_bytes: 1 << 20 },
        history: HistoryQuota { session_turns: 100, session_bytes: 1 << 20, namespace_turns: 1000, namespace_bytes: 1 << 20 },
    };

    fn with_kv(max_keys: u64, max_bytes: u64) -> Quota {
        Quota { kv: KvQuota { max_keys, max_bytes }, ..QUOTA }
    }

    fn state(storage: &Arc<dyn Storage>, ns: &str) -> MemoryState {
        MemoryState::new(storage.clone(), ns.into(), QUOTA, Duration::from_secs(2))
    }

    #[tokio::test]
    async fn each_state_sees_only_its_namespace() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let mut a = state(&storage, "a");
        let mut b = state(&storage, "b");
        a.set("k".into(), b"va".to_vec()).await.unwrap().unwrap();
        assert_eq!(b.get("k".into()).await.unwrap().unwrap(), None);
        assert_eq!(a.get("k".into()).await.unwrap().unwrap(), Some(b"va".to_vec()));
        assert!(!b.delete("k".into()).await.unwrap().unwrap());
        assert_eq!(b.list_keys(String::new(), 10).await.unwrap().unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn oversized_inputs_are_typed_errors_and_store_nothing() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let mut a = state(&storage, "a");
        let big_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(a.set(big_key, vec![]).await.unwrap(), Err(MemoryError::TooLarge(_))));
        let big_value = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(matches!(a.set("k".into(), big_value).await.unwrap(), Err(MemoryError::TooLarge(_))));
        assert_eq!(storage.kv_usage("a").unwrap().keys, 0);
    }

    #[tokio::test]
    async fn quotas_bound_keys_and_bytes_but_allow_overwrites() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let mut a = MemoryState::new(storage.clone(), "a".into(), with_kv(2, 100), Duration::from_secs(2));
        a.set("k1".into(), vec![0; 40]).await.unwrap().unwrap();
        a.set("k2".into(), vec![0; 40]).await.unwrap().unwrap();
        assert!(matches!(a.set("k3".into(), vec![]).await.unwrap(), Err(MemoryError::QuotaExceeded(_))));
        a.set("k1".into(), vec![0; 50]).await.unwrap().unwrap();
        assert!(matches!(a.set("k2".into(), vec![0; 60]).await.unwrap(), Err(MemoryError::QuotaExceeded(_))));
        assert_eq!(storage.kv_get("a", "k2").unwrap(), Some(vec![0; 40]), "a refused write changes nothing");
        a.delete("k2".into()).await.unwrap().unwrap();
        a.set("k3".into(), vec![0; 10]).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn history_round_trips_roles() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let mut a = state(&storage, "a");
        a.append_history("s".into(), Turn { role: Role::User, content: "q".into() }).await.unwrap().unwrap();
        a.append_history("s".into(), Turn { role: Role::Assistant, content: "r".into() }).await.unwrap().unwrap();
        let h = a.history("s".into(), 10).await.unwrap().unwrap();
        assert_eq!(h.len(), 2);
        assert!(matches!(h[1].role, Role::Assistant));
        assert!(state(&storage, "b").history("s".into(), 10).await.unwrap().unwrap().is_empty());
    }

    #[tokio::test]
    async fn quota_counts_bytes_not_characters() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let mut a = MemoryState::new(storage.clone(), "a".into(), with_kv(1000, 2_000), Duration::from_secs(2));
        // NUL-led keys (SQLite's length() of TEXT stops at NUL) and 4-byte characters
        // (it counts characters) must be counted at their size in bytes.
        let mut stored = 0u64;
        for i in 0..200 {
            let key = if i % 2 == 0 { format!("\0{}{i:04}", "\0".repeat(40)) } else { format!("{}{i:04}", "😀".repeat(10)) };
            match a.set(key.clone(), b"v".to_vec()).await.unwrap() {
                Ok(()) => stored += key.len() as u64 + 1,
                Err(MemoryError::QuotaExceeded(_)) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        let usage = storage.kv_usage("a").unwrap();
        assert_eq!(usage.bytes, stored, "usage is the stored bytes");
        assert!(usage.bytes <= 2_000, "{usage:?} is within the quota");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_never_overshoot_the_quota() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let quota = with_kv(1000, 10_000);
        let writers: Vec<_> = (0..64)
            .map(|w| {
                let mut m = MemoryState::new(storage.clone(), "a".into(), quota, Duration::from_secs(10));
                tokio::spawn(async move {
                    for i in 0..10 {
                        let _ = m.set(format!("w{w:02}-{i}"), vec![7; 90]).await.unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let usage = storage.kv_usage("a").unwrap();
        assert!(usage.bytes <= 10_000, "{usage:?}");
        assert!(usage.bytes > 9_000, "the quota was filled: {usage:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn increments_and_swaps_are_atomic() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let mut m = state(&storage, "a");
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..10 {
                        got.push(m.increment("n".into(), 1).await.unwrap().unwrap());
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        assert_eq!(all, (1..=160).collect::<Vec<i64>>(), "every caller got a distinct value");
        assert_eq!(storage.kv_get("a", "n").unwrap(), Some(b"160".to_vec()));

        let mut a = state(&storage, "a");
        assert!(matches!(a.increment("n".into(), i64::MAX).await.unwrap(), Err(MemoryError::InvalidValue(_))));
        a.set("text".into(), b"abc".to_vec()).await.unwrap().unwrap();
        assert!(matches!(a.increment("text".into(), 1).await.unwrap(), Err(MemoryError::InvalidValue(_))));

        assert!(a.compare_and_swap("c".into(), None, Some(b"1".to_vec())).await.unwrap().unwrap());
        assert!(!a.compare_and_swap("c".into(), None, Some(b"2".to_vec())).await.unwrap().unwrap());
        assert!(!a.compare_and_swap("c".into(), Some(b"0".to_vec()), None).await.unwrap().unwrap());
        assert_eq!(storage.kv_get("a", "c").unwrap(), Some(b"1".to_vec()), "failed swaps change nothing");
        assert!(a.compare_and_swap("c".into(), Some(b"1".to_vec()), None).await.unwrap().unwrap());
        assert_eq!(storage.kv_get("a", "c").unwrap(), None, "swapping to none deletes");
    }

    #[tokio::test]
    async fn batches_apply_all_or_nothing() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let mut a = MemoryState::new(storage.clone(), "a".into(), with_kv(3, 1000), Duration::from_secs(2));
        a.set("x".into(), b"1".to_vec()).await.unwrap().unwrap();
        let ok = vec![
            BatchOp::Expect(("x".into(), Some(b"1".to_vec()))),
            BatchOp::Set(("x".into(), b"2".to_vec())),
            BatchOp::Set(("y".into(), b"2".to_vec())),
        ];
        a.batch(ok).await.unwrap().unwrap();
        let stale = vec![BatchOp::Set(("z".into(), b"3".to_vec())), BatchOp::Expect(("x".into(), Some(b"1".to_vec())))];
        assert!(matches!(a.batch(stale).await.unwrap(), Err(MemoryError::Conflict(_))));
        let over = vec![BatchOp::Delete("x".into()), BatchOp::Set(("p".into(), vec![])), BatchOp::Set(("q".into(), vec![])), BatchOp::Set(("r".into(), vec![]))];
        assert!(matches!(a.batch(over).await.unwrap(), Err(MemoryError::QuotaExceeded(_))));
        assert_eq!(storage.kv_list("a", "", 10).unwrap(), vec!["x", "y"], "refused batches change nothing");
        assert_eq!(storage.kv_get("a", "x").unwrap(), Some(b"2".to_vec()));
        let long = (0..=MAX_BATCH_OPS).map(|i| BatchOp::Delete(format!("k{i}"))).collect();
        assert!(matches!(a.batch(long).await.unwrap(), Err(MemoryError::TooLarge(_))));
    }

    fn turn(content: &str) -> Turn {
        Turn { role: Role::User, content: content.into() }
    }

    #[tokio::test]
    async fn a_session_keeps_its_newest_turns_and_a_namespace_refuses_past_its_quota() {
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
        let quota = Quota {
            history: HistoryQuota { session_turns: 5, session_bytes: 100, namespace_turns: 12, namespace_bytes: 1000 },
            ..QUOTA
        };
        let mut a = MemoryState::new(storage.clone(), "a".into(), quota, Duration::from_secs(2));
        for i in 0..20 {
            a.append_history("s1".into(), turn(&format!("m{i:02}"))).await.unwrap().unwrap();
        }
        let h: Vec<_> = a.history("s1".into(), 100).await.unwrap().unwrap().into_iter().map(|t| t.content).collect();
        assert_eq!(h, ["m15", "m16", "m17", "m18", "m19"], "the oldest turns were dropped");
        // Bytes: a 60-byte turn pushes out enough old turns to stay within 100 bytes.
        a.append_history("s1".into(), turn(&"x".repeat(60))).await.unwrap().unwrap();
        let h = a.history("s1".into(), 100).await.unwrap().unwrap();
        assert!(h.iter().map(|t| t.content.len()).sum::<usize>() <= 100);
        assert!(matches!(
            a.append_history("s1".into(), turn(&"x".repeat(101))).await.unwrap(),
            Err(MemoryError::QuotaExceeded(_))
        ));

        // The namespace: other sessions fill it, then appends are refused, and nobody's turns are dropped.
        for s in ["s2", "s3"] {
            for i in 0..5 {
                let _ = a.append_history(s.into(), turn(&format!("{s}-{i}"))).await.unwrap();
            }
        }
        let usage = storage.history_usage("a").unwrap();
        assert!(usage.turns <= 12, "{usage:?}");
        assert!(matches!(a.append_history("s4".into(), turn("new")).await.unwrap(), Err(MemoryError::QuotaExceeded(_))));
        assert_eq!(a.history("s2".into(), 100).await.unwrap().unwrap().len(), 5, "other sessions keep their turns");
        assert_eq!(storage.history_usage("b").unwrap().turns, 0);
    }

    /// A storage that blocks one kind of write until the test lets it go:
    /// before the write starts (`Hold::Start`) or once it has begun to
    /// commit (`Hold::Commit`).
    struct Held {
        inner: SqliteStorage,
        hold: Hold,
        entered: std::sync::mpsc::SyncSender<()>,
        release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
        finished: std::sync::mpsc::SyncSender<Result<bool, String>>,
    }

    #[derive(Clone, Copy)]
    enum Hold {
        Start,
        Commit,
    }

    impl Storage for Held {
        fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.kv_get(ns, key)
        }
        fn kv_apply(
            &self,
            ns: &str,
            ops: &[KvOp],
            quota: &KvQuota,
            gate: &CommitGate,
        ) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
            if let Hold::Commit = self.hold {
                assert!(gate.begin_commit());
            }
            self.entered.send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
            let result = self.inner.kv_apply(ns, ops, quota, gate);
            let _ = self.finished.send(match &result {
                Ok(r) => Ok(r.is_ok()),
                Err(e) => Err(e.to_string()),
            });
            result
        }
        fn kv_list(&self, ns: &str, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
            self.inner.kv_list(ns, prefix, limit)
        }
        fn kv_usage(&self, ns: &str) -> Result<crate::storage::NamespaceUsage, StorageError> {
            self.inner.kv_usage(ns)
        }
        fn history_append(
            &self,
            ns: &str,
            session: &str,
            turn: &StoredTurn,
            quota: &HistoryQuota,
            gate: &CommitGate,
        ) -> Result<Result<(), WriteRefused>, StorageError> {
            self.inner.history_append(ns, session, turn, quota, gate)
        }
        fn history_usage(&self, ns: &str) -> Result<crate::storage::HistoryUsage, StorageError> {
            self.inner.history_usage(ns)
        }
        fn history_tail(&self, ns: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError> {
            self.inner.history_tail(ns, session, limit)
        }
        fn llm_record(&self, record: &crate::storage::LlmUsageRecord) -> Result<(), StorageError> {
            self.inner.llm_record(record)
        }
        fn llm_usage(&self, agent: Option<&str>, since: i64) -> Result<Vec<crate::storage::LlmUsageRecord>, StorageError> {
            self.inner.llm_usage(agent, since)
        }
        fn llm_totals(&self, agent: &str, since: i64) -> Result<crate::storage::LlmTotals, StorageError> {
            self.inner.llm_totals(agent, since)
        }
    }

    struct HeldHandles {
        storage: Arc<Held>,
        entered: std::sync::mpsc::Receiver<()>,
        release: std::sync::mpsc::SyncSender<()>,
        finished: std::sync::mpsc::Receiver<Result<bool, String>>,
    }

    fn held(hold: Hold) -> HeldHandles {
        let (entered_tx, entered) = std::sync::mpsc::sync_channel(1);
        let (release, release_rx) = std::sync::mpsc::sync_channel(1);
        let (finished_tx, finished) = std::sync::mpsc::sync_channel(1);
        let storage = Arc::new(Held {
            inner: SqliteStorage::in_memory().unwrap(),
            hold,
            entered: entered_tx,
            release: std::sync::Mutex::new(release_rx),
            finished: finished_tx,
        });
        HeldHandles { storage, entered, release, finished }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_reported_unavailable_is_never_applied() {
        let h = held(Hold::Start);
        let storage: Arc<dyn Storage> = h.storage.clone();
        let mut a = MemoryState::new(storage, "a".into(), QUOTA, Duration::from_millis(50));
        // The storage does not answer until released, so the timeout fires first.
        let result = a.set("k".into(), b"late".to_vec()).await.unwrap();
        assert!(matches!(result, Err(MemoryError::Unavailable(_))), "{result:?}");
        h.entered.recv().unwrap();
        h.release.send(()).unwrap();
        let finished = tokio::task::spawn_blocking(move || h.finished.recv().unwrap()).await.unwrap();
        assert!(finished.is_err(), "the storage rolled the write back: {finished:?}");
        assert_eq!(h.storage.inner.kv_get("a", "k").unwrap(), None, "`unavailable` means not applied");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_stuck_in_commit_is_outcome_unknown() {
        let h = held(Hold::Commit);
        let storage: Arc<dyn Storage> = h.storage.clone();
        let mut a = MemoryState::new(storage, "a".into(), QUOTA, Duration::from_millis(50));
        a.commit_grace = Duration::from_millis(50);
        let result = a.set("k".into(), b"v".to_vec()).await.unwrap();
        assert!(matches!(result, Err(MemoryError::OutcomeUnknown(_))), "{result:?}");
        h.entered.recv().unwrap();
        h.release.send(()).unwrap();
        let finished = tokio::task::spawn_blocking(move || h.finished.recv().unwrap()).await.unwrap();
        assert_eq!(finished, Ok(true), "a write that began to commit is not cancelled");
        assert_eq!(h.storage.inner.kv_get("a", "k").unwrap(), Some(b"v".to_vec()));
    }
}
