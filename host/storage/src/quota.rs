//! What a write may do (quotas), what it asks for (`KvOp`) and why it can be
//! refused (`WriteRefused`): backend-neutral, so every backend checks the
//! same rules inside its own transaction.
use serde::Serialize;

use super::NamespaceUsage;

/// Bounds on a namespace's key-value data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    pub max_keys: u64,
    /// Keys + values, in bytes.
    pub max_bytes: u64,
}

impl KvQuota {
    /// No bound (seeding test and benchmark databases).
    pub const UNLIMITED: KvQuota = KvQuota { max_keys: u64::MAX, max_bytes: u64::MAX };

    /// Refuses a write that takes usage past a bound *and* grows it: a
    /// namespace already over a lowered quota may still shrink.
    pub fn check(&self, before: NamespaceUsage, after: NamespaceUsage) -> Result<(), WriteRefused> {
        if after.keys > self.max_keys && after.keys > before.keys {
            return Err(WriteRefused::Quota(format!("namespace may hold {} keys", self.max_keys)));
        }
        if after.bytes > self.max_bytes && after.bytes > before.bytes {
            return Err(WriteRefused::Quota(format!(
                "namespace may hold {} bytes; this write would make it {}",
                self.max_bytes, after.bytes
            )));
        }
        Ok(())
    }
}

/// Bounds on a namespace's conversation history. A session keeps at most
/// `session_turns` turns and `session_bytes` bytes (its oldest turns are
/// dropped to make room); the whole namespace at most `namespace_turns`
/// and `namespace_bytes` (past that, appends are refused: dropping other
/// sessions' turns would let one user erase another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuota {
    pub session_turns: u64,
    pub session_bytes: u64,
    pub namespace_turns: u64,
    pub namespace_bytes: u64,
}

impl HistoryQuota {
    pub const UNLIMITED: HistoryQuota =
        HistoryQuota { session_turns: u64::MAX, session_bytes: u64::MAX, namespace_turns: u64::MAX, namespace_bytes: u64::MAX };
}

/// Turns and bytes (turn contents) of history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HistoryUsage {
    pub turns: u64,
    pub bytes: u64,
}

/// One step of an atomic key-value write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    Set { key: String, value: Vec<u8> },
    Delete { key: String },
    /// Sets `key` to `new` (`None`: deletes it) if it holds `expected`
    /// (`None`: absent); otherwise changes nothing.
    CompareAndSwap { key: String, expected: Option<Vec<u8>>, new: Option<Vec<u8>> },
    /// Adds `delta` to the decimal integer under `key` (absent counts as 0).
    Increment { key: String, delta: i64 },
    /// Refuses the whole batch with [`WriteRefused::Conflict`] unless `key`
    /// holds `value` (`None`: absent).
    Expect { key: String, value: Option<Vec<u8>> },
}

impl KvOp {
    /// The bytes the step carries (keys and values).
    pub fn size(&self) -> usize {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
        match self {
            KvOp::Set { key, value } => key.len() + value.len(),
            KvOp::Delete { key } | KvOp::Increment { key, .. } => key.len(),
            KvOp::CompareAndSwap { key, expected, new } => key.len() + len(expected) + len(new),
            KvOp::Expect { key, value } => key.len() + len(value),
        }
    }
}

/// What each [`KvOp`] did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutcome {
    Written,
    /// Whether the key existed.
    Deleted(bool),
    /// Whether the comparison held (and the swap happened).
    Swapped(bool),
    /// The counter's new value.
    Counter(i64),
    Matched,
}

/// Why a write was refused. A refused write changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefused {
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The stored value does not suit the operation (e.g. increment of a
    /// value that is not a decimal integer, or overflow).
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// An `Expect` step did not hold.
    #[error("conflict: {0}")]
    Conflict(String),
}

/// The counter stored under a key: decimal text, so it reads as a string too.
pub(crate) fn parse_counter(key: &str, stored: Option<&[u8]>) -> Result<i64, WriteRefused> {
    let Some(bytes) = stored else { return Ok(0) };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| WriteRefused::InvalidValue(format!("`{key}` does not hold a decimal integer")))
}

pub(crate) fn add_to_counter(key: &str, current: i64, delta: i64) -> Result<i64, WriteRefused> {
    current
        .checked_add(delta)
        .ok_or_else(|| WriteRefused::InvalidValue(format!("`{key}`: {current} + {delta} overflows a 64-bit integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_refuses_growth_past_a_bound_but_allows_shrinking() {
        let q = KvQuota { max_keys: 2, max_bytes: 10 };
        let u = |keys, bytes| NamespaceUsage { keys, bytes };
        assert!(q.check(u(1, 5), u(2, 10)).is_ok());
        assert!(matches!(q.check(u(2, 5), u(3, 6)), Err(WriteRefused::Quota(_))));
        assert!(matches!(q.check(u(1, 5), u(1, 11)), Err(WriteRefused::Quota(_))));
        assert!(q.check(u(5, 50), u(5, 40)).is_ok(), "over a lowered quota, shrinking is allowed");
    }

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter("k", None), Ok(0));
        assert_eq!(parse_counter("k", Some(b"-12")), Ok(-12));
        assert!(matches!(parse_counter("k", Some(b"x")), Err(WriteRefused::InvalidValue(_))));
        assert!(matches!(add_to_counter("k", i64::MAX, 1), Err(WriteRefused::InvalidValue(_))));
    }
}
