//! Hostile guest `spin-loop`: spins forever in handle(). Given a number it
//! stops after that many iterations instead, which makes it the CPU-bound
//! workload of the fuel benchmark.
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("spin-loop", "0.1.0", "spins forever in handle() (or N iterations).")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let iterations: u64 = req.text.trim().parse().unwrap_or(u64::MAX);
        let mut n: u64 = req.text.len() as u64;
        let mut i = 0;
        while i < iterations {
            n = core::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
            i += 1;
        }
        Ok(Response::text(n.to_string()))
    }
}

export_agent!(Hostile);
