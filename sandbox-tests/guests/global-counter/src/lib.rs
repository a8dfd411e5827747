//! Guest `global-counter`: counts calls in a global and scribbles over
//! memory it grows. Every call runs in a fresh instance, so the host must
//! make it answer 1 every time: the pooled slot it reuses is reset, the
//! pages it dirtied included (found by a page scan or zeroed wholesale).
use std::sync::atomic::{AtomicU64, Ordering};

use agentkernel_sdk::prelude::*;

static CALLS: AtomicU64 = AtomicU64::new(0);

/// Wasm pages grown and written each call: 4 MiB, past what the host keeps
/// resident, so both of its ways of resetting a slot are exercised.
const GROWN_PAGES: usize = 64;
const WASM_PAGE: usize = 65536;

struct Counter;

/// Grows linear memory, checks the new pages read as zero (the Wasm spec's
/// promise; a previous instance in the same slot wrote there), then writes
/// a mark on every 4 KiB of them for the next instance to find.
fn grown_memory_is_clean() -> Result<(), String> {
    let first = core::arch::wasm32::memory_grow(0, GROWN_PAGES);
    if first == usize::MAX {
        return Err("memory.grow failed".into());
    }
    let start = first * WASM_PAGE;
    for offset in (start..start + GROWN_PAGES * WASM_PAGE).step_by(4096) {
        // SAFETY: the region was just grown and belongs to no allocation;
        // volatile so the reads and writes happen as written.
        unsafe {
            let word = offset as *mut u64;
            let seen = word.read_volatile();
            if seen != 0 {
                return Err(format!("dirty: {seen:#x} at {offset:#x}"));
            }
            word.write_volatile(0x5eed_0000_0000_0000 | offset as u64);
        }
    }
    Ok(())
}

impl Agent for Counter {
    fn describe() -> Manifest {
        Manifest::new("global-counter", "0.1.0", "Counts calls in a global variable.")
    }

    fn handle(_req: Request) -> Result<Response, AgentError> {
        let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        grown_memory_is_clean().map_err(AgentError::Failed)?;
        Ok(Response::text(n.to_string()))
    }
}

export_agent!(Counter);
