//! Whether a candidate beats the incumbent. This runs in the host on every
//! case, held-out ones included; nothing here is reachable from a candidate.
use serde::Serialize;

use super::bench::BenchResult;
use super::suite::{Metric, Objective};

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Verdict {
    pub wins: bool,
    pub reason: String,
    /// Relative improvement of the objective (0.2 = 20% less), when comparable.
    pub improvement: Option<f64>,
}

fn lose(reason: String) -> Verdict {
    Verdict { wins: false, reason, improvement: None }
}

/// A candidate wins if it passes every case the incumbent passes and
/// improves the objective by at least the threshold, or passes strictly
/// more cases. For wall time the gain must hold in every repeat: the
/// candidate's slowest run against the incumbent's fastest.
///
/// The gain must also hold on the held-out cases alone (when the
/// incumbent passes any): a candidate that is cheap only on the cases a
/// generator saw, say by hard-coding their answers, has not improved the
/// agent.
pub fn judge(incumbent: &BenchResult, candidate: &BenchResult, objective: &Objective) -> Verdict {
    let regressions: Vec<&str> = incumbent
        .cases
        .iter()
        .filter(|c| c.passed)
        .filter(|c| !candidate.case(&c.name).is_some_and(|k| k.passed))
        .map(|c| c.name.as_str())
        .collect();
    if !regressions.is_empty() {
        let held_out = incumbent.cases.iter().filter(|c| c.held_out && regressions.contains(&c.name.as_str())).count();
        return lose(format!(
            "fails {} case(s) the incumbent passes: {}{}",
            regressions.len(),
            regressions.join(", "),
            if held_out > 0 { format!(" ({held_out} held out)") } else { String::new() }
        ));
    }
    if candidate.passed > incumbent.passed {
        return Verdict {
            wins: true,
            reason: format!("passes {} cases; the incumbent passes {}", candidate.passed, incumbent.passed),
            improvement: None,
        };
    }
    // Compare on the cases the incumbent passes (the candidate passes them too).
    let passing: Vec<&str> = incumbent.cases.iter().filter(|c| c.passed).map(|c| c.name.as_str()).collect();
    if passing.is_empty() {
        return lose("neither passes any case".into());
    }
    let threshold = objective.threshold;
    let (inc, cand, unit) = measure(incumbent, candidate, &passing, objective.metric);
    if inc <= 0.0 || !inc.is_finite() {
        return lose(format!("the incumbent's {unit} is not measurable"));
    }
    let improvement = 1.0 - cand / inc;
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    if improvement < threshold {
        return Verdict {
            wins: false,
            reason: format!("improves {unit} by {}, below the threshold of {} ({cand:.0} vs {inc:.0})", pct(improvement), pct(threshold)),
            improvement: Some(improvement),
        };
    }
    let held_out: Vec<&str> =
        passing.iter().copied().filter(|n| incumbent.case(n).is_some_and(|c| c.held_out)).collect();
    let mut held_out_note = String::new();
    if !held_out.is_empty() {
        let (h_inc, h_cand, _) = measure(incumbent, candidate, &held_out, objective.metric);
        if h_inc > 0.0 && h_inc.is_finite() {
            let h_improvement = 1.0 - h_cand / h_inc;
            if h_improvement < threshold {
                return Verdict {
                    wins: false,
                    reason: format!(
                        "saves {} {unit} overall but only {} on the {} held-out case(s) ({h_cand:.0} vs {h_inc:.0}; threshold {}): \
                         the gain does not carry beyond the visible cases",
                        pct(improvement),
                        pct(h_improvement),
                        held_out.len(),
                        pct(threshold)
                    ),
                    improvement: Some(improvement),
                };
            }
            held_out_note = format!(", {} on the held-out cases alone", pct(h_improvement));
        }
    }
    Verdict {
        wins: true,
        reason: format!(
            "passes every case the incumbent passes with {} less {unit} ({cand:.0} vs {inc:.0}{held_out_note}; threshold {})",
            pct(improvement),
            pct(threshold)
        ),
        improvement: Some(improvement),
    }
}

/// The incumbent's and the candidate's objective over `cases`, and its unit.
fn measure(incumbent: &BenchResult, candidate: &BenchResult, passing: &[&str], metric: Metric) -> (f64, f64, &'static str) {
    match metric {
        Metric::Fuel => {
            let sum = |b: &BenchResult| -> u64 { passing.iter().filter_map(|n| b.case(n).and_then(|c| c.fuel)).sum() };
            (sum(incumbent) as f64, sum(candidate) as f64, "fuel")
        }
        Metric::WallTime => {
            let totals = |b: &BenchResult| -> Vec<f64> {
                let runs = b.cases.first().map_or(0, |c| c.wall_ms.len());
                (0..runs).map(|r| passing.iter().filter_map(|n| b.case(n).and_then(|c| c.wall_ms.get(r))).sum()).collect()
            };
            let fastest_incumbent = totals(incumbent).into_iter().fold(f64::INFINITY, f64::min);
            let slowest_candidate = totals(candidate).into_iter().fold(0.0, f64::max);
            (fastest_incumbent, slowest_candidate, "ms (candidate's slowest run vs the incumbent's fastest)")
        }
    }
}

