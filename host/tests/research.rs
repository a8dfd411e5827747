//! The research center end to end: `researcher` and `open-source-explorer`
//! fetching recorded arXiv Atom and GitHub search documents from a loopback
//! server through the `http` capability (loopback allowed only in this
//! test's policy), the host's cycle and findings table, the CLI, the API,
//! the scheduler, `trend-analyzer`, and each agent's `evolve.toml`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentkernel::research::{self, CycleReport};
use sandbox_tests::{TestHost, request};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(agent: &str, name: &str) -> String {
    std::fs::read_to_string(repo().join("agents").join(agent).join("tests/fixtures").join(name)).expect("fixture")
}

/// What the recorded server answers to one request line.
fn answer(target: &str, addr: SocketAddr) -> (u16, Vec<(String, String)>, String) {
    let xml = |name: &str| (200, vec![("content-type".into(), "application/atom+xml; charset=utf-8".into())], fixture("researcher", name));
    let json = |status: u16, name: &str, extra: Vec<(String, String)>| {
        let mut headers = vec![("content-type".to_string(), "application/json; charset=utf-8".to_string())];
        headers.extend(extra);
        (status, headers, fixture("open-source-explorer", name))
    };
    if target.starts_with("/api/query") {
        return if target.contains("all:malformed") {
            xml("arxiv_malformed.xml")
        } else if target.contains("all:ratelimited") {
            (503, vec![("retry-after".into(), "30".into())], "Rate exceeded.".into())
        } else if target.contains("all:zzqxjv") {
            xml("arxiv_empty.xml")
        } else if target.contains("all:webassembly") {
            xml("arxiv_wasm.xml")
        } else {
            xml("arxiv_agents.xml")
        };
    }
    if target.starts_with("/search/repositories") {
        let limits = |remaining: &str| {
            vec![
                ("x-ratelimit-limit".to_string(), "10".to_string()),
                ("x-ratelimit-remaining".to_string(), remaining.to_string()),
                ("x-ratelimit-reset".to_string(), "1733240000".to_string()),
                ("x-ratelimit-resource".to_string(), "search".to_string()),
            ]
        };
        return if target.contains("q=malformed") {
            (200, limits("9"), "{\"total_count\": 3, \"items\": [{\"full_na".into())
        } else if target.contains("q=ratelimited") {
            json(403, "github_rate_limited.json", limits("0"))
        } else if target.contains("q=zzqxjv") {
            json(200, "github_empty.json", limits("9"))
        } else if target.contains("page=2") {
            json(200, "github_page2.json", limits("8"))
        } else {
            let next = target.replace("page=1", "page=2");
            let link = format!("<http://{addr}{next}>; rel=\"next\", <http://{addr}{next}>; rel=\"last\"");
            let mut extra = limits("9");
            extra.push(("link".into(), link));
            json(200, "github_page1.json", extra)
        };
    }
    (404, Vec::new(), "{\"message\": \"Not Found\"}".into())
}

/// A loopback server answering like export.arxiv.org and api.github.com
/// from recorded documents; counts the requests it gets.
async fn recorded_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, headers, body) = answer(&target, addr);
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                for (n, v) in headers {
                    out.push_str(&format!("{n}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                let _ = conn.write_all(out.as_bytes()).await;
            });
        }
    });
    (addr, served)
}

/// The research section and grants pointing at `addr`; loopback is allowed
/// for the two fetchers only, and only here.
fn config(addr: SocketAddr, topics: &[&str], extra: &str) -> String {
    let topics: Vec<String> = topics.iter().map(|t| format!("{t:?}")).collect();
    format!(
        "[research]\nagents = [\"researcher\", \"open-source-explorer\"]\ntopics = [{}]\n\
         arxiv_url = \"http://{addr}\"\ngithub_url = \"http://{addr}\"\nmax_results = 3\n{extra}\n\
         [agents.researcher]\nllm = true\nhttp = {{ hosts = [\"http://{addr}\"], allow_addresses = [\"127.0.0.0/8\"] }}\n\
         [agents.open-source-explorer]\nllm = true\nhttp = {{ hosts = [\"http://{addr}\"], allow_addresses = [\"127.0.0.0/8\"] }}\n\
         [agents.trend-analyzer]\nagents = {{ call = [\"researcher\", \"open-source-explorer\"] }}\n",
        topics.join(", ")
    )
}

fn install_agents(t: &TestHost) {
    for name in ["researcher", "open-source-explorer", "trend-analyzer"] {
        t.install(name, &format!("{name}.wasm"));
    }
}

