//! The offline rules: deterministic, the base of every verdict. A created
//! agent's imports against its grant, and its source for patterns that are
//! risky in an agent even inside the sandbox. The sandbox remains the
//! boundary; these rules say what a reviewer should not let through.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lexer::{lex, without_test_code};

/// Most bytes of files one review scans; past it the review rejects (an
/// attacker must not hide code behind padding).
pub const MAX_SCAN_BYTES: usize = 256 * 1024;
/// Most files one review scans.
pub const MAX_FILES: usize = 64;
/// A literal this long made of base64/hex characters is an encoded payload.
const PAYLOAD_BYTES: usize = 1024;
/// Capabilities the host knows (`wit/world.wit`).
pub const KNOWN_CAPABILITIES: &[&str] = &["log", "memory", "llm", "agents", "http", "aws-ec2", "evolution"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub rule: String,
    pub detail: String,
}

impl Finding {
    pub fn new(severity: Severity, rule: &str, detail: impl Into<String>) -> Self {
        Finding { severity, rule: rule.to_string(), detail: detail.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    /// Any high finding rejects.
    pub fn of(findings: &[Finding]) -> Verdict {
        if findings.iter().any(|f| f.severity == Severity::High) { Verdict::Reject } else { Verdict::Approve }
    }
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

/// What the host sends: `context = {"review": ReviewInput}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReviewInput {
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub spec: String,
    #[serde(default)]
    pub imports: Vec<String>,
    #[serde(default)]
    pub granted: Vec<String>,
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// Every rule over one review input, highest severity first.
pub fn review(input: &ReviewInput) -> Vec<Finding> {
    // Policy keys spell `aws_ec2`; interfaces `aws-ec2`: compare interface names.
    let interface = |names: &[String]| names.iter().map(|n| n.trim().replace('_', "-")).collect::<Vec<_>>();
    let (imports, granted) = (interface(&input.imports), interface(&input.granted));
    let mut findings = capability_findings(&imports, &granted);
    let http_granted = granted.iter().any(|g| g == "http");
    if input.files.is_empty() {
        // Fail closed: an approval must mean the source was read.
        findings.push(Finding::new(Severity::High, "no-source", "no source files were sent, so nothing could be reviewed"));
    }
    let mut scanned = 0usize;
    for (index, (path, text)) in input.files.iter().enumerate() {
        if index >= MAX_FILES || scanned + text.len() > MAX_SCAN_BYTES {
            findings.push(Finding::new(
                Severity::High,
                "too-large-to-review",
                format!("{} files / {} bytes: past {MAX_FILES} files or {} KiB, starting at {path}; not reviewed", input.files.len(), input.files.values().map(String::len).sum::<usize>(), MAX_SCAN_BYTES / 1024),
            ));
            break;
        }
        scanned += text.len();
        // The host names files it did not send (past its own cap): unread code is not approved.
        if text.starts_with("(not sent:") {
            findings.push(Finding::new(Severity::High, "not-reviewed", format!("{path} was not sent for review: {}", text.chars().take(120).collect::<String>())));
            continue;
        }
        findings.extend(file_findings(path, text, http_granted));
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity));
    findings
}

/// Imports against the grant; capabilities a created agent must not use.
pub fn capability_findings(imports: &[String], granted: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for import in imports {
        if !KNOWN_CAPABILITIES.contains(&import.as_str()) {
            findings.push(Finding::new(Severity::High, "unknown-import", format!("imports `{import}`, which is no capability of this host")));
        } else if !granted.contains(import) {
            findings.push(Finding::new(Severity::High, "ungranted-import", format!("imports `{import}`, which policy does not grant it")));
        }
        // Even granted: a generated agent changing cloud resources or
        // creating agents in turn needs a person's decision, not a review.
        match import.as_str() {
            "aws-ec2" => findings.push(Finding::new(Severity::High, "sensitive-capability", "asks for `aws-ec2` (changes cloud infrastructure)")),
            "evolution" => findings.push(Finding::new(Severity::High, "sensitive-capability", "asks for `evolution` (would create or change agents itself)")),
            "http" => findings.push(Finding::new(Severity::Low, "network-access", "uses `http` (outbound requests to the hosts policy allows)")),
            _ => {}
        }
    }
    findings
}

/// The rules for one file, by kind.
pub fn file_findings(path: &str, text: &str, http_granted: bool) -> Vec<Finding> {
    if path.ends_with(".rs") {
        let mut findings = if path.ends_with("build.rs") { vec![Finding::new(Severity::High, "build-script", format!("{path}: a build script runs at build time"))] } else { Vec::new() };
        findings.extend(rust_findings(path, text, http_granted));
        findings
    } else if path.ends_with("Cargo.toml") {
        cargo_findings(path, text)
    } else {
        literal_findings(path, text, 1, http_granted)
    }
}

/// Code patterns: (rule, severity, needles, what it means).
const CODE_RULES: &[(&str, Severity, &[&str], &str)] = &[
    ("unsafe-code", Severity::High, &["unsafe"], "unsafe code"),
    ("process-spawn", Severity::High, &["std::process", "Command::new"], "spawns or ends processes"),
    ("raw-network", Severity::High, &["std::net", "TcpStream", "TcpListener", "UdpSocket"], "raw sockets"),
    ("filesystem", Severity::High, &["std::fs", "File::open", "File::create", "OpenOptions", "read_dir"], "file system access"),
    ("include-file", Severity::High, &["include_bytes!", "include_str!", "include!"], "reads a file at build time"),
    ("build-env", Severity::High, &["env!", "option_env!"], "reads the build machine's environment"),
    ("env-read", Severity::Medium, &["std::env", "env::var", "env::vars", "env::args"], "reads the environment"),
    ("link-attribute", Severity::High, &["#[link"], "links native code"),
    ("inline-asm", Severity::High, &["asm!", "global_asm!", "naked_asm!"], "inline assembly"),
    ("transmute", Severity::High, &["transmute"], "reinterprets memory"),
    ("symbol-export", Severity::Medium, &["#[no_mangle]", "#[unsafe(no_mangle)]", "#[export_name"], "exports raw symbols"),
];

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Byte offsets of `needle` in `code` at identifier boundaries.
fn find_all(code: &str, needle: &str) -> Vec<usize> {
    let first_ident = needle.chars().next().is_some_and(is_ident);
    let last_ident = needle.chars().last().is_some_and(is_ident);
    code.match_indices(needle)
        .filter(|(at, _)| !first_ident || !code[..*at].chars().next_back().is_some_and(is_ident))
        .filter(|(at, _)| !last_ident || !code[at + needle.len()..].chars().next().is_some_and(is_ident))
        .map(|(at, _)| at)
        .collect()
}

fn line_at(code: &str, offset: usize) -> usize {
    code[..offset].matches('\n').count() + 1
}

/// One finding for `hits` (offsets) of a rule in a file.
fn hit_finding(path: &str, code: &str, rule: &str, severity: Severity, what: &str, needle: &str, hits: &[usize]) -> Option<Finding> {
    let first = *hits.first()?;
    let times = if hits.len() > 1 { format!(" ({} times)", hits.len()) } else { String::new() };
    Some(Finding::new(severity, rule, format!("`{needle}` at {path}:{}{times}: {what}", line_at(code, first))))
}

/// Code and literal rules over one Rust file, test code excluded.
pub fn rust_findings(path: &str, text: &str, http_granted: bool) -> Vec<Finding> {
    let lexed = lex(text);
    let code = without_test_code(&lexed.code);
    let mut findings = Vec::new();
    for (rule, severity, needles, what) in CODE_RULES {
        let found = needles.iter().find_map(|n| {
            let hits = find_all(&code, n);
            hit_finding(path, &code, rule, *severity, what, n, &hits)
        });
        findings.extend(found);
    }
    findings.extend(grouped_std_imports(path, &code));
    findings.extend(foreign_functions(path, &code));
    findings.extend(unbounded_loops(path, &code));
    for (index, line) in surviving_literals(&code) {
        if let Some(literal) = lexed.literals.get(index) {
            findings.extend(literal_findings(path, literal, line, http_granted));
        }
    }
    dedupe(findings)
}

/// One finding per rule and file (the first), so a file full of URLs reads as one line.
fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = std::collections::BTreeSet::new();
    findings.into_iter().filter(|f| seen.insert(f.rule.clone())).collect()
}

/// `use std::{fs, process}` names the modules without `std::fs`.
fn grouped_std_imports(path: &str, code: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for at in find_all(code, "std::{") {
        let body: String = code[at + 6..].chars().take_while(|c| *c != ';').collect();
        for (module, rule) in [("fs", "filesystem"), ("process", "process-spawn"), ("net", "raw-network")] {
            if !find_all(&body, module).is_empty() {
                let detail = format!("`std::{{.. {module} ..}}` at {path}:{}", line_at(code, at));
                findings.push(Finding::new(Severity::High, rule, detail));
            }
        }
    }
    findings
}

/// `extern "C"` blocks and functions (`extern crate` is only a name).
fn foreign_functions(path: &str, code: &str) -> Option<Finding> {
    let at = find_all(code, "extern").into_iter().find(|at| !code[at + 6..].trim_start().starts_with("crate"))?;
    Some(Finding::new(Severity::High, "ffi", format!("`extern` ABI at {path}:{}: foreign functions", line_at(code, at))))
}

/// `loop {..}` and `while true {..}` whose body has no way out.
fn unbounded_loops(path: &str, code: &str) -> Option<Finding> {
    let starts = find_all(code, "loop").into_iter().chain(find_all(code, "while true"));
    for at in starts {
        let Some(open) = code[at..].find('{').map(|o| at + o) else { continue };
        if !code[at..open].trim_start_matches("while true").trim_start_matches("loop").trim().is_empty() {
            continue;
        }
        let body = braced(code, open);
        let exits = ["break", "return", "panic!", "exit", "unreachable!"].iter().any(|w| !find_all(body, w).is_empty()) || body.contains('?');
        if !exits {
            let detail = format!("a loop without break or return at {path}:{}: it can only end when the host stops it", line_at(code, at));
            return Some(Finding::new(Severity::Medium, "unbounded-loop", detail));
        }
    }
    None
}

/// The text from `open` (a `{`) to its matching `}`.
fn braced(code: &str, open: usize) -> &str {
    let mut depth = 0usize;
    for (offset, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[open..open + offset + 1];
                }
            }
            _ => {}
        }
    }
    &code[open..]
}

