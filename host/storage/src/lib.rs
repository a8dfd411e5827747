//! Persistent storage behind one narrow interface. SQLite ([`sqlite`]) is the
//! embedded default; PostgreSQL ([`postgres`]) is what several hosts behind
//! a load balancer share. Both implement every trait of [`Backend`] and pass
//! the same [`conformance`] suite.
//!
//! Every method is synchronous and may block. Async callers (agent memory,
//! the LLM ledger) hand a [`StorageCall`] to [`Storage::submit`] and wait
//! under a timeout, so a slow backend never stalls a guest's executor
//! thread; a backend chooses where the call runs (the blocking pool by
//! default; SQLite's group-commit writer thread).
pub mod aws;
pub mod blocking;
pub mod call;
mod commit_gate;
pub mod components;
pub mod conformance;
pub mod evolution;
pub mod http;
pub mod jobs;
pub mod lease;
pub mod postgres;
mod quota;
pub mod research;
pub mod sessions;
pub mod sqlite;
mod sqlite_checkpoint;
mod sqlite_memory;
mod sqlite_writer;
pub mod stats;

pub use call::{Answering, StorageAnswer, StorageCall};
pub use commit_gate::CommitGate;
pub use quota::{HistoryQuota, HistoryUsage, KvOp, KvOutcome, KvQuota, WriteRefused};

use serde::{Deserialize, Serialize};

/// Every kind of data the host keeps, in one backend: what a host is
/// assembled from (SQLite by default; each trait can be implemented apart).
pub trait Backend:
    Storage + sessions::SessionStore + aws::AwsStore + evolution::EvolutionStore + http::HttpStore + research::ResearchStore + stats::StatsStore + lease::LeaseStore + components::ComponentStore + jobs::JobQueue
{
}
impl<T: Storage + sessions::SessionStore + aws::AwsStore + evolution::EvolutionStore + http::HttpStore + research::ResearchStore + stats::StatsStore + lease::LeaseStore + components::ComponentStore + jobs::JobQueue> Backend
    for T
{
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage backend error: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The caller gave up waiting (its [`CommitGate`] was cancelled) before
    /// the write committed, so it was rolled back: nothing was applied.
    #[error("the write was cancelled before it committed; nothing was applied")]
    Cancelled,
    /// The call did not finish within its timeout ([`blocking::call`]).
    #[error("storage did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// One stored conversation turn. `role` is the WIT role name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTurn {
    pub role: String,
    pub content: String,
}

/// What one namespace holds, for quota checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceUsage {
    pub keys: u64,
    pub bytes: u64,
}

/// Namespaced key-value data plus append-only session history.
/// Namespaces are opaque strings chosen by policy; the backend never lets a
/// call in one namespace read or change another.
///
/// Writes take their quota and a [`CommitGate`]: the backend checks the
/// quota in the same transaction as the write (so concurrent writers cannot
/// overshoot it), and asks the gate just before committing (so a caller that
/// stopped waiting can be told, truthfully, that nothing was applied).
/// `Ok(Err(refused))` means the write was refused and changed nothing.
pub trait Storage: Send + Sync + 'static {
    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Applies `ops` in order, all or nothing, in one transaction that also
    /// checks `quota` against the namespace's usage after the last op.
    fn kv_apply(
        &self,
        namespace: &str,
        ops: &[KvOp],
        quota: &KvQuota,
        gate: &CommitGate,
    ) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError>;
    /// Keys starting with `prefix`, sorted, at most `limit`.
    fn kv_list(&self, namespace: &str, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError>;
    /// Keys and bytes (keys + values, in bytes) stored in `namespace`.
    fn kv_usage(&self, namespace: &str) -> Result<NamespaceUsage, StorageError>;
    /// Appends one turn. To stay within the session's share of `quota` the
    /// session's oldest turns are dropped (same transaction); a turn that
    /// would take the namespace past its share is refused.
    fn history_append(
        &self,
        namespace: &str,
        session: &str,
        turn: &StoredTurn,
        quota: &HistoryQuota,
        gate: &CommitGate,
    ) -> Result<Result<(), WriteRefused>, StorageError>;
    /// Turns and bytes of history kept for the whole `namespace`.
    fn history_usage(&self, namespace: &str) -> Result<HistoryUsage, StorageError>;
    /// The last `limit` turns, oldest first.
    fn history_tail(&self, namespace: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError>;

    /// Appends one LLM call to the usage ledger.
    fn llm_record(&self, record: &LlmUsageRecord) -> Result<(), StorageError>;
    /// Ledger rows since `since` (unix seconds), oldest first, optionally for one agent.
    fn llm_usage(&self, agent: Option<&str>, since: i64) -> Result<Vec<LlmUsageRecord>, StorageError>;
    /// Tokens and spend of `agent` since `since`: what budgets check.
    fn llm_totals(&self, agent: &str, since: i64) -> Result<LlmTotals, StorageError>;

    /// Reserves room in `hold.agent`'s daily budgets for one call, before it
    /// is made: in one transaction (serialised per agent across every host
    /// sharing the store) the totals since `since`, open reservations
    /// included, are checked against `budget`; then `hold` is written to the
    /// ledger (outcome `reserved`) with its completion tokens cut to what
    /// the token budget has room for after its prompt tokens. Returns the
    /// row and the completion tokens granted (the call's `max_tokens`), or
    /// `Err(totals)` when there is no room (nothing written). So concurrent
    /// calls cannot each spend what is left. [`llm_settle`](Self::llm_settle)
    /// replaces the row with what the call used; a reservation never settled
    /// (its host died mid-call) keeps counting until the day ends.
    fn llm_reserve(&self, hold: &LlmUsageRecord, since: i64, budget: &LlmBudget) -> Result<Result<(i64, u64), LlmTotals>, StorageError>;
    /// Replaces reservation `id` with the call's `record`.
    fn llm_settle(&self, id: i64, record: &LlmUsageRecord) -> Result<(), StorageError>;

    /// Runs `call` for an async caller. The future may be dropped (the
    /// caller's timeout): the call then still runs to its end, and a write
    /// that must not land late is stopped by its [`CommitGate`]. By default
    /// it runs on the blocking pool through the methods above.
    fn submit(self: std::sync::Arc<Self>, call: StorageCall) -> call::Answering {
        Box::pin(call::on_blocking_pool(self, call))
    }
}

/// An agent's daily LLM budgets, as `llm_reserve` checks them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LlmBudget {
    pub tokens_per_day: Option<u64>,
    pub usd_per_day: Option<f64>,
}

impl LlmBudget {
    /// The completion tokens a call may have after `used`, given its
    /// `prompt_tokens`, the `completion_tokens` it asks for and what they
    /// would cost at most (`cost`); `None` when a budget has no room for it.
    pub fn grant(&self, used: &LlmTotals, prompt_tokens: u64, completion_tokens: u64, cost: f64) -> Option<u64> {
        if self.usd_per_day.is_some_and(|limit| used.cost_usd + cost > limit) {
            return None;
        }
        match self.tokens_per_day {
            None => Some(completion_tokens),
            Some(limit) => {
                let room = limit.saturating_sub(used.tokens).saturating_sub(prompt_tokens);
                (room > 0).then(|| completion_tokens.min(room))
            }
        }
    }
}

/// One LLM call, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmUsageRecord {
    /// Unix seconds.
    pub at: i64,
    pub agent: String,
    pub session: String,
    pub profile: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    /// `None` when no price is configured for the model.
    pub cost_usd: Option<f64>,
    /// `ok` or the error code the agent got.
    pub outcome: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LlmTotals {
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}
