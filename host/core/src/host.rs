//! Assembles a host from a configuration: the storage backend, the
//! services capabilities use, the runtime with the capability list, the
//! registry and chat. Every part of the host (the server, the evolution
//! engine, the CLIs) takes its handles from a [`Host`] instead of opening
//! its own.
use std::path::PathBuf;
use std::sync::Arc;

use agentkernel_llm::LlmService;
use agentkernel_runtime::metrics::Metrics;
use agentkernel_runtime::trace::BudgetLimits;
use agentkernel_runtime::{AgentDirectory, AgentTable, KEEP_RESIDENT_BYTES, Runtime, RuntimeOptions, Services};
use agentkernel_http::HttpClient;
use agentkernel_capabilities::evolution::EvolutionDesk;
use agentkernel_storage::Backend;
use agentkernel_storage::evolution::EvolutionStore;
use agentkernel_storage::http::HttpStore;
use agentkernel_storage::Storage;
use agentkernel_storage::sqlite::SqliteStorage;

use crate::chat::ChatService;
use crate::config::HostConfig;
use crate::registry::Registry;

#[derive(Clone)]
pub struct Host {
    pub config: Arc<HostConfig>,
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    pub chat: Arc<ChatService>,
    /// Agent memory, the LLM ledger, sessions, the EC2 audit log and
    /// genomes, evolution runs: one backend, shared by every part.
    pub backend: Arc<dyn Backend>,
    pub llm: Arc<LlmService>,
    #[cfg(feature = "aws")]
    pub aws: Arc<agentkernel_aws::Ec2Service>,
    /// Where the `evolution` capability's requests go: empty until the
    /// process that serves installs its engine (the engine sits above the
    /// host, so it cannot be built here).
    pub evolution: Arc<EvolutionDesk>,
}

/// The engine settings `[host]` configures.
pub fn runtime_options(config: &HostConfig) -> RuntimeOptions {
    RuntimeOptions {
        max_instances: config.host.max_instances,
        memory_ceiling_bytes: config.host.memory_ceiling_bytes,
        table_ceiling_elements: config.host.table_ceiling_elements,
        keep_resident_bytes: usize::try_from(config.host.keep_resident_bytes).unwrap_or(KEEP_RESIDENT_BYTES),
        cache_dir: Some(config.host.data_dir.join("cache")),
        wasi_environment: None,
    }
}

/// The services capabilities prepare from, on `backend`. `llm` and `ec2`
/// are the backends of those capabilities (the real ones when serving,
/// doubles in the evolution benchmark).
pub struct ServiceSet {
    pub services: Services,
    pub agents: Arc<AgentTable>,
    pub metrics: Arc<Metrics>,
}

impl ServiceSet {
    pub fn new(config: &HostConfig, storage: Arc<dyn Storage>, metrics: Arc<Metrics>, llm: Arc<LlmService>) -> ServiceSet {
        let agents = Arc::new(AgentTable::default());
        let mut services = Services::new();
        services
            .insert::<dyn Storage>(storage)
            .insert(metrics.clone())
            .insert(llm)
            .insert(agents.clone())
            .insert::<dyn AgentDirectory>(agents.clone())
            .insert(Arc::new(config.chat.default_budget()) as Arc<BudgetLimits>);
        ServiceSet { services, agents, metrics }
    }

    /// Where `evolution` requests go (a desk the engine is installed on
    /// later) and where they are audited.
    pub fn with_evolution(mut self, desk: Arc<EvolutionDesk>, audit: Arc<dyn EvolutionStore>) -> Self {
        self.services.insert(desk).insert::<dyn EvolutionStore>(audit);
        self
    }

    /// Where `http` requests go, and where they are counted and recorded.
    pub fn with_http(mut self, client: Arc<dyn HttpClient>, log: Arc<dyn HttpStore>) -> Self {
        self.services.insert::<dyn HttpClient>(client).insert::<dyn HttpStore>(log);
        self
    }

