//! The KPIs end to end, from one evolution of the demo agent `primes` (three
//! candidates from its directory: one wins, one does not build, one fails
//! the held-out cases), a rollback, chat requests routed by a scripted
//! model, and agent calls that fail: `agentkernel stats --json`, the text
//! view, `GET /v1/stats`, `/metrics` and the page's panel all show the same
//! numbers. One evolution serves every assertion (a build takes minutes).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentkernel::evolution::{Engine, EvolveOptions, GeneratorSpec};
use agentkernel::host::Host;
use agentkernel::storage::sqlite::SqliteStorage;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use sandbox_tests::{TestHost, wasm_dir};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// Candidates build into the target directory the evolution tests share.
fn config(llm: &ScriptedLlm) -> String {
    let target = wasm_dir().join("../../evolve-candidates");
    std::fs::create_dir_all(&target).unwrap();
    format!(
        "[evolution]\ntarget_dir = \"{}\"\nsources = {{ primes = \"{}\" }}\n\
         [agents.router]\nllm = {{ profiles = [\"fast\"] }}\n\
         [agents.spin-loop.limits]\nfuel = 1000000\n{}",
        target.display(),
        repo().join("agents/primes").display(),
        llm.config()
    )
}

async fn send(addr: SocketAddr, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
    let mut r = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn cli_stats(t: &TestHost, args: &[&str]) -> std::process::Output {
    let cfg = t.dir.path().join("cli.toml");
    std::fs::write(&cfg, format!("[host]\ndata_dir = \"{}\"\n", t.host.config.host.data_dir.display())).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(["--config", cfg.to_str().unwrap(), "stats"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("agentkernel runs")
}

/// Evolves `primes` (naive) with three candidates, then rolls it back.
async fn evolve_and_roll_back(t: &TestHost) -> agentkernel::evolution::Outcome {
    t.install("primes", "primes.wasm");
    t.host.registry.scan().await;
    let naive = t.host.registry.get("primes").expect("primes loads").hash.clone();
    let cands = tempfile::tempdir().unwrap();
    let from = repo().join("agents/primes/candidates");
    copy_dir(&from.join("sieve"), &cands.path().join("sieve"));
    for file in ["does-not-build.rs", "small-divisors.rs"] {
        std::fs::copy(from.join(file), cands.path().join(file)).unwrap();
    }
    let store = Arc::new(SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap());
    let engine = Engine { config: t.host.config.clone(), store: store.clone(), registry: Some(t.host.registry.clone()), llm: t.host.llm.clone() };
    let mut opts = EvolveOptions::new("primes", GeneratorSpec::Dir(cands.path().to_path_buf()));
    opts.generations = 1;
    let outcome = engine.evolve(opts, &|_| {}).await.unwrap();
    assert_eq!(outcome.decision, "swapped", "{}", outcome.reason);
    agentkernel::evolution::swap::install(&t.host.config.host.data_dir, &t.agents_dir(), "primes", &naive, "rollback", &*store, Some(&t.host.registry))
        .await
        .unwrap();
    outcome
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Two chat requests routed by the model to `echo`, one malformed request,
/// and two calls of `spin-loop`, one of which runs out of fuel.
async fn traffic(addr: SocketAddr) {
    for message in ["please say this back: one", "please say this back: two"] {
        let (s, r) = send(addr, reqwest::Method::POST, "/v1/chat", Some(json!({"message": message}))).await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, _) = send(addr, reqwest::Method::POST, "/v1/chat", Some(json!({"not-a-message": 1}))).await;
    assert!((400..500).contains(&s), "a malformed chat request is a client error: {s}");
    let (s, r) = send(addr, reqwest::Method::POST, "/v1/agents/spin-loop/call", Some(json!({"text": "10"}))).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = send(addr, reqwest::Method::POST, "/v1/agents/spin-loop/call", Some(json!({"text": "100000000"}))).await;
    assert!(s >= 400 && r.contains("fuel"), "{s} {r}");
}

/// Two findings, as a research cycle records them.
fn record_findings(t: &TestHost) {
    use agentkernel::storage::research::ResearchFinding;
    let finding = |id: &str| ResearchFinding {
        source: "arxiv".into(),
        id: id.into(),
        title: format!("paper {id}"),
        url: String::new(),
        summary: String::new(),
        topic: "agents".into(),
        score: None,
        scored_by: "keywords".into(),
        published: String::new(),
        agent: "researcher".into(),
        found_at: 0,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(t.host.backend.research_record(&[finding("1"), finding("2")], now).unwrap().len(), 2);
}

fn agent<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|a| a["agent"] == name).unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_metrics_and_the_page_show_the_kpis_of_an_evolution_and_some_traffic() {
    let route = Scripted::reply(r#"{"agents": ["echo"], "reason": "it echoes"}"#);
    let llm = ScriptedLlm::start(vec![route.clone(), route]).await;
    let t = TestHost::new(&config(&llm));
    let outcome = evolve_and_roll_back(&t).await;
    for (krate, file) in [("router", "router.wasm"), ("echo", "echo.wasm"), ("spin-loop", "spin-loop.wasm")] {
        t.install(krate, file);
    }
    let addr = t.serve().await;
    traffic(addr).await;
    record_findings(&t);

    // GET /v1/stats (it first persists this process's counters).
    let (s, body) = send(addr, reqwest::Method::GET, "/v1/stats?days=1", None).await;
    assert_eq!(s, 200, "{body}");
    let http: Value = serde_json::from_str(&body).unwrap();
    let c = &http["candidates"];
    assert_eq!((c["generated"].as_u64(), c["built"].as_u64(), c["passed"].as_u64()), (Some(3), Some(2), Some(1)), "{c}");
    assert!((c["build_share"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!((c["pass_share"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let primes = agent(&http["evolutions"], "primes");
    assert_eq!((primes["runs"].as_u64(), primes["accepted"].as_u64(), primes["rollbacks"].as_u64()), (Some(1), Some(1), Some(1)), "{primes}");
    let saved = outcome.incumbent_fuel - outcome.winner_fuel.unwrap();
    assert_eq!(primes["fuel_saved_per_accepted"].as_f64(), Some(saved as f64));
    assert_eq!(http["evolutions_total"]["fuel_saved_per_accepted"].as_f64(), Some(saved as f64));
    let spin = agent(&http["errors"], "spin-loop");
    assert_eq!((spin["calls"].as_u64(), spin["errors"].as_u64()), (Some(2), Some(1)), "{spin}");
    assert_eq!(spin["by_code"]["fuel-exhausted"], 1, "{spin}");
    assert_eq!(agent(&http["errors"], "echo")["errors"], 0);
    // Two routing calls of 10 prompt + 5 completion tokens at $1/$2 per million.
    let router = agent(&http["spend"], "router");
    assert_eq!(router["calls"], 2, "{router}");
    assert!((router["cost_usd"].as_f64().unwrap() - 2.0 * 20e-6).abs() < 1e-12, "{router}");
    assert_eq!(router["days"].as_array().unwrap().len(), 1);
    let chat = &http["chat"];
    assert_eq!((chat["requests"].as_u64(), chat["ok"].as_u64(), chat["client_errors"].as_u64()), (Some(3), Some(2), Some(1)), "{chat}");
    assert_eq!(chat["answered"], 2, "both answers are in the transcripts: {chat}");
    assert_eq!(http["research"]["total"], 2);
    assert_eq!(http["research"]["per_week"].as_array().unwrap().last().unwrap()["findings"], 2, "this week's");
    assert!(http["research"]["note"].is_null());

    // The CLI reads the same records: the same numbers.
    let o = cli_stats(&t, &["--json", "--days", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut cli: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut http_same = http.clone();
    for v in [&mut cli, &mut http_same] {
        v.as_object_mut().unwrap().remove("generated_at");
        v.as_object_mut().unwrap().remove("since");
    }
    assert_eq!(cli, http_same, "stats --json and GET /v1/stats agree");
    let o = cli_stats(&t, &["--days", "1"]);
    let text = String::from_utf8_lossy(&o.stdout);
    eprintln!("agentkernel stats --days 1:\n{text}");
    for needle in ["3 generated, 2 built (67%), 1 passed every case (33%)", "1 accepted", "1 rollback(s)", "spin-loop", "router", "research     2 finding(s)", "3 request(s): 2 ok, 1 client error(s)"] {
        assert!(text.contains(needle), "stats lacks {needle:?}:\n{text}");
    }
    let o = cli_stats(&t, &["--days", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("days must be between 1 and 90"));

    // Errors are the one JSON shape.
    let (s, body) = send(addr, reqwest::Method::GET, "/v1/stats?days=400", None).await;
    assert_eq!(s, 400);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "invalid-request", "{body}");
    let (s, body) = send(addr, reqwest::Method::GET, "/v1/stats?weeks=1", None).await;
    assert_eq!((s, serde_json::from_str::<Value>(&body).unwrap()["error"]["code"].as_str()), (400, Some("invalid-request")), "{body}");

    // /metrics carries the KPI gauges (over the default 7 days).
    let (s, metrics) = send(addr, reqwest::Method::GET, "/metrics", None).await;
    assert_eq!(s, 200);
    for series in [
        "agentkernel_kpi_candidates{stage=\"built\"} 2",
        "agentkernel_kpi_candidate_share{stage=\"passed\"} 0.333",
        "agentkernel_kpi_evolutions{agent=\"primes\",result=\"accepted\"} 1",
        "agentkernel_kpi_rollbacks{agent=\"primes\"} 1",
        &format!("agentkernel_kpi_fuel_saved_per_accepted_evolution {saved}"),
        "agentkernel_kpi_agent_calls{agent=\"spin-loop\",result=\"error\"} 1",
        "agentkernel_kpi_llm_spend_usd{agent=\"router\"} 0.00004",
        "agentkernel_kpi_research_findings 2",
        "agentkernel_kpi_chat_requests{outcome=\"client-error\"} 1",
    ] {
        assert!(metrics.contains(series), "/metrics lacks {series:?}:\n{}", metrics.lines().filter(|l| l.contains("kpi")).collect::<Vec<_>>().join("\n"));
    }

    the_page_shows_the_panel(&t, addr).await;
}

/// The panel in headless Chromium, when the browser is installed
/// (`scripts/deps/browser.sh`; `./scripts/test` does it).
async fn the_page_shows_the_panel(t: &TestHost, addr: SocketAddr) {
    let Ok(node_path) = std::env::var("AGENTKERNEL_NODE_PATH") else {
        eprintln!("AGENTKERNEL_NODE_PATH is unset: the page's KPI panel is not checked (run ./scripts/test)");
        return;
    };
    // ESM ignores NODE_PATH: run the script from a copy beside node_modules.
    let runner = Path::new(&node_path).parent().unwrap().join("kpi_page.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kpi_page.mjs"), &runner).unwrap();
    let screenshot = t.dir.path().join("kpis.png");
    let out = tokio::process::Command::new("node")
        .arg(&runner)
        .args([format!("http://{addr}/"), screenshot.display().to_string()])
        .output()
        .await
        .expect("node runs");
    assert!(out.status.success(), "browser script failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["heading"], "KPIs");
    assert_eq!(
        seen["sections"],
        json!(["Evolution candidates", "Evolutions", "Errors per agent", "LLM spend per day", "Research findings", "Chat requests"])
    );
    let text = seen["text"].as_str().unwrap();
    for needle in ["67% 2/3", "33% 1/3", "primes", "1 rollbacks", "spin-loop", "1/2", "router", "$0.0000", "2 findings", "2 ok · 1 4xx"] {
        assert!(text.contains(needle), "the panel lacks {needle:?}: {text}");
    }
    assert!(seen["charts"].as_u64().unwrap() >= 6, "{seen}");
    assert_eq!(seen["consoleErrors"], json!([]));
    if let Ok(keep) = std::env::var("AGENTKERNEL_KPI_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).unwrap();
    }
}
