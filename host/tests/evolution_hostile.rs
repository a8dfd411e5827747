//! Hostile candidates through `agentkernel evolve --generator dir:`, end
//! to end: reads hidden in attributes (`agents/primes/hostile/`), a
//! candidate directory full of links, a FIFO and `/dev/zero`, and a
//! candidate full of forbidden names. None of them is built, every run
//! ends with a decision, and the reports, the database row and the
//! progress output stay small and hold nothing the candidate could not see.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentkernel::evolution::report::Report;
use agentkernel::storage::evolution::EvolutionStore;
use agentkernel::storage::sqlite::SqliteStorage;
use sandbox_tests::wasm_dir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// A config with its directories in `dir` and the naive primes installed
/// (so the incumbent needs no build and these runs build nothing).
fn setup(dir: &Path, evolution: &str) {
    let target = wasm_dir().join("../../evolve-candidates");
    std::fs::create_dir_all(&target).unwrap();
    let cfg = format!(
        "[evolution]\ntarget_dir = \"{}\"\nsources = {{ primes = \"{}\" }}\n{evolution}\n[host]\nagents_dir = \"{}\"\ndata_dir = \"{}\"\n",
        target.display(),
        repo().join("agents/primes").display(),
        dir.join("agents.d").display(),
        dir.join("data").display()
    );
    std::fs::write(dir.join("agentkernel.toml"), cfg).unwrap();
    std::fs::create_dir_all(dir.join("agents.d")).unwrap();
    std::fs::copy(sandbox_tests::wasm_path("primes"), dir.join("agents.d/primes.wasm")).unwrap();
}

struct Run {
    json: serde_json::Value,
    stderr: String,
    report: Report,
    report_json: String,
    report_html: String,
    /// The largest the run's database row was while it ran (its checkpoint
    /// holds every finished candidate's report), then once finished.
    db_row_bytes_running: usize,
    db_row_bytes: usize,
}

fn row_bytes(row: &agentkernel::storage::evolution::EvolutionRecord) -> usize {
    serde_json::to_string(row).unwrap().len() + row.checkpoint.as_ref().map_or(0, String::len) + row.summary.as_ref().map_or(0, String::len)
}

/// `agentkernel evolve primes --generator dir:CANDIDATES --no-swap --json
/// EXTRA…`, killed (and the test failed) if it takes longer than `limit`.
fn evolve(dir: &Path, candidates: &Path, extra: &[&str], limit: Duration) -> Run {
    let generator = format!("dir:{}", candidates.display());
    let db = dir.join("data/agentkernel.sqlite");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(["--config", dir.join("agentkernel.toml").to_str().unwrap(), "evolve", "primes", "--generator", &generator, "--no-swap", "--json"])
        .args(extra)
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut db_row_bytes_running = 0;
    while child.try_wait().unwrap().is_none() {
        let rows = db.exists().then(|| SqliteStorage::open(&db).ok()).flatten().and_then(|s| s.evolutions(10).ok()).unwrap_or_default();
        // `evolutions` lists rows without their large columns: read the row itself.
        for r in rows.iter().filter(|r| r.status == "running") {
            if let Some(row) = SqliteStorage::open(&db).ok().and_then(|s| s.evolution(&r.id).ok().flatten()) {
                db_row_bytes_running = db_row_bytes_running.max(row_bytes(&row));
            }
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("the evolution did not finish within {limit:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report_json = std::fs::read_to_string(json["report_json"].as_str().unwrap()).unwrap();
    let report_html = std::fs::read_to_string(json["report_html"].as_str().unwrap()).unwrap();
    let report: Report = serde_json::from_str(&report_json).unwrap();
    let store = SqliteStorage::open(&dir.join("data/agentkernel.sqlite")).unwrap();
    let row = store.evolution(json["evolution"].as_str().unwrap()).unwrap().unwrap();
    let db_row_bytes = row_bytes(&row);
    Run { json, stderr, report, report_json, report_html, db_row_bytes_running, db_row_bytes }
}

fn candidate<'a>(report: &'a Report, label: &str) -> &'a agentkernel::evolution::report::CandidateReport {
    report.generations.iter().flat_map(|g| &g.candidates).find(|c| c.label == label).unwrap_or_else(|| panic!("no candidate {label}"))
}

fn builds(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("data/evolve/builds")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn reads_hidden_in_attribute_values_and_serde_strings_are_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "");
    let run = evolve(dir.path(), &repo().join("agents/primes/hostile"), &[], Duration::from_secs(300));
    assert_eq!(run.json["decision"], "kept", "{}", run.stderr);
    for (label, construct) in [
        ("doc-include-str", "include_str!"),
        ("cfg-attr-env", "env!"),
        ("debugger-visualizer", "#[debugger_visualizer]"),
        ("serde-bound-macro", "#[serde(bound)]"),
        ("serde-with-escaped", "#[serde(serialize_with)]"),
    ] {
        let c = candidate(&run.report, label);
        assert_eq!(c.build.kind.as_deref(), Some("rejected"), "{label}: {:?}", c.build);
        assert!(c.build.violations.iter().any(|v| v.construct == construct), "{label}: {:?}", c.build.violations);
        assert!(c.version.is_none(), "{label} was built");
    }
    assert_eq!(builds(dir.path()), 0, "nothing was built");
    assert!(run.report_html.contains("debugger_visualizer"), "the report names what was refused");
}

