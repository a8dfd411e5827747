//! `evolve.toml`: an agent's benchmark suite, kept next to its source.
//!
//! ```toml
//! [objective]
//! metric = "fuel"        # or "wall-time" (noisy: compared over `repeats` runs)
//! threshold = 0.15       # a candidate must cost at least 15% less
//!
//! [limits]               # what each benchmark call may use
//! fuel = 500_000_000
//! deadline_ms = 5000
//! memory_bytes = 33554432
//!
//! [[case]]
//! name = "small"
//! request = "10"
//! memory = { greeting = "hello" }     # seeded into the agent's namespace
//! llm = ["scripted reply 1"]          # answers to the agent's LLM calls, in order
//! expect = { equals = "4", json = { "/count" = 4 } }
//!
//! [[case]]
//! name = "big"
//! request = "2000"
//! held_out = true                     # never shown to a generator
//! expect = { contains = ["303"] }
//! ```
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("invalid benchmark suite {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Total fuel over all cases: deterministic, the default.
    #[default]
    Fuel,
    /// Total wall time over all cases, compared over repeated runs.
    WallTime,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    #[serde(default)]
    pub metric: Metric,
    /// Least relative improvement that wins (0.15 = 15% less).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Runs per case when the metric is wall time.
    #[serde(default = "default_repeats")]
    pub repeats: u32,
}

fn default_threshold() -> f64 {
    0.15
}
fn default_repeats() -> u32 {
    3
}

impl Default for Objective {
    fn default() -> Self {
        Objective { metric: Metric::Fuel, threshold: default_threshold(), repeats: default_repeats() }
    }
}

/// Limits of each benchmark call. Fuel is always metered here.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BenchLimits {
    #[serde(default = "default_fuel")]
    pub fuel: u64,
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    #[serde(default = "default_memory")]
    pub memory_bytes: u64,
}

fn default_fuel() -> u64 {
    500_000_000
}
fn default_deadline() -> u64 {
    5_000
}
fn default_memory() -> u64 {
    32 << 20
}

impl Default for BenchLimits {
    fn default() -> Self {
        BenchLimits { fuel: default_fuel(), deadline_ms: default_deadline(), memory_bytes: default_memory() }
    }
}

/// What a response must satisfy. Every given check must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The response text, exactly (surrounding whitespace ignored).
    pub equals: Option<String>,
    /// Substrings the text must contain.
    #[serde(default)]
    pub contains: Vec<String>,
    /// A regular expression the text (surrounding whitespace ignored) must match.
    pub regex: Option<String>,
    /// JSON pointer into the response `data` → the value expected there.
    #[serde(default)]
    pub json: BTreeMap<String, serde_json::Value>,
    /// The call must fail with this error code (e.g. `agent-error`).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The request text.
    pub request: String,
    #[serde(default = "default_session")]
    pub session: String,
    /// The request's `context` (any JSON value).
    pub context: Option<serde_json::Value>,
    /// Keys seeded into the agent's memory namespace before the call.
    #[serde(default)]
    pub memory: BTreeMap<String, String>,
    /// Replies to the agent's LLM calls, in order.
    #[serde(default)]
    pub llm: Vec<String>,
    /// Held-out cases are used only to select, never shown to a generator.
    #[serde(default)]
    pub held_out: bool,
    #[serde(default)]
    pub expect: Expect,
}

/// A case's session when it names none (the benchmark replaces it with a
/// production-shaped id per run).
pub const DEFAULT_SESSION: &str = "evolve";

fn default_session() -> String {
    DEFAULT_SESSION.into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    #[serde(default)]
    pub objective: Objective,
    #[serde(default)]
    pub limits: BenchLimits,
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// The outcome of one call, as the checks see it.
pub enum Observed<'a> {
    Response { text: &'a str, data: Option<&'a str> },
    Error { code: &'a str },
}

impl Suite {
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        Self::load_with_text(path).map(|(suite, _)| suite)
    }

    /// The suite and the text it was parsed from (what a job carries to
    /// another host).
    pub fn load_with_text(path: &Path) -> Result<(Suite, String), SuiteError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SuiteError::Read { path: path.display().to_string(), message: e.to_string() })?;
        let suite = Self::parse(&text).map_err(|message| SuiteError::Invalid { path: path.display().to_string(), message })?;
        Ok((suite, text))
    }

    pub fn parse(text: &str) -> Result<Suite, String> {
        let suite: Suite = toml::from_str(text).map_err(|e| e.to_string())?;
        suite.validate()?;
        Ok(suite)
    }

    fn validate(&self) -> Result<(), String> {
        if self.cases.is_empty() {
            return Err("needs at least one [[case]]".into());
        }
        if !(0.0..1.0).contains(&self.objective.threshold) {
            return Err(format!("objective.threshold must be in [0, 1), not {}", self.objective.threshold));
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.cases {
            if !names.insert(&c.name) {
                return Err(format!("two cases are named {:?}", c.name));
            }
            if let Some(r) = &c.expect.regex {
                regex::Regex::new(r).map_err(|e| format!("case {:?}: bad regex: {e}", c.name))?;
            }
            for p in c.expect.json.keys() {
                if !p.is_empty() && !p.starts_with('/') {
                    return Err(format!("case {:?}: JSON pointer {p:?} must start with '/'", c.name));
                }
            }
        }
        if self.cases.iter().all(|c| c.held_out) {
            return Err("every case is held out: a generator needs at least one visible case".into());
        }
        Ok(())
    }

    pub fn visible(&self) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(|c| !c.held_out)
    }
}

