//! Chat transcripts as stored turns grow (SQLite, the embedded default):
//! appending a request's two turns and reading a session's last 20 turns,
//! with 1,000 up to `AGENTKERNEL_SESSIONS_MAX_TURNS` (default 1,000,000)
//! turns stored across sessions of 100 turns. The goal is that both stay
//! flat: neither may scan more than the one session it touches.
//!
//! The appended session is at its cap (1,000 turns), so each append also
//! drops its two oldest turns: the number of stored turns stays what the
//! group says while criterion repeats the append (the steady state of a
//! long conversation; the smallest group is that one session).
//!
//! Run: `cargo bench -p agentkernel-benches --bench sessions`
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use agentkernel::storage::sessions::{MAX_TRANSCRIPT_TURNS, SessionAppend, SessionStore, TranscriptEntry};
use agentkernel::storage::sqlite::SqliteStorage;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const OWNER: &str = "bench";
const SESSION_TURNS: u64 = 100;

fn turn(role: &str, text: String) -> TranscriptEntry {
    let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    TranscriptEntry { at_ms, role: role.into(), text, agents: if role == "assistant" { vec!["echo".into()] } else { vec![] }, detail: None }
}

/// Fills `store` with `total` turns: the capped session `long`, then
/// sessions of [`SESSION_TURNS`], written 100 sessions per transaction.
fn fill(store: &SqliteStorage, total: u64) {
    let long: Vec<TranscriptEntry> = (0..MAX_TRANSCRIPT_TURNS).map(|i| turn(if i % 2 == 0 { "user" } else { "assistant" }, format!("turn {i}"))).collect();
    store.session_append(OWNER, "long", &long).unwrap();
    let sessions = (total - MAX_TRANSCRIPT_TURNS) / SESSION_TURNS;
    let mut batch = Vec::new();
    for s in 0..sessions {
        let turns = (0..SESSION_TURNS).map(|i| turn(if i % 2 == 0 { "user" } else { "assistant" }, format!("session {s} turn {i}"))).collect();
        batch.push(SessionAppend { owner: OWNER.into(), session: format!("s{s}"), turns });
        if batch.len() == 100 || s + 1 == sessions {
            store.session_append_batch(&batch).unwrap();
            batch.clear();
        }
    }
}

fn sessions(c: &mut Criterion) {
    let max: u64 = std::env::var("AGENTKERNEL_SESSIONS_MAX_TURNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let sizes: Vec<u64> = [1_000, 10_000, 100_000, 1_000_000].into_iter().filter(|n| *n <= max).collect();
    let mut g = c.benchmark_group("sessions");
    for total in sizes {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(&dir.path().join("agentkernel.db")).unwrap();
        let started = Instant::now();
        fill(&store, total);
        eprintln!("{total} turns stored in {:.1} s", started.elapsed().as_secs_f64());
        let mut i = 0u64;
        g.bench_with_input(BenchmarkId::new("append", total), &total, |b, _| {
            b.iter(|| {
                i += 1;
                store.session_append(OWNER, "long", &[turn("user", format!("q{i}")), turn("assistant", format!("a{i}"))]).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("tail-20", total), &total, |b, _| {
            b.iter(|| {
                let turns = store.session_tail(OWNER, "long", 20).unwrap();
                assert_eq!(turns.len(), 20);
                turns
            })
        });
        assert_eq!(store.session_tail(OWNER, "long", 2000).unwrap().len() as u64, MAX_TRANSCRIPT_TURNS, "the session stays at its cap");
    }
    g.finish();
}

criterion_group!(benches, sessions);
criterion_main!(benches);
