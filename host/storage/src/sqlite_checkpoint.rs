//! Checkpoints of a file database's WAL, on a thread and a connection of
//! their own.
//!
//! Why: SQLite checkpoints on the connection whose COMMIT takes the WAL past
//! `wal_autocheckpoint` pages, so every thousandth page or so one writer's
//! commit also copied the WAL into the database and fsynced both, and every
//! caller queued behind that writer waited for it (~12% of the chat route's
//! profile, most of its p99). A PASSIVE checkpoint here does the same work
//! beside the writers, without blocking them.
//!
//! Bound: the writers keep an automatic checkpoint at [`BACKSTOP_PAGES`], so
//! the WAL stays bounded if this thread falls behind, and the WAL file is
//! truncated back to [`WAL_SIZE_LIMIT`] after it is reset.
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use crate::StorageError;

/// How often the WAL is checkpointed while it is being written: small
/// checkpoints often cost the writers least (measured: 2 ms gave the chat
/// route p99 9.5 ms, 25 ms 16 ms, 100 ms 25 ms).
pub const BUSY_INTERVAL: Duration = Duration::from_millis(2);
/// ... and at most this long apart while nothing is written.
pub const IDLE_INTERVAL: Duration = Duration::from_millis(200);
/// WAL pages past which a writer's COMMIT checkpoints itself (the
/// checkpointer stalled or cannot keep up): 32 MiB of 4 KiB pages.
pub const BACKSTOP_PAGES: u32 = 8192;
/// Bytes the WAL file is truncated to once it is reset.
pub const WAL_SIZE_LIMIT: u64 = 64 << 20;

pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// `synchronous` is the writers' setting: a checkpoint syncs as they do.
    pub(crate) fn start(path: &Path, synchronous: &str, busy_timeout: Duration) -> Result<Self, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        conn.execute_batch(&format!("PRAGMA synchronous={synchronous};"))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut pause = BUSY_INTERVAL;
                let mut last = None;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(pause) {
                    // PASSIVE: copies what no reader still needs and never
                    // waits for writers; what it leaves is copied next time.
                    // It answers (busy, frames in the WAL, frames copied).
                    let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)));
                    match frames {
                        // Nothing written since the last look: check less often.
                        Ok((log, copied)) if log == copied && last == Some(log) => pause = (pause * 2).min(IDLE_INTERVAL),
                        Ok((log, _)) => {
                            last = Some(log);
                            pause = BUSY_INTERVAL;
                        }
                        Err(e) => {
                            tracing::warn!("WAL checkpoint failed: {e}");
                            pause = IDLE_INTERVAL;
                        }
                    }
                }
            })
            .map_err(|e| StorageError::Backend(format!("could not start the SQLite checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread) })
    }

    /// What the writers' connection is set to beside this thread.
    pub(crate) fn writer_pragmas() -> String {
        format!("PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}; PRAGMA journal_size_limit={WAL_SIZE_LIMIT};")
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::Storage;
    use crate::sqlite::SqliteStorage;

    /// Writes stay in the WAL until a checkpoint copies them into the
    /// database file; the writers only checkpoint themselves past 32 MiB, so
    /// a file that grows with 2 MiB written shows this thread did it.
    #[test]
    fn the_wal_is_copied_into_the_database_without_a_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let storage = SqliteStorage::open(&path).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let value = vec![7u8; 8 << 10];
        for i in 0..256 {
            storage.seed("ns", &format!("k{i}"), &value).unwrap();
        }
        let deadline = Instant::now() + super::IDLE_INTERVAL * 50;
        loop {
            let len = std::fs::metadata(&path).unwrap().len();
            if len >= before + (2 << 20) {
                break;
            }
            assert!(Instant::now() < deadline, "the database file stayed at {len} bytes (was {before}): nothing checkpointed the WAL");
            std::thread::sleep(super::BUSY_INTERVAL * 5);
        }
        // What was copied is what was written.
        assert_eq!(storage.kv_get("ns", "k255").unwrap(), Some(value));
    }
}
