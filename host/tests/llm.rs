//! The `llm` capability through the real async-openai client, against a
//! scripted OpenAI-compatible server on loopback.
use std::time::{Duration, Instant};

use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use sandbox_tests::{TestHost, request};
use serde_json::{Value, json};

const GRANT: &str = "[agents.llm-probe]\nllm = true\nlimits = { deadline_ms = 20000 }\n";

/// Calls llm-probe with `context`; returns (text, data).
async fn probe(h: &TestHost, text: &str, context: Value) -> (String, Value) {
    let agent = h.load("llm-probe").await.expect("llm-probe loads");
    let mut req = request("sess-1", text);
    req.context = Some(context.to_string());
    let out = agent.call(&req).await.expect("the call itself succeeds");
    let data = serde_json::from_str(out.response.data.as_deref().unwrap()).unwrap();
    (out.response.text, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_round_trip_is_recorded_with_cost() {
    let server = ScriptedLlm::start(vec![Scripted::Reply {
        content: "hello from the model".into(),
        prompt_tokens: 1000,
        completion_tokens: 500,
    }])
    .await;
    let h = TestHost::new(&format!("{}{GRANT}", server.config()));
    let (text, data) = probe(&h, "say hi", json!({"profile": "fast", "max_tokens": 64, "json": true})).await;
    assert_eq!(text, "hello from the model");
    assert_eq!(data["ok"], true);
    assert_eq!((data["prompt_tokens"].as_u64(), data["completion_tokens"].as_u64()), (Some(1000), Some(500)));

    let sent = &server.requests()[0];
    assert_eq!(sent["model"], "test-model", "the profile maps to the configured model");
    assert_eq!(sent["messages"][0]["content"], "say hi");
    assert_eq!(sent["response_format"]["type"], "json_object");
    assert!(sent["max_tokens"] == 64 || sent["max_completion_tokens"] == 64, "{sent}");

    let rows = h.host.storage().llm_usage(Some("llm-probe"), 0).unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.session.as_str(), r.profile.as_str(), r.model.as_str()), ("sess-1", "fast", "test-model"));
    assert_eq!((r.prompt_tokens, r.completion_tokens, r.outcome.as_str()), (1000, 500, "ok"));
    // $1/M prompt + $2/M completion.
    assert!((r.cost_usd.unwrap() - 0.002).abs() < 1e-9, "{:?}", r.cost_usd);

    let metrics = h.host.runtime.metrics().render(&agentkernel::metrics::Gauges { agents_loaded: 1, files_failed: 0 });
    assert!(metrics.contains("agentkernel_llm_tokens_total{agent=\"llm-probe\",kind=\"prompt\"} 1000"), "{metrics}");
    assert!(metrics.contains("agentkernel_llm_tokens_total{agent=\"llm-probe\",kind=\"completion\"} 500"));
    assert!(metrics.contains("agentkernel_llm_calls_total{agent=\"llm-probe\",outcome=\"ok\"} 1"));
    assert!(metrics.contains("agentkernel_llm_cost_usd_total{agent=\"llm-probe\"} 0.002"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_then_success_is_retried() {
    let server = ScriptedLlm::start(vec![Scripted::Status(429), Scripted::reply("after retry")]).await;
    let h = TestHost::new(&format!("{}{GRANT}", server.config()));
    let (text, _) = probe(&h, "x", json!({})).await;
    assert_eq!(text, "after retry");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_typed_errors() {
    let cases: Vec<(Vec<Scripted>, &str)> = vec![
        (vec![Scripted::Status(429); 5], "rate-limited"),
        (vec![Scripted::Status(500); 5], "upstream"),
        (vec![Scripted::Status(400)], "upstream"),
        (vec![Scripted::Raw("{\"choices\": [".into())], "bad-response"),
        (vec![Scripted::Raw("not json at all".into())], "bad-response"),
        (vec![Scripted::Raw(String::new())], "bad-response"),
        (vec![Scripted::Raw(json!({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}).to_string())], "bad-response"),
        (vec![Scripted::reply(&"y".repeat(2 << 20))], "bad-response"),
    ];
    for (script, expected) in cases {
        let server = ScriptedLlm::start(script.clone()).await;
        let h = TestHost::new(&format!("{}{GRANT}", server.config()));
        let (_, data) = probe(&h, "x", json!({})).await;
        assert_eq!(data["error"], expected, "script {script:?}: {data}");
        let rows = h.host.storage().llm_usage(Some("llm-probe"), 0).unwrap();
        assert_eq!(rows[0].outcome, expected, "failures are in the ledger too");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_times_out() {
    let server = ScriptedLlm::start(vec![Scripted::Hang]).await;
    let h = TestHost::new(&format!("{}{GRANT}", server.config_with("timeout_ms = 300")));
    let start = Instant::now();
    let (_, data) = probe(&h, "x", json!({})).await;
    assert_eq!(data["error"], "timeout", "{data}");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_outside_policy_are_refused_before_any_request() {
    let server = ScriptedLlm::start(vec![]).await;
    let h = TestHost::new(&format!(
        "{}[agents.llm-probe]\nllm = {{ profiles = [\"fast\"] }}\n",
        server.config()
    ));
    let (_, data) = probe(&h, "x", json!({"profile": "smart"})).await;
    assert_eq!(data["error"], "model-not-allowed");
    let (_, data) = probe(&h, "x", json!({"profile": "no-such-profile"})).await;
    assert_eq!(data["error"], "model-not-allowed");
    assert!(server.requests().is_empty());
    let (_, data) = probe(&h, "x", json!({"profile": "fast"})).await;
    assert_eq!(data["ok"], true);
    let outcomes: Vec<String> =
        h.host.storage().llm_usage(Some("llm-probe"), 0).unwrap().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["model-not-allowed", "model-not-allowed", "ok"], "refusals are accounted too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_token_budget_holds_across_calls_and_restarts() {
    let server = ScriptedLlm::start(vec![]).await; // every reply: 10 prompt + 5 completion tokens
    let config = format!(
        "{}[agents.llm-probe]\nllm = {{ tokens_per_day = 40, tokens_per_call = 100 }}\n",
        server.config()
    );
    let h = TestHost::new(&config);
    for _ in 0..3 {
        let (_, data) = probe(&h, "x", json!({"max_tokens": 500})).await;
        assert_eq!(data["ok"], true, "{data}");
    }
    let sent = server.requests();
    let max = |r: &Value| r["max_tokens"].as_u64().or(r["max_completion_tokens"].as_u64());
    // What is left of the day after the prompt's estimate (the one message
    // "x": 1 token of text + 4 for the message) is what a call may answer with.
    assert_eq!(max(&sent[0]), Some(40 - 5), "capped by what is left of the day (and the per-call cap)");
    assert_eq!(max(&sent[2]), Some(40 - 2 * 15 - 5), "the third call may only use what is left");
    let (_, data) = probe(&h, "x", json!({})).await;
    assert_eq!(data["error"], "budget-exceeded", "{data}");
    assert_eq!(server.requests().len(), 3, "a refused call never reaches the model");

    let h = h.reopen();
    let (_, data) = probe(&h, "x", json!({})).await;
    assert_eq!(data["error"], "budget-exceeded", "the ledger is persistent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_round_trip_through_the_guest() {
    let server = ScriptedLlm::start(vec![
        Scripted::ToolCalls(vec![("call_1".into(), "add".into(), r#"{"a": 2, "b": 40}"#.into())]),
        Scripted::reply("the answer is 42"),
    ])
    .await;
    let h = TestHost::new(&format!("{}{GRANT}", server.config()));
    let (text, data) = probe(&h, "what is 2 + 40?", json!({"tool": true})).await;
    assert_eq!(text, "the answer is 42");
    assert_eq!(data["rounds"], 2);
    let sent = server.requests();
    assert_eq!(sent[0]["tools"][0]["function"]["name"], "add");
    let msgs = sent[1]["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], "call_1");
    assert_eq!(msgs[2]["content"], "42", "the guest ran the tool and sent its result");
}

#[tokio::test]
async fn without_an_llm_agents_get_not_configured_and_degrade() {
    // SAFETY: test-local; nothing else in this process reads these variables concurrently.
    unsafe { std::env::remove_var("OPENAI_BASE_URL") };
    let h = TestHost::new(&format!(
        "[llm]\napi_key_env = \"AGENTKERNEL_TEST_UNSET_KEY\"\n{GRANT}[agents.summarizer]\nllm = true\n"
    ));
    let (_, data) = probe(&h, "x", json!({})).await;
    assert_eq!(data["error"], "not-configured");

    let summarizer = h.load("summarizer").await.unwrap();
    let out = summarizer.call(&request("s", "First point. Second point. Third point.")).await.unwrap();
    assert_eq!(out.response.text, "First point. Second point.");
    assert!(out.response.data.unwrap().contains("extractive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarizer_uses_the_model_when_there_is_one() {
    let server = ScriptedLlm::start(vec![Scripted::reply("A short summary.")]).await;
    let h = TestHost::new(&format!("{}[agents.summarizer]\nllm = true\nlimits = {{ deadline_ms = 20000 }}\n", server.config()));
    let summarizer = h.load("summarizer").await.unwrap();
    let out = summarizer.call(&request("s", "A long text. With sentences.")).await.unwrap();
    assert_eq!(out.response.text, "A short summary.");
    let sent = &server.requests()[0];
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"], "A long text. With sentences.");
}
