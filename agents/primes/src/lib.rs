//! `primes`: counts the primes below N. The evolution demo: correct, but
//! deliberately wasteful (it counts every divisor of every number), so the
//! evolution engine has something to improve. `evolve.toml` holds its
//! benchmark suite and `candidates/` the sources the demo evolves it with.
//!
//! Its source follows the rules for evolvable agents: no `env!` (the
//! version is a literal) and nothing outside `src/`.
use agentkernel_sdk::prelude::*;

pub struct Primes;

/// Largest N accepted.
pub const MAX_N: u64 = 100_000;

/// Whether `k` is prime: no divisor in 2..k (all of them are counted).
pub fn is_prime(k: u64) -> bool {
    k >= 2 && (2..k).filter(|d| k % d == 0).count() == 0
}

/// The primes below `n`: how many, and the largest.
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

/// Parses the request: one whole number up to [`MAX_N`].
pub fn parse(text: &str) -> Result<u64, AgentError> {
    let n: u64 = text.trim().parse().map_err(|_| AgentError::InvalidRequest(format!("expected a whole number, got {:?}", text.trim())))?;
    if n > MAX_N {
        return Err(AgentError::InvalidRequest(format!("N may be at most {MAX_N}")));
    }
    Ok(n)
}

impl Agent for Primes {
    fn describe() -> Manifest {
        Manifest::new("primes", "0.1.0", "Counts the prime numbers below N.")
            .skill(Skill::new("count-primes", "How many primes are below N, and the largest").keywords(["primes", "prime"]))
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let n = parse(&req.text)?;
        let (count, largest) = count_below(n);
        Ok(Response::text(count.to_string()).with_data(&serde_json::json!({"n": n, "count": count, "largest": largest})))
    }
}

export_agent!(Primes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_primes_below_n() {
        assert_eq!(count_below(10), (4, Some(7)));
        assert_eq!(count_below(100), (25, Some(97)));
        assert_eq!(count_below(2), (0, None));
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        assert!(matches!(parse("ten"), Err(AgentError::InvalidRequest(_))));
        assert!(matches!(parse("1000000"), Err(AgentError::InvalidRequest(_))));
        assert_eq!(parse(" 42 ").unwrap(), 42);
    }
}
