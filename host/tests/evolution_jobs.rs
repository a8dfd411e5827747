//! An evolution's candidate builds and benchmarks spread across hosts
//! through the job queue in PostgreSQL: `agentkernel evolve` (the owner)
//! on one process, a `serve` host that opted in (`take_jobs`) on another,
//! one database. The run must reach the decision, and every candidate the
//! fuel, that the same evolution reaches on one host alone, with each
//! result's engine hash recorded and some of the work done by the other
//! host. Skipped, saying so, without the cluster `scripts/deps/postgres.sh`
//! starts (CI requires it).
use std::path::{Path, PathBuf};
use std::process::Command;

use agentkernel::storage::postgres::testing;
use sandbox_tests::served::Served;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// Candidates builds share one target directory per machine, beside the
/// workspace's (dependencies compile once), as in the other evolution tests.
fn evolution_config(extra: &str) -> String {
    let target = sandbox_tests::wasm_dir().join("../../evolve-candidates");
    std::fs::create_dir_all(&target).unwrap();
    format!(
        "[evolution]\ntarget_dir = \"{}\"\nsources = {{ primes = \"{}\" }}\n{extra}\n",
        target.display(),
        repo().join("agents/primes").display()
    )
}

/// A candidates directory: a winner, one that fails held-out cases, one
/// that overfits the visible ones, and one that does not compile.
fn candidates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["trial-division.rs", "small-divisors.rs", "memorised.rs", "does-not-build.rs"] {
        std::fs::copy(repo().join("agents/primes/candidates").join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// `agentkernel evolve primes --no-swap --json` with `storage` (a
/// `[storage]` section or nothing) and `evolution` (more `[evolution]`
/// keys) in a directory of its own with the naive primes installed; the
/// outcome and the report.
fn evolve(storage: &str, evolution: &str, generator: &str) -> (Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{storage}\n{}\n[host]\nagents_dir = \"{}\"\ndata_dir = \"{}\"\n",
        evolution_config(evolution),
        dir.path().join("agents.d").display(),
        dir.path().join("data").display()
    );
    std::fs::write(dir.path().join("agentkernel.toml"), config).unwrap();
    std::fs::create_dir_all(dir.path().join("agents.d")).unwrap();
    std::fs::copy(sandbox_tests::wasm_path("primes"), dir.path().join("agents.d/primes.wasm")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(["--config", dir.path().join("agentkernel.toml").to_str().unwrap()])
        .args(["evolve", "primes", "--generator", generator, "--no-swap", "--json"])
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("AGENTKERNEL_STORAGE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "evolve failed: {}", String::from_utf8_lossy(&out.stderr));
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(outcome["report_json"].as_str().unwrap()).unwrap()).unwrap();
    (outcome, report)
}

/// Per candidate, what selection reads: built or why not, cases passed,
/// fuel in total and per case, and whether it won.
fn judged(report: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = report["generations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["candidates"].as_array().unwrap())
        .map(|c| {
            serde_json::json!({
                "label": c["label"],
                "built": c["build"]["ok"],
                "kind": c["build"]["kind"],
                "passed": c["bench"]["passed"],
                "fuel": c["bench"]["total_fuel"],
                "case_fuel": c["bench"]["cases"].as_array().map(|cases| cases.iter().map(|k| k["fuel"].clone()).collect::<Vec<_>>()),
                "wins": c["verdict"]["wins"],
            })
        })
        .collect();
    out.sort_by_key(|c| c["label"].as_str().unwrap_or_default().to_string());
    out
}

#[test]
fn candidates_benchmarked_on_two_hosts_reach_the_same_decision_and_fuel_as_on_one() {
    let Some(database) = testing::fresh_database("evolution_jobs_two_hosts") else { return };
    let cands = candidates();
    let generator = format!("dir:{}", cands.path().display());

    // One host: its own SQLite file, nothing spread.
    let (alone, alone_report) = evolve("", "", &generator);

    // Two hosts on one database: a `serve` that takes jobs, and the owner.
    let worker = Served::start(
        Path::new(env!("CARGO_BIN_EXE_agentkernel")),
        &format!("[storage]\nurl = \"{database}\"\n{}", evolution_config("take_jobs = true")),
        &[],
    );
    let (spread, spread_report) = evolve(&format!("[storage]\nurl = \"{database}\"\n"), "", &generator);

    // (Versions differ between the two runs: a candidate's crate name
    // follows its owner's data directory. Within a run every host builds
    // under the owner's name.)
    for key in ["decision", "winner_fuel", "incumbent_version", "incumbent_fuel"] {
        assert_eq!(alone[key], spread[key], "{key}: one host {alone}, two hosts {spread}");
    }
    assert_eq!(alone_report["winner"]["label"], spread_report["winner"]["label"]);
    assert_eq!(alone["decision"], "kept", "a winner was found (and not installed): {alone}");
    assert_eq!(judged(&alone_report), judged(&spread_report), "every candidate judged alike");

    let candidates: Vec<&Value> =
        spread_report["generations"].as_array().unwrap().iter().flat_map(|g| g["candidates"].as_array().unwrap()).collect();
    let worker_name = format!("/{}", worker.child.id());
    let on_worker = candidates.iter().filter(|c| c["bench_host"].as_str().is_some_and(|h| h.ends_with(&worker_name))).count();
    assert!(on_worker >= 1, "the other host benchmarked at least one candidate: {candidates:?}");
    // Every benchmark of the run, wherever it ran, under one engine: the one
    // the run on one host measured under.
    let engine = alone_report["generations"][0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c["engine"].as_str())
        .expect("the engine is recorded per result")
        .to_string();
    for c in candidates.iter().filter(|c| c["build"]["ok"] == true) {
        assert_eq!(c["engine"], engine.as_str(), "{}", c["label"]);
    }
    // The queue keeps nothing of a finished run (the owner deletes its jobs).
    let left = agentkernel::storage::postgres::PostgresStorage::connect(&database, 1)
        .unwrap()
        .run(|client| async move { Ok(client.query_one("SELECT count(*) FROM evolution_jobs", &[]).await?.get::<_, i64>(0)) })
        .unwrap();
    assert_eq!(left, 0, "the run's jobs were deleted");
}

#[test]
fn a_spread_run_with_no_other_host_does_its_own_jobs() {
    // `spread = true` on one host's SQLite file: the queue is there, nobody
    // else takes from it, and the owner does each job after its grace.
    let cands = candidates();
    let generator = format!("dir:{}", cands.path().display());
    let (alone, alone_report) = evolve("", "", &generator);
    let (spread, spread_report) = evolve("", "spread = true", &generator);
    for key in ["decision", "winner_fuel", "incumbent_fuel"] {
        assert_eq!(alone[key], spread[key], "{key}: {alone} / {spread}");
    }
    assert_eq!(judged(&alone_report), judged(&spread_report));
    let candidates: Vec<&Value> =
        spread_report["generations"].as_array().unwrap().iter().flat_map(|g| g["candidates"].as_array().unwrap()).collect();
    assert!(
        candidates.iter().filter(|c| c["build"]["ok"] == true).all(|c| c["bench_host"].is_string()),
        "every built candidate went through the queue: {candidates:?}"
    );
    assert!(alone_report["generations"][0]["candidates"].as_array().unwrap().iter().all(|c| c["bench_host"].is_null()));
}