impl Case {
    /// Checks `observed` against the expectations; the failures, if any.
    pub fn check(&self, observed: &Observed<'_>) -> Vec<String> {
        let e = &self.expect;
        let mut failures = Vec::new();
        let (text, data) = match observed {
            Observed::Error { code } => {
                match &e.error {
                    Some(want) if want == code => {}
                    Some(want) => failures.push(format!("expected error {want:?}, got error {code:?}")),
                    None => failures.push(format!("call failed: {code}")),
                }
                return failures;
            }
            Observed::Response { text, data } => (*text, *data),
        };
        if let Some(want) = &e.error {
            failures.push(format!("expected error {want:?}, got a response"));
        }
        if let Some(want) = &e.equals {
            if text.trim() != want.trim() {
                failures.push(format!("expected text {:?}, got {:?}", want, clip(text)));
            }
        }
        for s in &e.contains {
            if !text.contains(s.as_str()) {
                failures.push(format!("expected text containing {s:?}, got {:?}", clip(text)));
            }
        }
        if let Some(r) = &e.regex {
            // Validated at load.
            if let Ok(re) = regex::Regex::new(r) {
                if !re.is_match(text.trim()) {
                    failures.push(format!("expected text matching /{r}/, got {:?}", clip(text)));
                }
            }
        }
        if !e.json.is_empty() {
            match data.map(serde_json::from_str::<serde_json::Value>) {
                Some(Ok(v)) => {
                    for (pointer, want) in &e.json {
                        match v.pointer(pointer) {
                            Some(got) if got == want => {}
                            Some(got) => failures.push(format!("data{pointer}: expected {want}, got {got}")),
                            None => failures.push(format!("data{pointer}: missing (expected {want})")),
                        }
                    }
                }
                Some(Err(err)) => failures.push(format!("response data is not JSON: {err}")),
                None => failures.push("response has no data (JSON checks need it)".into()),
            }
        }
        failures
    }
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"
        [objective]
        threshold = 0.2
        [[case]]
        name = "a"
        request = "10"
        memory = { k = "v" }
        llm = ["hi"]
        expect = { equals = "4", contains = ["4"], regex = "^\\d+$", json = { "/count" = 4, "/primes/0" = 2 } }
        [[case]]
        name = "b"
        request = ""
        held_out = true
        expect = { error = "agent-error" }
    "#;

    #[test]
    fn parses_cases_split_and_objective() {
        let s = Suite::parse(SUITE).unwrap();
        assert_eq!(s.objective.threshold, 0.2);
        assert_eq!(s.objective.metric, Metric::Fuel);
        assert_eq!(s.visible().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.cases[0].memory["k"], "v");
        assert_eq!(s.cases[0].llm, ["hi"]);
    }

    #[test]
    fn checks_every_expectation_kind() {
        let s = Suite::parse(SUITE).unwrap();
        let a = &s.cases[0];
        let ok = Observed::Response { text: "4\n", data: Some(r#"{"count":4,"primes":[2,3,5,7]}"#) };
        assert!(a.check(&ok).is_empty(), "{:?}", a.check(&ok));
        let wrong = Observed::Response { text: "5", data: Some(r#"{"count":5,"primes":[2]}"#) };
        let f = a.check(&wrong);
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f.iter().any(|m| m.contains("data/count")), "{f:?}");
        assert!(!a.check(&Observed::Response { text: "4", data: None }).is_empty());
        assert!(!a.check(&Observed::Error { code: "trap" }).is_empty());
        let b = &s.cases[1];
        assert!(b.check(&Observed::Error { code: "agent-error" }).is_empty());
        assert!(!b.check(&Observed::Error { code: "trap" }).is_empty());
        assert!(!b.check(&Observed::Response { text: "x", data: None }).is_empty());
    }

    #[test]
    fn malformed_suites_are_clear_errors() {
        assert!(Suite::parse("").unwrap_err().contains("case"));
        let bad_regex = "[[case]]\nname='a'\nrequest='x'\nexpect={regex='('}";
        assert!(Suite::parse(bad_regex).unwrap_err().contains("bad regex"));
        let dup = "[[case]]\nname='a'\nrequest='x'\n[[case]]\nname='a'\nrequest='y'";
        assert!(Suite::parse(dup).unwrap_err().contains("two cases"));
        let hidden = "[[case]]\nname='a'\nrequest='x'\nheld_out=true";
        assert!(Suite::parse(hidden).unwrap_err().contains("visible"));
        assert!(Suite::parse("[[case]]\nname='a'\nrequest='x'\nbogus=1").is_err());
    }
}
