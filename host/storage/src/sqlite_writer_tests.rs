use std::sync::Arc;

use super::*;
use crate::sqlite::SqliteStorage;
use crate::{CommitGate, HistoryQuota, KvOp, KvOutcome, KvQuota, Storage, StoredTurn, WriteRefused};

fn set(ns: &str, key: &str, value: &[u8], quota: KvQuota, gate: &CommitGate) -> StorageCall {
    StorageCall::KvApply {
        namespace: ns.into(),
        ops: vec![KvOp::Set { key: key.into(), value: value.to_vec() }],
        quota,
        gate: gate.clone(),
    }
}

fn get(ns: &str, key: &str) -> StorageCall {
    StorageCall::KvGet { namespace: ns.into(), key: key.into() }
}

/// Holds the writer's connection so the writer thread queues what comes
/// in; the calls then run as one group when it is let go.
fn blocked(storage: &SqliteStorage) -> std::sync::MutexGuard<'_, Connection> {
    storage.conn()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commits_its_writes_and_undoes_a_refused_or_cancelled_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap());
    let tight = KvQuota { max_keys: 1, max_bytes: 1 << 20 };
    let guard = blocked(&storage);
    // The first call is taken by the writer, which then waits for the lock;
    // the rest queue behind it and join its group.
    let first = storage.clone().submit(set("a", "k1", b"one", KvQuota::UNLIMITED, &CommitGate::new()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancelled_gate = CommitGate::new();
    let calls = vec![
        storage.clone().submit(set("b", "k1", b"fits", tight, &CommitGate::new())),
        storage.clone().submit(set("b", "k2", b"over the quota", tight, &CommitGate::new())),
        storage.clone().submit(set("a", "gone", b"x", KvQuota::UNLIMITED, &cancelled_gate)),
        storage.clone().submit(get("a", "k1")),
        storage.clone().submit(StorageCall::HistoryAppend {
            namespace: "a".into(),
            session: "s".into(),
            turn: StoredTurn { role: "user".into(), content: "hi".into() },
            quota: HistoryQuota { session_turns: 10, session_bytes: 1000, namespace_turns: 10, namespace_bytes: 1000 },
            gate: CommitGate::new(),
        }),
    ];
    assert!(cancelled_gate.cancel(), "nothing has run yet");
    drop(guard);
    let first = first.await.unwrap();
    assert_eq!(first, StorageAnswer::Applied(Ok(vec![KvOutcome::Written])));
    let answers: Vec<_> = futures_join(calls).await;
    assert_eq!(answers[0].as_ref().unwrap(), &StorageAnswer::Applied(Ok(vec![KvOutcome::Written])));
    assert!(matches!(answers[1], Ok(StorageAnswer::Applied(Err(WriteRefused::Quota(_))))), "{:?}", answers[1]);
    assert!(matches!(answers[2], Err(StorageError::Cancelled)), "{:?}", answers[2]);
    assert_eq!(answers[3].as_ref().unwrap(), &StorageAnswer::Value(Some(b"one".to_vec())), "a read sees the writes queued before it");
    assert_eq!(answers[4].as_ref().unwrap(), &StorageAnswer::Appended(Ok(())));
    // What was answered as applied is in the file, seen by another connection.
    let other = SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap();
    assert_eq!(other.kv_get("a", "k1").unwrap(), Some(b"one".to_vec()));
    assert_eq!(other.kv_get("b", "k1").unwrap(), Some(b"fits".to_vec()));
    assert_eq!(other.kv_get("b", "k2").unwrap(), None, "the refused write changed nothing");
    assert_eq!(other.kv_get("a", "gone").unwrap(), None, "the cancelled write changed nothing");
    assert_eq!(other.kv_usage("b").unwrap().keys, 1, "usage counts only what was kept");
    assert_eq!(other.history_tail("a", "s", 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_gave_up_before_its_group_ran_is_not_applied() {
    let storage = Arc::new(SqliteStorage::in_memory().unwrap());
    let guard = blocked(&storage);
    let gate = CommitGate::new();
    let pending = storage.clone().submit(set("a", "k", b"late", KvQuota::UNLIMITED, &gate));
    // The caller's timeout: it stops waiting and cancels.
    assert!(tokio::time::timeout(Duration::from_millis(50), pending).await.is_err());
    assert!(gate.cancel());
    drop(guard);
    let after = storage.clone().submit(get("a", "k")).await.unwrap();
    assert_eq!(after, StorageAnswer::Value(None), "a write reported as not applied never lands");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_and_drains() {
    let storage = Arc::new(SqliteStorage::in_memory().unwrap());
    let guard = blocked(&storage);
    // A hostile caller floods the writer while it is stuck: past the
    // bounds, calls are refused at once instead of queueing without end.
    let big = vec![0u8; 1 << 20];
    let mut waiting = Vec::new();
    let mut refused = None;
    for i in 0..(MAX_QUEUED_BYTES >> 20) + 8 {
        let mut call = storage.clone().submit(set("a", &format!("k{i}"), &big, KvQuota::UNLIMITED, &CommitGate::new()));
        match futures_poll_once(&mut call).await {
            Some(Err(e)) => {
                refused = Some(e.to_string());
                break;
            }
            Some(Ok(a)) => panic!("answered while the writer is blocked: {a:?}"),
            None => waiting.push(call),
        }
    }
    let refused = refused.expect("the queue's byte bound refused a call");
    assert!(refused.contains("bytes of calls waiting"), "{refused}");
    assert!(waiting.len() <= MAX_QUEUED_BYTES >> 20, "{} calls of 1 MiB queued", waiting.len());
    drop(guard);
    for call in waiting {
        assert!(call.await.is_ok());
    }
    // Drained: a call is taken again.
    assert_eq!(storage.clone().submit(get("a", "k0")).await.unwrap(), StorageAnswer::Value(Some(big)));

    let guard = blocked(&storage);
    let mut count = Vec::new();
    let refused = loop {
        let mut call = storage.clone().submit(get("a", "k0"));
        match futures_poll_once(&mut call).await {
            Some(Err(e)) => break e.to_string(),
            Some(Ok(a)) => panic!("answered while the writer is blocked: {a:?}"),
            None => count.push(call),
        }
        assert!(count.len() <= MAX_QUEUED_CALLS + 1, "the call bound did not hold");
    };
    assert!(refused.contains("calls waiting"), "{refused}");
    drop(guard);
    drop(count);
}

#[test]
fn dropping_the_storage_closes_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let storage = Arc::new(SqliteStorage::open(&path).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(storage.clone().submit(set("a", "k", b"v", KvQuota::UNLIMITED, &CommitGate::new()))).unwrap();
    assert!(dir.path().join("db.sqlite-wal").exists());
    drop(storage);
    // The last connection to close checkpoints the WAL and removes it: the
    // writer thread (which shares the connection) has ended.
    assert!(!dir.path().join("db.sqlite-wal").exists(), "a connection outlived its storage");
    assert_eq!(SqliteStorage::open(&path).unwrap().kv_get("a", "k").unwrap(), Some(b"v".to_vec()));
}

async fn futures_join(calls: Vec<Answering>) -> Vec<Result<StorageAnswer, StorageError>> {
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await);
    }
    out
}

/// Polls `call` once: its answer if it has one at once.
async fn futures_poll_once(call: &mut Answering) -> Option<Result<StorageAnswer, StorageError>> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(match call.as_mut().poll(cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }))
    .await
}
