//! The one place storage work leaves the async executor: every call of a
//! (synchronous) backend from async code runs on the blocking pool under a
//! timeout, so a slow disk or a locked database is an error the caller
//! sees, never a stalled executor thread or a request without end.
use std::time::Duration;

use crate::StorageError;

/// How long a storage call may take when its caller has no tighter bound.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `op` on the blocking pool; [`StorageError::Timeout`] after `timeout`
/// (the operation itself then finishes or fails on its own: SQLite
/// statements are atomic, and writes that must not land late go through a
/// [`CommitGate`](crate::CommitGate)).
pub async fn call<T: Send + 'static>(
    timeout: Duration,
    op: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(op)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(StorageError::Backend(format!("storage task failed: {join}"))),
        Err(_) => Err(StorageError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_call_is_a_timeout_and_a_panic_an_error() {
        let slow = call(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        });
        assert!(matches!(slow.await, Err(StorageError::Timeout(_))));
        let panicked = call::<()>(Duration::from_secs(5), || panic!("backend bug")).await;
        assert!(matches!(panicked, Err(StorageError::Backend(m)) if m.contains("storage task failed")));
        assert_eq!(call(Duration::from_secs(5), || Ok(7)).await.unwrap(), 7);
    }
}
