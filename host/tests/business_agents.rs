//! The tier-2 business agents as a user meets them: chat routes plain
//! requests to the right one offline, a scripted model's answer is used and
//! a malformed one falls back, decisions outlive the session they were made
//! in, the strategist consults the revenue optimizer (and answers when it
//! may not), support passes feature requests to the product manager, each
//! agent passes its own benchmark suite, and `primes` answers a sentence.
use std::path::{Path, PathBuf};

use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use sandbox_tests::{TestHost, request};
use serde_json::{Value, json};

const BUSINESS_AGENTS: [&str; 4] = ["business-strategist", "product-manager", "customer-support", "revenue-optimizer"];

/// The grants of `agentkernel.toml` for the four (memory is granted by default).
const GRANTS: &str = r#"
[agents.business-strategist]
llm = { profiles = ["smart"], tokens_per_call = 800 }
agents = { call = ["revenue-optimizer", "product-manager"] }
limits = { deadline_ms = 60000 }
[agents.product-manager]
llm = { profiles = ["fast"], tokens_per_call = 600 }
[agents.customer-support]
llm = { profiles = ["fast"], tokens_per_call = 400 }
agents = { call = ["product-manager"] }
[agents.revenue-optimizer]
llm = { profiles = ["fast"], tokens_per_call = 600 }
[agents.router]
llm = { profiles = ["fast"] }
[agents.synthesizer]
llm = { profiles = ["fast"] }
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// A host with the chat service's agents, the four and `primes`, scanned.
async fn host(extra: &str) -> TestHost {
    host_with_grants(GRANTS, extra).await
}

async fn host_with_grants(grants: &str, extra: &str) -> TestHost {
    let h = TestHost::new(&format!("{grants}\n{extra}"));
    for name in ["router", "synthesizer", "primes"].into_iter().chain(BUSINESS_AGENTS) {
        h.install(name, &format!("{name}.wasm"));
    }
    h.host.registry.scan().await;
    h
}

