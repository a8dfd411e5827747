//! An agent creates another agent through the `evolution` capability:
//! `codegen-engine` reads a person's request, asks the host to create the
//! agent, the host's engine writes it with the (scripted) model, builds it
//! in the sandbox, benchmarks it on the cases, has `security-guardian`
//! review it, and registers it; the new agent then answers. Without the
//! reviewer loaded, the same request registers nothing.
use std::path::Path;
use std::time::{Duration, Instant};

use agentkernel::evolution::report::Report;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use sandbox_tests::{TestHost, request, wasm_dir};

fn agent_source(name: &str, body: &str) -> String {
    format!(
        "```rust src/lib.rs\nuse agentkernel_sdk::prelude::*;\npub struct A;\nimpl Agent for A {{\n    fn describe() -> Manifest {{ Manifest::new(\"{name}\", \"0.1.0\", \"Shouts.\") }}\n    fn handle(req: Request) -> Result<Response, AgentError> {{ Ok(Response::text({body})) }}\n}}\nexport_agent!(A);\n```\n"
    )
}

/// Both agents import `llm`; they are granted a profile the server does not
/// serve, so they work by their rules (the scripted replies are the code
/// generator's, in order).
fn config(llm: &ScriptedLlm) -> String {
    let target = wasm_dir().join("../../evolve-candidates");
    std::fs::create_dir_all(&target).unwrap();
    format!(
        "[evolution]\ntarget_dir = \"{}\"\nllm_profile = \"fast\"\nwatch_calls = 0\n\
         {}\n\
         [agents.codegen-engine]\nevolution = {{ create = true, runs_per_day = 5 }}\nllm = {{ profiles = [\"unscripted\"] }}\n\
         [agents.security-guardian]\nagents = {{ max_depth = 1 }}\nllm = {{ profiles = [\"unscripted\"] }}\n",
        target.display(),
        llm.config()
    )
}

/// Waits for the newest run of `agent` to end; its id and decision.
async fn finished_run(t: &TestHost, agent: &str) -> (String, String) {
    let start = Instant::now();
    loop {
        let runs = t.host.backend.evolutions(20).unwrap();
        if let Some(r) = runs.iter().find(|r| r.agent == agent && r.status != "running") {
            assert_eq!(r.status, "finished", "{r:?}");
            return (r.id.clone(), r.decision.clone().unwrap_or_default());
        }
        assert!(start.elapsed() < Duration::from_secs(900), "the run of {agent} did not end: {runs:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn report(data_dir: &Path, run: &str) -> Report {
    let path = agentkernel::evolution::run_dir(data_dir, run).join("report.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn ask(t: &TestHost, agent: &str, text: &str) -> String {
    match t.host.registry.call(agent, &request("person-1", text)).await {
        Ok(o) => o.response.text,
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn codegen_engine_creates_an_agent_registered_only_after_the_security_review() {
    let llm = ScriptedLlm::start(vec![]).await;
    let t = TestHost::new(&config(&llm));
    t.install("codegen-engine", "codegen-engine.wasm");
    let _ = t.serve().await;
    let data_dir = t.host.config.host.data_dir.clone();

    // No reviewer loaded: the new agent passes its cases and is still refused.
    for _ in 0..2 {
        llm.push(Scripted::reply(&agent_source("whisper", "req.text.to_lowercase()")));
    }
    let answer = ask(&t, "codegen-engine", "create an agent called whisper that answers in lower case; cases: 'HELLO' -> 'hello', 'ABC' -> 'abc'").await;
    assert!(answer.contains("whisper"), "{answer}");
    let (run, decision) = finished_run(&t, "whisper").await;
    assert_eq!(decision, "rejected");
    assert!(t.host.registry.get("whisper").is_none());
    assert!(!t.agents_dir().join("whisper.wasm").exists());
    let review = report(&data_dir, &run).security_review.expect("a review outcome in the report");
    assert_eq!((review.verdict.as_str(), review.findings[0].rule.as_str()), ("reject", "no-reviewer"));

    // With the reviewer: created, reviewed, registered, answering.
    t.install("security-guardian", "security-guardian.wasm");
    t.host.registry.scan().await;
    assert!(t.host.registry.get("security-guardian").is_some());
    llm.push(Scripted::reply(&agent_source("shout", "req.text.to_lowercase()")));
    llm.push(Scripted::reply(&agent_source("shout", "req.text.to_uppercase()")));
    let answer = ask(&t, "codegen-engine", "create an agent called shout that answers with the request in capitals; cases: 'hello' -> 'HELLO', 'abc' -> 'ABC', 'Ok' -> 'OK'").await;
    assert!(answer.contains("shout"), "{answer}");
    let (run, decision) = finished_run(&t, "shout").await;
    assert_eq!(decision, "swapped", "{:?}", report(&data_dir, &run).reason);
    let r = report(&data_dir, &run);
    let review = r.security_review.expect("reviewed");
    assert_eq!(review.verdict, "approve", "{review:?}");
    assert!(review.reviewer.starts_with("security-guardian"));
    assert_eq!(r.config.held_out_cases, 1, "the last case is held out from the generator");
    assert_eq!(ask(&t, "shout", "hi there").await, "HI THERE");
    // Only what policy grants the new name by default (it has no section).
    let shout = t.host.registry.get("shout").unwrap();
    assert!(shout.grants.granted().iter().all(|c| ["log", "memory"].contains(&c.name())), "{:?}", shout.grants.granted());

    // In the audit and the lineage, and reported back to the person.
    let audit = t.host.backend.evolution_request_by_run(&run).unwrap().expect("audited");
    assert_eq!((audit.agent.as_str(), audit.action.as_str(), audit.target.as_str()), ("codegen-engine", "create", "shout"));
    assert!(!t.host.backend.versions("shout").unwrap().is_empty());
    let status = ask(&t, "codegen-engine", "what happened to shout").await;
    assert!(status.contains("shout") && (status.contains("swapped") || status.contains("created") || status.contains("registered")), "{status}");
    // The person's request never reached the code generator beyond the spec and visible cases.
    let prompts: Vec<String> = llm.requests().iter().map(|r| r.to_string()).collect();
    assert!(prompts.iter().all(|p| !p.contains("'Ok'") && !p.contains("\\\"Ok\\\"")), "a held-out case leaked into a prompt");
}
