//! An agent built with `cargo component` (the Bytecode Alliance's cargo
//! subcommand, `scripts/deps/cargo-component.sh`) from the workspace's `wit/`,
//! with its own generated bindings and no agentkernel SDK, loads and runs like
//! one built with plain cargo: checked against policy, state in `memory`
//! across fresh instances, and held by the fuel limit when it loops.
//!
//! cargo-component compiles for wasm32-wasip1 and adapts the module to WASI
//! 0.2 with its bundled adapter, so this also covers components whose WASI
//! imports come from the preview1 adapter rather than from wasm32-wasip2's std.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use sandbox_tests::TestHost;
use serde_json::{Value, json};

fn cargo_component() -> PathBuf {
    std::env::var_os("AGENTKERNEL_CARGO_COMPONENT").map(PathBuf::from).unwrap_or_else(|| {
        panic!("AGENTKERNEL_CARGO_COMPONENT is unset: run under ./scripts/test (or source scripts/env.sh and scripts/deps/cargo-component.sh)")
    })
}

/// Builds `sandbox-tests/cargo-component` and returns the component's bytes.
fn build_with_cargo_component() -> Vec<u8> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox-tests/cargo-component");
    // Its own target directory: the workspace's is locked by the build that
    // runs these tests.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("cargo-component");
    let out = Command::new(cargo_component())
        .args(["component", "build", "--release", "--locked"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo-component starts");
    assert!(
        out.status.success(),
        "cargo component build failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target.join("wasm32-wasip1/release/cc_counter.wasm");
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
}

async fn call(addr: SocketAddr, text: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/agents/cc-counter/call"))
        .json(&json!({"text": text, "session_id": "cc-1"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_with_cargo_component_loads_runs_and_is_contained() {
    let bytes = tokio::task::spawn_blocking(build_with_cargo_component).await.unwrap();
    let h = TestHost::new("[limits]\nfuel = 200000000\n");
    std::fs::create_dir_all(h.agents_dir()).unwrap();
    std::fs::write(h.agents_dir().join("cc-counter.wasm"), &bytes).unwrap();
    let addr = h.serve().await;

    let agents: Value = reqwest::get(format!("http://{addr}/v1/agents")).await.unwrap().json().await.unwrap();
    let failed = &agents["failed_files"];
    assert!(failed.as_array().is_none_or(|f| f.is_empty()), "{failed}");
    let agent = agents["agents"].as_array().unwrap().iter().find(|a| a["name"] == "cc-counter");
    let agent = agent.unwrap_or_else(|| panic!("cc-counter is not loaded: {agents}"));
    assert_eq!(agent["imports"], json!(["memory"]), "only what its code uses: {agent}");

    // Each call is a fresh instance; the count lives in memory.
    let (status, r) = call(addr, "one").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["text"], "cc-counter heard: one (message 1)", "{r}");
    let (_, r) = call(addr, "two").await;
    assert_eq!(r["text"], "cc-counter heard: two (message 2)", "{r}");

    // The same fuel limit as any agent; the host and the agent carry on.
    let (_, r) = call(addr, "spin").await;
    assert_eq!(r["error"]["code"], "fuel-exhausted", "{r}");
    let (status, r) = call(addr, "three").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["text"], "cc-counter heard: three (message 3)", "{r}");
}
