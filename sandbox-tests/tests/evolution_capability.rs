//! The `evolution` capability's bounds against a guest (`wants-evolution`)
//! that asks for more than its grant: refused at load without a grant,
//! each request refused outside its scope, malformed requests refused
//! before anything starts, runs per day counted in the database, proposals
//! capped per day, other agents' runs invisible, and every request audited.
//! (An agent creating another agent end to end: `host/tests/agent_creates_agent.rs`.)
use agentkernel::runtime::CallError;
use agentkernel::storage::evolution::MAX_NOTES_PER_DAY;
use agentkernel::bindings::Request;
use sandbox_tests::TestHost;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use serde_json::{Value, json};

fn op(context: Value) -> Request {
    Request { session_id: "s".into(), text: "go".into(), history: vec![], context: Some(context.to_string()) }
}

/// Calls the probe; `Ok(text)` or `Err("CODE: message")`.
async fn ask(t: &TestHost, context: Value) -> Result<String, String> {
    match t.host.registry.call("wants-evolution", &op(context)).await {
        Ok(o) => Ok(o.response.text),
        Err(CallError::Agent { message, .. }) => Err(message),
        Err(e) => panic!("the call itself failed: {e}"),
    }
}

fn host_with(grant: &str, extra: &str) -> TestHost {
    TestHost::new(&format!("[agents.wants-evolution]\nevolution = {grant}\n{extra}"))
}

