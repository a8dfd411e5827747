//! `EvolutionStore`: lineage, runs, installs, and the request audit with
//! its per-day caps.
use super::aws::same_text;
use crate::Backend;
use crate::evolution::{AgentVersion, EvolutionRecord, EvolutionRequest, InstallRecord, MAX_NOTES_PER_DAY};

pub(super) const TESTS: &[super::Test] = &[
    ("evolution_versions_keep_lineage_in_order", evolution_versions_keep_lineage_in_order),
    ("evolution_runs_upsert_list_and_get", evolution_runs_upsert_list_and_get),
    ("evolution_installs_per_agent_in_order", evolution_installs_per_agent_in_order),
    ("evolution_request_reserve_caps_runs_per_day", evolution_request_reserve_caps_runs_per_day),
    ("evolution_request_finish_by_run_and_list", evolution_request_finish_by_run_and_list),
    ("evolution_request_notes_are_capped_per_action", evolution_request_notes_are_capped_per_action),
    ("evolution_lineage_keeps_text_with_nul", evolution_lineage_keeps_text_with_nul),
    ("evolution_requests_keep_guest_text_with_nul", evolution_requests_keep_guest_text_with_nul),
];

const DAY: i64 = 86_400 * 200;

fn request(agent: &str, action: &str, outcome: &str, at: i64) -> EvolutionRequest {
    EvolutionRequest {
        id: 0,
        at,
        agent: agent.into(),
        action: action.into(),
        target: "t".into(),
        outcome: outcome.into(),
        run: None,
        detail: String::new(),
    }
}

fn version(agent: &str, hash: &str, parent: Option<&str>, created: i64) -> AgentVersion {
    AgentVersion {
        hash: hash.into(),
        agent: agent.into(),
        parent: parent.map(Into::into),
        origin: "source".into(),
        source: r#"{"lib.rs":"fn main(){}"}"#.into(),
        evolution: None,
        created,
    }
}

fn evolution_versions_keep_lineage_in_order(store: &dyn Backend) {
    assert_eq!(store.version("a").unwrap(), None);
    store.record_version(&version("primes", "a", None, 1)).unwrap();
    let b = AgentVersion { origin: "llm:model".into(), evolution: Some("e1".into()), ..version("primes", "b", Some("a"), 2) };
    store.record_version(&b).unwrap();
    // Same second as b: written order breaks the tie.
    store.record_version(&version("primes", "c", Some("b"), 2)).unwrap();
    store.record_version(&version("other", "x", None, 0)).unwrap();
    store.record_version(&version("primes", "a", Some("zzz"), 3)).unwrap();
    let hashes = store.versions("primes").unwrap().into_iter().map(|v| v.hash).collect::<Vec<_>>();
    assert_eq!(hashes, ["a", "b", "c"], "oldest first, only this agent's");
    assert_eq!(store.version("a").unwrap().unwrap().parent, None, "a known hash is not overwritten");
    assert_eq!(store.version("b").unwrap().unwrap(), b, "every field round-trips");
    assert_eq!(store.versions("other").unwrap().len(), 1);
    assert!(store.versions("nobody").unwrap().is_empty());
}

fn run(id: &str, started_at: i64) -> EvolutionRecord {
    EvolutionRecord {
        id: id.into(),
        agent: "primes".into(),
        status: "running".into(),
        decision: None,
        started_at,
        finished_at: None,
        checkpoint: Some("{}".into()),
        summary: None,
    }
}

