//! The WIT package in `wit/` is the contract for every language: it must
//! resolve and encode with `wasm-tools` (the Bytecode Alliance's toolkit,
//! `scripts/deps/wasm-tools.sh`), not only with the bindings generators that
//! happen to read it, and the components built from it carry its exports.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wasm_tools() -> PathBuf {
    std::env::var_os("AGENTKERNEL_WASM_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        panic!("AGENTKERNEL_WASM_TOOLS is unset: run under ./scripts/test (or source scripts/env.sh and scripts/deps/wasm-tools.sh)")
    })
}

fn run(args: &[&str]) -> Output {
    Command::new(wasm_tools()).args(args).output().expect("wasm-tools starts")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_wit_package_resolves_and_encodes_with_wasm_tools() {
    let wit = repo().join("wit");
    let wit = wit.to_str().unwrap();
    // Resolved and printed back: every interface of the world is there.
    let o = run(&["component", "wit", wit]);
    assert!(o.status.success(), "wasm-tools component wit {wit}: {}", text(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.contains("package agentkernel:agent@0.1.0;"), "{printed}");
    assert!(printed.contains("world agent {"), "{printed}");
    for interface in ["log", "memory", "llm", "agents", "http", "aws-ec2", "evolution", "types"] {
        assert!(printed.contains(&format!("interface {interface} {{")), "interface {interface} missing:\n{printed}");
    }
    for export in ["export describe: func() -> manifest;", "export handle: func(req: request) -> result<response, agent-error>;"] {
        assert!(printed.contains(export), "{export} missing:\n{printed}");
    }

    // Encoded as a binary WIT package (what a registry stores), which validates.
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("agentkernel-agent.wasm");
    let o = run(&["component", "wit", wit, "--wasm", "-o", package.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["validate", package.to_str().unwrap()]);
    assert!(o.status.success(), "the encoded package validates: {}", text(&o));
    // ... and decodes to the same package.
    let o = run(&["component", "wit", package.to_str().unwrap()]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("world agent {"), "{}", text(&o));

    // The SDK packs the same files (sdk/wit links to wit/).
    let o = run(&["component", "wit", repo().join("sdk/wit").to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), printed, "sdk/wit is the workspace's wit/");
}

#[test]
fn built_agents_validate_and_export_the_world() {
    let dir = PathBuf::from(std::env::var("AGENTKERNEL_WASM_DIR").expect("AGENTKERNEL_WASM_DIR (scripts/env.sh)"));
    // A Rust agent (plain cargo), a Python one (componentize-py) and a JavaScript one (componentize-js).
    for file in ["echo.wasm", "journal_py.wasm", "tally_js.wasm"] {
        let path = dir.join(file);
        assert!(path.is_file(), "{} is missing: run ./scripts/test", path.display());
        let path = path.to_str().unwrap();
        let o = run(&["validate", path]);
        assert!(o.status.success(), "{file} validates: {}", text(&o));
        let o = run(&["component", "wit", path]);
        assert!(o.status.success(), "{file}: {}", text(&o));
        let world = String::from_utf8_lossy(&o.stdout);
        assert!(world.contains("export describe: func() -> manifest;"), "{file}:\n{world}");
        assert!(world.contains("export handle: func(req: request) -> result<response, agent-error>;"), "{file}:\n{world}");
    }
}
