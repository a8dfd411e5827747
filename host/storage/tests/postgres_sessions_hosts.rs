//! Two hosts on one PostgreSQL database: chat transcripts written through
//! either read back the same from both, and the per-session cap holds when
//! both append to one session at once.
use std::sync::atomic::{AtomicBool, Ordering};

use agentkernel_storage::postgres::{PostgresStorage, testing};
use agentkernel_storage::sessions::{MAX_TRANSCRIPT_TURNS, SessionAppend, SessionStore, TranscriptEntry};

fn hosts(test: &str) -> Option<(PostgresStorage, PostgresStorage)> {
    let url = testing::fresh_database(test)?;
    Some((PostgresStorage::connect(&url, 4).unwrap(), PostgresStorage::connect(&url, 4).unwrap()))
}

fn turn(role: &str, text: String) -> TranscriptEntry {
    TranscriptEntry { at_ms: 1, role: role.into(), text, agents: vec!["echo".into()], detail: None }
}

fn texts(turns: &[TranscriptEntry]) -> Vec<String> {
    turns.iter().map(|t| t.text.clone()).collect()
}

#[test]
fn a_conversation_through_two_hosts_reads_back_whole_from_either() {
    let Some((a, b)) = hosts("sessions_two_hosts_alternate") else { return };
    let mut expected = Vec::new();
    for i in 0..20 {
        let host = if i % 2 == 0 { &a } else { &b };
        let pair = [turn("user", format!("q{i}")), turn("assistant", format!("a{i}"))];
        host.session_append("me", "chat", &pair).unwrap();
        expected.extend(texts(&pair));
        // Each host sees the other's turn right after it was acknowledged.
        let other = if i % 2 == 0 { &b } else { &a };
        assert_eq!(texts(&other.session_tail("me", "chat", 2).unwrap()), texts(&pair));
    }
    assert_eq!(texts(&a.session_tail("me", "chat", u32::MAX).unwrap()), expected);
    assert_eq!(texts(&b.session_tail("me", "chat", u32::MAX).unwrap()), expected);
    assert_eq!(a.recent_requests("echo", 3).unwrap(), ["q19", "q18", "q17"]);
    assert_eq!(b.recent_requests("echo", 3).unwrap(), ["q19", "q18", "q17"]);
}

#[test]
fn concurrent_appends_from_two_hosts_never_exceed_the_cap() {
    let Some((a, b)) = hosts("sessions_two_hosts_cap") else { return };
    // Enough that the session is trimmed many times while both write.
    let per_host = (MAX_TRANSCRIPT_TURNS as usize) * 3 / 4;
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writers: Vec<_> = [("a", &a), ("b", &b)]
            .into_iter()
            .map(|(name, host)| {
                scope.spawn(move || {
                    for i in 0..per_host {
                        // A two-turn append or a batch of two requests, alternately.
                        let (q, a) = (turn("user", format!("{name}{i:04}q")), turn("assistant", format!("{name}{i:04}a")));
                        if i % 2 == 0 {
                            host.session_append("me", "shared", &[q, a]).unwrap();
                        } else {
                            let request = |t| SessionAppend { owner: "me".into(), session: "shared".into(), turns: vec![t] };
                            host.session_append_batch(&[request(q), request(a)]).unwrap();
                        }
                    }
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let n = b.session_tail("me", "shared", u32::MAX).unwrap().len() as u64;
                assert!(n <= MAX_TRANSCRIPT_TURNS, "{n} turns seen in one session");
                reads += 1;
            }
            reads
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
    });
    let kept = a.session_tail("me", "shared", u32::MAX).unwrap();
    assert_eq!(kept.len() as u64, MAX_TRANSCRIPT_TURNS, "exactly the cap");
    assert_eq!(texts(&kept), texts(&b.session_tail("me", "shared", u32::MAX).unwrap()));
    // Questions stay with their answers, and each host's turns kept are
    // its newest, in the order it wrote them.
    for pair in kept.chunks(2) {
        assert_eq!(pair[0].text.replace('q', "a"), pair[1].text);
    }
    for name in ["a", "b"] {
        let mine: Vec<usize> =
            kept.iter().step_by(2).filter(|t| t.text.starts_with(name)).map(|t| t.text[1..5].parse().unwrap()).collect();
        let first = per_host - mine.len();
        assert_eq!(mine, (first..per_host).collect::<Vec<_>>(), "host {name}'s newest turns, in order");
    }
    // The usage the bound is checked against agrees with the rows.
    let (turns, bytes, rows, row_bytes) = a
        .run(|client| async move {
            let usage = client.query_one("SELECT turns, bytes FROM chat_session_usage WHERE owner = 'me' AND session = 'shared'", &[]).await?;
            let actual = client
                .query_one("SELECT count(*), sum(bytes)::BIGINT FROM chat_turns WHERE owner = 'me' AND session = 'shared'", &[])
                .await?;
            Ok((usage.get::<_, i64>(0), usage.get::<_, i64>(1), actual.get::<_, i64>(0), actual.get::<_, i64>(1)))
        })
        .unwrap();
    assert_eq!((turns, bytes), (rows, row_bytes));
}
