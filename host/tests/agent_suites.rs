//! Every bundled agent with a benchmark suite (`agents/NAME/evolve.toml`)
//! passes it on the benchmark's doubles under the shipped policy
//! (`agentkernel.toml`): a suite its own agent fails would make every
//! evolution of that agent start from a broken incumbent.
use std::path::{Path, PathBuf};

use agentkernel::evolution::bench::Bench;
use agentkernel::evolution::suite::Suite;
use sandbox_tests::TestHost;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bundled_agent_passes_its_own_suite_under_the_shipped_policy() {
    let policy = std::fs::read_to_string(repo().join("agentkernel.toml")).unwrap();
    let t = TestHost::new(&policy);
    let mut checked = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("agents")).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    for dir in dirs.into_iter().filter(|d| d.join("evolve.toml").exists()) {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let suite = Suite::load(&dir.join("evolve.toml")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(suite.cases.iter().any(|c| c.held_out), "{name}: a suite needs held-out cases");
        let bench = Bench::new(&t.host.config, &name, &suite.limits, 11).await.unwrap();
        let agent = bench.load(&sandbox_tests::wasm(&name)).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let result = bench.run(&agent, &suite.cases, 1).await;
        for case in &result.cases {
            assert!(case.passed, "{name}/{}: {:?} (text {:?}, error {:?})", case.name, case.failures, case.text, case.error_message);
        }
        checked.push(name);
    }
    // The twelve of the three tiers, and the evolution demo.
    for name in [
        "infrastructure-architect", "codegen-engine", "security-guardian", "performance-optimizer",
        "business-strategist", "product-manager", "customer-support", "revenue-optimizer",
        "researcher", "open-source-explorer", "experiment-runner", "trend-analyzer", "primes",
    ] {
        assert!(checked.iter().any(|c| c == name), "{name} has no suite; checked {checked:?}");
    }
}
