//! Hostile guest `deep-recursion`: recurses without bound.
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("deep-recursion", "0.1.0", "recurses without bound.")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        // "shadow": big frames that live on Rust's shadow stack in linear
        // memory; otherwise small frames that exhaust the wasm call stack.
        let depth = if req.text == "shadow" { dive_shadow(1) } else { dive(1) };
        Ok(Response::text(format!("{depth}")))
    }
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn dive(n: u64) -> u64 {
    core::hint::black_box(dive(core::hint::black_box(n + 1))) + 1
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn dive_shadow(n: u64) -> u64 {
    // The padding keeps frames large and black_box prevents tail calls.
    let pad = core::hint::black_box([n; 32]);
    dive_shadow(n + 1) + pad[(n % 32) as usize]
}

export_agent!(Hostile);
