//! PostgreSQL backend: what several hosts behind a load balancer share.
//!
//! The storage traits are synchronous (their async callers already run them
//! on the blocking pool under a timeout, [`crate::blocking`]), and the
//! client is async (tokio-postgres with a deadpool pool). The bridge: the
//! backend owns a small runtime of its own; each call spawns its future
//! there and the calling thread waits for the answer. That works from any
//! thread, a tokio worker included (tokio refuses `block_on` inside a
//! runtime), and the pool's connections live on the runtime that drives
//! them, whatever runtime (or none) the caller has.
//!
//! Correctness across hosts comes from the database, never from a lock in
//! one process: a write that checks a quota or a budget takes a
//! transaction-scoped advisory lock on what it counts (`pg_advisory_xact_lock`),
//! so two hosts writing to the same namespace serialise on the server.
//!
//! PostgreSQL's TEXT refuses a NUL byte ("invalid byte sequence for
//! encoding UTF8: 0x00"), which SQLite stores. Text a guest, an HTTP
//! client or an outside server can put into a TEXT column goes through
//! [`text`], which replaces each NUL with U+FFFD, so the row is written
//! (an audit row, a ledger row, a proposal) instead of lost; a lookup by
//! such text goes through it too, so it finds what was written rather than
//! failing. Identifiers the host checks before writing them (agent names,
//! hashes, chat session ids), host constants (outcomes, statuses) and
//! serializer output (serde_json, toml: both escape NUL) are bound as they
//! are. Text that must come back byte for byte is BYTEA instead
//! (`memory.rs`, `research.rs`, `sessions.rs`).
mod aws;
mod components;
mod evolution;
mod http;
mod jobs;
mod leases;
mod ledger;
mod memory;
mod migrate;
pub use migrate::latest_version as latest_schema_version;
mod notify;
mod research;
mod sessions;
mod stats;
pub mod testing;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};

use crate::StorageError;

/// How long one call may take end to end (waiting for a connection
/// included) before the caller gets [`StorageError::Timeout`]. Below the
/// callers' own bound ([`crate::blocking::DEFAULT_TIMEOUT`], 10 s), so a
/// statement is over (done or cancelled by the server's
/// `statement_timeout`) by the time its caller stops waiting.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// The server-side bound on one statement (`statement_timeout`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(7);
/// Schema migrations get longer (an index on a large table), on their own.
pub const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Connections per host, unless `[storage] pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A pooled client: what each backend method's future receives.
pub type Client = Object;

/// The PostgreSQL backend. Cheap to share behind an `Arc`.
pub struct PostgresStorage {
    pool: Pool,
    /// What the pool connects with: connections of their own (LISTEN) too.
    config: tokio_postgres::Config,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        // `Display` of a server error is only "db error"; the detail is in
        // its source.
        match e.as_db_error() {
            Some(db) => StorageError::Backend(format!("postgres: {}: {}", db.code().code(), db.message())),
            None => StorageError::Backend(format!("postgres: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StorageError::Backend(format!("postgres pool: {other}")),
        }
    }
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db`),
    /// applies pending schema migrations (once, whichever of several hosts
    /// starting together gets there first) and keeps a pool of
    /// `pool_size` connections.
    pub fn connect(url: &str, pool_size: usize) -> Result<Self, StorageError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StorageError::Backend(format!("storage url is not a PostgreSQL url: {e}")))?;
        config.application_name("agentkernel");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // A statement never outlives the call that waits for it. Appended:
        // the url's own `options` (a search_path, say) are kept.
        let timeout = format!("-c statement_timeout={}", STATEMENT_TIMEOUT.as_millis());
        let options = match config.get_options() {
            Some(own) if !own.trim().is_empty() => format!("{own} {timeout}"),
            _ => timeout,
        };
        config.options(&options);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("agentkernel-postgres")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Backend(format!("postgres runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let manager =
            Manager::from_config(config.clone(), tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = {
            let _entered = handle.enter();
            Pool::builder(manager)
                .max_size(pool_size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(5)))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| StorageError::Backend(format!("postgres pool: {e}")))?
        };
        let storage = PostgresStorage { pool, config, runtime: Some(runtime), handle };
        storage.run_for(MIGRATION_TIMEOUT, |mut client| async move { migrate::apply(&mut client).await })?;
        Ok(storage)
    }

    /// Runs `op` with a pooled connection on the backend's runtime and
    /// waits for it (at most [`CALL_TIMEOUT`]). The future owns what it
    /// uses: copy borrowed arguments in before `async move`.
    pub fn run<T, F, Fut>(&self, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        self.run_for(CALL_TIMEOUT, op)
    }

    /// [`run`](Self::run) with a bound of its own.
    pub fn run_for<T, F, Fut>(&self, timeout: Duration, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == self.handle.id()) {
            // Waiting here would block a thread the answer needs.
            return Err(StorageError::Backend("a PostgreSQL call from the backend's own runtime".into()));
        }
        let pool = self.pool.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let task = self.handle.spawn(async move {
            let result = match tokio::time::timeout(timeout, async move { op(pool.get().await?).await }).await {
                Ok(result) => result,
                Err(_) => Err(StorageError::Timeout(timeout)),
            };
            let _ = tx.send(result);
        });
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(result) => result,
            Err(_) => {
                task.abort();
                Err(StorageError::Timeout(timeout))
            }
        }
    }

    /// The pool, for code that needs a connection of its own for longer
    /// than one call (LISTEN, session advisory locks).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The runtime the pool's connections live on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another
        // runtime (where tests and the server drop their storage).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `s` as a TEXT column can hold it: each NUL (which PostgreSQL refuses in
/// TEXT and SQLite stores) replaced with U+FFFD. Borrowed when there is
/// none, which is nearly always.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') { Cow::Owned(s.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(s) }
}

/// A stable 64-bit key for `pg_advisory_xact_lock`, from a kind and a name
/// (FNV-1a: the same on every host and every build, unlike `DefaultHasher`).
pub fn lock_key(kind: &str, name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in kind.bytes().chain([0]).chain(name.bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// `url` without its password (in the user part or the query), for logs
/// and `doctor`.
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return "(not a url)".to_string() };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest = &base[scheme_end..];
    let base = match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!("{}{}:***{}", &base[..scheme_end], &rest[..colon], &rest[at..]),
        _ => base.to_string(),
    };
    match query {
        None => base,
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
    }
}

/// A shared handle, for the places that want to keep one `Arc` of the
/// concrete type.
pub type SharedPostgres = Arc<PostgresStorage>;

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redacted("postgres://ak:s3cret@db:5432/ak"), "postgres://ak:***@db:5432/ak");
        assert_eq!(super::redacted("postgres://ak@db:5432/ak"), "postgres://ak@db:5432/ak");
        assert_eq!(super::redacted("postgres://ak@db/ak?sslmode=disable&password=s3cret"), "postgres://ak@db/ak?sslmode=disable&password=***");
    }

    #[test]
    fn text_replaces_each_nul_and_borrows_otherwise() {
        assert_eq!(super::text("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(super::text("plain é"), std::borrow::Cow::Borrowed("plain é")));
    }

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(super::lock_key("kv", "a"), super::lock_key("kv", "a"));
        assert_ne!(super::lock_key("kv", "a"), super::lock_key("history", "a"));
        assert_ne!(super::lock_key("kv", "ab"), super::lock_key("kva", "b"));
    }
}