#[test]
fn the_directory_generator_refuses_links_fifos_and_dev_zero_and_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "");
    // What the links point at: a file and a crate outside the candidate directory.
    let outside = tempfile::tempdir().unwrap();
    let secret = "fn main() { let _ = \"TOP-SECRET-FROM-OUTSIDE\"; }";
    std::fs::write(outside.path().join("secret-file.rs"), secret).unwrap();
    std::fs::create_dir(outside.path().join("src")).unwrap();
    std::fs::write(outside.path().join("src/lib.rs"), secret).unwrap();
    std::fs::write(outside.path().join("src/private-module-name.rs"), "").unwrap();

    let cands = tempfile::tempdir().unwrap();
    let c = cands.path();
    std::os::unix::fs::symlink(outside.path().join("secret-file.rs"), c.join("file-link.rs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), c.join("dir-link")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", c.join("dev-zero.rs")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(c.join("fifo.rs")).status().unwrap().success());
    std::fs::create_dir_all(c.join("fifo-crate/src")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(c.join("fifo-crate/src/lib.rs")).status().unwrap().success());

    // Today's main blocks in open() on the FIFO and reads /dev/zero until
    // killed: bounded here so that fails instead of hanging.
    let run = evolve(dir.path(), c, &[], Duration::from_secs(120));
    assert_eq!(run.json["decision"], "kept", "{}", run.stderr);
    for (label, reason) in [
        ("file-link", "symbolic link"),
        ("dir-link", "symbolic link"),
        ("dev-zero", "symbolic link"),
        ("fifo", "is a FIFO"),
        ("fifo-crate", "src/lib.rs is a FIFO"),
    ] {
        let cand = candidate(&run.report, label);
        assert_eq!(cand.build.kind.as_deref(), Some("no-source"), "{label}: {:?}", cand.build);
        assert!(cand.build.errors.iter().any(|e| e.contains(reason)), "{label}: {:?}", cand.build.errors);
    }
    for (what, text) in [("report.json", &run.report_json), ("report.html", &run.report_html), ("stderr", &run.stderr)] {
        for leak in ["TOP-SECRET-FROM-OUTSIDE", "private-module-name", "secret-file"] {
            assert!(!text.contains(leak), "{what} contains {leak:?}");
        }
    }
    assert_eq!(builds(dir.path()), 0, "nothing was built");
}

#[test]
fn a_candidate_full_of_forbidden_names_makes_a_small_report_and_row_that_count_them() {
    let dir = tempfile::tempdir().unwrap();
    // Generation 2's candidate builds until its timeout: meanwhile the row
    // holds generation 1's checkpoint, with the names candidate's report.
    setup(dir.path(), "build_timeout_secs = 8");
    let cands = tempfile::tempdir().unwrap();
    // Just under the 1 MiB candidate limit: one violation per name.
    let names = (1 << 20) / 4 - 16;
    std::fs::write(cands.path().join("a-names.rs"), "env ".repeat(names)).unwrap();
    std::fs::write(
        cands.path().join("b-endless-build.rs"),
        "#![allow(long_running_const_eval)]\nconst N: u64 = { let mut i = 0u64; let mut x = 0u64; while i < u64::MAX { x = x.wrapping_mul(31).wrapping_add(i); i += 1; } x };\npub fn f() -> u64 { N }\n",
    )
    .unwrap();
    let run = evolve(dir.path(), cands.path(), &["--candidates", "1", "--generations", "2"], Duration::from_secs(300));
    let c = candidate(&run.report, "a-names");
    assert_eq!(c.build.kind.as_deref(), Some("rejected"));
    let limit = agentkernel::evolution::source_check::MAX_VIOLATIONS_KEPT;
    assert_eq!(c.build.violations.len(), limit + 1, "the first {limit} and the count");
    let count = format!("{names} violations in all");
    assert!(c.build.violations.last().unwrap().message.contains(&count), "{:?}", c.build.violations.last());
    assert!(run.report_html.contains(&count), "report.html says how many");
    assert!(run.db_row_bytes_running > 1000, "the running row with its checkpoint was seen ({} bytes)", run.db_row_bytes_running);
    for (what, size) in [
        ("report.json", run.report_json.len()),
        ("report.html", run.report_html.len()),
        ("database row while running", run.db_row_bytes_running),
        ("database row", run.db_row_bytes),
    ] {
        assert!(size < 200 * 1024, "{what} is {size} bytes");
    }
    assert_eq!(candidate(&run.report, "b-endless-build").build.kind.as_deref(), Some("timeout"));
}
