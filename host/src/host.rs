//! Assembles a host from a configuration: storage, runtime, registry.
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::HostConfig;
use crate::registry::Registry;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::storage::Storage;
use crate::storage::aws::AwsStore;
use crate::storage::sqlite::SqliteStorage;

pub struct Host {
    pub config: Arc<HostConfig>,
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
}

impl Host {
    /// The SQLite database inside the data directory.
    pub fn database_path(config: &HostConfig) -> PathBuf {
        config.host.data_dir.join("agentkernel.sqlite")
    }

    /// Opens storage in the data dir and a registry of the agents dir
    /// (nothing is loaded until [`Registry::scan`]).
    pub fn open(config: HostConfig) -> anyhow::Result<Host> {
        let sqlite = Arc::new(SqliteStorage::open(&Self::database_path(&config))?);
        Self::with_storage(config, sqlite.clone(), sqlite)
    }

    pub fn with_storage(config: HostConfig, storage: Arc<dyn Storage>, aws_store: Arc<dyn AwsStore>) -> anyhow::Result<Host> {
        let config = Arc::new(config);
        let runtime = Runtime::new(config.clone(), storage, aws_store, RuntimeOptions::from_config(&config))?;
        let registry = Registry::for_dir(runtime.clone(), &config.host.agents_dir)
            .map_err(|e| anyhow::anyhow!("agents directory {}: {e}", config.host.agents_dir.display()))?;
        Ok(Host { config, runtime, registry })
    }
}
