//! Per-call limits and the resource limiter that enforces the memory and
//! table ones. Fuel and deadline are enforced by the store (see `runtime`).
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Fuel metering for an agent. Fuel is deterministic (the evolution engine
/// compares candidates by it) but metered code runs slower, so it is a
/// per-agent choice: `fuel = "off"` runs the agent on the unmetered engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fuel {
    Off,
    Limit(u64),
}

impl<'de> Deserialize<'de> for Fuel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(0) => Err(serde::de::Error::custom("fuel must be > 0, or \"off\"")),
            Raw::N(n) => Ok(Fuel::Limit(n)),
            Raw::S(s) if s == "off" => Ok(Fuel::Off),
            Raw::S(s) => Err(serde::de::Error::custom(format!("fuel must be a number or \"off\", not {s:?}"))),
        }
    }
}

/// Limits as written in config; `None` inherits.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub fuel: Option<Fuel>,
    pub deadline_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub table_elements: Option<u64>,
    pub instances: Option<u64>,
    pub tables: Option<u64>,
    pub memories: Option<u64>,
    pub max_response_bytes: Option<u64>,
    /// Bytes a call may write to the host log, through `log` and
    /// stdout/stderr together, each line counting its message plus a
    /// fixed overhead (the rest is dropped).
    pub max_output_bytes: Option<u64>,
    /// Lines a call may write to the host log (`log` and stdout/stderr).
    pub max_log_lines: Option<u64>,
    /// Bytes one host call may copy out of the guest (its arguments), and
    /// the guest's response to the host; past it the call fails with
    /// `host-call-too-large`.
    pub max_host_call_bytes: Option<u64>,
    /// Timeout of each host-side capability call.
    pub host_call_timeout_ms: Option<u64>,
}

/// The limits one call runs under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub fuel: Fuel,
    pub deadline: Duration,
    pub memory_bytes: u64,
    pub table_elements: u64,
    pub instances: u64,
    pub tables: u64,
    pub memories: u64,
    pub max_response_bytes: u64,
    pub max_output_bytes: u64,
    pub max_log_lines: u64,
    pub max_host_call_bytes: u64,
    pub host_call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Generous for real agent work; a spin loop burns it in about a second.
            fuel: Fuel::Limit(2_000_000_000),
            deadline: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            instances: 16,
            tables: 16,
            memories: 8,
            max_response_bytes: 1 << 20,
            max_output_bytes: 64 << 10,
            max_log_lines: 256,
            // Above every argument a capability accepts (a 1 MiB memory
            // value, a 1 MiB request) with room for their framing; far
            // below wasmtime's own default of 128 MiB per host call.
            max_host_call_bytes: 4 << 20,
            host_call_timeout: Duration::from_secs(2),
        }
    }
}

impl Limits {
    /// These limits with `o`'s set fields applied on top.
    pub fn with(mut self, o: &LimitOverrides) -> Self {
        if let Some(f) = o.fuel {
            self.fuel = f;
        }
        if let Some(ms) = o.deadline_ms {
            self.deadline = Duration::from_millis(ms);
        }
        if let Some(ms) = o.host_call_timeout_ms {
            self.host_call_timeout = Duration::from_millis(ms);
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { self.$f = v; } )* };
        }
        take!(memory_bytes, table_elements, instances, tables, memories, max_response_bytes, max_output_bytes, max_log_lines, max_host_call_bytes);
        self
    }
}

/// Which limit a denied growth hit, so a trap can be reported as the limit
/// that caused it rather than as a generic trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory,
    Table,
    Instances,
}

/// A [`wasmtime::ResourceLimiter`] that denies growth past the configured
/// limits and remembers the first limit that was hit.
pub struct CallLimiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    pub hit: Option<LimitHit>,
}

impl CallLimiter {
    pub fn new(l: &Limits) -> Self {
        let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        CallLimiter {
            memory_bytes: clamp(l.memory_bytes),
            table_elements: clamp(l.table_elements),
            instances: clamp(l.instances),
            tables: clamp(l.tables),
            memories: clamp(l.memories),
            hit: None,
        }
    }

    fn record(&mut self, what: LimitHit) {
        self.hit.get_or_insert(what);
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.record(LimitHit::Memory);
            // Trap rather than return -1 from memory.grow: guests (Rust's
            // allocator included) rarely handle failure, and a trap gives the
            // caller a precise `memory-limit` error instead of a later panic.
            return Err(wasmtime::format_err!("memory limit of {} bytes exceeded", self.memory_bytes));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.record(LimitHit::Table);
            return Err(wasmtime::format_err!("table limit of {} elements exceeded", self.table_elements));
        }
        Ok(true)
    }

    // Growth can also fail below our limits, at the pooling allocator's
    // per-slot capacity. wasmtime would hand the guest -1, and a guest that
    // retries forever burns its whole fuel or deadline; trap at once instead.
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.record(LimitHit::Memory);
        Err(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.record(LimitHit::Table);
        Err(error)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.tables
    }
    fn memories(&self) -> usize {
        self.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn overrides_apply_only_set_fields() {
        let base = Limits::default();
        let o = LimitOverrides { deadline_ms: Some(10), memory_bytes: Some(1024), ..Default::default() };
        let l = base.clone().with(&o);
        assert_eq!(l.deadline, Duration::from_millis(10));
        assert_eq!(l.memory_bytes, 1024);
        assert_eq!(l.fuel, base.fuel);
    }

    #[test]
    fn limiter_denies_growth_past_limit_and_records_it() {
        let mut lim = CallLimiter::new(&Limits { memory_bytes: 1 << 20, ..Limits::default() });
        assert!(lim.memory_growing(0, 1 << 20, None).unwrap());
        assert!(lim.memory_growing(0, (1 << 20) + 1, None).is_err());
        assert_eq!(lim.hit, Some(LimitHit::Memory));
        // The first hit is the one reported.
        let _ = lim.table_growing(0, usize::MAX, None);
        assert_eq!(lim.hit, Some(LimitHit::Memory));
    }

    #[test]
    fn fuel_parses_number_or_off() {
        #[derive(Deserialize)]
        struct T {
            fuel: Fuel,
        }
        assert_eq!(toml::from_str::<T>("fuel = 10").unwrap().fuel, Fuel::Limit(10));
        assert_eq!(toml::from_str::<T>("fuel = \"off\"").unwrap().fuel, Fuel::Off);
        assert!(toml::from_str::<T>("fuel = 0").is_err());
        assert!(toml::from_str::<T>("fuel = \"lots\"").is_err());
    }
}
