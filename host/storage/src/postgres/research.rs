//! PostgreSQL: `ResearchStore`.
use super::PostgresStorage;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use crate::research::*;

pub(super) const SCHEMA: &str = "";

impl crate::research::ResearchStore for PostgresStorage {
    #[allow(unused_variables)]
    fn research_record(&self, findings: &[ResearchFinding], now: i64) -> Result<Vec<ResearchFinding>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn research_findings(&self, limit: u32) -> Result<Vec<ResearchFinding>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn research_findings_per_week(&self, weeks: u32) -> Result<Vec<WeekCount>, StorageError> {
        Err(super::pending())
    }

}