fn evolution_runs_upsert_list_and_get(store: &dyn Backend) {
    assert_eq!(store.evolution("e1").unwrap(), None);
    let mut e1 = run("e1", 10);
    store.upsert_evolution(&e1).unwrap();
    store.upsert_evolution(&run("e2", 30)).unwrap();
    store.upsert_evolution(&run("e3", 20)).unwrap();
    store.upsert_evolution(&run("e4", 20)).unwrap();
    e1.status = "finished".into();
    e1.decision = Some("swapped".into());
    e1.finished_at = Some(40);
    e1.checkpoint = Some(r#"{"generation":3}"#.into());
    e1.summary = Some(r#"{"best":1}"#.into());
    store.upsert_evolution(&e1).unwrap();
    assert_eq!(store.evolution("e1").unwrap().unwrap(), e1, "the update took every mutable field");
    let ids = |limit| store.evolutions(limit).unwrap().into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(10), ["e2", "e4", "e3", "e1"], "newest start first, the later written first on a tie");
    assert_eq!(ids(2), ["e2", "e4"]);
    // The upsert changes status and results, never who or when it started.
    store.upsert_evolution(&EvolutionRecord { agent: "other".into(), started_at: 99, ..e1.clone() }).unwrap();
    let again = store.evolution("e1").unwrap().unwrap();
    assert_eq!((again.agent.as_str(), again.started_at), ("primes", 10));
}

fn evolution_installs_per_agent_in_order(store: &dyn Backend) {
    assert!(store.installs("primes").unwrap().is_empty());
    let install = |agent: &str, hash: &str, reason: &str, at| InstallRecord { agent: agent.into(), hash: hash.into(), reason: reason.into(), at };
    store.record_install(&install("primes", "a", "create", 5)).unwrap();
    store.record_install(&install("other", "x", "create", 6)).unwrap();
    store.record_install(&install("primes", "b", "evolution e1", 3)).unwrap();
    store.record_install(&install("primes", "a", "rollback", 7)).unwrap();
    let got = store.installs("primes").unwrap();
    assert_eq!(got.iter().map(|i| (i.hash.as_str(), i.reason.as_str())).collect::<Vec<_>>(), [
        ("a", "create"),
        ("b", "evolution e1"),
        ("a", "rollback")
    ]);
    assert_eq!(got[1], install("primes", "b", "evolution e1", 3), "in the order recorded, whatever `at` says");
    assert_eq!(store.installs("other").unwrap().len(), 1);
}

fn evolution_request_reserve_caps_runs_per_day(store: &dyn Backend) {
    let reserve = |agent: &str, action: &str, at, day_start, cap| {
        store.evolution_request_reserve(&request(agent, action, "ignored", at), day_start, cap).unwrap()
    };
    let first = reserve("a", "create", DAY + 5, DAY, 2).expect("the first run of the day");
    store.evolution_request_finish(first, "started", Some("run-1")).unwrap();
    assert!(reserve("a", "evolve", DAY + 6, DAY, 2).is_some(), "create and evolve share the count");
    assert!(reserve("a", "create", DAY + 7, DAY, 2).is_none(), "two a day");
    assert!(reserve("a", "evolve", DAY + 7, DAY, 3).is_some(), "a larger cap allows one more");
    assert!(reserve("b", "create", DAY + 7, DAY, 2).is_some(), "per agent");
    assert!(reserve("a", "create", DAY + 86_400, DAY + 86_400, 2).is_some(), "a new day");
    // A run that failed to start no longer counts.
    let c = reserve("c", "create", DAY + 1, DAY, 1).unwrap();
    assert!(reserve("c", "create", DAY + 2, DAY, 1).is_none());
    store.evolution_request_finish(c, "refused: busy", None).unwrap();
    assert!(reserve("c", "create", DAY + 3, DAY, 1).is_some(), "a refused reservation frees its run");
    let reserved = store.evolution_requests(None, 100).unwrap().into_iter().find(|r| r.agent == "b").unwrap();
    assert_eq!((reserved.outcome.as_str(), reserved.run.as_deref()), ("pending", None), "reserved as pending");
    assert_eq!(store.evolution_request_reserve(&request("z", "create", "x", DAY), DAY, 0).unwrap(), None, "a cap of 0");
}

fn evolution_request_finish_by_run_and_list(store: &dyn Backend) {
    let detail = |action, d: &str| EvolutionRequest { detail: d.into(), target: "primes".into(), ..request("a", action, "pending", DAY + 1) };
    let r1 = store.evolution_request_reserve(&detail("create", "spec"), DAY, 5).unwrap().unwrap();
    let r2 = store.evolution_request_reserve(&detail("evolve", "goal"), DAY, 5).unwrap().unwrap();
    let n = store.evolution_request_note(&request("a", "stats", "answered", DAY + 2), DAY).unwrap().unwrap();
    assert!(r1 < r2 && r2 < n, "ids grow");
    store.evolution_request_finish(r1, "started", Some("run-1")).unwrap();
    store.evolution_request_finish(r2, "started", Some("run-2")).unwrap();
    let by_run = store.evolution_request_by_run("run-2").unwrap().unwrap();
    assert_eq!(by_run, EvolutionRequest { id: r2, outcome: "started".into(), run: Some("run-2".into()), ..detail("evolve", "goal") });
    assert_eq!(store.evolution_request_by_run("run-9").unwrap(), None);
    let ids = |action: Option<&str>, limit| store.evolution_requests(action, limit).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(None, 10), [n, r2, r1], "newest first");
    assert_eq!(ids(None, 2), [n, r2]);
    assert_eq!(ids(Some("create"), 10), [r1]);
    assert!(ids(Some("propose"), 10).is_empty());
}

