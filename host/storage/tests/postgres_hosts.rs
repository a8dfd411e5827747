//! Two hosts, one database: quotas hold across hosts, not just across the
//! threads of one. Each "host" is a storage handle of its own (its own
//! pool, for PostgreSQL; its own connections, for SQLite), and four threads
//! on each race to write new data into one namespace. Afterwards the
//! namespace holds exactly what its quota allows, every other write was
//! refused, and the kept usage equals a recount of the rows.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use agentkernel_storage::postgres::{PostgresStorage, testing};
use agentkernel_storage::sqlite::SqliteStorage;
use agentkernel_storage::{CommitGate, HistoryQuota, KvOp, KvOutcome, KvQuota, Storage, StoredTurn, WriteRefused};

const HOSTS: usize = 2;
const THREADS_PER_HOST: usize = 4;
const ATTEMPTS_PER_THREAD: usize = 40;
const ATTEMPTS: usize = HOSTS * THREADS_PER_HOST * ATTEMPTS_PER_THREAD;
/// Every key is 8 bytes (`h0t0-000`) and every value 8: 16 per entry.
const ENTRY_BYTES: u64 = 16;

/// Runs `attempt(host, thread, i)` on every thread of every host at once,
/// while a watcher checks `within()` the whole time; returns how many
/// attempts were accepted and how many refused by a quota.
fn race(
    hosts: &[Arc<dyn Storage>],
    attempt: impl Fn(&dyn Storage, usize, usize, usize) -> Result<(), WriteRefused> + Sync,
    within: impl Fn(&dyn Storage) + Sync,
) -> (usize, usize) {
    let start = Barrier::new(HOSTS * THREADS_PER_HOST);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                within(hosts[1].as_ref());
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let workers: Vec<_> = (0..HOSTS * THREADS_PER_HOST)
            .map(|n| {
                let (host, thread) = (n % HOSTS, n / HOSTS);
                let (storage, start, attempt) = (hosts[host].clone(), &start, &attempt);
                scope.spawn(move || {
                    start.wait();
                    let (mut accepted, mut refused) = (0, 0);
                    for i in 0..ATTEMPTS_PER_THREAD {
                        match attempt(storage.as_ref(), host, thread, i) {
                            Ok(()) => accepted += 1,
                            Err(WriteRefused::Quota(_)) => refused += 1,
                            Err(other) => panic!("only quota refusals are expected: {other}"),
                        }
                    }
                    (accepted, refused)
                })
            })
            .collect();
        let totals = workers.into_iter().map(|w| w.join().unwrap()).fold((0, 0), |t, w| (t.0 + w.0, t.1 + w.1));
        done.store(true, Ordering::Release);
        watcher.join().unwrap();
        totals
    })
}

/// New 16-byte entries into `ns` from every thread of both hosts, under
/// `quota`, which must allow exactly `allowed` of them.
fn kv_quota_holds_across_hosts(hosts: &[Arc<dyn Storage>], ns: &str, quota: KvQuota, allowed: u64) {
    let set = |s: &dyn Storage, host: usize, thread: usize, i: usize| {
        let ops = [KvOp::Set { key: format!("h{host}t{thread}-{i:03}"), value: format!("value{i:03}").into_bytes() }];
        s.kv_apply(ns, &ops, &quota, &CommitGate::new()).unwrap().map(drop)
    };
    let within = |s: &dyn Storage| {
        let usage = s.kv_usage(ns).unwrap();
        assert!(usage.keys <= quota.max_keys && usage.bytes <= quota.max_bytes, "{usage:?} overshot {quota:?}");
    };
    let (accepted, refused) = race(hosts, set, within);
    assert_eq!(accepted as u64, allowed, "the quota's worth of writes was accepted");
    assert_eq!(refused, ATTEMPTS - allowed as usize, "and every other one refused");
    for host in hosts {
        let usage = host.kv_usage(ns).unwrap();
        assert_eq!((usage.keys, usage.bytes), (allowed, allowed * ENTRY_BYTES), "as every host sees it");
        // A recount of the rows themselves, as far as the trait can.
        let keys = host.kv_list(ns, "", u32::MAX).unwrap();
        let bytes: usize = keys.iter().map(|k| k.len() + host.kv_get(ns, k).unwrap().unwrap().len()).sum();
        assert_eq!((keys.len() as u64, bytes as u64), (usage.keys, usage.bytes), "the kept usage is the rows'");
    }
}

/// Both quotas of a namespace's key-value data, raced from two hosts.
fn kv_quotas_hold_across_hosts(hosts: &[Arc<dyn Storage>]) {
    kv_quota_holds_across_hosts(hosts, "by-keys", KvQuota { max_keys: 50, max_bytes: u64::MAX }, 50);
    // Room for 37 entries and 15 bytes: the 38th never fits.
    let by_bytes = KvQuota { max_keys: u64::MAX, max_bytes: 37 * ENTRY_BYTES + 15 };
    kv_quota_holds_across_hosts(hosts, "by-bytes", by_bytes, 37);
}

