//! `memory`: namespaced key-value data and append-only session history,
//! backed by [`Storage`] (SQLite by default).
//!
//! Scope: the namespace policy assigns (the agent's own name by default).
//! Per-instance state: the storage handle, that namespace and the host-call
//! timeout. Every operation runs on the blocking pool under the timeout, so
//! a slow disk is reported to the guest as `unavailable`, not a stall.
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker};

use crate::bindings::agentkernel::agent::memory::{self as wit, MemoryError};
use crate::bindings::agentkernel::agent::types::{Role, Turn};
use crate::runtime::InstanceState;
use crate::storage::{Storage, StorageError, StoredTurn};

pub const MAX_KEY_BYTES: usize = 512;
pub const MAX_VALUE_BYTES: usize = 1 << 20;
pub const MAX_TURN_BYTES: usize = 64 * 1024;
pub const MAX_SESSION_ID_BYTES: usize = 256;
/// Most keys or turns returned by one call.
pub const MAX_LIST: u32 = 1000;

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
}

impl MemoryScope {
    pub const DEFAULT_MAX_KEYS: u64 = 100_000;
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

    pub fn quota(&self) -> Quota {
        Quota {
            max_keys: self.max_keys.unwrap_or(Self::DEFAULT_MAX_KEYS),
            max_bytes: self.max_bytes.unwrap_or(Self::DEFAULT_MAX_BYTES),
        }
    }
}

/// Per-namespace quota, from the `memory` grant's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_keys: u64,
    pub max_bytes: u64,
}

pub struct MemoryState {
    storage: Arc<dyn Storage>,
    namespace: Arc<str>,
    quota: Quota,
    timeout: Duration,
}

impl MemoryState {
    pub fn new(storage: Arc<dyn Storage>, namespace: Arc<str>, quota: Quota, timeout: Duration) -> Self {
        MemoryState { storage, namespace, quota, timeout }
    }

    /// Runs a storage operation off the executor, bounded by the timeout.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Storage, &str) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, MemoryError> {
        let storage = self.storage.clone();
        let ns = self.namespace.clone();
        let task = tokio::task::spawn_blocking(move || op(&*storage, &ns));
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => {
                tracing::warn!(namespace = %self.namespace, "memory backend error: {e}");
                Err(MemoryError::Unavailable(e.to_string()))
            }
            Ok(Err(join)) => Err(MemoryError::Unavailable(format!("storage task failed: {join}"))),
            Err(_) => Err(MemoryError::Unavailable(format!("storage did not answer within {:?}", self.timeout))),
        }
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

impl wit::Host for MemoryState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, MemoryError>> {
        if let Err(e) = check_len("key", key.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        Ok(self.run(move |s, ns| s.kv_get(ns, &key)).await)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), MemoryError>> {
        if let Err(e) =
            check_len("key", key.len(), MAX_KEY_BYTES).and(check_len("value", value.len(), MAX_VALUE_BYTES))
        {
            return Ok(Err(e));
        }
        let quota = self.quota;
        Ok(self
            .run(move |s, ns| {
                let usage = s.kv_usage(ns)?;
                let old = s.kv_get(ns, &key)?;
                let new_keys = usage.keys + u64::from(old.is_none());
                let old_bytes = old.map_or(0, |v| (key.len() + v.len()) as u64);
                let new_bytes = (usage.bytes + (key.len() + value.len()) as u64).saturating_sub(old_bytes);
                if new_keys > quota.max_keys {
                    return Ok(Err(MemoryError::QuotaExceeded(format!("namespace may hold {} keys", quota.max_keys))));
                }
                if new_bytes > quota.max_bytes {
                    return Ok(Err(MemoryError::QuotaExceeded(format!(
                        "namespace may hold {} bytes; this write would make it {new_bytes}",
                        quota.max_bytes
                    ))));
                }
                s.kv_set(ns, &key, &value).map(Ok)
            })
            .await
            .and_then(|r| r))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, MemoryError>> {
        if let Err(e) = check_len("key", key.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        Ok(self.run(move |s, ns| s.kv_delete(ns, &key)).await)
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Result<Vec<String>, MemoryError>> {
        if let Err(e) = check_len("prefix", prefix.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        let limit = limit.min(MAX_LIST);
        Ok(self.run(move |s, ns| s.kv_list(ns, &prefix, limit)).await)
    }

    async fn append_history(&mut self, session_id: String, entry: Turn) -> wasmtime::Result<Result<(), MemoryError>> {
        if let Err(e) = check_len("session id", session_id.len(), MAX_SESSION_ID_BYTES)
            .and(check_len("turn", entry.content.len(), MAX_TURN_BYTES))
        {
            return Ok(Err(e));
        }
        let turn = StoredTurn { role: role_name(entry.role).to_string(), content: entry.content };
        Ok(self.run(move |s, ns| s.history_append(ns, &session_id, &turn)).await)
    }

    async fn history(&mut self, session_id: String, limit: u32) -> wasmtime::Result<Result<Vec<Turn>, MemoryError>> {
        if let Err(e) = check_len("session id", session_id.len(), MAX_SESSION_ID_BYTES) {
            return Ok(Err(e));
        }
        let limit = limit.min(MAX_LIST);
        let turns = self.run(move |s, ns| s.history_tail(ns, &session_id, limit)).await;
        Ok(turns.map(|ts| ts.into_iter().map(|t| Turn { role: role_from_name(&t.role), content: t.content }).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::agentkernel::agent::memory::Host;
    use crate::storage::sqlite::SqliteStorage;

    const QUOTA: Quota = Quota { max_keys: 100, max_bytes: 1 << 20 };

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
        let mut a = MemoryState::new(storage.clone(), "a".into(), Quota { max_keys: 2, max_bytes: 100 }, Duration::from_secs(2));
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
}
