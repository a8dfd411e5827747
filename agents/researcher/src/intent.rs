//! What a request asks for, and the settings it carries.
use serde::Deserialize;

pub const DEFAULT_ARXIV: &str = "https://export.arxiv.org";
pub const DEFAULT_TOPICS: &[&str] = &["llm agents", "webassembly"];
pub const DEFAULT_MAX_RESULTS: u32 = 10;
/// Papers asked for per topic, at most (arXiv allows far more; we read few).
pub const MAX_RESULTS_CAP: u32 = 50;
/// Topics fetched per request, at most.
pub const MAX_TOPICS: usize = 5;
/// Characters of a topic kept.
const MAX_TOPIC_CHARS: usize = 80;
/// Stored findings listed, by default and at most.
const DEFAULT_LIST: usize = 10;
const MAX_LIST: usize = 50;

/// The request's `context`: a host research cycle or a caller's options.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub cycle: bool,
    pub topics: Vec<String>,
    pub arxiv_url: Option<String>,
    pub max_results: Option<u32>,
    /// An Atom document to parse instead of fetching.
    pub document: Option<String>,
    pub topic: Option<String>,
    /// List what is stored (e.g. asked by `trend-analyzer`).
    pub list: bool,
    pub limit: Option<usize>,
}

impl Settings {
    pub fn arxiv_base(&self) -> String {
        self.arxiv_url.as_deref().unwrap_or(DEFAULT_ARXIV).trim_end_matches('/').to_string()
    }
    pub fn max_results(&self) -> u32 {
        self.max_results.unwrap_or(DEFAULT_MAX_RESULTS).clamp(1, MAX_RESULTS_CAP)
    }
}

#[derive(Debug, PartialEq)]
pub enum Intent {
    Search { topics: Vec<String> },
    List { limit: usize },
    Parse { document: String, topic: String },
}

/// Words that carry no topic ("what's new on arXiv about agents" → "agents").
const FILLER: &[&str] = &[
    "what", "what's", "whats", "is", "are", "new", "news", "on", "in", "of", "the", "a", "an", "arxiv", "paper", "papers",
    "about", "for", "find", "me", "show", "latest", "recent", "any", "there", "research", "search", "look", "up", "please",
    "preprints", "publications", "regarding", "tell", "get", "fetch", "some", "today", "this", "week", "lately",
];

pub fn classify(text: &str, settings: &Settings) -> Intent {
    if let Some(document) = &settings.document {
        let topic = settings.topic.clone().unwrap_or_else(|| "document".into());
        return Intent::Parse { document: document.clone(), topic };
    }
    let limit = settings.limit.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    if settings.list {
        return Intent::List { limit };
    }
    if settings.cycle {
        return Intent::Search { topics: configured_topics(settings) };
    }
    let lower = text.to_lowercase();
    let asks_for_stored = ["findings", "proposals", "found", "reading list", "stored"].iter().any(|w| lower.contains(w));
    let topic = topic_of(text);
    if asks_for_stored && !lower.contains(" about ") {
        return Intent::List { limit };
    }
    match topic {
        Some(t) => Intent::Search { topics: vec![t] },
        None => Intent::Search { topics: configured_topics(settings) },
    }
}

fn configured_topics(settings: &Settings) -> Vec<String> {
    let topics: Vec<String> = settings.topics.iter().filter_map(|t| clean_topic(t)).take(MAX_TOPICS).collect();
    if topics.is_empty() { DEFAULT_TOPICS.iter().map(|t| t.to_string()).collect() } else { topics }
}

fn clean_topic(t: &str) -> Option<String> {
    let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(MAX_TOPIC_CHARS).collect();
    (!t.is_empty()).then_some(t)
}

/// The topic a person asked about: the words after "about"/"on"/"for" when
/// present, else all words, less the filler.
pub fn topic_of(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let tail = ["about ", "regarding ", " on ", " for "]
        .iter()
        .filter_map(|m| lower.rfind(m).map(|i| &lower[i + m.len()..]))
        .find(|rest| rest.split_whitespace().any(|w| !FILLER.contains(&trim_word(w))))
        .unwrap_or(&lower);
    let words: Vec<&str> =
        tail.split_whitespace().map(trim_word).filter(|w| !w.is_empty() && !FILLER.contains(w)).collect();
    clean_topic(&words.join(" "))
}

fn trim_word(w: &str) -> &str {
    w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\''))
}

/// `{base}/api/query?search_query=all:w1+AND+all:w2&...`, newest first.
pub fn query_url(base: &str, topic: &str, max_results: u32) -> String {
    let terms: Vec<String> = topic.split_whitespace().take(8).map(|w| format!("all:{}", encode(w))).collect();
    format!(
        "{base}/api/query?search_query={}&start=0&max_results={max_results}&sortBy=submittedDate&sortOrder=descending",
        terms.join("+AND+")
    )
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(text: &str) -> Intent {
        classify(text, &Settings::default())
    }

    #[test]
    fn natural_requests() {
        assert_eq!(intent("what's new on arXiv about agents"), Intent::Search { topics: vec!["agents".into()] });
        assert_eq!(intent("find papers on WebAssembly sandboxing"), Intent::Search { topics: vec!["webassembly sandboxing".into()] });
        assert_eq!(intent("what are the latest findings"), Intent::List { limit: 10 });
        assert_eq!(intent("show me the reading proposals"), Intent::List { limit: 10 });
        assert_eq!(intent("what's new on arxiv?"), Intent::Search { topics: vec!["llm agents".into(), "webassembly".into()] });
    }

    #[test]
    fn a_cycle_uses_its_settings_bounded() {
        let s: Settings = serde_json::from_str(r#"{"cycle": true, "topics": ["a", " b  c ", "", "d", "e", "f", "g"], "max_results": 500}"#).unwrap();
        assert_eq!(classify("research cycle", &s), Intent::Search { topics: vec!["a".into(), "b c".into(), "d".into(), "e".into(), "f".into()] });
        assert_eq!(s.max_results(), MAX_RESULTS_CAP);
    }

    #[test]
    fn the_query_url_is_encoded() {
        assert_eq!(
            query_url("http://127.0.0.1:9", "llm agents", 5),
            "http://127.0.0.1:9/api/query?search_query=all:llm+AND+all:agents&start=0&max_results=5&sortBy=submittedDate&sortOrder=descending"
        );
        assert_eq!(encode("c++ & x"), "c%2B%2B%20%26%20x");
    }
}
