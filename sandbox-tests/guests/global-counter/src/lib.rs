//! Guest `global-counter`: counts calls in a global. Every call runs in a
//! fresh instance, so the host must make it answer 1 every time.
use std::sync::atomic::{AtomicU64, Ordering};

use agentkernel_sdk::prelude::*;

static CALLS: AtomicU64 = AtomicU64::new(0);

struct Counter;

impl Agent for Counter {
    fn describe() -> Manifest {
        Manifest::new("global-counter", "0.1.0", "Counts calls in a global variable.")
    }

    fn handle(_req: Request) -> Result<Response, AgentError> {
        let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Response::text(n.to_string()))
    }
}

export_agent!(Counter);
