//! `Storage`: agent memory (key-value data, session history) and the LLM
//! ledger. Usage is in bytes, quotas refuse without changing anything, and
//! a cancelled write applies nothing, on every backend alike.
use crate::{
    Backend, CommitGate, HistoryQuota, HistoryUsage, KvOp, KvOutcome, KvQuota, LlmTotals, LlmUsageRecord,
    NamespaceUsage, StorageError, StoredTurn, WriteRefused,
};

pub(super) const TESTS: &[super::Test] = &[
    ("memory_namespaces_are_isolated", namespaces_are_isolated),
    ("memory_list_matches_prefixes_literally_in_byte_order", list_matches_prefixes_literally_in_byte_order),
    ("memory_usage_counts_bytes", usage_counts_bytes),
    ("memory_every_op_has_its_outcome", every_op_has_its_outcome),
    ("memory_failed_swaps_and_bad_counters_change_nothing", failed_swaps_and_bad_counters_change_nothing),
    ("memory_kv_quota_refusals_change_nothing", kv_quota_refusals_change_nothing),
    ("memory_batches_apply_all_or_nothing", batches_apply_all_or_nothing),
    ("memory_a_cancelled_write_applies_nothing", a_cancelled_write_applies_nothing),
    ("memory_history_sessions_keep_their_newest_turns", history_sessions_keep_their_newest_turns),
    ("memory_history_refusals_change_nothing", history_refusals_change_nothing),
    ("memory_history_tail_is_oldest_first_per_session", history_tail_is_oldest_first_per_session),
    ("memory_llm_ledger_filters_and_totals", llm_ledger_filters_and_totals),
];

fn apply(store: &dyn Backend, ns: &str, ops: &[KvOp], quota: KvQuota) -> Result<Vec<KvOutcome>, WriteRefused> {
    store.kv_apply(ns, ops, &quota, &CommitGate::new()).unwrap()
}

fn set(store: &dyn Backend, ns: &str, key: &str, value: &[u8]) {
    apply(store, ns, &[set_op(key, value)], KvQuota::UNLIMITED).unwrap();
}

fn set_op(key: &str, value: &[u8]) -> KvOp {
    KvOp::Set { key: key.into(), value: value.to_vec() }
}

fn turn(content: &str) -> StoredTurn {
    StoredTurn { role: "user".into(), content: content.into() }
}

fn append(
    store: &dyn Backend,
    ns: &str,
    session: &str,
    content: &str,
    quota: HistoryQuota,
) -> Result<(), WriteRefused> {
    store.history_append(ns, session, &turn(content), &quota, &CommitGate::new()).unwrap()
}

fn tail(store: &dyn Backend, ns: &str, session: &str) -> Vec<String> {
    store.history_tail(ns, session, 1000).unwrap().into_iter().map(|t| t.content).collect()
}

/// Every key and value of `ns`, by listing and reading them back.
fn contents(store: &dyn Backend, ns: &str) -> Vec<(String, Vec<u8>)> {
    let keys = store.kv_list(ns, "", u32::MAX).unwrap();
    keys.into_iter().map(|k| (k.clone(), store.kv_get(ns, &k).unwrap().unwrap())).collect()
}

