//! PostgreSQL: `SessionStore`.
use super::PostgresStorage;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use crate::sessions::*;

pub(super) const SCHEMA: &str = "";

impl crate::sessions::SessionStore for PostgresStorage {
    #[allow(unused_variables)]
    fn session_append(&self, owner: &str, session: &str, turns: &[TranscriptEntry]) -> Result<(), StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn session_tail(&self, owner: &str, session: &str, limit: u32) -> Result<Vec<TranscriptEntry>, StorageError> {
        Err(super::pending())
    }

    #[allow(unused_variables)]
    fn recent_requests(&self, agent: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        Err(super::pending())
    }

}
