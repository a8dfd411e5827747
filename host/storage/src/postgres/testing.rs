//! Throwaway databases for tests: `scripts/deps/postgres.sh` starts a
//! cluster on loopback and exports its url as
//! `AGENTKERNEL_TEST_POSTGRES_URL`; each test takes a database of its own.
//! Without the variable a PostgreSQL test skips, saying so, unless
//! `AGENTKERNEL_REQUIRE_POSTGRES=1` (set by that script, so CI cannot skip).
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the test cluster (a url whose database may be any).
pub const URL_VAR: &str = "AGENTKERNEL_TEST_POSTGRES_URL";
/// Set to `1` when PostgreSQL tests must not skip.
pub const REQUIRE_VAR: &str = "AGENTKERNEL_REQUIRE_POSTGRES";

/// The test cluster's url, or `None` (after printing why) when there is
/// none and none is required. Panics when one is required and missing.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") => {
            panic!("{test}: {REQUIRE_VAR}=1 but {URL_VAR} is not set (scripts/deps/postgres.sh did not start a cluster)")
        }
        _ => {
            eprintln!("SKIPPED {test}: no PostgreSQL ({URL_VAR} unset; `source scripts/deps/postgres.sh` starts one)");
            None
        }
    }
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// Creates an empty database for one test and returns its url, or `None`
/// when PostgreSQL tests skip (see [`server_url`]).
pub fn fresh_database(test: &str) -> Option<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = server_url(test)?;
    let slug: String = test.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(30).collect();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("ak_{slug}_{}_{}_{nanos:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let admin = server.clone();
    let statement = format!("CREATE DATABASE \"{name}\"");
    // Its own thread and runtime: callers may be inside a runtime or not.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let (client, connection) =
                tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("connecting to {admin}: {e}"));
            tokio::spawn(connection);
            client.batch_execute(&statement).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        })
    })
    .join()
    .expect("creating a test database");
    Some(with_database(&server, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(with_database("postgres://u@127.0.0.1:5432/postgres", "t1"), "postgres://u@127.0.0.1:5432/t1");
        assert_eq!(with_database("postgres://u@h/postgres?sslmode=disable", "t"), "postgres://u@h/t?sslmode=disable");
        assert_eq!(with_database("postgres://u@h:1", "t"), "postgres://u@h:1/t");
    }
}
