//! PostgreSQL: `AwsStore`.
use super::PostgresStorage;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use crate::aws::*;

pub(super) const SCHEMA: &str = "";

impl crate::aws::AwsStore for PostgresStorage {
    #[allow(unused_variables)]
    fn audit_append(&self, record: &AuditRecord) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn audit_list(&self, agent: Option<&str>, limit: u32) -> Result<Vec<AuditRecord>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn genome_current(&self, owner: &str) -> Result<Option<StoredGenome>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn genome_current_all(&self) -> Result<Vec<StoredGenome>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn genome_record(&self, owner: &str, toml: &str, applied_by: &str) -> Result<i64, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn proposal_add(&self, agent: &str, reason: &str, toml: &str) -> Result<i64, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn proposal_get(&self, id: i64) -> Result<Option<StoredProposal>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn proposal_list(&self, status: Option<&str>, limit: u32) -> Result<Vec<StoredProposal>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn proposal_set_status(&self, id: i64, status: &str, message: &str) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn proposal_transition(&self, id: i64, from: &str, to: &str, message: &str) -> Result<bool, StorageError> {
        Err(super::pending())
    }

}
