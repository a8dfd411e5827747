//! Versioned schema migrations, applied once however many hosts start
//! together: each host takes a session advisory lock before it looks at
//! `schema_migrations`, so the first applies what is missing and the
//! others find it done. Each migration commits with its version row.
use super::{Client, lock_key};
use crate::StorageError;

/// Every migration, oldest first. Never edit one that has shipped: add the
/// next version instead.
fn migrations() -> Vec<(i64, &'static str, String)> {
    let first = [
        super::memory::SCHEMA,
        super::sessions::SCHEMA,
        super::aws::SCHEMA,
        super::evolution::SCHEMA,
        super::http::SCHEMA,
        super::research::SCHEMA,
        super::stats::SCHEMA,
        super::leases::SCHEMA,
        super::components::SCHEMA,
    ]
    .join("\n");
    vec![(1, "initial schema", first), (2, "evolution jobs", super::jobs::SCHEMA.to_string())]
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    migrations().last().map(|m| m.0).unwrap_or(0)
}

pub(super) async fn apply(client: &mut Client) -> Result<(), StorageError> {
    let key = lock_key("schema-migrations", "agentkernel");
    // A migration may take longer than a call (and a host may wait for
    // another's): [`super::MIGRATION_TIMEOUT`] bounds the whole, not each
    // statement. Reset below: the connection goes back to the pool.
    client.batch_execute("SET statement_timeout = 0").await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&key]).await?;
    let result = apply_locked(client).await;
    // Released with the session too, should this fail.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
    let _ = client.batch_execute("RESET statement_timeout").await;
    result
}

async fn apply_locked(client: &mut Client) -> Result<(), StorageError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                name       TEXT NOT NULL,
                applied_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT)
            )",
        )
        .await?;
    let newest: Option<i64> =
        client.query_one("SELECT max(version) FROM schema_migrations", &[]).await?.get(0);
    let newest = newest.unwrap_or(0);
    if newest > latest_version() {
        return Err(StorageError::Backend(format!(
            "the database's schema is version {newest}, newer than this agentkernel knows ({}): upgrade this host",
            latest_version()
        )));
    }
    for (version, name, sql) in migrations().into_iter().filter(|m| m.0 > newest) {
        let tx = client.transaction().await?;
        tx.batch_execute(&sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&version, &name]).await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied a PostgreSQL schema migration");
    }
    Ok(())
}
