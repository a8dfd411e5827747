//! PostgreSQL: `Storage`.
use super::PostgresStorage;
#[allow(unused_imports)]
use crate::*;

pub(super) const SCHEMA: &str = "";

impl crate::Storage for PostgresStorage {
    #[allow(unused_variables)]
    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn kv_apply( &self, namespace: &str, ops: &[KvOp], quota: &KvQuota, gate: &CommitGate, ) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn kv_list(&self, namespace: &str, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn kv_usage(&self, namespace: &str) -> Result<NamespaceUsage, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn history_append( &self, namespace: &str, session: &str, turn: &StoredTurn, quota: &HistoryQuota, gate: &CommitGate, ) -> Result<Result<(), WriteRefused>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn history_usage(&self, namespace: &str) -> Result<HistoryUsage, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn history_tail(&self, namespace: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn llm_record(&self, record: &LlmUsageRecord) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn llm_usage(&self, agent: Option<&str>, since: i64) -> Result<Vec<LlmUsageRecord>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn llm_totals(&self, agent: &str, since: i64) -> Result<LlmTotals, StorageError> {
        Err(super::pending())
    }

}