async fn post(addr: std::net::SocketAddr, body: &Value) -> Value {
    let r = reqwest::Client::new().post(format!("http://{addr}/v1/chat")).json(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Calls `agent` directly in `session`: (text, data).
async fn call(h: &TestHost, agent: &str, session: &str, text: &str) -> (String, Value) {
    let out = h.host.registry.get(agent).unwrap_or_else(|| panic!("{agent} loaded")).call(&request(session, text)).await.unwrap();
    (out.response.text, out.response.data.map(|d| serde_json::from_str(&d).unwrap()).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_routes_plain_requests_to_the_right_agent_offline() {
    let h = host("").await;
    let addr = h.serve().await;
    let cases = [
        ("what should our strategy be for entering the EU market", "business-strategist", "Recommendation: beachhead"),
        ("prioritise these features: SSO, dark mode, CSV export", "product-manager", "Priorities by RICE"),
        ("my invoice is wrong", "customer-support", "invoice number"),
        ("how do I reset my password", "customer-support", "Forgot password"),
        ("how should we price the pro plan; MRR 12000, churn 4%", "revenue-optimizer", "ARR $144,000"),
        ("how many primes below 1000", "primes", "168"),
        ("count the primes under 50", "primes", "15"),
    ];
    for (message, agent, answer) in cases {
        let r = post(addr, &json!({"message": message})).await;
        assert_eq!(r["agents"], json!([agent]), "{message}: {}", r["route"]);
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["answer"].as_str().unwrap().contains(answer), "{message}: {}", r["answer"]);
        if agent != "primes" {
            assert_eq!(r["results"][0]["data"]["method"], "offline", "{message}: no model configured");
        }
    }
    let r = post(addr, &json!({"message": "how many primes below 1000"})).await;
    assert_eq!(r["answer"], "168", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_model_answer_is_used_and_a_malformed_one_falls_back() {
    let llm = ScriptedLlm::start(vec![
        Scripted::reply(r#"{"answer": "Raise the pro plan to $44.", "recommendation": "raise pro to $44"}"#),
        Scripted::reply("Sure, raise prices!"),
    ])
    .await;
    let h = host(&llm.config()).await;
    let (text, data) = call(&h, "revenue-optimizer", "s1", "MRR 12000, churn 4%, 300 customers").await;
    assert_eq!(text, "Raise the pro plan to $44.");
    assert_eq!((data["method"].as_str(), data["recommendation"].as_str()), (Some("llm"), Some("raise pro to $44")), "{data}");
    let sent = &llm.requests()[0];
    assert_eq!(sent["model"], "test-model", "the fast profile");
    assert!(sent["messages"][0]["content"].as_str().unwrap().contains("revenue optimisation analyst"));
    assert!(sent["messages"][1]["content"].as_str().unwrap().contains("144000"), "the computed ARR goes to the model: {sent}");

    // Not the JSON asked for: the calculation answers, and says why.
    let (text, data) = call(&h, "revenue-optimizer", "s1", "MRR 12000, churn 4%, 300 customers").await;
    assert_eq!((data["method"].as_str(), data["reason"].as_str()), (Some("offline"), Some("malformed model reply")), "{data}");
    assert!(text.contains("ARR $144,000") && text.contains("LTV $800"), "{text}");
    assert!(text.contains("Last time you decided: raise pro to $44"), "{text}");
    // The second call saw the first exchange of the session.
    let history = llm.requests()[1]["messages"].as_array().unwrap().len();
    assert_eq!(history, 4, "system, the earlier question and answer, the question");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_made_in_one_session_is_recalled_in_another() {
    let h = host("").await;
    let addr = h.serve().await;
    let first = post(addr, &json!({"message": "what should our strategy be for entering the EU market"})).await;
    assert_eq!(first["results"][0]["data"]["decision"], 1, "{first}");

    let r = post(addr, &json!({"message": "what did we decide about our strategy?"})).await;
    assert_ne!(r["session"], first["session"], "a new session");
    assert_eq!(r["agents"], json!(["business-strategist"]), "{r}");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("#1 [market-entry: the EU market] beachhead: one country first"), "{answer}");
    assert!(!answer.contains("(this session)"), "made in another session: {answer}");

    let r = post(addr, &json!({"message": "what strategy for expanding into Asia?"})).await;
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("Last time you decided: beachhead: one country first, with a local partner (market-entry: the EU market)"), "{answer}");

    // Stated decisions are kept too, and survive a restart of the host.
    let (text, _) = call(&h, "product-manager", "s9", "We decided to ship SSO before dark mode").await;
    assert_eq!(text, "Recorded decision #1: to ship SSO before dark mode");
    let h = h.reopen();
    h.host.registry.scan().await;
    let (text, _) = call(&h, "product-manager", "s10", "what did we decide?").await;
    assert!(text.contains("to ship SSO before dark mode"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strategist_consults_the_revenue_optimizer_and_answers_without_it_when_refused() {
    let h = host("").await;
    let addr = h.serve().await;
    let message = "what should our strategy be for entering the EU market? MRR 12000, churn 4%";
    let r = post(addr, &json!({"message": message, "agents": ["business-strategist"]})).await;
    let trace = r["trace"].as_array().unwrap();
    let strategist = trace.iter().find(|s| s["agent"] == "business-strategist").unwrap();
    let callee = trace.iter().find(|s| s["agent"] == "revenue-optimizer").expect("revenue-optimizer in the trace");
    assert_eq!((callee["role"].as_str(), &callee["parent"]), (Some("callee"), &strategist["id"]), "{trace:?}");
    let data = &r["results"][0]["data"];
    assert_eq!(data["consulted"][0]["agent"], "revenue-optimizer");
    assert_eq!(data["consulted"][0]["ok"], true, "{data}");
    assert_eq!(data["consulted"][0]["data"]["consulted_by"], "business-strategist");
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("From revenue-optimizer: Revenue analysis (calculated): MRR $12,000"), "{answer}");
    assert!(answer.contains("churn of 4.0% a month: fix retention"), "its numbers are in the SWOT: {answer}");
    // Advice given to a colleague is not the revenue optimizer's own decision.
    let (text, _) = call(&h, "revenue-optimizer", "s2", "what did we decide?").await;
    assert_eq!(text, "No decisions recorded yet.");

    // Policy lets it call only the product manager: it says so and answers.
    let only_product = GRANTS.replace(r#"call = ["revenue-optimizer", "product-manager"]"#, r#"call = ["product-manager"]"#);
    let h = host_with_grants(&only_product, "").await;
    let (text, data) = call(&h, "business-strategist", "s3", message).await;
    assert_eq!(data["consulted"][0]["error"], "not-allowed", "{data}");
    assert!(text.contains("Recommendation: beachhead") && text.contains("revenue-optimizer could not be consulted: not-allowed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_answers_opens_tickets_and_passes_feature_requests_to_the_product_manager() {
    let h = host("").await;
    let (text, data) = call(&h, "customer-support", "c1", "Feature request: it would be great if we could export to Excel").await;
    assert_eq!(data["consulted"][0]["ok"], true, "{data}");
    assert!(text.contains("passed it to our product team") && text.contains("Logged feature request #1"), "{text}");
    let (text, _) = call(&h, "product-manager", "p1", "what is on the backlog?").await;
    assert!(text.contains("export to Excel"), "{text}");

    let (text, data) = call(&h, "customer-support", "c1", "the dashboard shows yesterday's numbers twice").await;
    assert_eq!(data["ticket"], 1, "{data}");
    assert!(text.contains("opened ticket #1"), "{text}");
    let (text, _) = call(&h, "customer-support", "c2", "status of ticket 1?").await;
    assert!(text.starts_with("Ticket #1 is open"), "{text}");
    match h.host.registry.get("customer-support").unwrap().call(&request("c1", "  ")).await {
        Err(agentkernel::runtime::CallError::Agent { kind, .. }) => assert_eq!(kind, "invalid-request"),
        Err(e) => panic!("an empty request is refused as invalid, not {e}"),
        Ok(out) => panic!("an empty request is refused, not answered: {}", out.response.text),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_business_agent_passes_its_benchmark_suite() {
    use agentkernel::evolution::bench::Bench;
    use agentkernel::evolution::suite::Suite;
    let t = TestHost::new(GRANTS);
    for name in BUSINESS_AGENTS {
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
