//! Agents in Python and JavaScript next to the Rust `echo`, in one run:
//! what a componentize-py or componentize-js component costs to load and
//! to call.
//!
//! 1. printed once: component size, first load (compile) time and compiled
//!    size of `echo`, `journal-py` and `tally-js`;
//! 2. `polyglot-call/*`: one call each, through `LoadedAgent::call` (a fresh
//!    instance, fuel on, a memory read for the polyglot agents);
//! 3. `polyglot-load/*`: loading each from the compile cache.
//!
//! Run: `cargo bench -p agentkernel-benches --bench polyglot` (after
//! `scripts/test`, which builds the polyglot components).
use std::sync::Arc;
use std::time::Instant;

use agentkernel::runtime::{CompileCache, content_hash};
use criterion::{Criterion, criterion_group, criterion_main};
use sandbox_tests::{TestHost, request, wasm};

/// (agent, a request it answers from memory alone)
const AGENTS: [(&str, &str); 3] = [("echo", "hello"), ("journal-py", "read my journal"), ("tally-js", "tallies")];

const GRANTS: &str = "[agents.journal-py]\nllm = true\n[agents.tally-js]\nllm = true\n";

fn polyglot(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let host = TestHost::new(GRANTS);
    let mut loaded = Vec::new();
    for (name, text) in AGENTS {
        let bytes = wasm(name);
        let started = Instant::now();
        let agent = rt.block_on(host.load_bytes(bytes.clone())).unwrap();
        let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
        let compiled: u64 = std::fs::read_dir(host.host.config.host.data_dir.join("cache"))
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&content_hash(&bytes))).map(|e| e.metadata().map_or(0, |m| m.len())).sum())
            .unwrap_or(0);
        let out = rt.block_on(agent.call(&request("bench", text))).unwrap();
        eprintln!(
            "{name}: component {:.1} MB, first load (compile) {compile_ms:.0} ms, compiled {:.1} MB, answers {:?}",
            bytes.len() as f64 / 1e6,
            compiled as f64 / 1e6,
            agentkernel::runtime::trace::preview(&out.response.text).chars().take(40).collect::<String>(),
        );
        loaded.push((name, text, agent, bytes));
    }

    let mut g = c.benchmark_group("polyglot-call");
    for (name, text, agent, _) in &loaded {
        let req = request("bench", text);
        g.bench_function(*name, |b| b.to_async(&rt).iter(|| async { agent.call(&req).await.unwrap() }));
    }
    g.finish();

    let engine = host.host.runtime.engine(true).clone();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(cache_dir.path());
    let mut g = c.benchmark_group("polyglot-load");
    g.sample_size(10);
    for (name, _, _, bytes) in &loaded {
        let bytes: Arc<[u8]> = bytes.clone().into();
        let hash = content_hash(&bytes);
        cache.load(&engine, &bytes, &hash).unwrap();
        g.bench_function(format!("cached-{name}"), |b| {
            b.iter(|| {
                let (component, hit) = cache.load(&engine, &bytes, &hash).unwrap();
                assert!(hit);
                component
            })
        });
    }
    g.finish();
}

criterion_group!(benches, polyglot);
criterion_main!(benches);
