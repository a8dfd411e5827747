//! The chat page at `/`, end to end in headless Chromium driven by
//! Playwright (`scripts/deps/browser.sh` installs Debian's chromium and
//! playwright-core, and exports where they are).
use sandbox_tests::TestHost;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_chats_and_sees_the_answer_and_the_trace() {
    let node_path = std::env::var("AGENTKERNEL_NODE_PATH")
        .expect("AGENTKERNEL_NODE_PATH is unset: run ./scripts/test (scripts/deps/browser.sh installs playwright-core)");
    let h = TestHost::new("[agents.router]\nllm = { profiles = [\"fast\"] }\n[agents.synthesizer]\nllm = { profiles = [\"fast\"] }\n");
    for (krate, file) in [("router", "router.wasm"), ("synthesizer", "synthesizer.wasm"), ("echo", "echo.wasm"), ("notes", "notes.wasm")] {
        h.install(krate, file);
    }
    let addr = h.serve().await;
    let screenshot = h.dir.path().join("page.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web_page.mjs");
    // ESM ignores NODE_PATH: run the script from a copy beside node_modules.
    let runner = std::path::Path::new(&node_path).parent().unwrap().join("web_page.mjs");
    std::fs::copy(script, &runner).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(&runner)
        .args([format!("http://{addr}/"), screenshot.display().to_string()])
        .output()
        .await
        .expect("node runs");
    assert!(out.status.success(), "browser script failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("script printed JSON");

    assert_eq!(seen["title"], "agentkernel chat");
    let agents: Vec<&str> = seen["agents"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for a in ["echo", "notes", "router", "synthesizer"] {
        assert!(agents.contains(&a), "{a} listed: {agents:?}");
    }
    assert_eq!(seen["notesGrants"], json!(["log", "memory"]));
    assert_eq!(seen["userTurns"][0], "remember that the door code is 1234");
    assert_eq!(seen["first"]["text"], "Noted: the door code is 1234");
    assert_eq!(seen["first"]["who"], "answered by notes");
    let spans: Vec<&str> = seen["first"]["spans"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans[0].starts_with("router (router) ok in") && spans[0].contains("fuel"), "{spans:?}");
    assert!(spans[1].starts_with("notes (agent) ok in") && spans[1].contains("Noted"), "{spans:?}");
    assert!(seen["first"]["summary"].as_str().unwrap().contains("routed by router"), "{}", seen["first"]["summary"]);
    assert!(seen["second"]["text"].as_str().unwrap().contains("1234"), "same session remembers: {}", seen["second"]);
    assert_eq!(seen["second"]["spans"], 2);
    assert!(seen["session"].as_str().unwrap().starts_with("session s-"));
    let reloaded = &seen["reloaded"];
    assert_eq!(reloaded["userTurns"], json!(["remember that the door code is 1234", "recall my notes"]), "{reloaded}");
    assert_eq!(reloaded["answers"][0], "Noted: the door code is 1234");
    assert_eq!(reloaded["answers"][1], seen["second"]["text"]);
    assert_eq!(reloaded["firstSpans"], json!(spans.len()), "the trace comes back too: {reloaded}");
    assert_eq!(reloaded["session"], seen["session"]);
    assert_eq!(seen["consoleErrors"], json!([]));
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a real screenshot was taken");
}