fn namespaces_are_isolated(store: &dyn Backend) {
    set(store, "a", "k", b"1");
    assert_eq!(store.kv_get("a", "k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.kv_get("b", "k").unwrap(), None);
    let out = apply(store, "b", &[KvOp::Delete { key: "k".into() }], KvQuota::UNLIMITED).unwrap();
    assert_eq!(out, vec![KvOutcome::Deleted(false)], "b has no k to delete");
    assert_eq!(store.kv_get("a", "k").unwrap(), Some(b"1".to_vec()));
    assert!(store.kv_list("b", "", 10).unwrap().is_empty());
    assert_eq!(store.kv_usage("b").unwrap(), NamespaceUsage::default());
    // A namespace whose name extends another's is another namespace.
    assert_eq!(store.kv_get("a2", "k").unwrap(), None);

    append(store, "a", "s", "hello", HistoryQuota::UNLIMITED).unwrap();
    assert_eq!(tail(store, "a", "s"), ["hello"]);
    assert!(tail(store, "b", "s").is_empty());
    assert_eq!(store.history_usage("b").unwrap(), HistoryUsage::default());
    // A full namespace does not refuse another's appends.
    let one = HistoryQuota { namespace_turns: 1, ..HistoryQuota::UNLIMITED };
    assert!(matches!(append(store, "a", "s2", "x", one), Err(WriteRefused::Quota(_))));
    append(store, "b", "s", "x", one).unwrap();
}

fn list_matches_prefixes_literally_in_byte_order(store: &dyn Backend) {
    let keys = ["p/2", "p/1", "P/3", "p_x", "p%y", "pa", "q/1", "p", "p\0z", "pé", "p😀", "p\u{7f}", "Z"];
    for k in keys {
        set(store, "n", k, b"");
    }
    assert_eq!(store.kv_list("n", "p/", 10).unwrap(), ["p/1", "p/2"]);
    assert_eq!(store.kv_list("n", "p_", 10).unwrap(), ["p_x"], "`_` is no wildcard");
    assert_eq!(store.kv_list("n", "p%", 10).unwrap(), ["p%y"], "`%` is no wildcard");
    assert_eq!(store.kv_list("n", "p/", 1).unwrap(), ["p/1"], "at most limit");
    assert!(store.kv_list("n", "p/", 0).unwrap().is_empty());
    assert!(store.kv_list("n", "p/3", 10).unwrap().is_empty(), "case matters");
    assert_eq!(store.kv_list("n", "pé", 10).unwrap(), ["pé"]);
    // Byte order (SQLite's BINARY collation), not a locale's: NUL first,
    // upper case before lower, multibyte UTF-8 after ASCII.
    let all = ["P/3", "Z", "p", "p\0z", "p%y", "p/1", "p/2", "p_x", "pa", "p\u{7f}", "pé", "p😀", "q/1"];
    assert_eq!(store.kv_list("n", "", 100).unwrap(), all);
    assert_eq!(store.kv_list("n", "p", 100).unwrap(), all[2..12]);
    assert_eq!(store.kv_list("n", "p", 3).unwrap(), all[2..5]);
    assert!(store.kv_list("n", "r", 10).unwrap().is_empty());
    assert!(store.kv_list("other", "p", 10).unwrap().is_empty());
}

fn usage_counts_bytes(store: &dyn Backend) {
    set(store, "n", "ab", b"1234");
    set(store, "n", "c", b"1");
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 8 });
    set(store, "n", "ab", b"12");
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 6 }, "an overwrite counts the new value");
    apply(store, "n", &[KvOp::Delete { key: "c".into() }], KvQuota::UNLIMITED).unwrap();
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 1, bytes: 4 }, "a delete frees key and value");

    // Multibyte keys count their UTF-8 bytes; values are binary, NUL and
    // 0xFF included, and come back byte for byte.
    let binary = [0u8, 0, 255, 1, 0, 128];
    set(store, "b", "é😀", &binary);
    set(store, "b", "k\0\0", b"\0");
    assert_eq!(store.kv_usage("b").unwrap(), NamespaceUsage { keys: 2, bytes: 6 + 6 + 3 + 1 });
    assert_eq!(store.kv_get("b", "é😀").unwrap(), Some(binary.to_vec()));
    assert_eq!(store.kv_get("b", "k\0\0").unwrap(), Some(b"\0".to_vec()));
    assert_eq!(store.kv_get("b", "k").unwrap(), None, "a key is not cut at NUL");
    set(store, "b", "", b"");
    assert_eq!(
        store.kv_usage("b").unwrap(),
        NamespaceUsage { keys: 3, bytes: 16 },
        "an empty key and value hold 0 bytes"
    );
    assert_eq!(store.kv_get("b", "").unwrap(), Some(Vec::new()));

    append(store, "n", "s", "héllo", HistoryQuota::UNLIMITED).unwrap();
    append(store, "n", "s\0t", "a\0b", HistoryQuota::UNLIMITED).unwrap();
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage { turns: 2, bytes: 6 + 3 });
    assert_eq!(tail(store, "n", "s\0t"), ["a\0b"]);
    assert_eq!(tail(store, "n", "s"), ["héllo"], "a session is not cut at NUL");
}

