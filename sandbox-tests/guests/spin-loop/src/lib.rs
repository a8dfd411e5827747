//! Hostile guest `spin-loop`: spins forever in handle().
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("spin-loop", "0.1.0", "spins forever in handle().")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let mut n: u64 = req.text.len() as u64;
        loop {
            n = core::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_agent!(Hostile);
