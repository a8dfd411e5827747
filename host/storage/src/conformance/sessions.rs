use crate::Backend;
use crate::sessions::{MAX_TRANSCRIPT_BYTES, MAX_TRANSCRIPT_TURNS, SessionAppend, TranscriptEntry};

pub(super) const TESTS: &[super::Test] = &[
    ("transcripts_are_per_owner_and_session", transcripts_are_per_owner_and_session),
    ("tail_is_oldest_first_and_limited", tail_is_oldest_first_and_limited),
    ("turns_round_trip_exactly", turns_round_trip_exactly),
    ("a_transcript_keeps_its_newest_turns", a_transcript_keeps_its_newest_turns),
    ("a_transcript_keeps_within_its_bytes", a_transcript_keeps_within_its_bytes),
    ("a_batch_past_the_cap_keeps_the_newest", a_batch_past_the_cap_keeps_the_newest),
    ("a_batch_is_seen_whole_or_not_at_all", a_batch_is_seen_whole_or_not_at_all),
    ("recent_requests_are_per_agent_newest_first", recent_requests_are_per_agent_newest_first),
    ("a_session_id_with_nul_finds_nothing", a_session_id_with_nul_finds_nothing),
];

fn turn(role: &str, text: &str) -> TranscriptEntry {
    TranscriptEntry { at_ms: 1, role: role.into(), text: text.into(), agents: vec!["echo".into()], detail: Some(serde_json::json!({"k": 1})) }
}

fn answer(text: &str, agents: &[&str]) -> TranscriptEntry {
    TranscriptEntry { agents: agents.iter().map(|a| a.to_string()).collect(), ..turn("assistant", text) }
}

fn texts(turns: &[TranscriptEntry]) -> Vec<&str> {
    turns.iter().map(|t| t.text.as_str()).collect()
}

fn append(owner: &str, session: &str, turns: Vec<TranscriptEntry>) -> SessionAppend {
    SessionAppend { owner: owner.into(), session: session.into(), turns }
}

fn transcripts_are_per_owner_and_session(store: &dyn Backend) {
    store.session_append("me", "a", &[turn("user", "q1"), turn("assistant", "a1")]).unwrap();
    store.session_append("me", "b", &[turn("user", "other")]).unwrap();
    store.session_append("me", "a", &[turn("user", "q2"), turn("assistant", "a2")]).unwrap();
    store.session_append("you", "a", &[turn("user", "not mine")]).unwrap();
    assert_eq!(texts(&store.session_tail("me", "a", 10).unwrap()), ["q1", "a1", "q2", "a2"]);
    assert_eq!(texts(&store.session_tail("me", "b", 10).unwrap()), ["other"]);
    assert_eq!(texts(&store.session_tail("you", "a", 10).unwrap()), ["not mine"], "owners do not share a session id");
    assert!(store.session_tail("me", "missing", 10).unwrap().is_empty());
    assert!(store.session_tail("nobody", "a", 10).unwrap().is_empty());
}

fn tail_is_oldest_first_and_limited(store: &dyn Backend) {
    for i in 0..7 {
        store.session_append("me", "s", &[turn("user", &format!("t{i}"))]).unwrap();
    }
    assert_eq!(texts(&store.session_tail("me", "s", 3).unwrap()), ["t4", "t5", "t6"], "the last 3, oldest first");
    assert_eq!(store.session_tail("me", "s", u32::MAX).unwrap().len(), 7);
    assert!(store.session_tail("me", "s", 0).unwrap().is_empty());
    // A turn's position is when it was appended, not its timestamp.
    store.session_append("me", "s", &[TranscriptEntry { at_ms: -5, ..turn("user", "late") }]).unwrap();
    assert_eq!(store.session_tail("me", "s", 1).unwrap()[0].text, "late");
}

