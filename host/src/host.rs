//! Assembles a host from a configuration: storage, runtime, registry.
use std::path::PathBuf;
use std::sync::Arc;

use crate::chat::ChatService;
use crate::config::HostConfig;
use crate::registry::Registry;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::storage::Storage;
use crate::storage::aws::AwsStore;
use crate::storage::sessions::SessionStore;
use crate::storage::sqlite::SqliteStorage;

pub struct Host {
    pub config: Arc<HostConfig>,
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    pub chat: Arc<ChatService>,
}

impl Host {
    /// The SQLite database inside the data directory.
    pub fn database_path(config: &HostConfig) -> PathBuf {
        config.host.data_dir.join("agentkernel.sqlite")
    }

    /// Opens storage in the data dir and a registry of the agents dir
    /// (nothing is loaded until [`Registry::scan`]).
    pub fn open(config: HostConfig) -> anyhow::Result<Host> {
        let storage = Arc::new(SqliteStorage::open_with(&Self::database_path(&config), config.storage.durability)?);
        Self::with_backend(config, storage)
    }

    /// A host on `backend`, which keeps agent memory, the LLM ledger, chat
    /// sessions and the EC2 audit log and genome.
    pub fn with_backend<B: Storage + SessionStore + AwsStore>(config: HostConfig, backend: Arc<B>) -> anyhow::Result<Host> {
        let storage: Arc<dyn Storage> = backend.clone();
        let aws_store: Arc<dyn AwsStore> = backend.clone();
        let sessions: Arc<dyn SessionStore> = backend;
        let config = Arc::new(config);
        let runtime = Runtime::new(config.clone(), storage, aws_store, RuntimeOptions::from_config(&config))?;
        let registry = Registry::for_dir(runtime.clone(), &config.host.agents_dir)
            .map_err(|e| anyhow::anyhow!("agents directory {}: {e}", config.host.agents_dir.display()))?;
        let chat = Arc::new(ChatService::new(registry.clone(), sessions, config.chat.clone()));
        Ok(Host { config, runtime, registry, chat })
    }
}