fn every_op_has_its_outcome(store: &dyn Backend) {
    let ops = [
        set_op("a", b"1"),
        KvOp::Increment { key: "n".into(), delta: 5 },
        KvOp::Increment { key: "n".into(), delta: -7 },
        KvOp::Expect { key: "a".into(), value: Some(b"1".to_vec()) },
        KvOp::Expect { key: "none".into(), value: None },
        KvOp::CompareAndSwap { key: "c".into(), expected: None, new: Some(b"x".to_vec()) },
        KvOp::CompareAndSwap { key: "c".into(), expected: None, new: Some(b"y".to_vec()) },
        KvOp::CompareAndSwap { key: "c".into(), expected: Some(b"z".to_vec()), new: None },
        KvOp::CompareAndSwap { key: "c".into(), expected: Some(b"x".to_vec()), new: Some(b"xx".to_vec()) },
        KvOp::Delete { key: "a".into() },
        KvOp::Delete { key: "a".into() },
    ];
    let out = apply(store, "n", &ops, KvQuota::UNLIMITED).unwrap();
    use KvOutcome::*;
    let expected = [
        Written,
        Counter(5),
        Counter(-2),
        Matched,
        Matched,
        Swapped(true),
        Swapped(false),
        Swapped(false),
        Swapped(true),
        Deleted(true),
        Deleted(false),
    ];
    assert_eq!(out, expected);
    assert_eq!(store.kv_get("n", "n").unwrap(), Some(b"-2".to_vec()), "counters are decimal text");
    assert_eq!(store.kv_get("n", "c").unwrap(), Some(b"xx".to_vec()));
    assert_eq!(store.kv_get("n", "a").unwrap(), None);
    let swap_to_none = KvOp::CompareAndSwap { key: "c".into(), expected: Some(b"xx".to_vec()), new: None };
    assert_eq!(apply(store, "n", &[swap_to_none], KvQuota::UNLIMITED).unwrap(), [Swapped(true)]);
    assert_eq!(store.kv_get("n", "c").unwrap(), None, "swapping to none deletes");
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 1, bytes: 1 + 2 });
}

fn failed_swaps_and_bad_counters_change_nothing(store: &dyn Backend) {
    set(store, "n", "c", b"1");
    set(store, "n", "text", b"abc");
    set(store, "n", "max", i64::MAX.to_string().as_bytes());
    let swap = |expected: Option<&[u8]>| KvOp::CompareAndSwap {
        key: "c".into(),
        expected: expected.map(<[u8]>::to_vec),
        new: Some(b"2".to_vec()),
    };
    assert_eq!(apply(store, "n", &[swap(None)], KvQuota::UNLIMITED).unwrap(), [KvOutcome::Swapped(false)]);
    assert_eq!(apply(store, "n", &[swap(Some(b"0"))], KvQuota::UNLIMITED).unwrap(), [KvOutcome::Swapped(false)]);
    assert_eq!(store.kv_get("n", "c").unwrap(), Some(b"1".to_vec()), "failed swaps change nothing");

    let increment = |key: &str, delta| KvOp::Increment { key: key.into(), delta };
    for op in [increment("text", 1), increment("max", 1), increment("c", i64::MAX)] {
        let refused = apply(store, "n", &[set_op("new", b"v"), op.clone()], KvQuota::UNLIMITED);
        assert!(matches!(refused, Err(WriteRefused::InvalidValue(_))), "{op:?}: {refused:?}");
    }
    let expected = [("c", "1"), ("max", &i64::MAX.to_string()[..]), ("text", "abc")];
    let expected: Vec<_> = expected.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
    assert_eq!(contents(store, "n"), expected, "a refused increment undoes its batch");
    assert_eq!(
        apply(store, "n", &[increment("max", -1)], KvQuota::UNLIMITED).unwrap(),
        [KvOutcome::Counter(i64::MAX - 1)]
    );
}