fn turns_round_trip_exactly(store: &dyn Backend) {
    let sent = [
        TranscriptEntry { at_ms: 1_733_000_000_123, role: "user".into(), text: "nul \0 inside, 😀 é".into(), agents: vec![], detail: None },
        TranscriptEntry {
            at_ms: i64::MAX,
            role: "assistant".into(),
            text: String::new(),
            agents: vec!["echo".into(), "primes-2".into()],
            detail: Some(serde_json::json!({"status": 200, "trace": [{"agent": "echo", "ms": 1.5}], "usage": null, "s": "\u{0}"})),
        },
    ];
    store.session_append("me", "exact", &sent).unwrap();
    assert_eq!(store.session_tail("me", "exact", 10).unwrap(), sent);
}

fn a_transcript_keeps_its_newest_turns(store: &dyn Backend) {
    let n = MAX_TRANSCRIPT_TURNS + 7;
    for i in 0..n {
        store.session_append("me", "long", &[turn("user", &format!("t{i}"))]).unwrap();
    }
    store.session_append("me", "short", &[turn("user", "kept")]).unwrap();
    let all = store.session_tail("me", "long", u32::MAX).unwrap();
    assert_eq!(all.len() as u64, MAX_TRANSCRIPT_TURNS);
    assert_eq!(all[0].text, "t7", "the oldest turns went first");
    assert_eq!(all.last().unwrap().text, format!("t{}", n - 1));
    assert_eq!(store.session_tail("me", "short", 10).unwrap().len(), 1, "other sessions are untouched");
    // A two-turn append to a full session drops two.
    store.session_append("me", "long", &[turn("user", "q"), turn("assistant", "a")]).unwrap();
    let all = store.session_tail("me", "long", u32::MAX).unwrap();
    assert_eq!((all.len() as u64, all[0].text.as_str()), (MAX_TRANSCRIPT_TURNS, "t9"));
    assert_eq!(texts(&all[all.len() - 2..]), ["q", "a"]);
}

fn a_transcript_keeps_within_its_bytes(store: &dyn Backend) {
    // Bytes: a few large turns push the oldest out. Counted in bytes (two
    // per `é`), with the agent list and detail.
    let big = "é".repeat((MAX_TRANSCRIPT_BYTES / 8) as usize);
    for i in 0..6 {
        store.session_append("me", "big", &[turn("user", &format!("{i}{big}"))]).unwrap();
    }
    let kept = store.session_tail("me", "big", u32::MAX).unwrap();
    let size = |t: &TranscriptEntry| {
        t.text.len() + serde_json::to_string(&t.agents).unwrap().len() + t.detail.as_ref().map_or(0, |d| d.to_string().len())
    };
    let bytes: usize = kept.iter().map(size).sum();
    assert!(bytes as u64 <= MAX_TRANSCRIPT_BYTES, "{bytes} bytes kept");
    assert_eq!(kept.iter().map(|t| &t.text[..1]).collect::<Vec<_>>(), ["3", "4", "5"], "the newest that fit");
    // Small turns after it still count against the bound: one more big
    // turn pushes out exactly the oldest.
    store.session_append("me", "big", &[turn("user", "small")]).unwrap();
    store.session_append("me", "big", &[turn("user", &format!("6{big}"))]).unwrap();
    let kept = store.session_tail("me", "big", u32::MAX).unwrap();
    assert_eq!(kept.iter().map(|t| &t.text[..1]).collect::<Vec<_>>(), ["4", "5", "s", "6"]);
}

fn a_batch_past_the_cap_keeps_the_newest(store: &dyn Backend) {
    let mut batch: Vec<SessionAppend> =
        (0..MAX_TRANSCRIPT_TURNS + 5).map(|i| append("me", "flood", vec![turn("user", &format!("t{i}"))])).collect();
    batch.insert(3, append("me", "calm", vec![turn("user", "c1"), turn("assistant", "a1")]));
    batch.push(append("you", "flood", vec![turn("user", "yours")]));
    store.session_append_batch(&batch).unwrap();
    let flood = store.session_tail("me", "flood", u32::MAX).unwrap();
    assert_eq!(flood.len() as u64, MAX_TRANSCRIPT_TURNS);
    assert_eq!((flood[0].text.as_str(), flood.last().unwrap().text.clone()), ("t5", format!("t{}", MAX_TRANSCRIPT_TURNS + 4)));
    assert_eq!(texts(&store.session_tail("me", "calm", 10).unwrap()), ["c1", "a1"]);
    assert_eq!(texts(&store.session_tail("you", "flood", 10).unwrap()), ["yours"]);
    store.session_append_batch(&[]).unwrap();
    store.session_append_batch(&[append("me", "empty", vec![])]).unwrap();
    assert!(store.session_tail("me", "empty", 10).unwrap().is_empty());
}

