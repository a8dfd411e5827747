//! The component runtime: engines, loading an agent (import check against
//! policy, `describe()`, pre-instantiation against exactly the capabilities
//! it imports and is granted).
//!
//! Two engines share one epoch ticker: a metered one (fuel on) and an
//! unmetered one. Fuel instrumentation is compiled into the code, so the
//! per-agent fuel choice is a choice of engine.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, PoolingAllocationConfig};

use crate::agent::{ManifestInfo, PreparedCapabilities, validate_manifest};
use crate::bindings::{AgentPre, Manifest};
use crate::call::{CallContext, InstanceState, LimitedStore, WasiEnvironment, new_instance_state};
use crate::capability::{CallInfo, Grant, HostCapability, Services};
use crate::compile::{CompileCache, compile, content_hash};
use crate::errors::LoadError;
use crate::limits::{Fuel, Limits};
use crate::metrics::Metrics;
use crate::policy::{self, Capability, ImportSet, Policy};
use crate::sampling::CallSamples;
use crate::LoadedAgent;

/// Epoch tick. Deadlines are checked (and long-running guests yield to the
/// executor) once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Default bytes of each pooled memory and table reset with memset instead
/// of madvise when an instance is freed (`[host] keep_resident_bytes`).
/// Most of a small call's cost is otherwise the kernel decommitting and
/// re-faulting pages; for agents linked with a 128 KiB stack everything a
/// call touches fits in this prefix (README, "Performance").
pub const KEEP_RESIDENT_BYTES: usize = 256 * 1024;


/// Settings that shape the engines; fixed for the life of a runtime.
#[derive(Clone)]
pub struct RuntimeOptions {
    pub max_instances: u32,
    pub memory_ceiling_bytes: u64,
    /// Largest table any agent may grow to (the pooling slot size).
    pub table_ceiling_elements: u64,
    /// See [`KEEP_RESIDENT_BYTES`].
    pub keep_resident_bytes: usize,
    pub cache_dir: Option<PathBuf>,
    /// Clocks and random numbers for every instance instead of the host's
    /// (the evolution benchmark's seeded ones; never set for serving).
    pub wasi_environment: Option<Arc<dyn WasiEnvironment>>,
}

struct EngineSet {
    engine: Engine,
    /// WASI plus the `types` interface: what every agent links.
    base_linker: Linker<InstanceState>,
}

/// The engines could not be created (a configuration the platform refuses).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the wasm engine: {0}")]
pub struct EngineError(String);

