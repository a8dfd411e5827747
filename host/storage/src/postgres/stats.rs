//! PostgreSQL: `StatsStore`.
use super::PostgresStorage;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use crate::stats::*;
#[allow(unused_imports)]
use crate::evolution::InstallRecord;

pub(super) const SCHEMA: &str = "";

impl crate::stats::StatsStore for PostgresStorage {
    #[allow(unused_variables)]
    fn activity_add(&self, counts: &[ActivityCount], now: i64) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn activity_since(&self, since: i64, limit: u32) -> Result<Vec<ActivityCount>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn llm_spend_by_day(&self, since: i64, limit: u32) -> Result<Vec<DailySpend>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn installs_since(&self, since: i64, limit: u32) -> Result<Vec<InstallRecord>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn chat_answers_since(&self, since: i64) -> Result<u64, StorageError> {
        Err(super::pending())
    }

}