    /// The services of the evolution benchmark: `storage`, `http_log` (the
    /// request log and daily budget, reset with each case) and `llm` are
    /// its doubles; `http` requests go nowhere (`Offline`), and EC2 (when
    /// built in) is `Ec2Service::unreachable_dry_run` on an in-memory audit
    /// store.
    pub fn benchmark(
        config: &HostConfig,
        storage: Arc<dyn Storage>,
        http_log: Arc<dyn HttpStore>,
        llm: Arc<LlmService>,
    ) -> Result<ServiceSet, agentkernel_storage::StorageError> {
        // No engine on the benchmark's desk: a candidate's `evolution`
        // requests are audited in a throwaway database and start nothing.
        let audit: Arc<dyn EvolutionStore> = Arc::new(SqliteStorage::in_memory()?);
        #[allow(unused_mut)] // EC2 is added with the `aws` feature
        let mut set = ServiceSet::new(config, storage, Arc::new(Metrics::default()), llm)
            .with_http(Arc::new(agentkernel_http::Offline), http_log)
            .with_evolution(Arc::default(), audit);
        #[cfg(feature = "aws")]
        {
            // The run's EC2 audit rows go to a throwaway database.
            let audit: Arc<dyn agentkernel_storage::aws::AwsStore> = Arc::new(SqliteStorage::in_memory()?);
            let ec2 = agentkernel_aws::Ec2Service::unreachable_dry_run(config.aws.clone(), audit);
            set.services.insert(Arc::new(ec2));
        }
        Ok(set)
    }
}

impl Host {
    /// The SQLite database inside the data directory.
    pub fn database_path(config: &HostConfig) -> PathBuf {
        config.host.data_dir.join("agentkernel.sqlite")
    }

    /// Opens storage in the data dir and a registry of the agents dir
    /// (nothing is loaded until [`Registry::scan`]).
    pub fn open(config: HostConfig) -> anyhow::Result<Host> {
        let backend = Self::open_backend(&config)?;
        Self::with_backend(config, backend)
    }

    /// The backend a host on `config` keeps its data in: for commands that
    /// only read or write data (`usage`, `versions`, `audit`), the same
    /// store, opened the same way, without engines or a registry.
    pub fn open_backend(config: &HostConfig) -> Result<Arc<dyn Backend>, agentkernel_storage::StorageError> {
        Ok(match &config.storage.url {
            Some(url) => Arc::new(agentkernel_storage::postgres::PostgresStorage::connect(
                url,
                config.storage.pool_size.unwrap_or(agentkernel_storage::postgres::DEFAULT_POOL_SIZE),
            )?),
            None => Arc::new(SqliteStorage::open_with(&Self::database_path(config), config.storage.durability)?),
        })
    }

    /// A host on `backend`, which keeps agent memory, the LLM ledger, chat
    /// sessions, the EC2 audit log and genome, and evolution runs.
    pub fn with_backend(config: HostConfig, backend: Arc<dyn Backend>) -> anyhow::Result<Host> {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let llm = Arc::new(LlmService::new(config.llm.clone(), backend.clone()).with_metrics(metrics.clone()));
        let evolution = Arc::new(EvolutionDesk::default());
        let mut set = ServiceSet::new(&config, backend.clone(), metrics, llm.clone())
            .with_http(agentkernel_http::capability::network_client(), backend.clone())
            .with_evolution(evolution.clone(), backend.clone());
        #[cfg(feature = "aws")]
        let aws = {
            let aws = Arc::new(agentkernel_aws::Ec2Service::new(config.aws.clone(), backend.clone()));
            set.services.insert(aws.clone());
            aws
        };
        let runtime = Runtime::new(
            runtime_options(&config),
            Arc::new(config.policy()),
            crate::capabilities::all(),
            std::mem::take(&mut set.services),
        )?;
        let registry = Registry::for_dir(runtime.clone(), &config.host.agents_dir)
            .map_err(|e| anyhow::anyhow!("agents directory {}: {e}", config.host.agents_dir.display()))?;
        // Export needs a runtime for its task; one-shot commands outside one do without.
        let exporter = match tokio::runtime::Handle::try_current() {
            Ok(_) => crate::telemetry::Exporter::start(&config.telemetry).map_err(|e| anyhow::anyhow!(e))?.map(Arc::new),
            Err(_) => None,
        };
        let chat = Arc::new(ChatService::new(registry.clone(), backend.clone(), config.chat.clone()).with_telemetry(exporter));
        Ok(Host {
            config,
            runtime,
            registry,
            chat,
            backend,
            llm,
            #[cfg(feature = "aws")]
            aws,
            evolution,
        })
    }

    /// Agent memory and the LLM ledger.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.backend.clone()
    }
}
