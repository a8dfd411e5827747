//! `HttpStore`: the daily request budget, capped refusal notes, and a log
//! that is a retention window.
use super::aws::same_text;
use crate::Backend;
use crate::http::{HttpRecord, RETENTION_SECS};

pub(super) const TESTS: &[super::Test] = &[
    ("http_reserve_takes_at_most_per_day", http_reserve_takes_at_most_per_day),
    ("http_notes_are_logged_not_counted_and_capped", http_notes_are_logged_not_counted_and_capped),
    ("http_finish_completes_the_reservation", http_finish_completes_the_reservation),
    ("http_log_is_the_newest_oldest_first", http_log_is_the_newest_oldest_first),
    ("http_records_expire_after_retention", http_records_expire_after_retention),
    ("http_records_keep_a_method_with_nul", http_records_keep_a_method_with_nul),
];

const DAY: i64 = 86_400 * 100;

fn intent(agent: &str, at: i64) -> HttpRecord {
    HttpRecord {
        at,
        agent: agent.into(),
        method: "GET".into(),
        scheme: "https".into(),
        host: "example.org".into(),
        port: 443,
        status: None,
        bytes: 0,
        outcome: "pending".into(),
        elapsed_ms: 0,
    }
}

fn http_reserve_takes_at_most_per_day(store: &dyn Backend) {
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(store.http_reserve(&intent("a", DAY + i), DAY, 3).unwrap().expect("within the day's budget"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "reservation ids grow");
    assert_eq!(store.http_reserve(&intent("a", DAY + 9), DAY, 3).unwrap(), None, "the day's requests are used up");
    assert!(store.http_reserve(&intent("a", DAY + 9), DAY, 4).unwrap().is_some(), "a larger budget allows one more");
    assert!(store.http_reserve(&intent("b", DAY + 9), DAY, 3).unwrap().is_some(), "per agent");
    assert!(store.http_reserve(&intent("a", DAY + 86_400), DAY + 86_400, 3).unwrap().is_some(), "a new day");
    assert_eq!(store.http_reserve(&intent("c", DAY), DAY, 0).unwrap(), None, "a budget of 0");
    // Finishing a reservation (even as an error) does not give it back.
    let done = HttpRecord { outcome: "timeout".into(), ..intent("d", DAY + 1) };
    let id = store.http_reserve(&done, DAY, 1).unwrap().unwrap();
    store.http_finish(id, &done).unwrap();
    assert_eq!(store.http_reserve(&intent("d", DAY + 2), DAY, 1).unwrap(), None, "a sent request stays counted");
}

fn http_notes_are_logged_not_counted_and_capped(store: &dyn Backend) {
    let refused = HttpRecord { outcome: "host-not-allowed".into(), status: Some(403), bytes: 7, elapsed_ms: 2, ..intent("c", DAY + 5) };
    assert!(store.http_note(&refused, DAY, 2).unwrap());
    assert!(store.http_reserve(&intent("c", DAY + 6), DAY, 1).unwrap().is_some(), "a refusal is logged, not counted");
    assert!(store.http_note(&refused, DAY, 2).unwrap(), "a reservation does not count against the notes");
    assert!(!store.http_note(&refused, DAY, 2).unwrap(), "refusals past the day's cap are dropped");
    assert!(store.http_note(&HttpRecord { agent: "e".into(), ..refused.clone() }, DAY, 2).unwrap(), "per agent");
    assert!(store.http_note(&HttpRecord { at: DAY + 86_400, ..refused.clone() }, DAY + 86_400, 2).unwrap(), "a new day");
    let log = store.http_log(Some("c"), 10).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0], refused, "a note keeps every field");
    assert_eq!(log.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["host-not-allowed", "pending", "host-not-allowed", "host-not-allowed"]);
}