/// Owns the engines, the epoch ticker, the compile cache and the list of
/// capabilities agents are linked against.
pub struct Runtime {
    metered: EngineSet,
    unmetered: EngineSet,
    policy: Arc<Policy>,
    capabilities: Vec<Arc<dyn HostCapability>>,
    services: Services,
    metrics: Arc<Metrics>,
    samples: Arc<CallSamples>,
    cache: Option<CompileCache>,
    ticker_stop: Arc<AtomicBool>,
    wasi_environment: Option<Arc<dyn WasiEnvironment>>,
    /// `[limits]` as the defaults `describe()` runs under.
    describe_limits: Limits,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn build_engine(opts: &RuntimeOptions, fuel: bool) -> wasmtime::Result<Engine> {
    let n = opts.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    // A Rust wasip2 component instantiates a handful of core modules (the
    // program plus adapter shims), so core resources get headroom per instance.
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .table_elements(usize::try_from(opts.table_ceiling_elements).unwrap_or(usize::MAX))
        .max_memory_size(usize::try_from(opts.memory_ceiling_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(opts.keep_resident_bytes)
        .table_keep_resident(opts.keep_resident_bytes)
        // Linux 6.7+: reset only the pages a call dirtied (found with the
        // PAGEMAP_SCAN ioctl) instead of memsetting the whole resident
        // prefix, which was most of a small call's cost; elsewhere, or where
        // /proc/self/pagemap cannot be opened, wasmtime falls back to that.
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .allocation_strategy(pool)
        .memory_init_cow(true);
    Engine::new(&config)
}

fn base_linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::bindings::agentkernel::agent::types::add_to_linker::<InstanceState, wasmtime::component::HasSelf<InstanceState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}

impl crate::bindings::agentkernel::agent::types::Host for InstanceState {}

impl Runtime {
    /// A runtime linking agents against `capabilities` (the host's list),
    /// under `policy`. The capabilities take what they need from
    /// `services` when they prepare; a [`Metrics`] found there is the one
    /// calls are counted in.
    pub fn new(
        opts: RuntimeOptions,
        policy: Arc<Policy>,
        capabilities: Vec<Arc<dyn HostCapability>>,
        services: Services,
    ) -> Result<Arc<Self>, EngineError> {
        let engine_error = |e: wasmtime::Error| EngineError(format!("{e:#}"));
        let metered_engine = build_engine(&opts, true).map_err(engine_error)?;
        let unmetered_engine = build_engine(&opts, false).map_err(engine_error)?;
        let metered = EngineSet { base_linker: base_linker(&metered_engine).map_err(engine_error)?, engine: metered_engine };
        let unmetered = EngineSet { base_linker: base_linker(&unmetered_engine).map_err(engine_error)?, engine: unmetered_engine };
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let stop = ticker_stop.clone();
            let engines = [metered.engine.clone(), unmetered.engine.clone()];
            std::thread::Builder::new()
                .name("agentkernel-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        for e in &engines {
                            e.increment_epoch();
                        }
                    }
                })
                .map_err(|e| EngineError(format!("cannot start the epoch thread: {e}")))?;
        }
        let describe_limits = Limits::default().with(&policy.limits);
        Ok(Arc::new(Runtime {
            metered,
            unmetered,
            metrics: services.get::<Metrics>().unwrap_or_default(),
            samples: Arc::default(),
            policy,
            capabilities,
            services,
            cache: opts.cache_dir.map(CompileCache::new),
            ticker_stop,
            wasi_environment: opts.wasi_environment,
            describe_limits,
        }))
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }
    /// The services capabilities were given (storage, the LLM service, ...).
    pub fn services(&self) -> &Services {
        &self.services
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    /// Live requests kept for post-swap watches.
    pub fn samples(&self) -> &Arc<CallSamples> {
        &self.samples
    }
    /// The capabilities this runtime implements.
    pub fn capabilities(&self) -> &[Arc<dyn HostCapability>] {
        &self.capabilities
    }
    fn capability(&self, c: Capability) -> Option<&Arc<dyn HostCapability>> {
        self.capabilities.iter().find(|h| h.name() == c.name())
    }
    pub fn engine(&self, metered: bool) -> &Engine {
        if metered { &self.metered.engine } else { &self.unmetered.engine }
    }

    /// The metered engine's [`crate::compile::engine_hash`]: equal on two
    /// hosts, fuel measured on one is fuel measured on the other.
    pub fn engine_hash(&self) -> String {
        crate::compile::engine_hash(&self.metered.engine)
    }

    fn engine_set(&self, metered: bool) -> &EngineSet {
        if metered { &self.metered } else { &self.unmetered }
    }

    /// Compiles (or loads from the cache) on the blocking pool.
    async fn compile_cached(&self, metered: bool, bytes: Arc<[u8]>, hash: &str) -> Result<(Component, bool), LoadError> {
        let engine = self.engine_set(metered).engine.clone();
        let cache_path = self.cache.as_ref().map(|c| c.dir.clone());
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || match cache_path {
            Some(dir) => CompileCache::new(dir).load(&engine, &bytes, &hash),
            None => compile(&engine, &bytes).map(|c| (c, false)),
        })
        .await
        .map_err(|e| LoadError::Invalid(format!("compiler task failed: {e}")))?
    }

    /// Reads and loads the component at `path`.
    pub async fn load_file(&self, path: &Path) -> Result<LoadedAgent, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| LoadError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        self.load(bytes.into(), Some(path.to_path_buf())).await
    }

    /// Loads a component: checks it, asks it to describe itself, checks its
    /// imports against its policy and pre-instantiates it.
    pub async fn load(&self, bytes: Arc<[u8]>, source: Option<PathBuf>) -> Result<LoadedAgent, LoadError> {
        let hash = content_hash(&bytes);
        self.load_hashed(bytes, hash, source).await
    }

    /// [`load`](Self::load) for callers that already hashed the bytes.
    pub async fn load_hashed(&self, bytes: Arc<[u8]>, hash: String, source: Option<PathBuf>) -> Result<LoadedAgent, LoadError> {
        // describe() is guest code too: it always runs metered.
        let (component, mut cache_hit) = self.compile_cached(true, bytes.clone(), &hash).await?;
        let engine = &self.metered.engine;
        let import_names: Vec<String> =
            component.component_type().imports(engine).map(|(name, _)| name.to_string()).collect();
        let imports = policy::classify_imports(import_names.iter().map(String::as_str))?;

        let manifest = self.describe(&component, &imports).await?;
        validate_manifest(&manifest)?;
        let name = manifest.name.clone();
        let grants = self.policy.grants_for(&name);
        policy::check_imports(&name, &imports, &grants, &|c| self.capability(c).is_some())?;
        for c in &imports.capabilities {
            if !manifest.capabilities.iter().any(|r| r.name == c.name()) {
                tracing::warn!(agent = %name, "imports `{c}` without declaring it in describe().capabilities");
            }
        }

        let limits = self.policy.limits_for(&name);
        let metered = matches!(limits.fuel, Fuel::Limit(_));
        let component = if metered {
            component
        } else {
            let (c, hit) = self.compile_cached(false, bytes.clone(), &hash).await?;
            cache_hit = hit;
            c
        };
        let set = self.engine_set(metered);
        let mut linker = set.base_linker.clone();
        // Exactly the imported capabilities are linked, and each one linked
        // is prepared here, in the same loop, so a host function always
        // finds its state.
        let mut prepared = PreparedCapabilities::default();
        for &c in &imports.capabilities {
            let capability = self.capability(c).expect("check_imports refused unavailable capabilities");
            let scope = grants.scope(c).expect("check_imports refused ungranted capabilities");
            let grant = Grant { agent: &name, scope: &scope, limits: &limits, services: &self.services };
            let p = capability.prepare(&grant).map_err(|e| LoadError::Capability { capability: c, message: e.to_string() })?;
            capability.link(&mut linker).map_err(|e| LoadError::Link(format!("{e:#}")))?;
            prepared.push(c, p);
        }
        let pre = linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = AgentPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        Ok(LoadedAgent {
            manifest: ManifestInfo::from(&manifest),
            grants,
            limits,
            imports,
            hash,
            size: bytes.len() as u64,
            source,
            loaded_at: SystemTime::now(),
            compile_cache_hit: cache_hit,
            capabilities: prepared,
            name: Arc::from(name.as_str()),
            pre,
            engine: set.engine.clone(),
            metrics: self.metrics.clone(),
            samples: self.samples.clone(),
            wasi_environment: self.wasi_environment.clone(),
        })
    }

    /// Calls `describe()` with real WASI and `log`, and every other
    /// capability defined as a trap: describe must not use capabilities,
    /// and the agent's grants are unknown until it has said its name.
    async fn describe(&self, component: &Component, imports: &ImportSet) -> Result<Manifest, LoadError> {
        let mut linker = self.metered.base_linker.clone();
        if imports.capabilities.contains(&Capability::LOG) {
            crate::log::add_to_linker(&mut linker).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        }
        stub_capability_imports(&mut linker, component, &self.metered.engine).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let limits = self.describe_limits.clone();
        let limits = Limits { fuel: Fuel::Limit(limits_fuel_or_default(&limits)), ..limits };
        let name: Arc<str> = Arc::from("(loading)");
        let deadline = Instant::now() + limits.deadline;
        let context = CallContext::default();
        let call = CallInfo { agent: &name, session: "", limits: &limits, deadline, context: &context };
        let state = new_instance_state(&name, &limits, PreparedCapabilities::default().states(&call), self.wasi_environment.as_deref());
        let mut run = LimitedStore::new(&self.metered.engine, state, &limits, true, deadline);
        let result = run
            .run(async |store| {
                let instance = linker.instantiate_async(&mut *store, component).await?;
                let agent = crate::bindings::Agent::new(&mut *store, &instance)?;
                agent.call_describe(&mut *store).await
            })
            .await;
        run.flush_output();
        result.map_err(LoadError::Describe)
    }
}

