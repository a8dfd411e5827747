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
