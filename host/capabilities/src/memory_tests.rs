//! Tests of the `memory` host: namespaces, quotas (bytes, concurrency,
//! history), atomic operations, and writes that time out.
use super::*;
use agentkernel_runtime::bindings::agentkernel::agent::memory::Host;
use agentkernel_storage::sqlite::SqliteStorage;

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
    /// Fails at once, before COMMIT (`false`) or once it was sent (`true`),
    /// as a networked backend whose connection drops.
    Fail { committing: bool },
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
        match self.hold {
            Hold::Commit => assert!(gate.begin_commit()),
            Hold::Fail { committing } => {
                if committing {
                    assert!(gate.begin_commit());
                }
                return Err(StorageError::Backend("the connection to the database dropped".into()));
            }
            Hold::Start => {}
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
    fn kv_usage(&self, ns: &str) -> Result<agentkernel_storage::NamespaceUsage, StorageError> {
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
    fn history_usage(&self, ns: &str) -> Result<agentkernel_storage::HistoryUsage, StorageError> {
        self.inner.history_usage(ns)
    }
    fn history_tail(&self, ns: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError> {
        self.inner.history_tail(ns, session, limit)
    }
    fn llm_record(&self, record: &agentkernel_storage::LlmUsageRecord) -> Result<(), StorageError> {
        self.inner.llm_record(record)
    }
    fn llm_usage(&self, agent: Option<&str>, since: i64) -> Result<Vec<agentkernel_storage::LlmUsageRecord>, StorageError> {
        self.inner.llm_usage(agent, since)
    }
    fn llm_totals(&self, agent: &str, since: i64) -> Result<agentkernel_storage::LlmTotals, StorageError> {
        self.inner.llm_totals(agent, since)
    }

    fn llm_reserve(
        &self,
        hold: &agentkernel_storage::LlmUsageRecord,
        since: i64,
        budget: &agentkernel_storage::LlmBudget,
    ) -> Result<Result<(i64, u64), agentkernel_storage::LlmTotals>, StorageError> {
        self.inner.llm_reserve(hold, since, budget)
    }

    fn llm_settle(&self, id: i64, record: &agentkernel_storage::LlmUsageRecord) -> Result<(), StorageError> {
        self.inner.llm_settle(id, record)
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


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_error_once_commit_was_sent_is_outcome_unknown_and_before_it_unavailable() {
    for (committing, unknown) in [(true, true), (false, false)] {
        let h = held(Hold::Fail { committing });
        let storage: Arc<dyn Storage> = h.storage.clone();
        let mut a = MemoryState::new(storage, "a".into(), QUOTA, Duration::from_secs(5));
        let result = a.set("k".into(), b"v".to_vec()).await.unwrap();
        match result {
            Err(MemoryError::OutcomeUnknown(m)) if unknown => assert!(m.contains("connection to the database dropped"), "{m}"),
            Err(MemoryError::Unavailable(m)) if !unknown => assert!(m.contains("connection to the database dropped"), "{m}"),
            other => panic!("committing = {committing}: {other:?}"),
        }
    }
}