fn run_of<'a>(report: &'a CycleReport, agent: &str) -> &'a research::AgentRun {
    report.agents.iter().find(|a| a.agent == agent).unwrap_or_else(|| panic!("{agent} missing from {report:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_records_findings_once_and_the_api_and_trends_show_them() {
    let (feeds, served) = recorded_server().await;
    let t = TestHost::new(&config(feeds, &["agents", "webassembly"], ""));
    install_agents(&t);
    let api = t.serve().await;

    let first = research::run_cycle(&t.host).await;
    let arxiv = run_of(&first, "researcher");
    assert_eq!((arxiv.outcome.as_str(), arxiv.fetched, arxiv.new), ("ok", 5, 5), "{arxiv:?}");
    let github = run_of(&first, "open-source-explorer");
    assert_eq!((github.outcome.as_str(), github.fetched, github.new), ("ok", 5, 5), "{github:?}");
    assert_eq!(first.new_findings.len(), 10);
    let magentic = first.new_findings.iter().find(|f| f.id == "2411.04468").expect("a recorded paper");
    assert_eq!((magentic.source.as_str(), magentic.agent.as_str(), magentic.scored_by.as_str()), ("arxiv", "researcher", "keywords"));
    assert!(magentic.title.starts_with("Magentic-One"));
    assert!(first.new_findings.iter().any(|f| f.id == "wasmtime-dev/wasmtime-agents" && f.source == "github"));
    // arXiv: one request per topic; GitHub: two pages per topic, through the Link header.
    assert_eq!(served.load(Ordering::SeqCst), 2 + 4);

    let second = research::run_cycle(&t.host).await;
    assert!(second.agents.iter().all(|a| a.outcome == "ok" && a.fetched == 5 && a.new == 0), "{second:?}");
    assert!(second.new_findings.is_empty());
    assert_eq!(t.host.backend.research_findings(100).unwrap().len(), 10, "no duplicates");
    let weeks = t.host.backend.research_findings_per_week(4).unwrap();
    assert_eq!(weeks.last().unwrap().findings, 10);
    assert_eq!(weeks.last().unwrap().by_source["github"], 5);

    // The API: the findings and the per-week counts; errors in the one shape.
    let client = reqwest::Client::new();
    let body: Value = client.get(format!("http://{api}/v1/research/findings?limit=4")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["findings"].as_array().unwrap().len(), 4);
    assert_eq!(body["per_week"].as_array().unwrap().last().unwrap()["findings"], 10);
    let r = client.get(format!("http://{api}/v1/research/findings?limit=0")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid-request");
    let r = client.get(format!("http://{api}/v1/research/findings?limit=x")).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // A person asks in words; the agents answer from memory.
    let researcher = t.host.registry.get("researcher").unwrap();
    let latest = researcher.call(&request("p", "what are the latest findings?")).await.unwrap();
    assert!(latest.response.text.contains("Magentic-One"), "{}", latest.response.text);
    let asked = researcher.call(&request("p", "what's new on arXiv about agents")).await.unwrap();
    assert!(asked.response.text.contains("0 new papers (3 already seen"), "{}", asked.response.text);

    // Chat routes natural requests to them by their skills (no router agent loaded: the host matches).
    for (message, agent) in [
        ("what's new on arXiv about agents", "researcher"),
        ("find trending Rust wasm repositories", "open-source-explorer"),
        ("what is rising, week by week?", "trend-analyzer"),
    ] {
        let r: Value = client.post(format!("http://{api}/v1/chat")).json(&serde_json::json!({"message": message})).send().await.unwrap().json().await.unwrap();
        assert!(r["agents"].as_array().is_some_and(|a| a.iter().any(|x| x == agent)), "{message}: {r}");
    }

    // trend-analyzer asks both through `agents` and counts per week.
    let trends = t.host.registry.get("trend-analyzer").unwrap().call(&request("p", "what is rising?")).await.unwrap();
    let data: Value = serde_json::from_str(trends.response.data.as_deref().unwrap()).unwrap();
    assert_eq!(data["trends"]["findings"], 10, "{}", trends.response.text);
    assert!(data["unavailable"].as_array().unwrap().is_empty(), "{data}");
    // The newest week holds the GitHub pushes of 2024-11-12 and -17 and nothing before it.
    assert_eq!(data["trends"]["weeks"][0]["week"], "2024-11-11", "{data}");
    assert!(trends.response.text.contains("Rising:"), "{}", trends.response.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_malformed_documents_and_empty_feeds_are_outcomes_not_crashes() {
    let (feeds, _) = recorded_server().await;
    let t = TestHost::new(&config(feeds, &["malformed", "ratelimited", "zzqxjv"], ""));
    install_agents(&t);
    t.host.registry.scan().await;
    let report = research::run_cycle(&t.host).await;

    let arxiv = run_of(&report, "researcher");
    assert_eq!((arxiv.outcome.as_str(), arxiv.fetched), ("partial", 0), "{arxiv:?}");
    let codes: Vec<&str> = arxiv.errors.as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["malformed", "rate-limited"], "the empty feed is no findings, not an error");
    assert!(arxiv.message.contains("zzqxjv: no papers match"), "{}", arxiv.message);

    let github = run_of(&report, "open-source-explorer");
    let codes: Vec<&str> = github.errors.as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["malformed", "rate-limited", "rate-limited"], "after a rate limit, later topics are not asked");
    assert_eq!((github.outcome.as_str(), github.fetched), ("malformed", 0));
    assert!(github.message.contains("ratelimited: stopped, GitHub's rate limit is spent until 1733240000"), "{}", github.message);
    assert!(report.new_findings.is_empty());

    // An agent that is not loaded is an outcome too.
    let t2 = TestHost::new(&config(feeds, &["agents"], ""));
    let report = research::run_cycle(&t2.host).await;
    assert!(report.agents.iter().all(|a| a.outcome == "not-loaded"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_runs_a_cycle_and_prints_the_findings() {
    let (feeds, _) = recorded_server().await;
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.d");
    std::fs::create_dir_all(&agents).unwrap();
    for name in ["researcher", "open-source-explorer"] {
        std::fs::copy(sandbox_tests::wasm_path(name), agents.join(format!("{name}.wasm"))).unwrap();
    }
    std::fs::write(dir.path().join("agentkernel.toml"), config(feeds, &["agents"], "")).unwrap();
    let run = |args: &'static [&'static str]| {
        let cwd = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_agentkernel"))
                .args(args)
                .current_dir(cwd)
                .env_remove("RUST_LOG")
                .output()
                .unwrap()
        })
    };
    let o = run(&["research", "run", "--agents", "agents.d", "--json"]).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["agents"][0]["outcome"], "ok", "{report}");
    assert_eq!(report["new_findings"].as_array().unwrap().len(), 3 + 5);
    assert!(report["new_findings"].as_array().unwrap().iter().any(|f| f["id"] == "2410.10934"));

    let o = run(&["research", "run", "--agents", "agents.d"]).await.unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("researcher: ok (3 fetched, 0 new") && text.contains("no new findings"), "{text}");

    let o = run(&["research", "findings", "--limit", "3"]).await.unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("[arxiv]") || text.contains("[github]"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_runs_cycles_when_an_interval_is_set() {
    let (feeds, _) = recorded_server().await;
    let off = TestHost::new(&config(feeds, &["agents"], ""));
    assert!(research::spawn_scheduler(&off.host).is_none(), "off by default");

    let t = TestHost::new(&config(feeds, &["agents"], "interval_secs = 1"));
    install_agents(&t);
    t.host.registry.scan().await;
    let scheduler = research::spawn_scheduler(&t.host).expect("scheduled");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while t.host.backend.research_findings(10).unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no cycle ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scheduler.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_research_agent_passes_its_evolve_suite_under_the_shipped_policy() {
    use agentkernel::config::HostConfig;
    use agentkernel::evolution::bench::Bench;
    use agentkernel::evolution::suite::Suite;
    let mut config = HostConfig::load(&repo().join("agentkernel.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.host.data_dir = dir.path().join("data");
    config.host.agents_dir = dir.path().join("agents.d");
    for agent in ["researcher", "open-source-explorer", "trend-analyzer"] {
        let suite = Suite::load(&repo().join("agents").join(agent).join("evolve.toml")).unwrap();
        let bench = Bench::new(&config, agent, &suite.limits, 7).await.unwrap();
        let loaded = bench.load(&sandbox_tests::wasm(agent)).await.unwrap();
        let result = bench.run(&loaded, &suite.cases, 1).await;
        for case in &result.cases {
            assert!(case.passed, "{agent} {}: {:?}", case.name, case);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_lists_the_findings_and_links_only_http_urls() {
    use agentkernel::storage::research::ResearchFinding;
    let node_path = std::env::var("AGENTKERNEL_NODE_PATH")
        .expect("AGENTKERNEL_NODE_PATH is unset: run ./scripts/test (scripts/deps/browser.sh installs playwright-core)");
    let t = TestHost::new("");
    let finding = |id: &str, title: &str, url: &str| ResearchFinding {
        source: "arxiv".into(),
        id: id.into(),
        title: title.into(),
        url: url.into(),
        summary: String::new(),
        topic: "agents".into(),
        score: Some(7.5),
        scored_by: "keywords".into(),
        published: String::new(),
        agent: "researcher".into(),
        found_at: 0,
    };
    let rows = [
        finding("1", "Agent-as-a-Judge", "http://arxiv.org/abs/2410.10934v2"),
        finding("2", "<img src=x onerror=alert(1)>", "javascript:alert(1)"),
    ];
    t.host.backend.research_record(&rows, 1_733_000_000).unwrap();
    let addr = t.serve().await;
    let runner = Path::new(&node_path).parent().unwrap().join("research_page.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/research_page.mjs"), &runner).unwrap();
    let out = tokio::process::Command::new("node").arg(&runner).arg(format!("http://{addr}/")).output().await.expect("node runs");
    assert!(out.status.success(), "browser script failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("script printed JSON");
    assert_eq!(seen["heading"], "Research findings");
    assert_eq!(seen["titles"], serde_json::json!(["<img src=x onerror=alert(1)>", "Agent-as-a-Judge"]), "text, newest first");
    assert_eq!(seen["hrefs"], serde_json::json!([null, "http://arxiv.org/abs/2410.10934v2"]), "only http(s) URLs are links");
    assert_eq!(seen["details"][1], "arxiv · agents · 7.5 (keywords)");
    assert_eq!(seen["consoleErrors"], serde_json::json!([]));
}