fn http_finish_completes_the_reservation(store: &dyn Backend) {
    let id = store.http_reserve(&intent("a", 1_000), 0, 10).unwrap().unwrap();
    let pending = store.http_log(Some("a"), 10).unwrap();
    assert_eq!(pending, vec![intent("a", 1_000)], "the destination is known before it is sent");
    let done = HttpRecord {
        method: "POST".into(),
        scheme: "http".into(),
        host: "api.example.org".into(),
        port: 65_535,
        status: Some(200),
        bytes: 1 << 40,
        outcome: "ok".into(),
        elapsed_ms: 3,
        ..intent("a", 1_000)
    };
    store.http_finish(id, &done).unwrap();
    assert_eq!(store.http_log(Some("a"), 10).unwrap(), vec![done.clone()], "the reservation became the record");
    let other = store.http_reserve(&intent("b", 1_001), 0, 10).unwrap().unwrap();
    store.http_finish(other, &HttpRecord { status: Some(500), outcome: "ok".into(), ..intent("b", 1_001) }).unwrap();
    assert_eq!(store.http_log(Some("a"), 10).unwrap(), vec![done], "finishing another reservation leaves this one");
}

fn http_log_is_the_newest_oldest_first(store: &dyn Backend) {
    assert!(store.http_log(None, 10).unwrap().is_empty());
    for (i, agent) in ["a", "b", "a", "c", "a"].into_iter().enumerate() {
        // `at` out of order: the log follows the order written.
        let at = 1_000 - i as i64;
        store.http_reserve(&HttpRecord { host: format!("h{i}"), ..intent(agent, at) }, 0, 100).unwrap().unwrap();
    }
    let hosts = |agent: Option<&str>, limit| store.http_log(agent, limit).unwrap().into_iter().map(|r| r.host).collect::<Vec<_>>();
    assert_eq!(hosts(None, 10), ["h0", "h1", "h2", "h3", "h4"]);
    assert_eq!(hosts(None, 2), ["h3", "h4"], "the newest two, oldest first");
    assert_eq!(hosts(Some("a"), 2), ["h2", "h4"]);
    assert_eq!(hosts(Some("a"), 10), ["h0", "h2", "h4"]);
    assert!(hosts(Some("z"), 10).is_empty());
}

fn http_records_expire_after_retention(store: &dyn Backend) {
    store.http_reserve(&intent("a", 1_000), 0, 10).unwrap().unwrap();
    store.http_note(&HttpRecord { outcome: "bad-form".into(), ..intent("b", 1_001) }, 0, 10).unwrap();
    store.http_reserve(&intent("a", 2_000), 0, 10).unwrap().unwrap();
    // Exactly at the window's edge a record stays.
    store.http_reserve(&intent("c", 1_000 + RETENTION_SECS), 0, 10).unwrap().unwrap();
    assert_eq!(store.http_log(None, 10).unwrap().len(), 4, "nothing is past the window yet");
    // Any agent's write expires every agent's old records, notes included.
    assert!(store.http_note(&HttpRecord { outcome: "bad-form".into(), ..intent("c", 1_002 + RETENTION_SECS) }, 0, 10).unwrap());
    let left = store.http_log(None, 10).unwrap().into_iter().map(|r| (r.agent, r.at)).collect::<Vec<_>>();
    assert_eq!(left, [
        ("a".to_string(), 2_000),
        ("c".to_string(), 1_000 + RETENTION_SECS),
        ("c".to_string(), 1_002 + RETENTION_SECS)
    ]);
}

fn http_records_keep_a_method_with_nul(store: &dyn Backend) {
    // The method is the guest's, logged before it is checked.
    let refused = HttpRecord {
        method: "GE\0T".into(),
        scheme: String::new(),
        host: String::new(),
        port: 0,
        outcome: "bad-form".into(),
        ..intent("a", DAY + 1)
    };
    assert!(store.http_note(&refused, DAY, 10).unwrap());
    let sent = HttpRecord { method: "PO\0ST".into(), ..intent("a", DAY + 2) };
    let id = store.http_reserve(&sent, DAY, 10).unwrap().expect("reserved");
    let check = |got: &[HttpRecord], sent: &[&HttpRecord]| {
        assert_eq!(got.len(), sent.len(), "every record was written");
        for (g, s) in got.iter().zip(sent) {
            assert!(same_text(&g.method, &s.method), "{:?}", g.method);
            assert_eq!(&HttpRecord { method: s.method.clone(), ..g.clone() }, *s, "every other field as written");
        }
    };
    check(&store.http_log(Some("a"), 10).unwrap(), &[&refused, &sent]);
    let done = HttpRecord { method: "PU\0T".into(), status: Some(201), bytes: 5, outcome: "ok".into(), elapsed_ms: 3, ..sent };
    store.http_finish(id, &done).unwrap();
    check(&store.http_log(Some("a"), 10).unwrap(), &[&refused, &done]);
}
