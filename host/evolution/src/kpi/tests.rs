use agentkernel_storage::evolution::{EvolutionStore, InstallRecord};
use agentkernel_storage::sqlite::SqliteStorage;
use agentkernel_storage::stats::{ActivityCount, StatsStore};

use super::*;

const NOW: i64 = 1_764_770_400; // 2025-12-03 14:00 UTC

fn run(store: &SqliteStorage, data_dir: &Path, id: &str, decision: &str, fuel: (u64, Option<u64>), candidates: serde_json::Value) {
    let summary = serde_json::json!({"incumbent_version": "abc", "incumbent_fuel": fuel.0, "winner_fuel": fuel.1});
    store
        .upsert_evolution(&EvolutionRecord {
            id: id.into(),
            agent: "primes".into(),
            status: "finished".into(),
            decision: Some(decision.into()),
            started_at: NOW - 600,
            finished_at: Some(NOW - 60),
            checkpoint: None,
            summary: Some(summary.to_string()),
        })
        .unwrap();
    let dir = crate::run_dir(data_dir, id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), serde_json::json!({"generations": [{"candidates": candidates}]}).to_string()).unwrap();
}

fn candidate(ok: bool, passed: usize, cases: usize) -> serde_json::Value {
    let bench = ok.then(|| serde_json::json!({"passed": passed, "cases": vec![serde_json::json!({}); cases]}));
    serde_json::json!({"build": {"ok": ok}, "bench": bench})
}

#[test]
fn shares_fuel_rollbacks_errors_and_chat_come_from_the_records() {
    let store = SqliteStorage::in_memory().unwrap();
    let data = tempfile::tempdir().unwrap();
    run(&store, data.path(), "r1", "swapped", (1000, Some(100)), serde_json::json!([candidate(true, 3, 3), candidate(false, 0, 0), candidate(true, 1, 3)]));
    run(&store, data.path(), "r2", "kept", (1000, None), serde_json::json!([candidate(true, 3, 3)]));
    store.record_install(&InstallRecord { agent: "primes".into(), hash: "h".into(), reason: "auto-rollback".into(), at: NOW - 30 }).unwrap();
    store.record_install(&InstallRecord { agent: "primes".into(), hash: "h".into(), reason: "evolution r1".into(), at: NOW - 40 }).unwrap();
    let hour = NOW - 3600;
    let row = |kind: &str, subject: &str, outcome: &str, n| ActivityCount { hour, kind: kind.into(), subject: subject.into(), outcome: outcome.into(), n };
    store
        .activity_add(&[row("agent", "echo", "ok", 8), row("agent", "echo", "deadline", 2), row("chat", "/v1/chat", "200", 5), row("chat", "/v1/chat", "400", 1)], NOW)
        .unwrap();

    let k = compute(&store, data.path(), 1, NOW).unwrap();
    assert_eq!((k.candidates.generated, k.candidates.built, k.candidates.passed), (4, 3, 2));
    assert_eq!(k.candidates.build_share, Some(0.75));
    assert_eq!(k.candidates.pass_share, Some(0.5));
    let primes = &k.evolutions[0];
    assert_eq!((primes.agent.as_str(), primes.runs, primes.accepted, primes.kept, primes.rollbacks), ("primes", 2, 1, 1, 1));
    assert_eq!(primes.fuel_saved_per_accepted, Some(900.0));
    assert_eq!(k.errors[0].agent, "echo");
    assert_eq!((k.errors[0].calls, k.errors[0].errors), (10, 2));
    assert_eq!(k.errors[0].series, [Point { at: hour, calls: 10, errors: 2 }]);
    assert_eq!((k.chat.requests, k.chat.ok, k.chat.client_errors), (6, 5, 1));
    assert_eq!((k.research.total, k.research.note.as_deref()), (0, Some("no research findings recorded")));

    let text = text(&k);
    assert!(text.contains("4 generated, 3 built (75%), 2 passed every case (50%)"), "{text}");
    assert!(text.contains("fuel saved per accepted evolution 900"), "{text}");
    assert!(text.contains("research     0 (no research findings recorded)"), "{text}");
    let prom = prometheus(&k);
    assert!(prom.contains("agentkernel_kpi_candidate_share{stage=\"built\"} 0.75"), "{prom}");
    assert!(prom.contains("agentkernel_kpi_rollbacks{agent=\"primes\"} 1"), "{prom}");
    assert!(prom.contains("agentkernel_kpi_agent_calls{agent=\"echo\",result=\"error\"} 2"), "{prom}");

    let week_ago = compute(&store, data.path(), 1, NOW + 8 * 86_400).unwrap();
    assert_eq!(week_ago.candidates.generated, 0, "runs outside the window are not counted");
    assert!(week_ago.spend_total_usd.is_sign_positive(), "no spend is $0, not $-0");
    assert!(matches!(compute(&store, data.path(), 0, NOW), Err(KpiError::Window(0))));
    assert!(compute(&store, data.path(), MAX_DAYS + 1, NOW).is_err());
}

#[test]
fn dates_are_utc_calendar_days() {
    assert_eq!(render::utc_date(0), "1970-01-01");
    assert_eq!(render::utc_date(NOW), "2025-12-03");
    assert_eq!(render::utc_date(951_782_400), "2000-02-29");
}
