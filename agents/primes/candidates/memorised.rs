//! `primes` that looks up the answers to the suite's visible cases and
//! computes anything else exactly as the incumbent does. Correct on every
//! case, held-out ones included, and far cheaper overall (below-2000 is
//! visible and expensive), but no cheaper on the cases it was not shown:
//! rejected, because the fuel saving must hold on the held-out cases alone.
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

/// The visible cases' answers: (n, count, largest).
const KNOWN: [(u64, u64, u64); 4] = [(10, 4, 7), (30, 10, 29), (100, 25, 97), (2000, 303, 1999)];

fn is_prime(k: u64) -> bool {
    k >= 2 && (2..k).filter(|d| k % d == 0).count() == 0
}

pub fn count_below(n: u64) -> (u64, Option<u64>) {
    if let Some(&(_, count, largest)) = KNOWN.iter().find(|(m, _, _)| *m == n) {
        return (count, Some(largest));
    }
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