/// The literals left in `code` after test code was blanked, with their lines.
fn surviving_literals(code: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '\u{1}' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if let Ok(index) = digits.parse() {
                    out.push((index, line));
                }
            }
            _ => {}
        }
    }
    out
}

/// Host paths a program in a sandbox has no business naming.
const HOST_PATHS: &[&str] = &["/proc", "/sys", "/etc", "/dev", "/root", "/home", "/var/run", "~/.ssh", "~/.aws", ".ssh/", "/.aws/"];
const METADATA_ADDRESSES: &[&str] = &["169.254.169.254", "metadata.google.internal", "fd00:ec2::254", "100.100.100.200"];

/// Whether `text` names `path` as a path (not `/procedure`).
fn names_path(text: &str, path: &str) -> bool {
    text.match_indices(path).any(|(at, _)| {
        let before_ok = at == 0 || !text[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric());
        let after = text[at + path.len()..].chars().next();
        before_ok && (path.ends_with('/') || after.is_none_or(|c| !c.is_alphanumeric()))
    })
}

fn looks_encoded(literal: &str) -> bool {
    let encoded = literal.chars().filter(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(*c)).count();
    literal.len() > PAYLOAD_BYTES && encoded * 100 >= literal.chars().count() * 98
}

/// Rules over one literal (or a whole non-Rust file), at `line`.
pub fn literal_findings(path: &str, literal: &str, line: usize, http_granted: bool) -> Vec<Finding> {
    let at = format!("{path}:{line}");
    let mut findings = Vec::new();
    if looks_encoded(literal) {
        findings.push(Finding::new(Severity::High, "encoded-payload", format!("a {}-byte base64/hex literal at {at}", literal.len())));
    } else if literal.len() > 4 * PAYLOAD_BYTES {
        findings.push(Finding::new(Severity::Low, "long-literal", format!("a {}-byte literal at {at}", literal.len())));
    }
    if let Some(p) = HOST_PATHS.iter().find(|p| names_path(literal, p)) {
        findings.push(Finding::new(Severity::High, "host-path", format!("names the host path `{p}` at {at}")));
    }
    if literal.contains("../") {
        findings.push(Finding::new(Severity::Medium, "path-traversal", format!("a `../` path at {at}")));
    }
    if let Some(a) = METADATA_ADDRESSES.iter().find(|a| literal.contains(*a)) {
        findings.push(Finding::new(Severity::High, "metadata-address", format!("names the cloud metadata address `{a}` at {at}")));
    }
    let lower = literal.to_ascii_lowercase();
    if ["http://", "https://", "ws://", "wss://"].iter().any(|s| lower.contains(s)) {
        findings.push(if http_granted {
            Finding::new(Severity::Low, "network-url", format!("a URL at {at} (policy's `http` hosts decide)"))
        } else {
            Finding::new(Severity::Medium, "url-without-http", format!("a URL at {at}, but `http` is not granted"))
        });
    }
    findings
}

/// Build-time behaviour and dependencies in a manifest.
pub fn cargo_findings(path: &str, text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut section = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
        // `serde.workspace = true` names `serde`.
        let key = line.split('=').next().unwrap_or("").trim().split('.').next().unwrap_or("").trim();
        if section == "build-dependencies" || key == "build" || key == "links" || key == "proc-macro" {
            findings.push(Finding::new(Severity::High, "build-script", format!("{path}:{}: `{line}` runs code or links at build time", n + 1)));
        }
        let is_dependency = section.ends_with("dependencies") && !key.is_empty() && !line.starts_with('[');
        if is_dependency && !["agentkernel-sdk", "serde", "serde_json"].contains(&key) {
            findings.push(Finding::new(Severity::Low, "extra-dependency", format!("{path}:{}: depends on `{key}`", n + 1)));
        }
    }
    dedupe(findings)
}
