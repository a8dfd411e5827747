//! LISTEN on a connection of its own. Pooled connections cannot carry it
//! (the pool drives them and drops what the server sends unasked), so a
//! listener opens one more connection from the backend's configuration,
//! on the backend's runtime, and re-opens it when it breaks.
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::PostgresStorage;

/// Notifications buffered per listener; when full, more are dropped (a
/// notification only wakes its reader, which then reads the store).
pub const LISTEN_BUFFER: usize = 64;
/// Longest wait before reconnecting a broken listening connection.
pub const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

impl PostgresStorage {
    /// Listens on `channel` (letters, digits and `_` only) until the
    /// receiver is dropped: each notification's payload, and an empty
    /// string each time the connection is (re-)established, since
    /// notifications sent while it was down are lost.
    pub fn listen(&self, channel: &str) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(LISTEN_BUFFER);
        if channel.is_empty() || !channel.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            tracing::error!(channel, "not a channel name this listener takes; nothing will be notified");
            return rx;
        }
        let (config, channel) = (self.config.clone(), channel.to_string());
        self.handle.spawn(async move {
            let mut wait = Duration::from_millis(200);
            while !tx.is_closed() {
                match listen_once(&config, &channel, &tx).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(%channel, "listening connection lost, reconnecting in {wait:?}: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = tx.closed() => return,
                        }
                        wait = (wait * 2).min(MAX_RECONNECT_WAIT);
                    }
                }
            }
        });
        rx
    }
}

/// One connection's life: `Ok` when the receiver went away, `Err` when
/// the connection broke.
async fn listen_once(config: &tokio_postgres::Config, channel: &str, tx: &mpsc::Sender<String>) -> Result<(), String> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
    let forward = tx.clone();
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = forward.try_send(n.payload().to_string()) {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the server closed the connection".to_string()),
            }
        }
    });
    let statement = format!("LISTEN \"{channel}\"");
    let listening = tokio::select! {
        r = client.batch_execute(&statement) => r.map_err(|e| e.to_string()),
        r = &mut driver => return r.unwrap_or_else(|e| Err(e.to_string())),
    };
    if let Err(e) = listening {
        driver.abort();
        return Err(e);
    }
    let _ = tx.try_send(String::new());
    let result = tokio::select! {
        r = &mut driver => r.unwrap_or_else(|e| Err(e.to_string())),
        _ = tx.closed() => Ok(()),
    };
    driver.abort();
    drop(client);
    result
}
