//! Reading an experiment request by rule: "compare primes 1a2b3c against
//! 4d5e6f", "run an experiment on primes: v1 vs v2", "compare versions abc
//! and def of primes on 20 requests".

/// Recorded requests replayed when the request names no number.
pub const DEFAULT_REQUESTS: u32 = 16;
/// The host replays at most this many.
pub const MAX_REQUESTS: u32 = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    pub agent: String,
    pub baseline: String,
    pub candidate: String,
    pub max_requests: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Run(Experiment),
    /// A comparison was asked for, but a part is missing (said in words).
    Incomplete(String),
    History,
    Help,
}

const SEPARATORS: &[&str] = &["against", "vs", "versus", "and", "to", "with"];
const AGENT_MARKERS: &[&str] = &["on", "of", "for"];
const VERBS: &[&str] = &["compare", "comparing", "experiment", "test", "benchmark", "evaluate"];
const NOT_AGENTS: &[&str] = &[
    "the", "a", "an", "agent", "versions", "version", "recorded", "traffic", "requests", "request", "between", "run", "last", "its", "my",
];

/// Agent names as the host accepts them.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '.' || c == '_'))
        .map(|t| t.trim_matches('.'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// A number of requests: `20 requests`, `last 20`, `on 20 transcripts`.
fn requests_wanted(lower: &[String]) -> Option<u32> {
    lower.windows(2).find_map(|w| {
        let n: u32 = w[0].parse().ok()?;
        ["requests", "request", "transcripts", "samples", "calls"].contains(&w[1].as_str()).then_some(n)
    }).or_else(|| lower.windows(2).find_map(|w| (w[0] == "last").then(|| w[1].parse().ok()).flatten()))
}

/// Classifies and reads a request.
pub fn parse(text: &str) -> Intent {
    let lower_text = text.to_lowercase();
    if ["what experiments", "past experiments", "previous experiments", "experiments have you", "experiment history", "experiments so far"]
        .iter()
        .any(|p| lower_text.contains(p))
    {
        return Intent::History;
    }
    let original = tokens(text);
    let lower: Vec<String> = original.iter().map(|t| t.to_lowercase()).collect();
    let asked = lower.iter().any(|t| VERBS.contains(&t.as_str()));
    let separator = (1..lower.len().saturating_sub(1)).find(|&i| SEPARATORS.contains(&lower[i].as_str()));
    let Some(sep) = separator.filter(|_| asked) else {
        return if asked {
            Intent::Incomplete("two versions to compare (\"v1 vs v2\", lineage hashes or unique prefixes)".into())
        } else {
            Intent::Help
        };
    };
    let (baseline, candidate) = (original[sep - 1].clone(), original[sep + 1].clone());
    let is_candidate_agent = |t: &String| {
        valid_name(t) && t.parse::<u64>().is_err() && !NOT_AGENTS.contains(&t.as_str()) && !SEPARATORS.contains(&t.as_str()) && !VERBS.contains(&t.as_str()) && t != &baseline.to_lowercase() && t != &candidate.to_lowercase()
    };
    let after = |markers: &[&str]| {
        lower.iter().enumerate().filter(|(_, t)| markers.contains(&t.as_str())).find_map(|(i, _)| lower[i + 1..].iter().take(3).find(|t| is_candidate_agent(t)).cloned())
    };
    let agent = after(AGENT_MARKERS).or_else(|| after(VERBS));
    let Some(agent) = agent else {
        return Intent::Incomplete("which agent the versions belong to (\"compare primes v1 vs v2\")".into());
    };
    let max_requests = requests_wanted(&lower).unwrap_or(DEFAULT_REQUESTS).clamp(1, MAX_REQUESTS);
    Intent::Run(Experiment { agent, baseline, candidate, max_requests })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(agent: &str, baseline: &str, candidate: &str, n: u32) -> Intent {
        Intent::Run(Experiment { agent: agent.into(), baseline: baseline.into(), candidate: candidate.into(), max_requests: n })
    }

    #[test]
    fn reads_the_usual_phrasings() {
        assert_eq!(parse("compare primes 1a2b3c against 4d5e6f"), run("primes", "1a2b3c", "4d5e6f", 16));
        assert_eq!(parse("run an experiment on primes: v1 vs v2"), run("primes", "v1", "v2", 16));
        assert_eq!(parse("Compare versions abc and def of primes on 20 requests"), run("primes", "abc", "def", 20));
        assert_eq!(parse("compare 1a2b versus 3c4d for summarizer, last 100"), run("summarizer", "1a2b", "3c4d", 32));
    }

    #[test]
    fn missing_parts_and_other_intents() {
        assert!(matches!(parse("compare primes"), Intent::Incomplete(m) if m.contains("two versions")));
        assert!(matches!(parse("compare v1 vs v2"), Intent::Incomplete(m) if m.contains("which agent")));
        assert_eq!(parse("what experiments have you run?"), Intent::History);
        assert_eq!(parse("hello"), Intent::Help);
    }
}
