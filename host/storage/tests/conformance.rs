//! One suite, every backend: each conformance test on a fresh SQLite
//! database and on a fresh PostgreSQL database (a database per test in the
//! cluster `scripts/deps/postgres.sh` starts).
use agentkernel_storage::Backend;
use agentkernel_storage::conformance;
use agentkernel_storage::postgres::{PostgresStorage, testing};
use agentkernel_storage::sqlite::SqliteStorage;

#[test]
fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    // File databases (readers beside the writer), as the host opens them.
    let failed = conformance::run(&|name| {
        Box::new(SqliteStorage::open(&dir.path().join(format!("{name}.sqlite"))).unwrap()) as Box<dyn Backend>
    });
    assert!(failed.is_empty(), "{} of {} failed:\n{}", failed.len(), conformance::all().len(), failed.join("\n"));
}

#[test]
fn postgres_passes_the_conformance_suite() {
    if testing::server_url("postgres_passes_the_conformance_suite").is_none() {
        return;
    }
    let failed = conformance::run(&|name| {
        let url = testing::fresh_database(name).expect("a test database");
        Box::new(PostgresStorage::connect(&url, 4).unwrap()) as Box<dyn Backend>
    });
    assert!(failed.is_empty(), "{} of {} failed:\n{}", failed.len(), conformance::all().len(), failed.join("\n"));
}
