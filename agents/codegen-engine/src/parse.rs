//! Reading a create request by rule: the new agent's name, its spec and
//! its cases ("create an agent called shout that answers with the request
//! in capitals; cases: 'hello' -> 'HELLO', 'abc' -> 'ABC'").
use serde::{Deserialize, Serialize};

/// Most cases the host accepts for a new agent.
pub const MAX_CASES: usize = 32;
/// Longest spec the host accepts, in bytes.
pub const MAX_SPEC_BYTES: usize = 8 * 1024;

/// One case as this agent handles it (converted to the WIT `test-case` at the call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseDraft {
    #[serde(default)]
    pub name: String,
    pub request: String,
    pub expect_contains: Vec<String>,
    #[serde(default)]
    pub held_out: bool,
}

/// What a create request said; any part may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDraft {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub spec: Option<String>,
    #[serde(default)]
    pub cases: Vec<CaseDraft>,
}

/// What the user wants from this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Create,
    /// Status of one agent's run, or of all runs (`None`).
    Status(Option<String>),
    Help,
}

/// Agent names as the host accepts them: `a-z0-9-`, 1 to 64 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// `Shout_Bot` → `shout-bot`; `None` when nothing valid is left.
pub fn normalise_name(raw: &str) -> Option<String> {
    let name: String = raw
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' || c == ' ' { '-' } else { c })
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    valid_name(&name).then_some(name)
}

const CREATE_WORDS: &[&str] = &["create", "make", "build", "generate", "write", "new"];
const STATUS_PHRASES: &[&str] = &["what happened", "status", "how is", "how's", "progress", "did it", "is it done", "finished", "my runs", "my agents", "runs"];

/// Classifies a request; `known` are the agents this engine started runs for.
pub fn intent(text: &str, known: &[String]) -> Intent {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric() && c != '-').filter(|w| !w.is_empty()).collect();
    let named_known = known.iter().find(|k| words.contains(&k.as_str())).cloned();
    let creates = words.iter().any(|w| CREATE_WORDS.contains(w)) && (words.contains(&"agent") || lower.contains("called") || lower.contains("named"));
    // A create request that names or shows its agent is one, whatever else it says ("... that runs").
    let explicit = lower.contains("called") || lower.contains("named") || lower.contains("->") || lower.contains("=>") || cases_marker(&lower).is_some();
    if creates && explicit {
        return Intent::Create;
    }
    if STATUS_PHRASES.iter().any(|p| lower.contains(p)) {
        return Intent::Status(named_known);
    }
    if creates {
        return Intent::Create;
    }
    match named_known {
        Some(name) => Intent::Status(Some(name)),
        None => Intent::Help,
    }
}

/// Where the cases part starts: the earliest marker like `cases:`.
fn cases_marker(lower: &str) -> Option<(usize, usize)> {
    ["test cases:", "cases:", "examples:", "tests:", "case:", "example:", "e.g."]
        .iter()
        .filter_map(|m| lower.find(m).map(|at| (at, at + m.len())))
        .min()
}

/// Reads name, spec and cases from `text`.
pub fn parse_create(text: &str) -> CreateDraft {
    let lower = text.to_lowercase();
    let (description, cases_part) = match cases_marker(&lower) {
        Some((at, after)) => (&text[..at], &text[after..]),
        None if text.contains("->") || text.contains("=>") => split_at_first_quote_pair(text),
        None => (text, ""),
    };
    let (name, spec_start) = find_name(description);
    let spec = spec_start.and_then(|start| spec_from(&description[start..]));
    CreateDraft { name, spec, cases: parse_cases(cases_part) }
}

/// Without a marker, cases start at the first quote before the first arrow.
fn split_at_first_quote_pair(text: &str) -> (&str, &str) {
    let arrow = text.find("->").or_else(|| text.find("=>")).unwrap_or(text.len());
    let start = text[..arrow].rfind(|c: char| QUOTES.contains(&c)).and_then(|close| text[..close].rfind(|c: char| QUOTES.contains(&c)));
    match start {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, ""),
    }
}

/// The name after `called`/`named`, else after `agent`; with the byte
/// offset where the spec starts (after the name, else after `that`/`which`).
fn find_name(description: &str) -> (Option<String>, Option<usize>) {
    let lower = description.to_lowercase();
    for marker in ["called ", "named ", "name it ", "name: "] {
        if let Some(at) = lower.find(marker) {
            let start = at + marker.len();
            let token_end = description[start..].find(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ':').map_or(description.len(), |e| start + e);
            if let Some(name) = normalise_name(&description[start..token_end]) {
                return (Some(name), Some(token_end));
            }
        }
    }
    const NOT_NAMES: &[&str] = &["that", "which", "who", "to", "for", "called", "named", "with", "please", "can", "able"];
    if let Some(at) = lower.find("agent ") {
        let start = at + "agent ".len();
        let token_end = description[start..].find(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ':').map_or(description.len(), |e| start + e);
        let token = &description[start..token_end];
        if !NOT_NAMES.contains(&token.to_lowercase().as_str()) {
            if let Some(name) = normalise_name(token) {
                return (Some(name), Some(token_end));
            }
        }
    }
    let clause = [" that ", " which ", " to "].iter().filter_map(|m| lower.find(m).map(|at| at + 1)).min();
    (None, clause)
}

