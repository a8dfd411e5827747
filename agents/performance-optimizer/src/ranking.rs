//! Ranking agents by how badly they perform, from the host's metrics:
//! error rate first (with enough calls to mean something), then mean fuel
//! per call. Plain data, so it is tested natively.
use agentkernel_sdk::evolution::AgentMetrics;
use serde::Serialize;

/// Fewest calls for an error rate to count.
pub const MIN_CALLS: u64 = 5;
/// Error rate from which an agent is an offender.
pub const ERROR_RATE_THRESHOLD: f64 = 0.05;
/// Calls from which an agent is "high volume" (also at least 3x the median).
pub const HIGH_VOLUME_CALLS: u64 = 100;
/// How long the same evolution or proposal is not repeated.
pub const COOLDOWN_SECS: i64 = 24 * 3600;

/// Why an agent ranks where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    ErrorRate,
    Fuel,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub name: String,
    pub version: String,
    pub calls: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub mean_fuel: u64,
    pub evolvable: bool,
    pub problem: Problem,
}

impl Ranked {
    pub fn of(m: &AgentMetrics) -> Ranked {
        let error_rate = if m.calls == 0 { 0.0 } else { m.errors as f64 / m.calls as f64 };
        // Fuel counts only calls that finished; errors may not have.
        let finished = m.calls.saturating_sub(m.errors).max(1);
        let problem = if m.calls >= MIN_CALLS && error_rate >= ERROR_RATE_THRESHOLD { Problem::ErrorRate } else { Problem::Fuel };
        Ranked {
            name: m.name.clone(),
            version: m.version.clone(),
            calls: m.calls,
            errors: m.errors,
            error_rate,
            mean_fuel: m.fuel / finished,
            evolvable: m.evolvable,
            problem,
        }
    }

    /// One line for a person.
    pub fn describe(&self) -> String {
        let errors = format!("{:.0}% errors ({}/{})", self.error_rate * 100.0, self.errors, self.calls);
        let evolvable = if self.evolvable { "evolvable" } else { "no benchmark suite, cannot be evolved" };
        format!("{} — {errors}, mean fuel {} per call; {evolvable}", self.name, human(self.mean_fuel))
    }
}

/// `1234567` → `1.2M`.
pub fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Every agent with calls except `me`, worst first: offenders by error
/// rate (highest first), then the rest by mean fuel per call.
pub fn rank(metrics: &[AgentMetrics], me: &str) -> Vec<Ranked> {
    let (mut worst, mut by_fuel): (Vec<Ranked>, Vec<Ranked>) =
        metrics.iter().filter(|m| m.calls > 0 && m.name != me).map(Ranked::of).partition(|r| r.problem == Problem::ErrorRate);
    worst.sort_by(|a, b| b.error_rate.total_cmp(&a.error_rate).then(b.calls.cmp(&a.calls)));
    by_fuel.sort_by(|a, b| b.mean_fuel.cmp(&a.mean_fuel).then(a.name.cmp(&b.name)));
    worst.extend(by_fuel);
    worst
}

/// Agents busy enough that more instances may help: at least
/// [`HIGH_VOLUME_CALLS`] calls and 3x the median, busiest first.
pub fn high_volume<'a>(metrics: &'a [AgentMetrics], me: &str) -> Vec<&'a AgentMetrics> {
    let mut calls: Vec<u64> = metrics.iter().map(|m| m.calls).collect();
    calls.sort_unstable();
    let median = calls.get(calls.len() / 2).copied().unwrap_or(0);
    let mut busy: Vec<&AgentMetrics> = metrics.iter().filter(|m| m.name != me && m.calls >= HIGH_VOLUME_CALLS.max(median.saturating_mul(3))).collect();
    busy.sort_by(|a, b| b.calls.cmp(&a.calls));
    busy
}

