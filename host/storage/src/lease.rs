//! Leases: a named claim one holder keeps for a bounded time, stored in the
//! backend so every process (and every host sharing a PostgreSQL backend)
//! sees the same holder. What one-per-owner or one-per-agent work takes
//! across processes: an EC2 owner's launches and plan applies, one
//! evolution per agent. A holder that dies stops renewing, and the lease
//! is free again when its time runs out.
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use crate::StorageError;
use crate::sqlite::SqliteStorage;

/// Who holds a lease and until when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub name: String,
    pub holder: String,
    pub expires_at: i64,
}

pub trait LeaseStore: Send + Sync + 'static {
    /// Takes `name` for `holder` until `now + ttl_secs` when it is free,
    /// expired, or already `holder`'s (then it is renewed). `true` when
    /// `holder` holds it afterwards.
    fn lease_acquire(&self, name: &str, holder: &str, ttl_secs: i64, now: i64) -> Result<bool, StorageError>;
    /// Gives `name` up if `holder` holds it (a no-op otherwise).
    fn lease_release(&self, name: &str, holder: &str) -> Result<(), StorageError>;
    /// The current holder, expired or not.
    fn lease_get(&self, name: &str) -> Result<Option<LeaseInfo>, StorageError>;
}

pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
";

impl LeaseStore for SqliteStorage {
    fn lease_acquire(&self, name: &str, holder: &str, ttl_secs: i64, now: i64) -> Result<bool, StorageError> {
        // One statement: the upsert only overwrites an expired lease or the
        // holder's own, and SQLite runs it atomically.
        let changed = self
            .conn()
            .prepare_cached(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.expires_at <= ?4 OR leases.holder = excluded.holder",
            )?
            .execute(params![name, holder, now + ttl_secs, now])?;
        Ok(changed > 0)
    }

    fn lease_release(&self, name: &str, holder: &str) -> Result<(), StorageError> {
        self.conn()
            .prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")?
            .execute(params![name, holder])?;
        Ok(())
    }

    fn lease_get(&self, name: &str) -> Result<Option<LeaseInfo>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT name, holder, expires_at FROM leases WHERE name = ?1")?
            .query_row([name], |r| Ok(LeaseInfo { name: r.get(0)?, holder: r.get(1)?, expires_at: r.get(2)? }))
            .optional()?)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A name for this process as a lease holder: host name, process id and a
/// random part (a restarted process is a new holder).
pub fn process_holder() -> String {
    static HOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOLDER
        .get_or_init(|| {
            let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "host".into());
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            format!("{host}/{}/{nanos:08x}", std::process::id())
        })
        .clone()
}

