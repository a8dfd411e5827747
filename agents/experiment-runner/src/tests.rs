//! Tests of reading the host's comparison and reporting it.
use super::*;
use crate::report::{judge, parse_comparison, report, Side};

const DOC: &str = r#"{"agent": "primes",
  "baseline": {"version": "1a2b3c", "errors": 2, "fuel": 40000000, "mean_fuel": 2500000},
  "candidate": {"version": "4d5e6f", "errors": 0, "fuel": "16000000", "mean_fuel": 1000000.0},
  "requests": 16, "agreed": 14,
  "disagreements": [{"request": "how many primes below 10", "baseline": "4", "candidate": 5}],
  "better": "candidate", "reason": "fewer errors and 60% less fuel"}"#;

fn experiment() -> Experiment {
    Experiment { agent: "primes".into(), baseline: "1a2b3c".into(), candidate: "4d5e6f".into(), max_requests: 16 }
}

#[test]
fn the_host_document_is_read_and_reported_with_numbers() {
    let c = parse_comparison(DOC).unwrap();
    assert_eq!((c.better.as_str(), c.host_judged, c.requests, c.agreed), ("candidate", true, Some(16), Some(14)));
    assert_eq!(c.candidate.fuel, Some(16_000_000), "numeric strings are accepted");
    assert_eq!(c.disagreements[0].candidate, "5");
    let text = report("primes", "1a2b3c", "4d5e6f", &c);
    for want in ["the candidate 4d5e6f is better", "agreed on 14 (88%)", "baseline 1a2b3c: 2 error(s), mean fuel 2.50M", "(-60% fuel vs baseline)", "differs on \"how many primes below 10\""] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[test]
fn missing_fields_and_a_missing_verdict_are_handled() {
    let c = parse_comparison(r#"{"baseline": {"errors": 1, "mean_fuel": 100}, "candidate": {"errors": 1, "mean_fuel": 99}, "better": "maybe"}"#).unwrap();
    assert_eq!((c.better.as_str(), c.host_judged), ("tie", false));
    let text = report("primes", "a", "b", &c);
    assert!(text.contains("a tie") && text.contains("judged by errors"), "{text}");
    assert!(parse_comparison("[1,2]").is_err() && parse_comparison("nope").is_err());
    assert!(parse_comparison("{}").is_ok());
    let side = |errors, mean_fuel| Side { errors: Some(errors), mean_fuel: Some(mean_fuel), ..Side::default() };
    assert_eq!(judge(&side(0, 200.0), &side(1, 1.0)), "baseline");
    assert_eq!(judge(&side(0, 200.0), &side(0, 100.0)), "candidate");
}

#[test]
fn errors_and_history_in_words() {
    let x = experiment();
    assert!(explain_error(&x, &EvolutionError::NotFound("no version".into())).contains("lineage hashes"));
    assert!(explain_error(&x, &EvolutionError::Failed("this host runs no evolution engine".into())).contains("no evolution engine"));
    let r: Value = serde_json::from_str(r#"{"agent":"primes","baseline":"a","candidate":"b","better":"candidate","requests":16,"agreed":14,"baseline_errors":2,"candidate_errors":0}"#).unwrap();
    assert_eq!(history_line(&r), "- `primes`: a vs b → candidate (16 requests, 14 agreed; errors 2 vs 0)");
}
