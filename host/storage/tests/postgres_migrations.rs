//! Schema migrations when several hosts start at once on a new database,
//! and a database newer than the host.
use agentkernel_storage::postgres::{PostgresStorage, testing};

#[test]
fn hosts_starting_together_apply_each_migration_once() {
    let Some(url) = testing::fresh_database("migrations_at_once") else { return };
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStorage::connect(&url, 2).map(|_| ()))
        })
        .collect();
    for start in starts {
        start.join().unwrap().expect("every host starts");
    }
    let store = PostgresStorage::connect(&url, 1).unwrap();
    let versions: Vec<i64> = store
        .run(|client| async move {
            let rows = client.query("SELECT version FROM schema_migrations ORDER BY version", &[]).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .unwrap();
    let expected: Vec<i64> = (1..=agentkernel_storage::postgres::latest_schema_version()).collect();
    assert_eq!(versions, expected, "each version applied exactly once");
}

#[test]
fn a_database_from_a_newer_agentkernel_is_refused_with_a_clear_error() {
    let Some(url) = testing::fresh_database("migrations_newer") else { return };
    let store = PostgresStorage::connect(&url, 1).unwrap();
    store
        .run(|client| async move {
            client.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from the future')", &[]).await?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let refused = PostgresStorage::connect(&url, 1).err().expect("a newer schema is refused").to_string();
    assert!(refused.contains("version 9999") && refused.contains("upgrade this host"), "{refused}");
}

#[test]
fn an_unreachable_server_is_a_clear_error_not_a_hang() {
    // Port 9 on loopback: nothing listens.
    let started = std::time::Instant::now();
    let refused = PostgresStorage::connect("postgres://nobody@127.0.0.1:9/none", 1).err().expect("refused").to_string();
    assert!(refused.contains("postgres"), "{refused}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "bounded by the connect timeout");
}

#[test]
fn a_url_that_is_not_postgres_is_refused() {
    let refused = PostgresStorage::connect("mysql://x@y/z", 1).err().expect("refused").to_string();
    assert!(refused.contains("not a PostgreSQL url"), "{refused}");
}