/// Increments of one counter from every thread of both hosts: each caller
/// gets a value of its own, and none is lost (read and write of one
/// increment cannot interleave with another host's).
fn increments_are_atomic_across_hosts(hosts: &[Arc<dyn Storage>]) {
    let got = Mutex::new(Vec::new());
    let increment = |s: &dyn Storage, _: usize, _: usize, _: usize| {
        let ops = [KvOp::Increment { key: "n".into(), delta: 1 }];
        let out = s.kv_apply("counters", &ops, &KvQuota::UNLIMITED, &CommitGate::new()).unwrap()?;
        let [KvOutcome::Counter(n)] = out[..] else { panic!("{out:?}") };
        got.lock().unwrap().push(n);
        Ok(())
    };
    assert_eq!(race(hosts, increment, |_| {}), (ATTEMPTS, 0));
    let mut got = got.into_inner().unwrap();
    got.sort();
    assert_eq!(got, (1..=ATTEMPTS as i64).collect::<Vec<_>>(), "every caller got a distinct value");
    for host in hosts {
        assert_eq!(host.kv_get("counters", "n").unwrap(), Some(ATTEMPTS.to_string().into_bytes()));
    }
}

fn turn(content: String) -> StoredTurn {
    StoredTurn { role: "user".into(), content }
}

/// Every thread appends to a session of its own: the namespace's share is
/// taken by exactly that many appends, and the rest are refused.
fn history_share_holds_across_hosts(hosts: &[Arc<dyn Storage>]) {
    let quota = HistoryQuota { namespace_turns: 60, ..HistoryQuota::UNLIMITED };
    let append = |s: &dyn Storage, host: usize, thread: usize, i: usize| {
        let session = format!("h{host}t{thread}");
        s.history_append("ns", &session, &turn(format!("turn {i:03}")), &quota, &CommitGate::new()).unwrap()
    };
    let within = |s: &dyn Storage| assert!(s.history_usage("ns").unwrap().turns <= 60, "the namespace overshot");
    let (accepted, refused) = race(hosts, append, within);
    assert_eq!((accepted, refused), (60, ATTEMPTS - 60));
    let mut kept = (0, 0);
    for host in 0..HOSTS {
        for thread in 0..THREADS_PER_HOST {
            let tail = hosts[0].history_tail("ns", &format!("h{host}t{thread}"), 1000).unwrap();
            kept = (kept.0 + tail.len() as u64, kept.1 + tail.iter().map(|t| t.content.len() as u64).sum::<u64>());
        }
    }
    let usage = hosts[1].history_usage("ns").unwrap();
    assert_eq!((usage.turns, usage.bytes), (60, 60 * 8));
    assert_eq!(kept, (usage.turns, usage.bytes), "the kept usage is the turns'");
}

/// A session shared by one thread of each host, trimmed to its window while
/// the namespace fills: no session outgrows its window, the namespace ends
/// exactly full (a full session makes room in itself; a short one cannot),
/// and no turn goes missing from the count.
fn history_windows_hold_across_hosts(hosts: &[Arc<dyn Storage>]) {
    let quota = HistoryQuota { session_turns: 10, namespace_turns: 30, ..HistoryQuota::UNLIMITED };
    let session = |thread: usize| format!("shared{thread}");
    let append = |s: &dyn Storage, host: usize, thread: usize, i: usize| {
        let content = format!("h{host}t{thread}-{i:03}");
        s.history_append("windows", &session(thread), &turn(content), &quota, &CommitGate::new()).unwrap()
    };
    let within = |s: &dyn Storage| assert!(s.history_usage("windows").unwrap().turns <= 30, "the namespace overshot");
    race(hosts, append, within);
    let mut kept = 0;
    for thread in 0..THREADS_PER_HOST {
        let tail = hosts[0].history_tail("windows", &session(thread), 1000).unwrap();
        assert!(tail.len() <= 10, "a session outgrew its window: {}", tail.len());
        kept += tail.len() as u64;
    }
    let usage = hosts[1].history_usage("windows").unwrap();
    assert_eq!((kept, usage.turns, usage.bytes), (30, 30, 30 * 8));
}

#[test]
fn postgres_quotas_hold_across_hosts() {
    let Some(url) = testing::fresh_database("postgres_quotas_hold_across_hosts") else { return };
    let hosts: Vec<Arc<dyn Storage>> =
        (0..HOSTS).map(|_| Arc::new(PostgresStorage::connect(&url, 4).unwrap()) as Arc<dyn Storage>).collect();
    kv_quotas_hold_across_hosts(&hosts);
    increments_are_atomic_across_hosts(&hosts);
    history_share_holds_across_hosts(&hosts);
    history_windows_hold_across_hosts(&hosts);
}

#[test]
fn sqlite_quotas_hold_across_handles_of_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite");
    let hosts: Vec<Arc<dyn Storage>> =
        (0..HOSTS).map(|_| Arc::new(SqliteStorage::open(&path).unwrap()) as Arc<dyn Storage>).collect();
    kv_quotas_hold_across_hosts(&hosts);
    increments_are_atomic_across_hosts(&hosts);
    history_share_holds_across_hosts(&hosts);
    history_windows_hold_across_hosts(&hosts);
}