/// Whether something done at `at` is still within the cooldown at `now`.
pub fn in_cooldown(at: i64, now: i64) -> bool {
    now.saturating_sub(at) < COOLDOWN_SECS
}

/// What the user asked this agent to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Start evolutions (for the named agent only, or the worst ones).
    Act(Option<String>),
    /// Propose instances or a new agent.
    Propose { new_agent: bool },
    /// What it did before.
    History,
    Report,
}

/// Classifies a request. `names` are the agents the metrics list.
pub fn intent(text: &str, names: &[String]) -> Intent {
    let lower = text.to_lowercase();
    let has = |ps: &[&str]| ps.iter().any(|p| lower.contains(p));
    let question = lower.trim_end().ends_with('?') || ["which", "what", "should", "how", "who", "show", "list", "report"].iter().any(|w| lower.starts_with(w));
    if has(&["what did you", "what have you", "history", "recent actions", "what you did"]) {
        return Intent::History;
    }
    if has(&["propose", "more instances", "scale out", "new agent", "specialised agent", "specialized agent"]) && !question {
        return Intent::Propose { new_agent: has(&["new agent", "specialised", "specialized"]) };
    }
    if has(&["optimise", "optimize", "start evolution", "start an evolution", "evolve", "improve", "fix the"]) && !question {
        let named = names.iter().find(|n| lower.split(|c: char| !c.is_alphanumeric() && c != '-').any(|w| w == n.as_str())).cloned();
        return Intent::Act(named);
    }
    Intent::Report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, calls: u64, errors: u64, fuel: u64, evolvable: bool) -> AgentMetrics {
        AgentMetrics { name: name.into(), version: "v".into(), calls, errors, fuel, evolvable }
    }

    #[test]
    fn error_rate_first_then_fuel() {
        let metrics = vec![
            m("cheap", 50, 0, 50_000, true),
            m("hungry", 10, 0, 10_000_000, true),
            m("flaky", 20, 4, 2_000, true),
            m("rare-errors", 3, 3, 100, false),
            m("idle", 0, 0, 0, true),
            m("performance-optimizer", 9, 9, 9, false),
        ];
        let r = rank(&metrics, "performance-optimizer");
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["flaky", "hungry", "cheap", "rare-errors"]);
        assert_eq!(r[0].problem, Problem::ErrorRate);
        assert_eq!(r[1].mean_fuel, 1_000_000);
        assert!(r[0].describe().starts_with("flaky — 20% errors (4/20)"), "{}", r[0].describe());
        let more = rank(&[m("a", 10, 5, 0, true), m("b", 10, 1, 0, true), m("c", 100, 10, 0, true)], "x");
        assert_eq!(more.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["a", "c", "b"]);
    }

    #[test]
    fn high_volume_needs_both_bounds() {
        let metrics = vec![m("a", 10, 0, 0, true), m("b", 20, 0, 0, true), m("c", 500, 0, 0, true), m("d", 90, 0, 0, true)];
        assert_eq!(high_volume(&metrics, "x").iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), vec!["c"]);
    }

    #[test]
    fn intents_and_cooldown() {
        let names = vec!["primes".to_string()];
        assert_eq!(intent("optimise the worst agents", &names), Intent::Act(None));
        assert_eq!(intent("please evolve primes", &names), Intent::Act(Some("primes".into())));
        assert_eq!(intent("which agents should I optimise?", &names), Intent::Report);
        assert_eq!(intent("how are my agents performing", &names), Intent::Report);
        assert_eq!(intent("propose more instances", &names), Intent::Propose { new_agent: false });
        assert_eq!(intent("propose a new agent", &names), Intent::Propose { new_agent: true });
        assert_eq!(intent("what did you do?", &names), Intent::History);
        assert!(in_cooldown(1000, 1000 + COOLDOWN_SECS - 1) && !in_cooldown(1000, 1000 + COOLDOWN_SECS));
        assert_eq!(human(1_234_567), "1.2M");
    }
}
