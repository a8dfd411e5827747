//! `primes`: counts the primes below N, the first whole number in the
//! request ("how many primes below 1000", or a bare "1000"). The evolution
//! demo: correct, but deliberately wasteful (it counts every divisor of every number), so the
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

/// The first whole number in `text` ("how many primes below 1,000" → 1000),
/// thousands separated by commas allowed; `None` when there is none or it
/// does not fit in a u64.
pub fn first_whole_number(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(u8::is_ascii_digit)?;
    let mut digits = String::new();
    let mut i = start;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            digits.push(bytes[i] as char);
            i += 1;
        } else if bytes[i] == b',' && bytes.len() >= i + 4 && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            && bytes.get(i + 4).is_none_or(|b| !b.is_ascii_digit())
        {
            // "1,000": a thousands separator, not a list ("3,4").
            i += 1;
        } else {
            break;
        }
    }
    digits.parse().ok()
}

/// Parses the request: a bare number or a sentence holding one ("count the
/// primes under 50"); the first whole number is N, at most [`MAX_N`].
pub fn parse(text: &str) -> Result<u64, AgentError> {
    let has_digit = text.bytes().any(|b| b.is_ascii_digit());
    let n = first_whole_number(text).ok_or_else(|| {
        if has_digit {
            AgentError::InvalidRequest(format!("N may be at most {MAX_N}"))
        } else {
            AgentError::InvalidRequest(format!("expected a whole number, e.g. \"how many primes below 1000\", got {:?}", text.trim()))
        }
    })?;
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
        assert!(matches!(parse("99999999999999999999999"), Err(AgentError::InvalidRequest(_))));
    }

    #[test]
    fn finds_the_number_in_a_sentence() {
        assert_eq!(parse("how many primes below 1000").unwrap(), 1000);
        assert_eq!(parse("count the primes under 50, please").unwrap(), 50);
        assert_eq!(parse("How many primes are there below 1,000?").unwrap(), 1000);
        assert_eq!(first_whole_number("primes below 3,4"), Some(3));
        assert_eq!(first_whole_number("no digits"), None);
        assert!(matches!(parse("how many primes below a million"), Err(AgentError::InvalidRequest(_))));
        assert!(matches!(parse("primes below 200000"), Err(AgentError::InvalidRequest(_))));
    }
}