fn kv_quota_refusals_change_nothing(store: &dyn Backend) {
    let quota = KvQuota { max_keys: 2, max_bytes: 10 };
    apply(store, "n", &[set_op("k1", b"abc")], quota).unwrap();
    apply(store, "n", &[set_op("k2", b"abc")], quota).unwrap();
    let before = contents(store, "n");
    assert!(matches!(apply(store, "n", &[set_op("k3", b"")], quota), Err(WriteRefused::Quota(_))), "a third key");
    assert!(matches!(apply(store, "n", &[set_op("k2", b"abcde")], quota), Err(WriteRefused::Quota(_))), "12 bytes");
    assert_eq!(contents(store, "n"), before);
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 10 });
    // At the bound, an overwrite of the same size or smaller is fine.
    apply(store, "n", &[set_op("k2", b"xyz")], quota).unwrap();
    apply(store, "n", &[set_op("k2", b"x")], quota).unwrap();
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 8 });

    // One value bigger than the namespace may hold: refused whole.
    let big = vec![7u8; 100];
    assert!(matches!(apply(store, "m", &[set_op("k", &big)], quota), Err(WriteRefused::Quota(_))));
    assert_eq!(store.kv_get("m", "k").unwrap(), None);
    assert_eq!(store.kv_usage("m").unwrap(), NamespaceUsage::default());

    // Over a lowered quota, a namespace may shrink but not grow.
    let lowered = KvQuota { max_keys: 1, max_bytes: 4 };
    assert!(matches!(apply(store, "n", &[set_op("k1", b"abcd")], lowered), Err(WriteRefused::Quota(_))));
    apply(store, "n", &[set_op("k1", b"a")], lowered).unwrap();
    apply(store, "n", &[KvOp::Delete { key: "k2".into() }], lowered).unwrap();
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 1, bytes: 3 });
}

fn batches_apply_all_or_nothing(store: &dyn Backend) {
    let quota = KvQuota { max_keys: 3, max_bytes: 1000 };
    set(store, "n", "x", b"1");
    let ok = [KvOp::Expect { key: "x".into(), value: Some(b"1".to_vec()) }, set_op("x", b"2"), set_op("y", b"2")];
    apply(store, "n", &ok, quota).unwrap();
    let stale = [set_op("z", b"3"), KvOp::Expect { key: "x".into(), value: Some(b"1".to_vec()) }];
    assert!(matches!(apply(store, "n", &stale, quota), Err(WriteRefused::Conflict(_))));
    let absent = [KvOp::Delete { key: "y".into() }, KvOp::Expect { key: "x".into(), value: None }];
    assert!(matches!(apply(store, "n", &absent, quota), Err(WriteRefused::Conflict(_))));
    // The quota is checked after the last op: a delete first makes room
    // for one key, not for three.
    let over = [KvOp::Delete { key: "x".into() }, set_op("p", b""), set_op("q", b""), set_op("r", b"")];
    assert!(matches!(apply(store, "n", &over, quota), Err(WriteRefused::Quota(_))));
    assert_eq!(contents(store, "n"), [("x".to_string(), b"2".to_vec()), ("y".to_string(), b"2".to_vec())]);
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 4 });
    // Within a batch, later ops see earlier ones; a batch may pass
    // through more keys than the quota as long as it ends within it.
    let through =
        [set_op("p", b""), set_op("q", b""), KvOp::Delete { key: "p".into() }, KvOp::Delete { key: "q".into() }];
    let out = apply(store, "n", &through, KvQuota { max_keys: 2, max_bytes: 1000 }).unwrap();
    assert_eq!(out, [KvOutcome::Written, KvOutcome::Written, KvOutcome::Deleted(true), KvOutcome::Deleted(true)]);
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 4 });
}

fn a_cancelled_write_applies_nothing(store: &dyn Backend) {
    let gate = CommitGate::new();
    assert!(gate.cancel());
    let ops = [set_op("k", b"v"), KvOp::Increment { key: "n".into(), delta: 1 }];
    assert!(matches!(store.kv_apply("n", &ops, &KvQuota::UNLIMITED, &gate), Err(StorageError::Cancelled)));
    assert!(store.kv_list("n", "", 10).unwrap().is_empty());
    assert_eq!(store.kv_usage("n").unwrap(), NamespaceUsage::default());
    let result = store.history_append("n", "s", &turn("t"), &HistoryQuota::UNLIMITED, &gate);
    assert!(matches!(result, Err(StorageError::Cancelled)));
    assert!(tail(store, "n", "s").is_empty());
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage::default());

    // A gate the caller cannot cancel any more (its commit began) commits.
    let gate = CommitGate::new();
    assert!(gate.begin_commit());
    assert!(store.kv_apply("n", &ops, &KvQuota::UNLIMITED, &gate).unwrap().is_ok());
    assert!(store.history_append("n", "s", &turn("t"), &HistoryQuota::UNLIMITED, &gate).unwrap().is_ok());
    assert_eq!(store.kv_get("n", "n").unwrap(), Some(b"1".to_vec()));
    assert!(!gate.cancel());
}

