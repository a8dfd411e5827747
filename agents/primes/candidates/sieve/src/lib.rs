//! `primes` with a sieve of Eratosthenes (in its own module).
use agentkernel_sdk::prelude::*;

mod sieve;

pub struct Primes;

pub const MAX_N: u64 = 100_000;

/// The first whole number in `text` ("how many primes below 1,000" → 1000),
/// thousands separated by commas allowed; `None` when there is none or it
/// does not fit in a u64.
fn first_whole_number(text: &str) -> Option<u64> {
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
fn parse(text: &str) -> Result<u64, AgentError> {
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
