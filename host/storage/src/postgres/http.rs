//! PostgreSQL: `HttpStore`.
use super::PostgresStorage;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use crate::http::*;

pub(super) const SCHEMA: &str = "";

impl crate::http::HttpStore for PostgresStorage {
    #[allow(unused_variables)]
    fn http_reserve(&self, intent: &HttpRecord, day_start: i64, per_day: u64) -> Result<Option<i64>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn http_note(&self, record: &HttpRecord, day_start: i64, max_per_day: u64) -> Result<bool, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn http_finish(&self, id: i64, record: &HttpRecord) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn http_log(&self, agent: Option<&str>, limit: u32) -> Result<Vec<HttpRecord>, StorageError> {
        Err(super::pending())
    }

}
