//! The single-agent chat route on one host with SQLite, one host with
//! PostgreSQL and two hosts sharing that PostgreSQL, in one run, under the
//! same bounded load (64 keep-alive connections; with two hosts, 32 on
//! each: what a round-robin balancer gives persistent connections). All
//! hosts and the load generator share this machine's cores, so the
//! two-host number is what sharing the database costs, not scale-out.
//!
//! Run: `source scripts/deps/postgres.sh && cargo bench -p agentkernel-benches --bench hosts_load`
//! (`AGENTKERNEL_LOAD_SECS`, default 10, sets each phase's length).
use std::net::SocketAddr;
use std::time::Duration;

use agentkernel::storage::postgres::testing;
use sandbox_tests::{TestHost, load};
use serde_json::json;

const CONNECTIONS: usize = 64;

fn host(server: &tokio::runtime::Runtime, storage: &str) -> (TestHost, SocketAddr) {
    server.block_on(async {
        let h = TestHost::new(&format!("[host]\nmax_instances = 1000\n{storage}"));
        h.install("echo", "echo.wasm");
        let addr = h.serve().await;
        (h, addr)
    })
}

/// Runs the single-agent chat route on `addrs` at once, the connections
/// split between them; returns the summed req/s and the worst p99.
fn chat_on(client: &tokio::runtime::Runtime, addrs: &[SocketAddr], phase: Duration) -> (f64, Duration, Duration) {
    let per_host = CONNECTIONS / addrs.len();
    let reports: Vec<load::LoadReport> = client.block_on(async {
        // Spawned, so the hosts' loads run at the same time.
        let runs: Vec<_> = addrs
            .iter()
            .map(|addr| {
                tokio::spawn(load::run(*addr, "/v1/chat", per_host, phase, false, |i| {
                    json!({"message": format!("hello {i}"), "agents": ["echo"]})
                }))
            })
            .collect();
        let mut reports = Vec::new();
        for run in runs {
            reports.push(run.await.expect("a load run"));
        }
        reports
    });
    for r in &reports {
        assert!(r.failures.is_empty(), "{:?}", &r.failures[..r.failures.len().min(3)]);
    }
    let rps = reports.iter().map(|r| r.requests_per_second()).sum();
    let p50 = reports.iter().map(|r| r.percentile(0.5)).max().unwrap_or_default();
    let p99 = reports.iter().map(|r| r.percentile(0.99)).max().unwrap_or_default();
    (rps, p50, p99)
}

fn main() {
    let secs: u64 = std::env::var("AGENTKERNEL_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let phase = Duration::from_secs(secs);
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let print = |name: &str, (rps, p50, p99): (f64, Duration, Duration), base: f64| {
        println!("{name:<34} {rps:>9.0} req/s  p50 {p50:>8.2?}  p99 {p99:>8.2?}  {:.2}x", rps / base);
    };

    let (_sqlite, addr) = host(&server, "");
    let _ = chat_on(&client, &[addr], Duration::from_secs(1)); // warm up
    let sqlite = chat_on(&client, &[addr], phase);
    print("one host, SQLite", sqlite, sqlite.0);

    let Some(database) = testing::fresh_database("hosts_load") else { return };
    let storage = format!("[storage]\nurl = \"{database}\"\n");
    let (_a, a) = host(&server, &storage);
    let (_b, b) = host(&server, &storage);
    let _ = chat_on(&client, &[a, b], Duration::from_secs(1));
    print("one host, PostgreSQL", chat_on(&client, &[a], phase), sqlite.0);
    print("two hosts, one PostgreSQL", chat_on(&client, &[a, b], phase), sqlite.0);
}
