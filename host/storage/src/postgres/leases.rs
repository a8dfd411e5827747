//! PostgreSQL: `LeaseStore`.
use super::PostgresStorage;
use crate::StorageError;
use crate::lease::{LeaseInfo, LeaseStore};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
";

impl LeaseStore for PostgresStorage {
    fn lease_acquire(&self, name: &str, holder: &str, ttl_secs: i64, now: i64) -> Result<bool, StorageError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.run(move |client| async move {
            // `ON CONFLICT ... WHERE` is atomic under concurrent inserts: of
            // two hosts racing for a free lease exactly one row wins.
            let changed = client
                .execute(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder",
                    &[&name, &holder, &(now + ttl_secs), &now],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn lease_release(&self, name: &str, holder: &str) -> Result<(), StorageError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.run(move |client| async move {
            client.execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[&name, &holder]).await?;
            Ok(())
        })
    }

    fn lease_get(&self, name: &str) -> Result<Option<LeaseInfo>, StorageError> {
        let name = name.to_string();
        self.run(move |client| async move {
            let row = client.query_opt("SELECT name, holder, expires_at FROM leases WHERE name = $1", &[&name]).await?;
            Ok(row.map(|r| LeaseInfo { name: r.get(0), holder: r.get(1), expires_at: r.get(2) }))
        })
    }
}
