//! Tests of the pure logic: reading requests, validating model readings, words for results.
use crate::model::{merge, parse_reply};
use crate::parse::*;
use crate::report::{describe_run, describe_summary, explain_error};
use agentkernel_sdk::evolution::{EvolutionError, RunInfo};

const SHOUT: &str = "create an agent called shout that answers with the request in capitals; cases: 'hello' -> 'HELLO', 'abc' -> 'ABC'";

#[test]
fn reads_name_spec_and_cases() {
    let d = parse_create(SHOUT);
    assert_eq!(d.name.as_deref(), Some("shout"));
    assert_eq!(d.spec.as_deref(), Some("Answers with the request in capitals"));
    assert_eq!(d.cases.len(), 2);
    assert_eq!((d.cases[0].name.as_str(), d.cases[0].request.as_str(), d.cases[0].expect_contains[0].as_str()), ("case-1", "hello", "HELLO"));
    assert_eq!((d.cases[1].request.as_str(), d.cases[1].expect_contains[0].as_str()), ("abc", "ABC"));
    assert!(missing_parts(&d).is_empty());
}

#[test]
fn reads_other_phrasings() {
    let d = parse_create("Please make a new agent named Word_Count which counts the words of the text. Examples: \"a b c\" => \"3\", \"hi\" => \"1\" (held out), \"x y\" gives \"2\"");
    assert_eq!(d.name.as_deref(), Some("word-count"));
    assert_eq!(d.spec.as_deref(), Some("Counts the words of the text"));
    assert_eq!(d.cases.iter().map(|c| c.request.as_str()).collect::<Vec<_>>(), vec!["a b c", "hi", "x y"]);
    assert!(d.cases[1].held_out && !d.cases[0].held_out);
    let d = parse_create("create agent reverse: reverses the text it is given 'abc' -> 'cba'");
    assert_eq!(d.name.as_deref(), Some("reverse"));
    assert_eq!(d.cases.len(), 1);
    assert_eq!(d.spec.as_deref(), Some("Reverses the text it is given"));
}

#[test]
fn missing_cases_are_asked_for() {
    let d = parse_create("create an agent called shout that answers in capitals");
    assert!(d.cases.is_empty());
    let missing = missing_parts(&d);
    assert_eq!(missing.len(), 1);
    assert!(missing[0].contains("test cases"));
    assert!(missing_parts(&parse_create("create an agent")).len() == 3);
}

#[test]
fn intents() {
    let known = vec!["shout".to_string()];
    assert_eq!(intent(SHOUT, &known), Intent::Create);
    assert_eq!(intent("what happened to shout?", &known), Intent::Status(Some("shout".into())));
    assert_eq!(intent("status of my agents", &known), Intent::Status(None));
    assert_eq!(intent("hello there", &[]), Intent::Help);
    assert_eq!(intent("create an agent called tally that counts the runs; cases: 'a a' -> '2'", &known), Intent::Create);
    assert_eq!(intent("make a new agent", &known), Intent::Create);
}

#[test]
fn the_last_of_three_cases_is_held_out() {
    let mut d = parse_create("create an agent called up that uppercases text; cases: 'a' -> 'A', 'b' -> 'B', 'c' -> 'C'");
    assert!(hold_out_last(&mut d.cases));
    assert_eq!(d.cases.iter().map(|c| c.held_out).collect::<Vec<_>>(), vec![false, false, true]);
    let mut two = parse_create(SHOUT).cases;
    assert!(!hold_out_last(&mut two));
}

#[test]
fn model_readings_are_validated() {
    let text = "I need an agent called shout. It should shout. For hello it should say HELLO.";
    let reply = r#"Sure: {"name": "Shout", "spec": "Answers in capitals", "cases": [
        {"name": "Bad Name!", "request": "hello", "expect_contains": ["HELLO"], "held_out": true},
        {"name": "x", "request": "invented", "expect_contains": ["INVENTED"]},
        {"name": "y", "request": "hello", "expect_contains": [""]}]}"#;
    let d = parse_reply(reply, text).unwrap();
    assert_eq!(d.name.as_deref(), Some("shout"));
    assert_eq!(d.cases.len(), 1, "invented and empty cases dropped: {:?}", d.cases);
    assert_eq!((d.cases[0].name.as_str(), d.cases[0].held_out), ("case-1", false), "one visible case at least");
    assert!(parse_reply("no json", text).is_err());
    assert!(parse_reply("{\"cases\": 5}", text).is_err());
    let invented_name = parse_reply(r#"{"name": "mega-bot", "spec": "s"}"#, text).unwrap();
    assert_eq!(invented_name.name, None);
    let rules = parse_create("create an agent called shout that answers in capitals");
    let merged = merge(rules, d);
    assert_eq!((merged.name.as_deref(), merged.spec.as_deref(), merged.cases.len()), (Some("shout"), Some("Answers in capitals"), 1));
}

#[test]
fn errors_and_runs_in_words() {
    let e = EvolutionError::BudgetExceeded("runs_per_day (3) used up (UTC)".into());
    assert!(explain_error("create", "shout", &e).contains("budget is used up"));
    assert!(explain_error("create", "shout", &EvolutionError::NotAllowed("no".into())).contains("not allowed"));
    assert!(explain_error("create", "shout", &EvolutionError::Busy("exists".into())).contains("busy"));
    let summary = r#"{"candidates": {"built": 3, "passing": 2}, "fuel": 120000, "review": {"verdict": "approve", "method": "rules"}, "notes": [1,2], "x": null}"#;
    let s = describe_summary(summary);
    assert!(s.contains("candidates: built 3, passing 2") && s.contains("fuel 120000") && s.contains("verdict approve"), "{s}");
    assert_eq!(describe_summary("plain words"), "plain words");
    let run = RunInfo { id: "r1".into(), agent: "shout".into(), status: "finished".into(), decision: Some("created".into()), summary: Some(summary.into()) };
    let line = describe_run(&run);
    assert!(line.starts_with("`shout` (run r1): finished, decision created — "), "{line}");
    let running = RunInfo { id: "r2".into(), agent: "shout".into(), status: "running".into(), decision: None, summary: None };
    assert!(describe_run(&running).contains("still working"));
}
