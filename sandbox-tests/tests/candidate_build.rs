//! The candidate-build sandbox is a wall of its own, not only the source
//! check in front of it: a source that got past the check (here, built
//! with the check skipped) still sees none of the host's files.
use std::path::Path;

use agentkernel::evolution::sandbox_build::{self, BuildError, BuildSettings};
use agentkernel::evolution::source_check::{self, CandidateSource};
use sandbox_tests::{TestHost, wasm_dir};

fn host() -> TestHost {
    // One candidate target directory per machine, shared with the
    // evolution tests, so the SDK and its dependencies compile once.
    let target = wasm_dir().join("../../evolve-candidates");
    std::fs::create_dir_all(&target).unwrap();
    TestHost::new(&format!("[evolution]\ntarget_dir = \"{}\"\n", target.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_past_the_check_cannot_read_host_files_at_build_time() {
    if sandbox_build::which("bwrap").is_none() {
        panic!("bwrap is not installed: run ./scripts/test (scripts/deps/bwrap.sh installs it)");
    }
    let t = host();
    let settings = BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    // A secret beside the candidate's work directory, and the usual targets.
    let secret = t.dir.path().join("secret.txt");
    std::fs::write(&secret, "hunter2").unwrap();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for target in [secret.display().to_string(), "/etc/passwd".into(), "/etc/hostname".into(), format!("{home}/.cargo/credentials.toml")] {
        let source = CandidateSource::single(&format!("pub const LEAK: &str = include_str!({target:?});\n"));
        assert!(!source_check::check(&source).is_empty(), "the check refuses it on its own");
        let work = t.dir.path().join("work").join(target.replace('/', "_"));
        let result = sandbox_build::build_in_sandbox(&settings, &source, &work, "reads-host-file").await;
        match result {
            Err(BuildError::Compile { log }) => {
                assert!(log.contains("couldn't read") || log.contains("No such file"), "{target}: {log}");
                assert!(!log.contains("hunter2") && !log.contains("root:"), "{target}: the log leaks the file: {log}");
            }
            other => panic!("{target}: expected a compile error, got {other:?}"),
        }
    }
    // The same build machinery does build an honest candidate.
    let honest = CandidateSource::single("pub const LEAK: &str = \"nothing\";\n");
    let built = sandbox_build::build_in_sandbox(&settings, &honest, &t.dir.path().join("work/honest"), "reads-nothing").await;
    assert!(built.is_ok(), "{built:?}");
    assert!(Path::new(&secret).exists());
}

/// The host paths a build log must never name (unless the candidate
/// wrote them itself).
fn host_paths(settings: &BuildSettings, t: &TestHost) -> Vec<String> {
    let mut paths = vec![
        t.dir.path().display().to_string(),
        settings.target_dir.display().to_string(),
        settings.sysroot.display().to_string(),
        settings.cargo_home.display().to_string(),
        settings.sdk_dir.display().to_string(),
    ];
    paths.extend(settings.workspace_root.iter().map(|r| r.display().to_string()));
    paths
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_past_the_check_cannot_read_the_cargo_config_proc_or_other_candidates() {
    if sandbox_build::which("bwrap").is_none() {
        panic!("bwrap is not installed: run ./scripts/test (scripts/deps/bwrap.sh installs it)");
    }
    let t = host();
    let mut settings = BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    // An operator's cargo home: a token and an `[env]` value in its config,
    // beside the downloaded crates the build needs.
    let cargo_home = t.dir.path().join("operator-cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    std::fs::write(
        cargo_home.join("config.toml"),
        "[env]\nAK_PLANTED = \"hunter2-env\"\n[registry]\ntoken = \"hunter2-token\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(settings.cargo_home.join("registry"), cargo_home.join("registry")).unwrap();
    settings.cargo_home = cargo_home.clone();

    // Another candidate, built first: its source and output are what the
    // next one reaches for.
    let other = CandidateSource::single("pub const OTHER: &str = \"other candidate's secret: hunter2-other\";\n");
    let other_work = t.dir.path().join("work/other");
    let built = sandbox_build::build_in_sandbox(&settings, &other, &other_work, "other-cand").await;
    assert!(built.is_ok(), "{built:?}");

    let reads = [
        format!("include_str!({:?})", cargo_home.join("config.toml").display().to_string()),
        "include_str!(\"/sandbox/cargo-home/credentials.toml\")".to_string(),
        "env!(\"AK_PLANTED\")".to_string(),
        "include_str!(\"/proc/self/mountinfo\")".to_string(),
        "include_str!(\"/proc/1/environ\")".to_string(),
        format!("include_str!({:?})", other_work.join("src/lib.rs").display().to_string()),
        // Where its output was in a target directory shared by all
        // candidates, where it is now, and its own target directory's view.
        format!("include_str!({:?})", settings.target_dir.join("wasm32-wasip2/release/other_cand.wasm").display().to_string()),
        format!("include_str!({:?})", settings.target_dir.join("candidates/other-cand/wasm32-wasip2/release/other_cand.wasm").display().to_string()),
        "include_str!(\"/build/target/wasm32-wasip2/release/other_cand.wasm\")".to_string(),
    ];
    let forbidden = host_paths(&settings, &t);
    for (i, read) in reads.iter().enumerate() {
        let source = CandidateSource::single(&format!("pub const LEAK: &str = {read};\n"));
        let work = t.dir.path().join(format!("work/reader-{i}"));
        match sandbox_build::build_in_sandbox(&settings, &source, &work, "reads-around").await {
            Err(BuildError::Compile { log }) => {
                assert!(!log.contains("hunter2"), "{read}: the log leaks a secret: {log}");
                // The path the candidate wrote may be echoed; no other host path.
                let written = read.split('"').nth(1).unwrap_or_default();
                let rest = log.replace(written, "");
                for path in &forbidden {
                    assert!(!rest.contains(path.as_str()), "{read}: the log names the host path {path}: {log}");
                }
            }
            other => panic!("{read}: expected a compile error, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warnings_bomb_keeps_a_bounded_log_and_leaves_no_build_output_behind() {
    if sandbox_build::which("bwrap").is_none() {
        panic!("bwrap is not installed: run ./scripts/test (scripts/deps/bwrap.sh installs it)");
    }
    let t = host();
    let settings = BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    // Thousands of unused variables, a warning (some 300 bytes) each: a
    // construct the source check allows.
    let lets: String = (0..4000).map(|i| format!("    let unused_{i} = {i};\n")).collect();
    let source = CandidateSource::single(&format!("pub fn bomb() {{\n{lets}}}\n"));
    let work = t.dir.path().join("work/bomb");
    let built = sandbox_build::build(&settings, &source, &work, "warnings-bomb").await.expect("warnings do not fail a build");
    assert!(
        built.log.len() <= sandbox_build::build_output::MAX_LOG_BYTES + 100,
        "kept {} bytes of build output",
        built.log.len()
    );
    let dropped = built.log.split("[… ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse::<u64>().ok());
    assert!(dropped.is_some_and(|d| d > 500_000), "the log says how much was dropped: {}", &built.log[..2000.min(built.log.len())]);
    assert!(built.log.contains("unused_0"), "the head is kept");
    // Nothing the build wrote stays: its crate holds only what the host
    // wrote, and the target directory none of its outputs or cargo's
    // cached messages.
    let mut crate_files: Vec<String> = std::fs::read_dir(&work).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    crate_files.sort();
    assert_eq!(crate_files, ["Cargo.lock", "Cargo.toml", "src"]);
    let mut left = Vec::new();
    let mut stack = vec![settings.target_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            if path.file_name().unwrap().to_string_lossy().contains("warnings") {
                left.push(path);
            }
        }
    }
    assert!(left.is_empty(), "the bomb's outputs stay in the target directory: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_past_its_disk_allowance_fails_alone_and_is_cleaned() {
    if sandbox_build::which("bwrap").is_none() {
        panic!("bwrap is not installed: run ./scripts/test (scripts/deps/bwrap.sh installs it)");
    }
    let t = host();
    let mut settings = BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    // Less than any component: every build goes over.
    settings.disk_bytes = 1024;
    let source = CandidateSource::single("pub const BIG: [u8; 4096] = [7; 4096];\n");
    let work = t.dir.path().join("work/big");
    match sandbox_build::build(&settings, &source, &work, "over-disk").await {
        Err(e @ BuildError::DiskLimit { .. }) => assert_eq!(e.kind(), "disk-limit"),
        other => panic!("expected the disk limit, got {other:?}"),
    }
    assert!(!settings.target_dir.join("candidates/over-disk").exists());
}
