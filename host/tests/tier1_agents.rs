//! The tier-1 agents that review, create and improve agents, on paths that
//! need no evolution engine: the security guardian's review of a created
//! agent (the host's request) and of loaded agents named in words, the
//! engine-less answers of the others, and each agent's own benchmark suite
//! on the benchmark's doubles.
use std::path::{Path, PathBuf};

use sandbox_tests::{TestHost, request};
use serde_json::{Value, json};

const TIER1_AGENTS: [&str; 4] = ["security-guardian", "codegen-engine", "performance-optimizer", "experiment-runner"];

/// The grants of `agentkernel.toml` for the four (memory is granted by default).
const GRANTS: &str = r#"
[agents.security-guardian]
llm = { profiles = ["smart"], tokens_per_call = 1000 }
agents = { max_depth = 1 }
[agents.codegen-engine]
evolution = { create = true, runs_per_day = 3, tokens_per_run = 60000 }
llm = { profiles = ["smart"], tokens_per_call = 1000 }
[agents.performance-optimizer]
evolution = { stats = true, evolve = ["primes"], propose = true, runs_per_day = 2 }
[agents.experiment-runner]
evolution = { compare = true }
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// A host with the four, `notes` and `summarizer`, scanned.
async fn host() -> TestHost {
    let h = TestHost::new(&format!("{GRANTS}\n[agents.summarizer]\nllm = {{ profiles = [\"fast\"] }}\n"));
    for name in TIER1_AGENTS.into_iter().chain(["notes", "summarizer"]) {
        h.install(name, &format!("{name}.wasm"));
    }
    h.host.registry.scan().await;
    h
}

/// Calls `agent` with `text` and `context`: (text, data).
async fn call(h: &TestHost, agent: &str, text: &str, context: Option<Value>) -> (String, Value) {
    let mut req = request("tier1", text);
    req.context = context.map(|c| c.to_string());
    let out = h.host.registry.get(agent).unwrap_or_else(|| panic!("{agent} loaded")).call(&req).await.unwrap();
    (out.response.text, out.response.data.map(|d| serde_json::from_str(&d).unwrap()).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guardian_rejects_an_ungranted_import_and_approves_a_clean_agent() {
    let h = host().await;
    let source = "use agentkernel_sdk::prelude::*;\npub fn shout(t: &str) -> String { t.to_uppercase() }\n";
    let review = |imports: Value| json!({"review": {"agent": "shout", "spec": "capitals", "imports": imports, "granted": ["log", "memory"], "files": {"src/lib.rs": source}}});
    let (text, data) = call(&h, "security-guardian", "review", Some(review(json!(["log", "http"])))).await;
    assert_eq!(data["verdict"], "reject", "{text}");
    assert_eq!(data["method"], "rules");
    assert_eq!(data["findings"][0]["rule"], "ungranted-import");
    assert_eq!(data["findings"][0]["severity"], "high");
    let (text, data) = call(&h, "security-guardian", "review", Some(review(json!(["log"])))).await;
    assert_eq!(data["verdict"], "approve", "{text}");
    assert!(text.contains("Rules only"), "no model configured: {text}");
    let (text, _) = call(&h, "security-guardian", "what have you reviewed?", None).await;
    assert!(text.contains("shout (created review): approve"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guardian_reviews_loaded_agents_named_in_words() {
    let h = host().await;
    let (text, data) = call(&h, "security-guardian", "is notes safe?", None).await;
    assert!(text.starts_with("notes: approve"), "{text}");
    assert_eq!(data["reviews"].as_array().map(Vec::len), Some(1));
    let (text, _) = call(&h, "security-guardian", "review the agent summarizer", None).await;
    assert!(text.contains("summarizer: approve") && text.contains("uses-llm"), "{text}");
    // `agents = { max_depth = 1 }`: it lists every manifest, and calls none.
    let (_, data) = call(&h, "security-guardian", "review all agents", None).await;
    assert!(data["reviews"].as_array().unwrap().len() >= 5, "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_engine_the_others_say_so() {
    let h = host().await;
    let (text, data) = call(&h, "performance-optimizer", "which agents perform worst?", None).await;
    assert!(text.contains("cannot read the agents' metrics") && text.contains("no evolution engine"), "{text}");
    assert_eq!(data["error"], "failed");
    let (text, data) = call(&h, "codegen-engine", "create an agent called shout that answers in capitals; cases: 'hi' -> 'HI'", None).await;
    assert!(text.contains("could not create `shout`"), "{text}");
    assert_eq!(data["error"], "failed");
    let (text, data) = call(&h, "experiment-runner", "compare primes 1a2b3c against 4d5e6f", None).await;
    assert!(text.contains("could not run the comparison"), "{text}");
    assert_eq!(data["agent"], "primes");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tier1_agent_passes_its_benchmark_suite() {
    use agentkernel::evolution::bench::Bench;
    use agentkernel::evolution::suite::Suite;
    let t = TestHost::new(GRANTS);
    for name in TIER1_AGENTS {
        let suite = Suite::load(&repo().join(format!("agents/{name}/evolve.toml"))).unwrap();
        assert!(suite.cases.iter().any(|c| c.held_out), "{name} has held-out cases");
        let bench = Bench::new(&t.host.config, name, &suite.limits, 7).await.unwrap();
        let agent = bench.load(&sandbox_tests::wasm(name)).await.unwrap();
        let result = bench.run(&agent, &suite.cases, 1).await;
        for case in &result.cases {
            assert!(case.passed, "{name}/{}: {:?} (text {:?}, error {:?})", case.name, case.failures, case.text, case.error_message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_routes_plain_requests_to_the_tier1_agents_offline() {
    let h = host().await;
    for name in ["router", "synthesizer", "echo", "primes"] {
        h.install(name, &format!("{name}.wasm"));
    }
    h.host.registry.scan().await;
    let addr = h.serve().await;
    let cases = [
        ("is notes safe?", "security-guardian", "notes: approve"),
        ("status of my agents", "codegen-engine", "not started any runs"),
        ("which agents perform worst?", "performance-optimizer", ""),
        ("what experiments have you run?", "experiment-runner", "not run any experiment"),
        ("run an experiment on primes: v1 vs v2", "experiment-runner", "primes"),
    ];
    for (message, agent, answer) in cases {
        let r: Value = reqwest::Client::new().post(format!("http://{addr}/v1/chat")).json(&json!({"message": message})).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["agents"][0], agent, "{message}: {}", r["route"]);
        assert!(r["answer"].as_str().unwrap_or("").contains(answer), "{message}: {}", r["answer"]);
    }
}