/// The spec: what follows the name, without `that`/`which` and trailing separators.
fn spec_from(rest: &str) -> Option<String> {
    let mut spec = rest.trim().trim_start_matches([',', ':', '-', '—', '.', ';']).trim();
    for lead in ["that ", "which ", "who ", "to ", "it ", "should "] {
        if spec.len() >= lead.len() && spec[..lead.len()].eq_ignore_ascii_case(lead) {
            spec = spec[lead.len()..].trim();
        }
    }
    let spec = spec.trim_end_matches([';', ',', '.', ':', ' ', '-']).trim();
    if spec.split_whitespace().count() < 2 {
        return None;
    }
    let mut chars = spec.chars();
    let first = chars.next()?;
    Some(first.to_uppercase().chain(chars).collect())
}

const QUOTES: &[char] = &['\'', '"', '“', '”', '‘', '’', '`'];
const ARROWS: &[&str] = &["->", "=>", "→", " gives ", " returns ", " answers "];

/// `'hello' -> 'HELLO', 'abc' -> 'ABC' (held out)`: pairs around arrows.
pub fn parse_cases(part: &str) -> Vec<CaseDraft> {
    let mut cases = Vec::new();
    for chunk in split_pairs(part) {
        let Some((left, right)) = ARROWS.iter().find_map(|a| chunk.split_once(a)) else { continue };
        let request = last_quoted_or_text(left);
        let (expect, rest) = first_quoted_or_word(right);
        if request.is_empty() || expect.is_empty() || cases.len() >= MAX_CASES {
            continue;
        }
        let rest = rest.to_lowercase();
        let held_out = rest.contains("held out") || rest.contains("held-out") || rest.contains("hidden");
        cases.push(CaseDraft { name: format!("case-{}", cases.len() + 1), request, expect_contains: vec![expect], held_out });
    }
    cases
}

/// Splits at commas/semicolons that are outside quotes.
fn split_pairs(part: &str) -> Vec<String> {
    let (mut out, mut current, mut quote) = (Vec::new(), String::new(), None::<char>);
    for c in part.chars() {
        match quote {
            Some(q) if c == q || (q == '“' && c == '”') || (q == '‘' && c == '’') => quote = None,
            None if QUOTES.contains(&c) && c != '”' && c != '’' => quote = Some(c),
            None if c == ',' || c == ';' || c == '\n' => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// The last quoted string of `s` ("and 'abc'" → "abc"), else its trimmed text.
fn last_quoted_or_text(s: &str) -> String {
    let t = s.trim();
    if let Some(close) = t.rfind(|c: char| QUOTES.contains(&c)) {
        if let Some(open) = t[..close].rfind(|c: char| QUOTES.contains(&c)) {
            let open_len = t[open..].chars().next().map_or(1, char::len_utf8);
            return t[open + open_len..close].to_string();
        }
    }
    t.trim_matches(|c: char| QUOTES.contains(&c)).trim().to_string()
}

/// The first quoted string (or the whole text, unquoted) and what follows.
fn first_quoted_or_word(s: &str) -> (String, &str) {
    let t = s.trim_start();
    if let Some(open) = t.chars().next().filter(|c| QUOTES.contains(c)) {
        let body = &t[open.len_utf8()..];
        let close = body.find(|c: char| QUOTES.contains(&c)).unwrap_or(body.len());
        let after = (close + body[close..].chars().next().map_or(0, char::len_utf8)).min(body.len());
        return (body[..close].to_string(), &body[after..]);
    }
    match t.find('(') {
        Some(p) => (t[..p].trim().to_string(), &t[p..]),
        None => (t.trim().trim_end_matches('.').to_string(), ""),
    }
}

/// The problems that keep a draft from being sent, for a person.
pub fn missing_parts(d: &CreateDraft) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if d.name.is_none() {
        missing.push("a name (\"an agent called shout\"; lower-case letters, digits and dashes)");
    }
    if d.spec.is_none() {
        missing.push("what it should do (\"that answers with the request in capitals\")");
    }
    if d.cases.is_empty() {
        missing.push("test cases (\"cases: 'hello' -> 'HELLO', 'abc' -> 'ABC'\")");
    }
    missing
}

/// With three or more cases and none held out, the last is held out, so
/// selection checks a case the generator never saw.
pub fn hold_out_last(cases: &mut [CaseDraft]) -> bool {
    if cases.len() >= 3 && !cases.iter().any(|c| c.held_out) {
        if let Some(last) = cases.last_mut() {
            last.held_out = true;
            return true;
        }
    }
    false
}
