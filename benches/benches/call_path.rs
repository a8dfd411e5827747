//! The host's call path against a raw wasmtime embedding of the same
//! component, measured in the same run so the ratio is what matters.
//!
//! 1. `call/host-fuel-off` and `call/host-fuel-on`: instantiate + `handle` of
//!    `echo` through `LoadedAgent::call` (policy, limits, WASI, epochs).
//! 2. `call/raw-wasmtime`: the floor: pooling allocator, `InstancePre`, a
//!    fresh `Store` with an empty WASI context per call, nothing else.
//! 3. `cpu-work/fuel-off` vs `cpu-work/fuel-on`: a CPU-bound guest (one
//!    million loop iterations), where metering's cost shows.
//! 4. `load/compile` vs `load/cached`: compiling the component vs loading
//!    it from the on-disk compile cache.
//!
//! Run: `cargo bench -p agentkernel-benches` (after `scripts/test` or
//! `scripts/run` has built the components).
use std::sync::Arc;

use agentkernel::bindings::{Agent, AgentPre, Request};
use agentkernel::runtime::{CompileCache, compile, content_hash};
use criterion::{Criterion, criterion_group, criterion_main};
use sandbox_tests::{TestHost, request, wasm};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl agentkernel::bindings::agentkernel::agent::types::Host for RawState {}

/// The minimal embedding a careful wasmtime user would write.
fn raw_floor(bytes: &[u8]) -> (Engine, AgentPre<RawState>) {
    let mut config = Config::new();
    // Same pooling tuning as the host, so the comparison is like for like.
    let mut pool = PoolingAllocationConfig::new();
    pool.linear_memory_keep_resident(agentkernel::runtime::KEEP_RESIDENT_BYTES)
        .table_keep_resident(agentkernel::runtime::KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(pool);
    let engine = Engine::new(&config).unwrap();
    let component = Component::new(&engine, bytes).unwrap();
    let mut linker = Linker::<RawState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    agentkernel::bindings::agentkernel::agent::types::add_to_linker::<RawState, wasmtime::component::HasSelf<RawState>>(
        &mut linker,
        |s| s,
    )
    .unwrap();
    let pre = AgentPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    (engine, pre)
}

async fn raw_call(engine: &Engine, pre: &AgentPre<RawState>, req: &Request) -> String {
    let mut store = Store::new(engine, RawState { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
    let agent: Agent = pre.instantiate_async(&mut store).await.unwrap();
    agent.call_handle(&mut store, req).await.unwrap().unwrap().text
}

fn call_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let req = request("bench", "hello");
    let metered = TestHost::new("");
    let unmetered = TestHost::new("[limits]\nfuel = \"off\"\n");
    let echo_fuel = rt.block_on(metered.load("echo")).unwrap();
    let echo_nofuel = rt.block_on(unmetered.load("echo")).unwrap();
    let (engine, pre) = raw_floor(&wasm("echo"));
    assert_eq!(rt.block_on(raw_call(&engine, &pre, &req)), "hello");

    let mut g = c.benchmark_group("call");
    g.bench_function("raw-wasmtime", |b| b.to_async(&rt).iter(|| raw_call(&engine, &pre, &req)));
    g.bench_function("host-fuel-off", |b| {
        b.to_async(&rt).iter(|| async { echo_nofuel.call(&req).await.unwrap() })
    });
    g.bench_function("host-fuel-on", |b| b.to_async(&rt).iter(|| async { echo_fuel.call(&req).await.unwrap() }));
    g.finish();
}

/// Fuel's real cost shows on CPU-bound guests: one million loop iterations.
fn fuel_on_cpu_work(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let req = request("bench", "1000000");
    let metered = TestHost::new("");
    let unmetered = TestHost::new("[limits]\nfuel = \"off\"\n");
    let on = rt.block_on(metered.load("spin-loop")).unwrap();
    let off = rt.block_on(unmetered.load("spin-loop")).unwrap();
    let mut g = c.benchmark_group("cpu-work");
    g.bench_function("fuel-off", |b| b.to_async(&rt).iter(|| async { off.call(&req).await.unwrap() }));
    g.bench_function("fuel-on", |b| b.to_async(&rt).iter(|| async { on.call(&req).await.unwrap() }));
    g.finish();
}

fn load(c: &mut Criterion) {
    let bytes: Arc<[u8]> = wasm("echo").into();
    let hash = content_hash(&bytes);
    let host = TestHost::new("");
    let engine = host.host.runtime.engine(true).clone();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(cache_dir.path());
    cache.load(&engine, &bytes, &hash).unwrap();

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("compile", |b| b.iter(|| compile(&engine, &bytes).unwrap()));
    g.bench_function("cached", |b| {
        b.iter(|| {
            let (component, hit) = cache.load(&engine, &bytes, &hash).unwrap();
            assert!(hit);
            component
        })
    });
    g.finish();
}

criterion_group!(benches, call_path, fuel_on_cpu_work, load);
criterion_main!(benches);