fn history_sessions_keep_their_newest_turns(store: &dyn Backend) {
    let quota = HistoryQuota { session_turns: 5, session_bytes: 100, namespace_turns: 12, namespace_bytes: 1000 };
    for i in 0..20 {
        append(store, "n", "s1", &format!("m{i:02}"), quota).unwrap();
    }
    assert_eq!(tail(store, "n", "s1"), ["m15", "m16", "m17", "m18", "m19"], "the oldest turns were dropped");
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage { turns: 5, bytes: 15 });

    // Bytes: exactly as many of the oldest turns go as make room.
    let quota = HistoryQuota { session_turns: 100, session_bytes: 10, ..quota };
    for content in ["aaaa", "bbbb", "cc"] {
        append(store, "n", "s2", content, quota).unwrap();
    }
    assert_eq!(tail(store, "n", "s2"), ["aaaa", "bbbb", "cc"], "10 bytes fit 10");
    append(store, "n", "s2", "d", quota).unwrap();
    assert_eq!(tail(store, "n", "s2"), ["bbbb", "cc", "d"]);
    append(store, "n", "s2", "eeeeeee", quota).unwrap();
    assert_eq!(tail(store, "n", "s2"), ["cc", "d", "eeeeeee"]);
    append(store, "n", "s2", "ffffffffff", quota).unwrap();
    assert_eq!(tail(store, "n", "s2"), ["ffffffffff"], "a turn of the whole share empties the session");
    // Multibyte content counts its bytes: "é" is 2.
    append(store, "n", "s2", "é", quota).unwrap();
    assert_eq!(tail(store, "n", "s2"), ["é"]);
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage { turns: 6, bytes: 15 + 2 });
    assert_eq!(tail(store, "n", "s1").len(), 5, "trimming one session leaves the others");
}

fn history_refusals_change_nothing(store: &dyn Backend) {
    let quota = HistoryQuota { session_turns: 3, session_bytes: 10, namespace_turns: 5, namespace_bytes: 20 };
    let refused = |r: Result<(), WriteRefused>| matches!(r, Err(WriteRefused::Quota(_)));
    assert!(refused(append(store, "n", "s", &"x".repeat(11), quota)), "one turn past the session's share");
    assert!(refused(append(store, "n", "s", "éééééé", quota)), "12 bytes, 6 characters");
    assert!(refused(append(store, "n", "s", "", HistoryQuota { session_turns: 0, ..quota })));
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage::default());

    for (session, content) in [("a", "aaaa"), ("b", "bbbbbbbb"), ("c", "cccccccc")] {
        append(store, "n", session, content, quota).unwrap();
    }
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage { turns: 3, bytes: 20 });
    // `a` would drop its own 4 bytes and add 8: past the namespace's 20.
    // Refused, and the trim is undone with it.
    let one_turn_each = HistoryQuota { session_turns: 1, ..quota };
    assert!(refused(append(store, "n", "a", "AAAAAAAA", one_turn_each)));
    assert_eq!(tail(store, "n", "a"), ["aaaa"], "a refused append drops nothing");
    // Replacing its 4 bytes with 4 fits.
    append(store, "n", "a", "AAAA", one_turn_each).unwrap();
    assert_eq!(tail(store, "n", "a"), ["AAAA"]);
    assert!(refused(append(store, "n", "d", "d", quota)), "other sessions' turns are never dropped for a new one");
    for s in ["b", "c"] {
        assert_eq!(tail(store, "n", s).len(), 1);
    }
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage { turns: 3, bytes: 20 });

    // Turns: the namespace holds at most 5.
    let roomy = HistoryQuota { namespace_bytes: 1000, ..quota };
    append(store, "n", "d", "d", roomy).unwrap();
    append(store, "n", "e", "e", roomy).unwrap();
    assert!(refused(append(store, "n", "f", "f", roomy)));
    assert_eq!(store.history_usage("n").unwrap(), HistoryUsage { turns: 5, bytes: 22 });
}