/// Why a lease was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("`{name}` is held by {holder} (until unix time {expires_at})")]
    Held { name: String, holder: String, expires_at: i64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A held lease: renewed in the background every third of its time to
/// live while the guard lives, released when it is dropped.
pub struct Lease {
    name: String,
    holder: String,
    store: Arc<dyn LeaseStore>,
    renewer: tokio::task::JoinHandle<()>,
    /// Cleared when the lease is lost: another holder took it, or no
    /// renewal succeeded for a whole time to live.
    held: Arc<std::sync::atomic::AtomicBool>,
    /// When the last acquisition or renewal that succeeded was sent: the
    /// row's expiry is at most a time to live after it, whatever the
    /// renewer has noticed since.
    renewed: Arc<std::sync::Mutex<Instant>>,
    ttl: Duration,
}

impl Lease {
    /// Takes `name`, waiting (polling) until `deadline` while another holder
    /// has it. Call from a tokio runtime.
    pub async fn acquire(
        store: Arc<dyn LeaseStore>,
        name: &str,
        ttl: Duration,
        deadline: Option<Instant>,
    ) -> Result<Lease, LeaseError> {
        // Unique per acquisition: two holders in one process never share one.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let holder = format!("{}#{}", process_holder(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let ttl_secs = ttl.as_secs().max(2) as i64;
        let mut wait = Duration::from_millis(20);
        let mut sent;
        loop {
            sent = Instant::now();
            let taken = {
                let (store, name, holder) = (store.clone(), name.to_string(), holder.clone());
                crate::blocking::call(crate::blocking::DEFAULT_TIMEOUT, move || {
                    store.lease_acquire(&name, &holder, ttl_secs, now())
                })
                .await?
            };
            if taken {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                let info = {
                    let (store, name) = (store.clone(), name.to_string());
                    crate::blocking::call(crate::blocking::DEFAULT_TIMEOUT, move || store.lease_get(&name)).await?
                };
                let (holder, expires_at) = info.map(|i| (i.holder, i.expires_at)).unwrap_or_default();
                return Err(LeaseError::Held { name: name.to_string(), holder, expires_at });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
        let held = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let renewed = Arc::new(std::sync::Mutex::new(sent));
        let renewer = {
            let (store, name, holder, held, renewed) = (store.clone(), name.to_string(), holder.clone(), held.clone(), renewed.clone());
            tokio::spawn(async move {
                let last_renewal = || *renewed.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    tokio::time::sleep(Duration::from_secs((ttl_secs as u64 / 3).max(1))).await;
                    let (store, lease, holder) = (store.clone(), name.clone(), holder.clone());
                    let attempt = Instant::now();
                    let result = crate::blocking::call(crate::blocking::DEFAULT_TIMEOUT, move || {
                        store.lease_acquire(&lease, &holder, ttl_secs, now())
                    })
                    .await;
                    match result {
                        Ok(true) => *renewed.lock().unwrap_or_else(|p| p.into_inner()) = attempt,
                        Ok(false) => {
                            tracing::warn!(lease = %name, "a held lease was taken by another holder: lost");
                            held.store(false, std::sync::atomic::Ordering::Release);
                            return;
                        }
                        Err(e) if last_renewal().elapsed() >= Duration::from_secs(ttl_secs as u64) => {
                            // Others may take it now: once lapsed it stays lost.
                            tracing::warn!(lease = %name, "no renewal of a held lease for its whole time to live ({e}): lost");
                            held.store(false, std::sync::atomic::Ordering::Release);
                            return;
                        }
                        Err(e) => tracing::warn!(lease = %name, "a held lease could not be renewed (will retry): {e}"),
                    }
                }
            })
        };
        Ok(Lease { name: name.to_string(), holder, store, renewer, held, renewed, ttl: Duration::from_secs(ttl_secs as u64) })
    }

    /// Whether the lease is still this holder's. Work that must not happen
    /// twice (an install) checks it first: a lost lease may be held by
    /// another process now.
    pub fn is_held(&self) -> bool {
        // Not only what the renewer noticed: while a renewal hangs on an
        // unreachable store the lease may already have run out for others.
        // A margin of a sixth of it covers the time to act on the answer.
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        self.held.load(std::sync::atomic::Ordering::Acquire) && renewed.elapsed() < self.ttl - self.ttl / 6
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        let (store, name, holder) = (self.store.clone(), std::mem::take(&mut self.name), std::mem::take(&mut self.holder));
        // Released off the caller's thread; if this fails the lease expires.
        let release = move || {
            if let Err(e) = store.lease_release(&name, &holder) {
                tracing::warn!(lease = %name, "releasing a lease failed (it will expire): {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_taken_by_another_holder_is_no_longer_held() {
        let store: Arc<dyn LeaseStore> = Arc::new(SqliteStorage::in_memory().unwrap());
        let lease = Lease::acquire(store.clone(), "evolution/echo", Duration::from_secs(2), None).await.unwrap();
        assert!(lease.is_held());
        // Another host whose clock is past the lease's end takes it.
        assert!(store.lease_acquire("evolution/echo", "elsewhere", 60, now() + 10).unwrap());
        // The holder learns it at its next renewal (every second here).
        let started = Instant::now();
        while lease.is_held() && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!lease.is_held(), "the holder knows it lost the lease");
        drop(lease);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.lease_get("evolution/echo").unwrap().unwrap().holder, "elsewhere", "a lost lease's drop releases nothing");
    }

    /// A store that grants the first acquisition and then hangs.
    struct Unreachable(std::sync::atomic::AtomicBool);

    impl LeaseStore for Unreachable {
        fn lease_acquire(&self, _: &str, _: &str, _: i64, _: i64) -> Result<bool, StorageError> {
            if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(3));
            }
            Ok(true)
        }
        fn lease_release(&self, _: &str, _: &str) -> Result<(), StorageError> {
            Ok(())
        }
        fn lease_get(&self, _: &str) -> Result<Option<LeaseInfo>, StorageError> {
            Ok(None)
        }
    }

    /// While a renewal hangs the lease runs out for everyone else: the
    /// holder must not go on believing it holds it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_whose_renewal_hangs_is_not_held_past_its_time() {
        let store: Arc<dyn LeaseStore> = Arc::new(Unreachable(Default::default()));
        let lease = Lease::acquire(store, "evolution/echo", Duration::from_secs(2), None).await.unwrap();
        assert!(lease.is_held());
        // Renewals are sent every second; the first one hangs.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert!(!lease.is_held(), "two seconds without a renewal: the lease may be another's");
    }
}
