//! The OpenAI facade, driven by the official `openai` Python client
//! (installed by `scripts/deps/openai-client.sh`, which exports
//! `AGENTKERNEL_OPENAI_PYTHON`).
use sandbox_tests::TestHost;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_talks_to_the_agents() {
    let python = std::env::var("AGENTKERNEL_OPENAI_PYTHON")
        .expect("AGENTKERNEL_OPENAI_PYTHON is unset: run ./scripts/test (scripts/deps/openai-client.sh installs the client)");
    // LLM calls, in order: the router's for `auto` (not a routing choice:
    // it falls back to skills), then the summarizer's, streamed word by word.
    let llm = ScriptedLlm::start(vec![Scripted::reply("not a routing choice"), Scripted::reply("Cats sleep a lot.")]).await;
    let h = TestHost::new(&format!(
        "[[host.tokens]]\nname = \"ui\"\ntoken = \"ui-secret-0123456789\"\nscopes = [\"chat\"]\n\
         [agents.router]\nllm = {{ profiles = [\"fast\"] }}\n[agents.synthesizer]\nllm = {{ profiles = [\"fast\"] }}\n\
         [agents.summarizer]\nllm = {{ profiles = [\"fast\"] }}\n{}",
        llm.config()
    ));
    for (krate, file) in [
        ("router", "router.wasm"),
        ("synthesizer", "synthesizer.wasm"),
        ("echo", "echo.wasm"),
        ("notes", "notes.wasm"),
        ("summarizer", "summarizer.wasm"),
    ] {
        h.install(krate, file);
    }
    let addr = h.serve().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let out = tokio::process::Command::new(&python)
        .args([script, &format!("http://{addr}/v1"), "ui-secret-0123456789"])
        .output()
        .await
        .expect("python runs");
    assert!(out.status.success(), "client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("client printed JSON");

    assert_eq!(seen["models"], json!(["auto", "echo", "notes", "summarizer"]), "router and synthesizer are not offered as models");
    assert_eq!(seen["echo"], json!({"content": "hello there", "finish": "stop", "object": "chat.completion"}));
    assert_eq!(seen["auto"]["content"], "Noted: the milk is gone");
    assert_eq!(seen["auto"]["agents"], json!(["notes"]));
    assert_eq!(seen["stream"]["text"], "streamed words");
    assert_eq!(seen["stream"]["finish"], "stop");
    assert_eq!(seen["llm_stream"]["text"], "Cats sleep a lot.", "{seen}");
    assert_eq!(seen["llm_stream"]["content_chunks"], 4, "one chunk per streamed word, as the model produced them: {seen}");
    assert_eq!(seen["llm_stream"]["total_tokens"], 15, "usage arrives with the last chunk");
    assert_eq!(
        (&seen["llm_stream"]["prompt_tokens"], &seen["llm_stream"]["completion_tokens"]),
        (&json!(10), &json!(5)),
        "the model's prompt/completion split reaches the client: {seen}"
    );
    assert_eq!(seen["unknown_model"], 404);
    assert_eq!(seen["bad_key"], 401);
}