fn create(name: &str) -> Value {
    json!({"op": "create", "name": name, "spec": "Answer with the request in capitals", "cases": [["hi", "hi", "HI", false]]})
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_grant_the_component_never_loads() {
    let t = TestHost::new("");
    let err = t.load("wants-evolution").await.err().expect("refused at load");
    assert!(err.to_string().contains("evolution"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_is_refused_outside_the_scope_and_audited() {
    let t = host_with("{ propose = true }", "");
    t.load("wants-evolution").await.unwrap();
    t.load("echo").await.unwrap();
    let _ = t.serve().await;
    for (context, code) in [
        (create("shout"), "not-allowed"),
        (json!({"op": "evolve", "agent": "echo"}), "not-allowed"),
        (json!({"op": "stats"}), "not-allowed"),
        (json!({"op": "compare", "agent": "echo", "baseline": "aaaaaa", "candidate": "bbbbbb"}), "not-allowed"),
        (json!({"op": "status", "id": "someone-elses-run"}), "not-found"),
        (json!({"op": "propose", "kind": "delete-everything", "agent": "echo", "detail": "x"}), "invalid-request"),
        (json!({"op": "propose", "kind": "instances", "agent": "echo", "detail": "x".repeat(5000)}), "invalid-request"),
    ] {
        let err = ask(&t, context.clone()).await.expect_err(&context.to_string());
        assert!(err.starts_with(code), "{context}: {err}");
    }
    let id = ask(&t, json!({"op": "propose", "kind": "instances", "agent": "echo", "detail": "busy: 2 more"})).await.unwrap();
    assert!(id.starts_with("proposal-"), "{id}");
    let audit = t.host.backend.evolution_requests(None, 100).unwrap();
    // Four out of scope, two malformed proposals (a read of a run that is
    // not its own is answered `not-found` and not audited).
    assert_eq!(audit.iter().filter(|r| r.outcome.starts_with("refused")).count(), 6, "{audit:#?}");
    let proposal = audit.iter().find(|r| r.outcome == "proposed").unwrap();
    assert_eq!((proposal.agent.as_str(), proposal.target.as_str()), ("wants-evolution", "echo"));
    assert!(proposal.detail.contains("busy: 2 more"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_creations_are_refused_before_anything_starts() {
    let t = host_with("{ create = true, runs_per_day = 1 }", "");
    t.load("wants-evolution").await.unwrap();
    let _ = t.serve().await;
    let big_spec = json!({"op": "create", "name": "x", "spec": "s".repeat(9000), "cases": [["a", "a", "A", false]]});
    let no_cases = json!({"op": "create", "name": "x", "spec": "s", "cases": []});
    let all_held_out = json!({"op": "create", "name": "x", "spec": "s", "cases": [["a", "a", "A", true]]});
    let bad_name = json!({"op": "create", "name": "../x", "spec": "s", "cases": [["a", "a", "A", false]]});
    let many: Vec<Value> = (0..40).map(|i| json!([format!("c{i}"), "a", "A", false])).collect();
    let too_many = json!({"op": "create", "name": "x", "spec": "s", "cases": many});
    let empty_expect = json!({"op": "create", "name": "x", "spec": "s", "cases": [["a", "a", "", false]]});
    for context in [big_spec, no_cases, all_held_out, bad_name, too_many, empty_expect] {
        let err = ask(&t, context.clone()).await.expect_err(&context.to_string());
        assert!(err.starts_with("invalid-request"), "{err}");
    }
    // None of them took the day's only run, and none started one.
    assert!(t.host.backend.evolutions(10).unwrap().is_empty());
    // No LLM to write code: refused by the engine, and the run is not taken either.
    let err = ask(&t, create("shout")).await.unwrap_err();
    assert!(err.starts_with("failed") && err.contains("LLM"), "{err}");
    let err = ask(&t, create("echo")).await.unwrap_err();
    assert!(err.starts_with("failed"), "{err}");
    // A refused request leaves no file behind (it is checked before anything is written).
    let requested = t.host.config.host.data_dir.join("evolve/requested");
    assert!(!requested.exists() || std::fs::read_dir(&requested).unwrap().next().is_none(), "files left in {}", requested.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_agent_may_not_take_a_name_with_policy_or_data() {
    let llm = ScriptedLlm::start(vec![]).await;
    let config = llm.config_with("[agents.wants-evolution]\nevolution = { create = true, evolve = [\"*\"] }\n[agents.researcher]\nlog = true\n");
    let t = TestHost::new(&config);
    t.load("wants-evolution").await.unwrap();
    let _ = t.serve().await;
    // A policy section names it: creating it would inherit that grant.
    assert!(ask(&t, create("researcher")).await.unwrap_err().starts_with("busy"));
    // Stored memory under the name: creating it would read another agent's data.
    let set = [agentkernel::storage::KvOp::Set { key: "k".into(), value: b"v".to_vec() }];
    let quota = agentkernel::storage::KvQuota { max_keys: 10, max_bytes: 1000 };
    t.host.backend.kv_apply("ghost", &set, &quota, &agentkernel::storage::CommitGate::new()).unwrap().unwrap();
    assert!(ask(&t, create("ghost")).await.unwrap_err().starts_with("busy"));
    // Never the reviewer, nor itself, even under "*".
    for target in ["security-guardian", "wants-evolution"] {
        let err = ask(&t, json!({"op": "evolve", "agent": target})).await.unwrap_err();
        assert!(err.starts_with("not-allowed"), "{target}: {err}");
    }
    assert!(t.host.backend.evolutions(10).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_engine_requests_fail_clearly() {
    let t = host_with("{ create = true, stats = true }", "");
    t.load("wants-evolution").await.unwrap();
    // No `serve`: nothing installed on the desk (`agentkernel run`, the benchmark).
    let err = ask(&t, create("shout")).await.unwrap_err();
    assert!(err.starts_with("failed") && err.contains("no evolution engine"), "{err}");
    assert!(ask(&t, json!({"op": "stats"})).await.unwrap_err().contains("no evolution engine"));
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_per_day_hold_and_a_run_is_readable_only_by_its_owner() {
    let llm = ScriptedLlm::start(vec![Scripted::reply("no code here")]).await;
    let config = llm.config_with("[agents.wants-evolution]\nevolution = { create = true, runs_per_day = 1 }\n");
    let t = TestHost::new(&config);
    t.load("wants-evolution").await.unwrap();
    let _ = t.serve().await;
    let run = ask(&t, create("shout")).await.expect("the day's run");
    let err = ask(&t, create("whisper")).await.unwrap_err();
    assert!(err.starts_with("budget-exceeded"), "{err}");
    // Its own run: readable (running or already decided), without host paths.
    let status: Value = serde_json::from_str(&ask(&t, json!({"op": "status", "id": run})).await.unwrap()).unwrap();
    assert_eq!(status["agent"], "shout");
    assert!(!status.to_string().contains(&t.dir.path().display().to_string()), "{status}");
    let audit = t.host.backend.evolution_request_by_run(&run).unwrap().unwrap();
    assert_eq!((audit.agent.as_str(), audit.action.as_str(), audit.outcome.as_str()), ("wants-evolution", "create", "started"));
    // A restart does not reset the day's count: it is in the database.
    let t = t.reopen();
    t.load("wants-evolution").await.unwrap();
    let _ = t.serve().await;
    assert!(ask(&t, create("whisper")).await.unwrap_err().starts_with("budget-exceeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_flooding_proposals_is_capped_per_day() {
    let t = host_with("{ propose = true }", "");
    t.load("wants-evolution").await.unwrap();
    let _ = t.serve().await;
    let n = MAX_NOTES_PER_DAY + 50;
    let counts: Value = serde_json::from_str(&ask(&t, json!({"op": "hammer-propose", "n": n})).await.unwrap()).unwrap();
    assert_eq!(counts["ok"], MAX_NOTES_PER_DAY, "{counts}");
    assert_eq!(counts["budget-exceeded"], 50, "{counts}");
    assert_eq!(t.host.backend.evolution_requests(Some("propose"), 1000).unwrap().len() as u64, MAX_NOTES_PER_DAY);
}
