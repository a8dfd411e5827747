//! `llm_spend_by_day` and `installs_since` read rows written through
//! `Storage::llm_record` and `EvolutionStore::record_install`.
use crate::Backend;
use crate::evolution::InstallRecord;
use crate::sessions::TranscriptEntry;
use crate::stats::{ACTIVITY_RETENTION_SECS, ActivityCount};
use crate::{LlmUsageRecord, Storage};

pub(super) const TESTS: &[super::Test] = &[
    ("activity_adds_up_across_calls", activity_adds_up_across_calls),
    ("activity_lists_in_order_from_a_time_with_a_cap", activity_lists_in_order_from_a_time_with_a_cap),
    ("activity_older_than_retention_is_deleted", activity_older_than_retention_is_deleted),
    ("spend_is_summed_per_agent_per_day", spend_is_summed_per_agent_per_day),
    ("installs_since_reads_every_agent_in_a_window", installs_since_reads_every_agent_in_a_window),
    ("chat_answers_since_counts_stored_answers", chat_answers_since_counts_stored_answers),
];

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn count(hour: i64, kind: &str, subject: &str, outcome: &str, n: u64) -> ActivityCount {
    ActivityCount { hour, kind: kind.into(), subject: subject.into(), outcome: outcome.into(), n }
}

fn activity_adds_up_across_calls(store: &dyn Backend) {
    let now = 1_000 * DAY;
    let h = now - HOUR;
    store.activity_add(&[count(h, "agent", "echo", "ok", 2), count(h, "agent", "echo", "deadline", 1)], now).unwrap();
    store.activity_add(&[count(h, "agent", "echo", "ok", 3)], now).unwrap();
    // The same bucket twice in one call adds up too.
    store.activity_add(&[count(h, "chat", "/v1/chat", "200", 4), count(h, "chat", "/v1/chat", "200", 6)], now).unwrap();
    store.activity_add(&[count(now, "agent", "echo", "ok", 1)], now).unwrap();
    store.activity_add(&[], now).unwrap();
    assert_eq!(
        store.activity_since(0, 100).unwrap(),
        [
            count(h, "agent", "echo", "deadline", 1),
            count(h, "agent", "echo", "ok", 5),
            count(h, "chat", "/v1/chat", "200", 10),
            count(now, "agent", "echo", "ok", 1),
        ]
    );
}

fn activity_lists_in_order_from_a_time_with_a_cap(store: &dyn Backend) {
    let now = 1_000 * DAY;
    // Written out of order; listed by hour, kind, subject, outcome, text
    // compared byte by byte ("B" < "a" < "é"), whatever the locale.
    let rows = [
        count(now, "agent", "é", "ok", 1),
        count(now, "agent", "a", "ok", 1),
        count(now, "agent", "B", "ok", 1),
        count(now - HOUR, "chat", "/v1/chat", "500", 1),
        count(now - HOUR, "agent", "echo", "ok", 1),
        count(now - 2 * HOUR, "agent", "echo", "ok", 1),
    ];
    store.activity_add(&rows, now).unwrap();
    let listed = store.activity_since(now - HOUR, 100).unwrap();
    let keys: Vec<(i64, &str, &str)> = listed.iter().map(|c| (c.hour - now, c.kind.as_str(), c.subject.as_str())).collect();
    assert_eq!(keys, [(-HOUR, "agent", "echo"), (-HOUR, "chat", "/v1/chat"), (0, "agent", "B"), (0, "agent", "a"), (0, "agent", "é")]);
    assert_eq!(store.activity_since(0, 2).unwrap().len(), 2, "row cap");
    assert_eq!(store.activity_since(0, 2).unwrap()[0].hour, now - 2 * HOUR, "the cap keeps the oldest");
    assert!(store.activity_since(now + 1, 100).unwrap().is_empty());
}

