//! Routed chat as the number of loaded agents grows: 10, 100 and 1,000
//! generated agents (`sandbox_tests::numbered_agent`, each its own
//! manifest), the bundled router (its model answers nothing usable, so it
//! matches skills), 32 connections, each request about one agent's topic.
//! Reports req/s and p50/p99 (the 10-agent host is the baseline of the
//! ratios), the router's fuel per request, and the process's resident
//! memory per loaded agent.
//!
//! Run: `cargo bench -p agentkernel-benches --bench routing_scale`
//! (`AGENTKERNEL_LOAD_SECS`, default 10, per phase;
//! `AGENTKERNEL_ROUTING_MAX_AGENTS`, default 1000, the largest host).
use std::time::{Duration, Instant};

use sandbox_tests::llm_server::ScriptedLlm;
use sandbox_tests::{TestHost, load, numbered_agent};
use serde_json::{Value, json};

const CONNECTIONS: usize = 32;

/// Resident memory of this process, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

fn main() {
    let secs: u64 = std::env::var("AGENTKERNEL_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let max: u32 = std::env::var("AGENTKERNEL_ROUTING_MAX_AGENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let llm = server.block_on(ScriptedLlm::start(vec![]));
    let mut baseline = None;
    for agents in [10u32, 100, 1000].into_iter().filter(|n| *n <= max) {
        let before = rss();
        let started = Instant::now();
        let (h, addr) = server.block_on(async {
            let h = TestHost::new(&format!("[host]\nmax_instances = 1000\n[agents.router]\nllm = {{ profiles = [\"fast\"] }}\n{}", llm.config()));
            h.install("router", "router.wasm");
            for n in 0..agents {
                std::fs::write(h.agents_dir().join(format!("gen-{n:06}.wasm")), numbered_agent(n)).unwrap();
            }
            let addr = h.serve().await;
            (h, addr)
        });
        let loaded_in = started.elapsed();
        assert_eq!(h.host.registry.list().len() as u32, agents + 1);
        let loaded_rss = rss();
        // Compiled code of one generated agent (its compile cache entry).
        let compiled = std::fs::read_dir(h.host.config.host.data_dir.join("cache"))
            .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum::<u64>())
            .unwrap_or(0)
            / u64::from(agents + 1);
        let ask = move |i: usize| json!({"message": format!("tell me about topic{:06}", i % agents as usize)});
        let one: Value = client.block_on(async {
            reqwest::Client::new().post(format!("http://{addr}/v1/chat")).json(&ask(7)).send().await.unwrap().json().await.unwrap()
        });
        assert_eq!(one["agents"], json!([format!("gen-{:06}", 7 % agents)]), "{one}");
        let router_fuel = one["trace"].as_array().unwrap().iter().find(|s| s["agent"] == "router").and_then(|s| s["fuel"].as_u64()).unwrap_or(0);
        let _ = client.block_on(load::run(addr, "/v1/chat", CONNECTIONS, Duration::from_secs(1), false, ask));
        let r = client.block_on(load::run(addr, "/v1/chat", CONNECTIONS, Duration::from_secs(secs), false, ask));
        assert!(r.failures.is_empty(), "{:?}", &r.failures[..r.failures.len().min(3)]);
        let rps = r.requests_per_second();
        let base = *baseline.get_or_insert(rps);
        println!(
            "{agents:>5} agents: {rps:>7.0} req/s ({:.2}x the 10-agent host), p50 {:.2} ms, p99 {:.2} ms, router fuel {:.2}M; \
             loaded in {:.1} s, resident {:.1} MB more ({:.0} KB per agent, of which compiled code {:.0} KB)",
            rps / base,
            r.percentile(0.5).as_secs_f64() * 1e3,
            r.percentile(0.99).as_secs_f64() * 1e3,
            router_fuel as f64 / 1e6,
            loaded_in.as_secs_f64(),
            loaded_rss.saturating_sub(before) as f64 / 1e6,
            loaded_rss.saturating_sub(before) as f64 / 1e3 / f64::from(agents + 1),
            compiled as f64 / 1e3,
        );
        drop(h);
    }
}