/// Defines every capability import `describe` finds unlinked as a trap.
///
/// Not wasmtime's `define_unknown_imports_as_traps`: it also stubs a WASI
/// import of another patch version under its exact name (componentize-py
/// builds against `wasi:cli/environment@0.2.9`, this linker has 0.2.12),
/// and that exact-name stub then shadows the semver-compatible definition
/// the linker would have used, so the guest's own start-up trapped.
fn stub_capability_imports(linker: &mut Linker<InstanceState>, component: &Component, engine: &Engine) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else { continue };
        let Some(iface) = name.strip_prefix("agentkernel:agent/") else { continue };
        if iface.starts_with("types@") {
            continue;
        }
        let mut stubs = linker.instance(name)?;
        for (export, ty) in instance.exports(engine) {
            match ty.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{name}#{export}");
                    // Already linked (the real `log`): keep it.
                    let _ = stubs.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!("`{what}` called from describe(): describe must not use capabilities")
                    });
                }
                ComponentItem::Resource(_) => {
                    let _ = stubs.resource(export, wasmtime::component::ResourceType::host::<()>(), |_, _| Ok(()));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn limits_fuel_or_default(l: &Limits) -> u64 {
    match l.fuel {
        Fuel::Limit(n) => n,
        Fuel::Off => match Limits::default().fuel {
            Fuel::Limit(n) => n,
            Fuel::Off => u64::MAX,
        },
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate_agent_name;

    #[test]
    fn agent_names_are_restricted() {
        assert!(validate_agent_name("notes-2").is_ok());
        for bad in ["", "Notes", "a b", "-x", "../etc", &"a".repeat(65)] {
            assert!(validate_agent_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn non_components_are_rejected_before_compiling() {
        let engine = Engine::default();
        assert!(matches!(compile(&engine, b""), Err(LoadError::NotWasm)));
        assert!(matches!(compile(&engine, b"hello world, not wasm"), Err(LoadError::NotWasm)));
        let core = b"\0asm\x01\0\0\0";
        assert!(matches!(compile(&engine, core), Err(LoadError::CoreModule)));
    }
}

