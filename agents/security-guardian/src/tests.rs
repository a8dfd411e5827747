//! Tests of the review's pure logic (rules, verdicts, summaries).
use super::*;
use crate::rules::{file_findings, review};

const CLEAN: &str = r#"
use agentkernel_sdk::prelude::*;
pub struct Shout;
impl Agent for Shout {
    fn describe() -> Manifest { Manifest::new("shout", "0.1.0", "Capitals.") }
    fn handle(req: Request) -> Result<Response, AgentError> {
        let mut n = 0;
        loop { n += 1; if n > 3 { break; } }
        Ok(Response::text(req.text.to_uppercase()))
    }
}
export_agent!(Shout);
#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_fixture() { let _ = std::fs::read_to_string("/etc/hosts"); }
}
"#;

fn input(imports: &[&str], granted: &[&str], source: &str) -> ReviewInput {
    let strings = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
    let mut files = std::collections::BTreeMap::new();
    files.insert("src/lib.rs".to_string(), source.to_string());
    ReviewInput { agent: "shout".into(), spec: "capitals".into(), imports: strings(imports), granted: strings(granted), files }
}

fn rules_of(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn a_clean_agent_is_approved_and_test_code_is_ignored() {
    let f = review(&input(&["log"], &["log", "memory"], CLEAN));
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(Verdict::of(&f), Verdict::Approve);
}

#[test]
fn an_ungranted_import_rejects() {
    let f = review(&input(&["log", "llm"], &["log", "memory"], CLEAN));
    assert_eq!(rules_of(&f), vec!["ungranted-import"]);
    assert_eq!(Verdict::of(&f), Verdict::Reject);
    let f = review(&input(&["aws_ec2"], &["aws-ec2"], CLEAN));
    assert_eq!(rules_of(&f), vec!["sensitive-capability"], "policy keys and interface names are one name");
    let mut unsent = input(&["log"], &["log"], CLEAN);
    unsent.files.insert("src/big.rs".into(), "(not sent: 300000 bytes past the review's 262144-byte cap)".into());
    assert_eq!(rules_of(&review(&unsent)), vec!["not-reviewed"]);
    let f = review(&input(&["evolution"], &["evolution"], CLEAN));
    assert_eq!(rules_of(&f), vec!["sensitive-capability"], "granted, still high");
}

#[test]
fn risky_code_patterns_are_found_with_their_lines() {
    let src = "fn a() {\n unsafe { core::ptr::null::<u8>().read() };\n}\nuse std::{io, process};\nconst K: &str = env!(\"HOME\");\nextern \"C\" { fn f(); }\n#[link(name = \"c\")]\nfn b() { loop { tick(); } }\nfn c() { let _ = std::env::var(\"X\"); }\n";
    let f = file_findings("src/lib.rs", src, false);
    let rules = rules_of(&f);
    for want in ["unsafe-code", "process-spawn", "build-env", "ffi", "link-attribute", "unbounded-loop", "env-read"] {
        assert!(rules.contains(&want), "{want} missing from {rules:?}");
    }
    let unsafe_finding = f.iter().find(|f| f.rule == "unsafe-code").unwrap();
    assert!(unsafe_finding.detail.contains("src/lib.rs:2"), "{}", unsafe_finding.detail);
    assert!(!rules.contains(&"filesystem"));
}

#[test]
fn words_in_comments_and_strings_are_not_code() {
    let src = "// unsafe std::process\nfn a() -> &'static str { \"unsafe include_str!\" }\nextern crate alloc;\n";
    assert!(file_findings("src/lib.rs", src, false).is_empty());
}

#[test]
fn literals_host_paths_payloads_and_urls() {
    let payload = "QUJD".repeat(400);
    let src = format!("const P: &str = \"{payload}\";\nconst F: &str = \"/proc/self/environ\";\nconst U: &str = \"https://evil.example/x\";\nconst M: &str = \"http://169.254.169.254/latest\";\nconst OK: &str = \"/procedure\";");
    let f = file_findings("src/lib.rs", &src, false);
    let rules = rules_of(&f);
    for want in ["encoded-payload", "host-path", "url-without-http", "metadata-address"] {
        assert!(rules.contains(&want), "{want} missing from {rules:?}");
    }
    let f = file_findings("src/lib.rs", "const U: &str = \"https://api.example/x\";", true);
    assert_eq!(rules_of(&f), vec!["network-url"]);
    assert_eq!(f[0].severity, Severity::Low);
}

#[test]
fn build_scripts_and_sizes_reject() {
    let cargo = "[package]\nname = \"x\"\nbuild = \"build.rs\"\n[dependencies]\nserde = \"1\"\nagentkernel-sdk.workspace = true\nrand = \"0.8\"\n";
    let rules = rules_of(&file_findings("Cargo.toml", cargo, false)).into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(rules, vec!["build-script", "extra-dependency"]);
    assert_eq!(rules_of(&file_findings("build.rs", "fn main() {}", false)), vec!["build-script"]);
    let mut big = input(&["log"], &["log"], CLEAN);
    big.files.insert("src/pad.rs".into(), "//".repeat(rules::MAX_SCAN_BYTES));
    assert!(rules_of(&review(&big)).contains(&"too-large-to-review"));
    let mut empty = input(&["log"], &["log"], "");
    empty.files.clear();
    assert_eq!(Verdict::of(&review(&empty)), Verdict::Reject, "no source: fail closed");
}

#[test]
fn the_context_parses_and_the_summary_reads() {
    let ctx = r#"{"review": {"agent": "shout", "spec": "s", "imports": ["log","http"], "granted": ["log"], "files": {"src/lib.rs": "fn a() {}"}}}"#;
    let mut req = Request::new("s", "review");
    req.context = Some(ctx.into());
    let parsed = req.context_as::<ReviewContext>().unwrap().review;
    let f = review(&parsed);
    let text = summary("shout", Verdict::of(&f), &f, "rules", Some("Rules only: no model is configured."));
    assert!(text.starts_with("Security review of `shout`: REJECT (1 high, 0 medium, 1 low"), "{text}");
    assert!(text.contains("ungranted-import") && text.contains("no model"));
}
