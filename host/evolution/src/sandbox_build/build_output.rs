//! A build's output, kept bounded while it streams.
//!
//! A candidate decides how much its build prints (a warning per unused
//! variable, thousands of them): the host reads cargo's stdout and stderr
//! as they come and keeps only a head and a tail, counting what it drops,
//! so its memory never holds more than [`MAX_LOG_BYTES`] of it.
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes of build output kept (head and tail together).
pub const MAX_LOG_BYTES: usize = 32 * 1024;
/// Of those, the first bytes: what started going wrong. The rest is the
/// tail, where cargo prints the errors that stopped the build.
const HEAD_BYTES: usize = 8 * 1024;

/// The head and tail of a stream, and how many bytes between were dropped.
#[derive(Debug, Default)]
pub struct BoundedLog {
    head: Vec<u8>,
    /// A ring of the last bytes: `tail_start` is its oldest byte once full.
    tail: Vec<u8>,
    tail_start: usize,
    dropped: u64,
}

impl BoundedLog {
    pub fn push(&mut self, mut bytes: &[u8]) {
        let head_room = HEAD_BYTES - self.head.len();
        if head_room > 0 {
            let n = head_room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        let tail_max = MAX_LOG_BYTES - HEAD_BYTES;
        for &b in bytes {
            if self.tail.len() < tail_max {
                self.tail.push(b);
            } else {
                self.tail[self.tail_start] = b;
                self.tail_start = (self.tail_start + 1) % tail_max;
                self.dropped += 1;
            }
        }
    }

    /// Bytes dropped between head and tail.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept output as text, with a line saying how much was dropped.
    pub fn into_text(self) -> String {
        let mut tail = self.tail;
        tail.rotate_left(self.tail_start);
        let head = String::from_utf8_lossy(&self.head);
        let tail = String::from_utf8_lossy(&tail);
        if self.dropped == 0 {
            format!("{head}{tail}")
        } else {
            format!("{head}\n[… {} bytes of build output dropped …]\n{tail}", self.dropped)
        }
    }
}

/// Reads both pipes to their end into one [`BoundedLog`] (interleaved in
/// the order chunks arrive).
pub async fn capture(stdout: impl AsyncRead + Unpin, stderr: impl AsyncRead + Unpin) -> std::io::Result<BoundedLog> {
    let mut log = BoundedLog::default();
    let (mut out, mut err) = (Some(stdout), Some(stderr));
    let (mut out_buf, mut err_buf) = (vec![0u8; 8192], vec![0u8; 8192]);
    while out.is_some() || err.is_some() {
        tokio::select! {
            n = async { out.as_mut().expect("guarded").read(&mut out_buf).await }, if out.is_some() => {
                match n? {
                    0 => out = None,
                    n => log.push(&out_buf[..n]),
                }
            }
            n = async { err.as_mut().expect("guarded").read(&mut err_buf).await }, if err.is_some() => {
                match n? {
                    0 => err = None,
                    n => log.push(&err_buf[..n]),
                }
            }
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut log = BoundedLog::default();
        log.push(b"warning: a\n");
        log.push(b"error: b\n");
        assert_eq!(log.dropped(), 0);
        assert_eq!(log.into_text(), "warning: a\nerror: b\n");
    }

    #[test]
    fn long_output_keeps_its_head_and_tail_and_counts_the_rest() {
        let mut log = BoundedLog::default();
        log.push(b"first line\n");
        for i in 0..100_000 {
            log.push(format!("warning: unused variable `v{i}`\n").as_bytes());
        }
        log.push(b"error: the last word\n");
        let dropped = log.dropped();
        let text = log.into_text();
        assert!(text.starts_with("first line\n"), "{}", &text[..100]);
        assert!(text.ends_with("error: the last word\n"));
        assert!(text.contains(&format!("[… {dropped} bytes of build output dropped …]")));
        assert!(text.len() <= MAX_LOG_BYTES + 64, "{}", text.len());
        assert!(dropped > 3_000_000, "{dropped}");
    }

    #[tokio::test]
    async fn capture_reads_both_pipes_to_the_end() {
        let out: &[u8] = b"out\n";
        let err = vec![b'e'; 100_000];
        let log = capture(out, err.as_slice()).await.unwrap();
        // Both pipes were read to their end: every byte is kept or counted
        // (where stdout's line lands depends on how the reads interleave).
        assert_eq!(log.dropped(), 100_000 + 4 - MAX_LOG_BYTES as u64);
    }
}