fn activity_older_than_retention_is_deleted(store: &dyn Backend) {
    let now = 100 * DAY;
    store.activity_add(&[count(0, "agent", "echo", "ok", 9), count(now - ACTIVITY_RETENTION_SECS, "agent", "echo", "ok", 1)], 0).unwrap();
    assert_eq!(store.activity_since(0, 100).unwrap().len(), 2, "nothing is old yet");
    store.activity_add(&[count(now - HOUR, "agent", "echo", "ok", 2)], now).unwrap();
    let hours: Vec<i64> = store.activity_since(0, 100).unwrap().iter().map(|c| c.hour).collect();
    assert_eq!(hours, [now - ACTIVITY_RETENTION_SECS, now - HOUR], "the 100-day-old bucket is gone, the 90-day-old kept");
}

fn llm_call(at: i64, agent: &str, tokens: (u64, u64), cost: Option<f64>) -> LlmUsageRecord {
    LlmUsageRecord {
        at,
        agent: agent.into(),
        session: "s".into(),
        profile: "fast".into(),
        model: "m".into(),
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        latency_ms: 1,
        cost_usd: cost,
        outcome: "ok".into(),
    }
}

fn spend_is_summed_per_agent_per_day(store: &dyn Backend) {
    for r in [
        llm_call(10, "a", (10, 5), Some(0.25)),
        llm_call(20, "a", (10, 5), Some(0.5)),
        llm_call(30, "a", (10, 5), None),
        llm_call(DAY + 1, "a", (1, 2), Some(1.0)),
        llm_call(40, "b", (7, 0), Some(2.0)),
        llm_call(50, "B", (1, 1), None),
        llm_call(2 * DAY - 1, "b", (0, 0), None),
    ] {
        Storage::llm_record(store, &r).unwrap();
    }
    let rows = store.llm_spend_by_day(0, 100).unwrap();
    let got: Vec<_> = rows.iter().map(|r| (r.day, r.agent.as_str(), r.calls, r.tokens, r.cost_usd, r.unpriced_calls)).collect();
    assert_eq!(
        got,
        [
            (0, "B", 1, 2, 0.0, 1),
            (0, "a", 3, 45, 0.75, 1),
            (0, "b", 1, 7, 2.0, 0),
            (DAY, "a", 1, 3, 1.0, 0),
            (DAY, "b", 1, 0, 0.0, 1),
        ],
        "by day, then agent in byte order"
    );
    assert_eq!(store.llm_spend_by_day(DAY, 100).unwrap().len(), 2, "window");
    assert_eq!(store.llm_spend_by_day(25, 100).unwrap()[1].calls, 1, "the window counts calls, not whole days");
    assert_eq!(store.llm_spend_by_day(0, 2).unwrap().len(), 2, "row cap");
}

fn installs_since_reads_every_agent_in_a_window(store: &dyn Backend) {
    for (agent, at) in [("a", 1), ("b", 5), ("a", 9), ("c", 7)] {
        store.record_install(&InstallRecord { agent: agent.into(), hash: format!("h{at}"), reason: "rollback".into(), at }).unwrap();
    }
    let rows = store.installs_since(5, 10).unwrap();
    assert_eq!(rows.iter().map(|r| (r.agent.as_str(), r.at)).collect::<Vec<_>>(), [("b", 5), ("a", 9), ("c", 7)], "in the order installed");
    assert_eq!(rows[1], InstallRecord { agent: "a".into(), hash: "h9".into(), reason: "rollback".into(), at: 9 });
    assert_eq!(store.installs_since(0, 1).unwrap()[0].at, 1, "row cap");
    assert!(store.installs_since(10, 10).unwrap().is_empty());
}

fn chat_answers_since_counts_stored_answers(store: &dyn Backend) {
    let at = |at_ms: i64, role: &str| TranscriptEntry { at_ms, role: role.into(), text: "t".into(), agents: vec![], detail: None };
    store.session_append("me", "a", &[at(999, "user"), at(999, "assistant")]).unwrap();
    store.session_append("me", "a", &[at(1_000, "user"), at(1_000, "assistant")]).unwrap();
    store.session_append("you", "b", &[at(5_500, "user"), at(5_500, "assistant"), at(5_600, "assistant")]).unwrap();
    assert_eq!(store.chat_answers_since(0).unwrap(), 4);
    assert_eq!(store.chat_answers_since(1).unwrap(), 3, "seconds, compared with milliseconds");
    assert_eq!(store.chat_answers_since(6).unwrap(), 0);
    assert_eq!(store.chat_answers_since(i64::MAX).unwrap(), 0);
}
