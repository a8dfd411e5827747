//! [`StorageCall`]: a storage call an async caller hands over whole (its
//! arguments owned), so a backend can choose where it runs. By default it
//! runs on the blocking pool ([`Storage::submit`]); SQLite runs the calls of
//! agent memory and the LLM ledger on one writer thread that commits them in
//! groups ([`crate::sqlite_writer`]), instead of a transaction, a pool
//! thread and a turn of the writer's lock for each.
use std::sync::Arc;

use crate::{
    CommitGate, HistoryQuota, KvOp, KvOutcome, KvQuota, LlmUsageRecord, Storage, StorageError, StoredTurn,
    WriteRefused,
};

/// A [`StorageCall`] on its way to an answer.
pub type Answering = std::pin::Pin<Box<dyn std::future::Future<Output = Result<StorageAnswer, StorageError>> + Send>>;

/// One call of [`Storage`], with its arguments.
#[derive(Debug, Clone)]
pub enum StorageCall {
    KvGet { namespace: Arc<str>, key: String },
    KvApply { namespace: Arc<str>, ops: Vec<KvOp>, quota: KvQuota, gate: CommitGate },
    KvList { namespace: Arc<str>, prefix: String, limit: u32 },
    HistoryAppend { namespace: Arc<str>, session: String, turn: StoredTurn, quota: HistoryQuota, gate: CommitGate },
    HistoryTail { namespace: Arc<str>, session: String, limit: u32 },
    LlmRecord(LlmUsageRecord),
    LlmSettle { id: i64, record: LlmUsageRecord },
}

/// What a [`StorageCall`] answered; one variant per kind of call.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageAnswer {
    Value(Option<Vec<u8>>),
    Applied(Result<Vec<KvOutcome>, WriteRefused>),
    Keys(Vec<String>),
    Appended(Result<(), WriteRefused>),
    Turns(Vec<StoredTurn>),
    Recorded,
}

impl StorageCall {
    /// Runs the call through the backend's synchronous methods (blocks).
    pub fn run<S: Storage + ?Sized>(&self, storage: &S) -> Result<StorageAnswer, StorageError> {
        Ok(match self {
            StorageCall::KvGet { namespace, key } => StorageAnswer::Value(storage.kv_get(namespace, key)?),
            StorageCall::KvApply { namespace, ops, quota, gate } => {
                StorageAnswer::Applied(storage.kv_apply(namespace, ops, quota, gate)?)
            }
            StorageCall::KvList { namespace, prefix, limit } => {
                StorageAnswer::Keys(storage.kv_list(namespace, prefix, *limit)?)
            }
            StorageCall::HistoryAppend { namespace, session, turn, quota, gate } => {
                StorageAnswer::Appended(storage.history_append(namespace, session, turn, quota, gate)?)
            }
            StorageCall::HistoryTail { namespace, session, limit } => {
                StorageAnswer::Turns(storage.history_tail(namespace, session, *limit)?)
            }
            StorageCall::LlmRecord(record) => {
                storage.llm_record(record)?;
                StorageAnswer::Recorded
            }
            StorageCall::LlmSettle { id, record } => {
                storage.llm_settle(*id, record)?;
                StorageAnswer::Recorded
            }
        })
    }

    /// The write's gate; reads and ledger rows have none (a ledger row is
    /// written even when its caller stopped waiting: the call it records
    /// was made).
    pub fn gate(&self) -> Option<&CommitGate> {
        match self {
            StorageCall::KvApply { gate, .. } | StorageCall::HistoryAppend { gate, .. } => Some(gate),
            _ => None,
        }
    }

    /// Whether the call changes nothing.
    pub fn is_read(&self) -> bool {
        matches!(self, StorageCall::KvGet { .. } | StorageCall::KvList { .. } | StorageCall::HistoryTail { .. })
    }

    /// About how many bytes the call carries (what a queue of calls holds).
    pub fn size(&self) -> usize {
        let record = |r: &LlmUsageRecord| r.agent.len() + r.session.len() + r.profile.len() + r.model.len() + r.outcome.len();
        64 + match self {
            StorageCall::KvGet { key, .. } => key.len(),
            StorageCall::KvApply { ops, .. } => ops.iter().map(KvOp::size).sum(),
            StorageCall::KvList { prefix, .. } => prefix.len(),
            StorageCall::HistoryAppend { session, turn, .. } => session.len() + turn.role.len() + turn.content.len(),
            StorageCall::HistoryTail { session, .. } => session.len(),
            StorageCall::LlmRecord(r) | StorageCall::LlmSettle { record: r, .. } => record(r),
        }
    }
}

impl StorageAnswer {
    /// A refused write: it changed nothing.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StorageAnswer::Applied(Err(_)) | StorageAnswer::Appended(Err(_)))
    }

    fn kind(&self) -> &'static str {
        match self {
            StorageAnswer::Value(_) => "a value",
            StorageAnswer::Applied(_) => "key-value outcomes",
            StorageAnswer::Keys(_) => "keys",
            StorageAnswer::Appended(_) => "a history append",
            StorageAnswer::Turns(_) => "history turns",
            StorageAnswer::Recorded => "a ledger write",
        }
    }

    /// The error for an answer of the wrong kind (a backend bug).
    pub fn mismatch(self, wanted: &str) -> StorageError {
        StorageError::Backend(format!("storage answered {} where {wanted} was asked for", self.kind()))
    }
}

/// Runs `call` on the blocking pool: [`Storage::submit`]'s default.
pub async fn on_blocking_pool<S: Storage + ?Sized>(storage: Arc<S>, call: StorageCall) -> Result<StorageAnswer, StorageError> {
    tokio::task::spawn_blocking(move || call.run(&*storage))
        .await
        .map_err(|join| StorageError::Backend(format!("storage task failed: {join}")))?
}