/// A new agent (`create`) is registered only if it passes every case.
pub fn judge_new(candidate: &BenchResult) -> Verdict {
    let total = candidate.cases.len();
    if candidate.passed == total {
        Verdict { wins: true, reason: format!("passes all {total} cases"), improvement: None }
    } else {
        lose(format!("passes {} of {total} cases; a new agent must pass all", candidate.passed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::CaseResult;

    fn result(cases: &[(&str, bool, bool, u64)]) -> BenchResult {
        let cases: Vec<CaseResult> = cases
            .iter()
            .map(|&(name, held_out, passed, fuel)| CaseResult {
                name: name.into(),
                held_out,
                passed,
                failures: if passed { vec![] } else { vec!["wrong".into()] },
                fuel: Some(fuel),
                wall_ms: vec![fuel as f64 / 1000.0],
                error: None,
                error_message: None,
                text: String::new(),
                llm_calls: 0,
            })
            .collect();
        BenchResult {
            passed: cases.iter().filter(|c| c.passed).count(),
            total_fuel: cases.iter().filter_map(|c| c.fuel).sum(),
            total_wall_ms: vec![cases.iter().map(|c| c.wall_ms[0]).sum()],
            cases,
            duration_ms: 0.0,
        }
    }

    #[test]
    fn faster_and_correct_wins_only_past_the_threshold() {
        let inc = result(&[("a", false, true, 1000), ("b", true, true, 1000)]);
        let fast = result(&[("a", false, true, 400), ("b", true, true, 400)]);
        let v = judge(&inc, &fast, &Objective::default());
        assert!(v.wins, "{v:?}");
        assert!((v.improvement.unwrap() - 0.6).abs() < 1e-9);
        let slight = result(&[("a", false, true, 900), ("b", true, true, 950)]);
        let v = judge(&inc, &slight, &Objective::default());
        assert!(!v.wins && v.reason.contains("below the threshold"), "{v:?}");
    }

    #[test]
    fn failing_a_held_out_case_loses_however_fast() {
        let inc = result(&[("a", false, true, 1000), ("b", true, true, 1000)]);
        let overfit = result(&[("a", false, true, 1), ("b", true, false, 1)]);
        let v = judge(&inc, &overfit, &Objective::default());
        assert!(!v.wins);
        assert!(v.reason.contains("b") && v.reason.contains("held out"), "{v:?}");
    }

    #[test]
    fn a_gain_only_on_the_visible_cases_loses() {
        let inc = result(&[("a", false, true, 1000), ("b", false, true, 1000), ("c", true, true, 1000)]);
        // Visible answers looked up, held-out ones computed as before: 66% less overall.
        let memorised = result(&[("a", false, true, 10), ("b", false, true, 10), ("c", true, true, 1000)]);
        let v = judge(&inc, &memorised, &Objective::default());
        assert!(!v.wins, "{v:?}");
        assert!(v.reason.contains("0.0% on the 1 held-out case(s)"), "{v:?}");
        // A real improvement shows on the held-out case too.
        let better = result(&[("a", false, true, 10), ("b", false, true, 10), ("c", true, true, 500)]);
        let v = judge(&inc, &better, &Objective::default());
        assert!(v.wins && v.reason.contains("50.0% on the held-out cases alone"), "{v:?}");
    }

    #[test]
    fn passing_strictly_more_cases_wins_even_if_slower() {
        let inc = result(&[("a", false, true, 10), ("b", false, false, 10)]);
        let fixed = result(&[("a", false, true, 50), ("b", false, true, 50)]);
        assert!(judge(&inc, &fixed, &Objective::default()).wins);
    }

    #[test]
    fn wall_time_gain_must_hold_in_every_repeat() {
        let mut inc = result(&[("a", false, true, 1000)]);
        inc.cases[0].wall_ms = vec![10.0, 10.5, 9.8];
        let mut cand = result(&[("a", false, true, 1000)]);
        cand.cases[0].wall_ms = vec![5.0, 5.0, 9.5];
        let objective = Objective { metric: Metric::WallTime, ..Objective::default() };
        assert!(!judge(&inc, &cand, &objective).wins, "one slow run breaks the gain");
        cand.cases[0].wall_ms = vec![5.0, 5.0, 6.0];
        assert!(judge(&inc, &cand, &objective).wins);
    }
}
