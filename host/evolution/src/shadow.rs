//! The shadow stage: before a swap, the winner answers a sample of real
//! recent requests beside the incumbent.
//!
//! The suite is what a candidate is judged by, so a candidate fitted to it
//! (or one that behaves differently when it believes it is benchmarked)
//! can pass it and still answer real users differently. Here both versions
//! answer requests users actually sent the agent (the chat transcripts),
//! each in a fresh benchmark instance with doubled capabilities (empty
//! memory, the scripted LLM with no script, the run's environment), and
//! any disagreement the suite does not justify blocks the swap. A
//! disagreement is justified when the suite has a case with that very
//! request which the winner passes and the incumbent fails (the incumbent
//! was wrong there). Nothing of this reaches a generator's prompt.
use serde::{Deserialize, Serialize};

use super::bench::{Bench, BenchResult};
use super::suite::Case;
use agentkernel_runtime::LoadedAgent;

/// Most recent requests compared.
pub const SAMPLE: u32 = 32;
/// Longest excerpt of a request or answer kept in the report.
pub const EXCERPT_CHARS: usize = 200;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShadowReport {
    /// Recent requests both versions answered.
    pub sampled: usize,
    pub agreed: usize,
    pub disagreements: Vec<Disagreement>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Disagreement {
    /// Excerpts: the request, and each version's answer (text, or `error: CODE`).
    pub request: String,
    pub incumbent: String,
    pub candidate: String,
    /// The suite case that shows the incumbent was wrong, if any.
    pub justified_by: Option<String>,
}

impl Disagreement {
    /// A disagreement with excerpts of the request and both answers.
    pub fn new(request: &str, incumbent: &str, candidate: &str, justified_by: Option<String>) -> Self {
        Disagreement { request: excerpt(request), incumbent: excerpt(incumbent), candidate: excerpt(candidate), justified_by }
    }
}

impl ShadowReport {
    /// Whether a disagreement the suite cannot justify was found.
    pub fn blocks(&self) -> bool {
        self.disagreements.iter().any(|d| d.justified_by.is_none())
    }

    pub fn unjustified(&self) -> usize {
        self.disagreements.iter().filter(|d| d.justified_by.is_none()).count()
    }
}

/// The results the suite gave each version, to justify disagreements.
pub struct SuiteResults<'a> {
    pub cases: &'a [Case],
    pub incumbent: &'a BenchResult,
    pub candidate: Option<&'a BenchResult>,
}

impl SuiteResults<'_> {
    fn justification(&self, request: &str) -> Option<String> {
        let candidate = self.candidate?;
        self.cases.iter().filter(|c| c.request == request).find_map(|c| {
            let inc_failed = self.incumbent.case(&c.name).is_some_and(|r| !r.passed);
            let cand_passed = candidate.case(&c.name).is_some_and(|r| r.passed);
            (inc_failed && cand_passed).then(|| c.name.clone())
        })
    }
}

/// Both versions answer every request in `requests`; their answers are compared.
pub async fn compare(
    bench: &Bench,
    incumbent: &LoadedAgent,
    candidate: &LoadedAgent,
    requests: &[String],
    suite: &SuiteResults<'_>,
) -> ShadowReport {
    let mut report = ShadowReport::default();
    for (i, request) in requests.iter().enumerate() {
        let before = bench.answer(incumbent, i, request).await;
        let after = bench.answer(candidate, i, request).await;
        report.sampled += 1;
        if before == after {
            report.agreed += 1;
            continue;
        }
        report.disagreements.push(Disagreement::new(request, &before, &after, suite.justification(request)));
    }
    report
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(EXCERPT_CHARS).collect();
    if s.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unjustified_disagreements_block() {
        let d = |justified_by: Option<&str>| Disagreement {
            request: "r".into(),
            incumbent: "a".into(),
            candidate: "b".into(),
            justified_by: justified_by.map(str::to_string),
        };
        let mut r = ShadowReport { sampled: 2, agreed: 1, disagreements: vec![d(Some("case"))] };
        assert!(!r.blocks());
        r.disagreements.push(d(None));
        assert!(r.blocks());
        assert_eq!(r.unjustified(), 1);
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), EXCERPT_CHARS + 1);
    }
}