/// A batch is one transaction: a reader never sees one request's turns
/// without another's of the same batch.
fn a_batch_is_seen_whole_or_not_at_all(store: &dyn Backend) {
    const BATCHES: usize = 150;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                let got = store.session_tail("me", "pairs", u32::MAX).unwrap();
                assert_eq!(got.len() % 2, 0, "a question without its answer: {:?}", texts(&got));
                for pair in got.chunks(2) {
                    assert_eq!(pair[0].text.replace('q', "a"), pair[1].text, "{:?}", texts(pair));
                }
                reads += 1;
            }
            reads
        });
        for i in 0..BATCHES {
            // The question and its answer as two requests of one batch,
            // with another session's request between them.
            let batch = [
                append("me", "pairs", vec![turn("user", &format!("q{i}"))]),
                append("me", "other", vec![turn("user", "x")]),
                append("me", "pairs", vec![answer(&format!("a{i}"), &["echo"])]),
            ];
            store.session_append_batch(&batch).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(store.session_tail("me", "pairs", u32::MAX).unwrap().len(), 2 * BATCHES);
    assert_eq!(store.session_tail("me", "other", u32::MAX).unwrap().len(), BATCHES);
}

fn recent_requests_are_per_agent_newest_first(store: &dyn Backend) {
    let ask = |session: &str, q: &str, agents: &[&str]| {
        store.session_append("local", session, &[turn("user", q), answer(&format!("re {q}"), agents)]).unwrap();
    };
    ask("s1", "100", &["primes"]);
    ask("s2", "777", &["primes", "echo"]);
    ask("s3", "hello", &["echo"]);
    ask("s1", "100", &["primes"]);
    ask("s4", "101", &["primes-2"]);
    ask("s5", "777", &["primes"]);
    // An answer with no question before it in its session names no request,
    // whatever other sessions hold.
    store.session_append("local", "s6", &[answer("unasked", &["primes"])]).unwrap();
    // The request is the user turn right before the answer.
    store.session_append("local", "s7", &[turn("user", "first"), turn("user", "second"), answer("x", &["primes"])]).unwrap();
    // Another owner's conversations count too: the agent served them.
    store.session_append("other", "s1", &[turn("user", "theirs"), answer("y", &["primes"])]).unwrap();

    assert_eq!(store.recent_requests("primes", 32).unwrap(), ["theirs", "second", "777", "100"], "distinct, newest first");
    assert_eq!(store.recent_requests("primes", 2).unwrap(), ["theirs", "second"]);
    assert_eq!(store.recent_requests("echo", 32).unwrap(), ["hello", "777"]);
    assert_eq!(store.recent_requests("primes-2", 32).unwrap(), ["101"], "a name is matched whole");
    assert!(store.recent_requests("prime", 32).unwrap().is_empty());
    assert!(store.recent_requests("primes", 0).unwrap().is_empty());
}

fn a_session_id_with_nul_finds_nothing(store: &dyn Backend) {
    // A client asks for a transcript by an id it chose (stored ids are checked).
    store.session_append("me", "a", &[turn("user", "q")]).unwrap();
    assert!(store.session_tail("me", "a\0", 10).unwrap().is_empty());
    assert!(store.session_tail("me", "\0", 10).unwrap().is_empty());
    assert_eq!(texts(&store.session_tail("me", "a", 10).unwrap()), ["q"]);
}