fn history_tail_is_oldest_first_per_session(store: &dyn Backend) {
    for i in 0..5 {
        append(store, "n", "s1", &format!("m{i}"), HistoryQuota::UNLIMITED).unwrap();
        append(store, "n", "s10", &format!("other{i}"), HistoryQuota::UNLIMITED).unwrap();
    }
    let got: Vec<_> = store.history_tail("n", "s1", 2).unwrap().into_iter().map(|t| t.content).collect();
    assert_eq!(got, ["m3", "m4"], "the last turns, oldest first");
    assert_eq!(tail(store, "n", "s1"), ["m0", "m1", "m2", "m3", "m4"]);
    assert!(store.history_tail("n", "s1", 0).unwrap().is_empty());
    assert!(store.history_tail("n", "s", 10).unwrap().is_empty(), "a session is matched whole, not by prefix");
    assert!(store.history_tail("other", "s1", 10).unwrap().is_empty());
    let roles = [("system", "be brief"), ("assistant", "ok"), ("tool", "{\"x\":1}")];
    for (role, content) in roles {
        let turn = StoredTurn { role: role.into(), content: content.into() };
        store.history_append("n", "r", &turn, &HistoryQuota::UNLIMITED, &CommitGate::new()).unwrap().unwrap();
    }
    let got: Vec<_> = store.history_tail("n", "r", 10).unwrap().into_iter().map(|t| (t.role, t.content)).collect();
    let want: Vec<_> = roles.iter().map(|(r, c)| (r.to_string(), c.to_string())).collect();
    assert_eq!(got, want, "roles round-trip");
}

fn llm_record(agent: &str, at: i64, prompt: u64, completion: u64, cost: Option<f64>) -> LlmUsageRecord {
    LlmUsageRecord {
        at,
        agent: agent.into(),
        session: "s".into(),
        profile: "fast".into(),
        model: "m".into(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        latency_ms: 12,
        cost_usd: cost,
        outcome: "ok".into(),
    }
}

fn llm_ledger_filters_and_totals(store: &dyn Backend) {
    assert_eq!(store.llm_totals("a", 0).unwrap(), LlmTotals::default());
    assert!(store.llm_usage(None, 0).unwrap().is_empty());
    let records = [
        llm_record("a", 100, 10, 5, Some(0.5)),
        llm_record("b", 200, 7, 7, Some(1.0)),
        llm_record("a", 200, 1, 1, None),
        llm_record("a", 150, 3_000_000_000, 4, Some(0.25)),
        LlmUsageRecord { outcome: "rate-limited".into(), session: "t".into(), ..llm_record("ab", 300, 0, 0, None) },
    ];
    for r in &records {
        store.llm_record(r).unwrap();
    }
    assert_eq!(store.llm_usage(None, 0).unwrap(), records, "every row, in the order recorded, round-tripped");
    assert_eq!(store.llm_usage(Some("a"), 0).unwrap(), [records[0].clone(), records[2].clone(), records[3].clone()]);
    assert_eq!(
        store.llm_usage(Some("a"), 150).unwrap(),
        [records[2].clone(), records[3].clone()],
        "since is inclusive"
    );
    assert_eq!(store.llm_usage(None, 201).unwrap(), [records[4].clone()]);
    assert!(store.llm_usage(Some("c"), 0).unwrap().is_empty());

    let totals = store.llm_totals("a", 0).unwrap();
    assert_eq!((totals.calls, totals.tokens), (3, 15 + 2 + 3_000_000_004));
    assert!((totals.cost_usd - 0.75).abs() < 1e-9, "a call without a price adds nothing: {totals:?}");
    assert_eq!(store.llm_totals("a", 150).unwrap(), LlmTotals { calls: 2, tokens: 3_000_000_006, cost_usd: 0.25 });
    assert_eq!(store.llm_totals("a", 201).unwrap(), LlmTotals::default());
    assert_eq!(store.llm_totals("ab", 0).unwrap(), LlmTotals { calls: 1, tokens: 0, cost_usd: 0.0 }, "no prices: 0");
    assert_eq!(store.llm_totals("b", 0).unwrap(), LlmTotals { calls: 1, tokens: 14, cost_usd: 1.0 });
}
