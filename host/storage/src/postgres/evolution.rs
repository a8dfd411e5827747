//! PostgreSQL: `EvolutionStore`.
use super::PostgresStorage;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use crate::evolution::*;

pub(super) const SCHEMA: &str = "";

impl crate::evolution::EvolutionStore for PostgresStorage {
    #[allow(unused_variables)]
    fn record_version(&self, v: &AgentVersion) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn version(&self, hash: &str) -> Result<Option<AgentVersion>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn versions(&self, agent: &str) -> Result<Vec<AgentVersion>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn upsert_evolution(&self, e: &EvolutionRecord) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn evolution(&self, id: &str) -> Result<Option<EvolutionRecord>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn evolutions(&self, limit: u32) -> Result<Vec<EvolutionRecord>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn record_install(&self, r: &InstallRecord) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn installs(&self, agent: &str) -> Result<Vec<InstallRecord>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn evolution_request_reserve(&self, request: &EvolutionRequest, day_start: i64, runs_per_day: u64) -> Result<Option<i64>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn evolution_request_finish(&self, id: i64, outcome: &str, run: Option<&str>) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn evolution_request_note(&self, request: &EvolutionRequest, day_start: i64) -> Result<Option<i64>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn evolution_request_by_run(&self, run: &str) -> Result<Option<EvolutionRequest>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn evolution_requests(&self, action: Option<&str>, limit: u32) -> Result<Vec<EvolutionRequest>, StorageError> {
        Err(super::pending())
    }

}
