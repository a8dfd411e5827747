//! Hostile guest `memory-bomb`: allocates until something stops it.
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("memory-bomb", "0.1.0", "allocates until something stops it.")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so the memory is really committed.
            hoard.push(vec![req.text.len() as u8 + 1; 1 << 20]);
            core::hint::black_box(&hoard);
        }
    }
}

export_agent!(Hostile);
