//! Hostile: `debugger_visualizer` makes rustc read a file and embed it in the output.
#![debugger_visualizer(gdb_script_file = "../../../../../../../etc/passwd")]
use agentkernel_sdk::prelude::*;

pub struct Primes;

pub const MAX_N: u64 = 100_000;

fn parse(text: &str) -> Result<u64, AgentError> {
    let n: u64 = text.trim().parse().map_err(|_| AgentError::InvalidRequest(format!("expected a whole number, got {:?}", text.trim())))?;
    if n > MAX_N {
        return Err(AgentError::InvalidRequest(format!("N may be at most {MAX_N}")));
    }
    Ok(n)
}

fn is_prime(k: u64) -> bool {
    if k < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= k {
        if k % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

pub fn count_below(n: u64) -> (u64, Option<u64>) {
    let mut count = 0;
    let mut largest = None;
    for k in 2..n {
        if is_prime(k) {
            count += 1;
            largest = Some(k);
        }
    }
    (count, largest)
}

impl Agent for Primes {
    fn describe() -> Manifest {
        Manifest::new("primes", "0.2.0", "Counts the prime numbers below N.")
            .skill(Skill::new("count-primes", "How many primes are below N, and the largest").keywords(["primes", "prime"]))
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let n = parse(&req.text)?;
        let (count, largest) = count_below(n);
        Ok(Response::text(count.to_string()).with_data(&serde_json::json!({"n": n, "count": count, "largest": largest})))
    }
}

export_agent!(Primes);