fn evolution_request_notes_are_capped_per_action(store: &dyn Backend) {
    let note = |agent: &str, action: &str, outcome: &str, at, day_start| {
        store.evolution_request_note(&request(agent, action, outcome, at), day_start).unwrap()
    };
    let proposal = EvolutionRequest { run: Some("r".into()), detail: r#"{"kind":"x"}"#.into(), ..request("a", "propose", "proposed", DAY) };
    let id = store.evolution_request_note(&proposal, DAY).unwrap().unwrap();
    assert_eq!(store.evolution_requests(Some("propose"), 1).unwrap()[0], EvolutionRequest { id, ..proposal }, "kept as given");
    for _ in 1..MAX_NOTES_PER_DAY {
        assert!(note("a", "propose", "proposed", DAY + 1, DAY).is_some());
    }
    assert!(note("a", "propose", "proposed", DAY + 2, DAY).is_none(), "capped");
    assert!(note("b", "propose", "proposed", DAY + 2, DAY).is_some(), "per agent");
    assert!(note("a", "propose", "proposed", DAY + 86_400, DAY + 86_400).is_some(), "a new day");
    assert_eq!(store.evolution_requests(Some("propose"), 500).unwrap().len() as u64, MAX_NOTES_PER_DAY + 2);
    // Refusals of a run-starting action are notes of that action and, past
    // the cap, stop reservations of it too (the row would be a refusal).
    for _ in 0..MAX_NOTES_PER_DAY {
        assert!(note("a", "create", "refused: busy", DAY + 3, DAY).is_some(), "per action");
    }
    assert!(note("a", "create", "refused: busy", DAY + 3, DAY).is_none());
    assert!(store.evolution_request_reserve(&request("a", "create", "pending", DAY + 4), DAY, 10).unwrap().is_none());
    assert!(store.evolution_request_reserve(&request("a", "evolve", "pending", DAY + 4), DAY, 10).unwrap().is_some());
}

fn evolution_lineage_keeps_text_with_nul(store: &dyn Backend) {
    // An origin names a client's candidates directory.
    let v = AgentVersion { origin: "dir:/tmp/cand\0idates".into(), ..version("primes", "a", None, 1) };
    store.record_version(&v).unwrap();
    let got = store.version("a").unwrap().expect("the version was written");
    assert!(same_text(&got.origin, &v.origin), "{:?}", got.origin);
    assert_eq!(AgentVersion { origin: v.origin.clone(), ..got }, v, "every other field as written");
    assert_eq!(store.versions("primes").unwrap().len(), 1);
    // A guest's comparison looks versions up by an agent name it chose.
    assert!(store.versions("primes\0").unwrap().is_empty(), "an agent name with NUL finds nothing");
    // A client resumes a run by an id it chose: found when it was written so.
    assert_eq!(store.evolution("e1\0").unwrap(), None);
    let e = run("e1\0", 10);
    store.upsert_evolution(&e).unwrap();
    let got = store.evolution("e1\0").unwrap().expect("found by the id it was written with");
    assert!(same_text(&got.id, &e.id), "{:?}", got.id);
    assert_eq!(EvolutionRecord { id: e.id.clone(), ..got }, e);
    assert_eq!(store.evolutions(10).unwrap().len(), 1);
    let install = InstallRecord { agent: "primes".into(), hash: "a".into(), reason: "evolution e1\0".into(), at: 5 };
    store.record_install(&install).unwrap();
    let got = store.installs("primes").unwrap();
    assert_eq!(got.len(), 1, "the install was written");
    assert!(same_text(&got[0].reason, &install.reason), "{:?}", got[0].reason);
    assert_eq!(InstallRecord { reason: install.reason.clone(), ..got[0].clone() }, install);
}

fn evolution_requests_keep_guest_text_with_nul(store: &dyn Backend) {
    let check = |got: &EvolutionRequest, sent: &EvolutionRequest| {
        assert!(same_text(&got.target, &sent.target), "{:?}", got.target);
        assert!(same_text(&got.detail, &sent.detail), "{:?}", got.detail);
        match (&got.run, &sent.run) {
            (Some(g), Some(s)) => assert!(same_text(g, s), "{g:?}"),
            (g, s) => assert_eq!(g, s),
        }
        let rest = EvolutionRequest { target: sent.target.clone(), detail: sent.detail.clone(), run: sent.run.clone(), ..got.clone() };
        assert_eq!(&rest, sent, "every other field as written");
    };
    // The target and the detail are the guest's.
    let reserved = EvolutionRequest { target: "pri\0mes".into(), detail: "a spec\0".into(), ..request("a", "evolve", "pending", DAY + 1) };
    let r = store.evolution_request_reserve(&reserved, DAY, 5).unwrap().expect("reserved");
    check(&store.evolution_requests(None, 10).unwrap()[0], &EvolutionRequest { id: r, ..reserved.clone() });
    // A guest asks for a run's status by an id it chose.
    store.evolution_request_finish(r, "started", Some("run-\0")).unwrap();
    let started = EvolutionRequest { id: r, outcome: "started".into(), run: Some("run-\0".into()), ..reserved };
    check(&store.evolution_request_by_run("run-\0").unwrap().expect("found by its run"), &started);
    assert_eq!(store.evolution_request_by_run("run-9\0").unwrap(), None);
    let noted = EvolutionRequest {
        target: "prim\0es".into(),
        detail: "0123abcd vs ab\0cd".into(),
        run: Some("r\0".into()),
        ..request("a", "compare", "requested", DAY + 2)
    };
    let n = store.evolution_request_note(&noted, DAY).unwrap().expect("noted");
    let got = store.evolution_requests(Some("compare"), 10).unwrap();
    assert_eq!(got.len(), 1, "the note was written");
    check(&got[0], &EvolutionRequest { id: n, ..noted });
    assert_eq!(store.evolution_requests(None, 10).unwrap().len(), 2);
}
