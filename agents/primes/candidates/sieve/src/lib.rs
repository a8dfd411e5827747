//! `primes` with a sieve of Eratosthenes (in its own module).
use agentkernel_sdk::prelude::*;

mod sieve;

pub struct Primes;

pub const MAX_N: u64 = 100_000;

fn parse(text: &str) -> Result<u64, AgentError> {
    let n: u64 = text.trim().parse().map_err(|_| AgentError::InvalidRequest(format!("expected a whole number, got {:?}", text.trim())))?;
    if n > MAX_N {
        return Err(AgentError::InvalidRequest(format!("N may be at most {MAX_N}")));
    }
    Ok(n)
}

impl Agent for Primes {
    fn describe() -> Manifest {
        Manifest::new("primes", "0.2.0", "Counts the prime numbers below N.")
            .skill(Skill::new("count-primes", "How many primes are below N, and the largest").keywords(["primes", "prime"]))
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let n = parse(&req.text)?;
        let (count, largest) = sieve::count_below(n as usize);
        Ok(Response::text(count.to_string()).with_data(&serde_json::json!({"n": n, "count": count, "largest": largest})))
    }
}

export_agent!(Primes);
