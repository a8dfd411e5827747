//! What a request asks for, the settings it carries, and the search query.
use serde::Deserialize;

pub const DEFAULT_GITHUB: &str = "https://api.github.com";
pub const DEFAULT_TOPICS: &[&str] = &["llm agents", "webassembly runtime"];
pub const DEFAULT_MAX_RESULTS: u32 = 10;
/// Topics searched per request, at most.
pub const MAX_TOPICS: usize = 5;
const MAX_TOPIC_CHARS: usize = 80;
const DEFAULT_LIST: usize = 10;
const MAX_LIST: usize = 50;
/// "Trending": pushed within this many days.
pub const TRENDING_DAYS: i64 = 30;

/// The request's `context`: a host research cycle or a caller's options.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub cycle: bool,
    pub topics: Vec<String>,
    pub github_url: Option<String>,
    pub max_results: Option<u32>,
    /// A search answer (JSON) to read instead of fetching.
    pub document: Option<String>,
    pub topic: Option<String>,
    pub list: bool,
    pub limit: Option<usize>,
}

impl Settings {
    pub fn github_base(&self) -> String {
        self.github_url.as_deref().unwrap_or(DEFAULT_GITHUB).trim_end_matches('/').to_string()
    }
    pub fn per_page(&self) -> u32 {
        self.max_results.unwrap_or(DEFAULT_MAX_RESULTS).clamp(1, crate::github::MAX_PER_PAGE)
    }
}

#[derive(Debug, PartialEq)]
pub enum Intent {
    Search { topics: Vec<String>, trending: bool },
    List { limit: usize },
    Parse { document: String, topic: String },
}

const FILLER: &[&str] = &[
    "what", "what's", "whats", "is", "are", "new", "on", "in", "of", "the", "a", "an", "github", "repo", "repos",
    "repository", "repositories", "project", "projects", "about", "for", "find", "me", "show", "latest", "recent", "any",
    "there", "search", "look", "up", "please", "trending", "popular", "top", "best", "open", "source", "open-source",
    "libraries", "library", "crates", "tools", "some", "written", "with", "using", "today", "this", "week",
];

/// Languages a query may name; they become a `language:` qualifier.
const LANGUAGES: &[&str] = &["rust", "python", "go", "typescript", "javascript", "zig", "java", "c", "c++", "kotlin", "swift"];

pub fn classify(text: &str, settings: &Settings) -> Intent {
    if let Some(document) = &settings.document {
        return Intent::Parse { document: document.clone(), topic: settings.topic.clone().unwrap_or_else(|| "document".into()) };
    }
    let limit = settings.limit.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    if settings.list {
        return Intent::List { limit };
    }
    if settings.cycle {
        return Intent::Search { topics: configured_topics(settings), trending: true };
    }
    let lower = text.to_lowercase();
    let trending = ["trending", "popular", "hot", "rising", "new"].iter().any(|w| lower.split_whitespace().any(|x| x == *w));
    if ["findings", "proposals", "found", "stored"].iter().any(|w| lower.contains(w)) && !lower.contains(" about ") {
        return Intent::List { limit };
    }
    match topic_of(text) {
        Some(t) => Intent::Search { topics: vec![t], trending },
        None => Intent::Search { topics: configured_topics(settings), trending },
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

/// The topic words of a request, less the filler.
pub fn topic_of(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '-' || c == '+' || c == '\'')))
        .filter(|w| !w.is_empty() && !FILLER.contains(w))
        .collect();
    clean_topic(&words.join(" "))
}

/// The `q` parameter: the topic's words, a language named among them as
/// `language:`, and for trending searches `pushed:>DATE`.
pub fn query(topic: &str, trending: bool, now_secs: i64) -> String {
    let mut parts: Vec<String> = Vec::new();
    for w in topic.split_whitespace().take(6) {
        if LANGUAGES.contains(&w) {
            parts.push(format!("language:{w}"));
        } else {
            parts.push(w.to_string());
        }
    }
    if trending {
        parts.push(format!("pushed:>{}", date_of(now_secs - TRENDING_DAYS * 86_400)));
    }
    parts.iter().map(|p| encode(p)).collect::<Vec<_>>().join("+")
}

/// `YYYY-MM-DD` of a unix time (UTC), by the civil-from-days algorithm.
pub fn date_of(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
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
        assert_eq!(intent("find trending Rust wasm repositories"), Intent::Search { topics: vec!["rust wasm".into()], trending: true });
        assert_eq!(intent("what are the latest findings"), Intent::List { limit: 10 });
        assert_eq!(intent("search github for vector databases"), Intent::Search { topics: vec!["vector databases".into()], trending: false });
        assert!(matches!(intent("show me github repos"), Intent::Search { trending: false, .. }));
    }

    #[test]
    fn the_query_has_qualifiers() {
        let q = query("rust wasm", true, 1_733_184_000); // 2024-12-03
        assert_eq!(q, "language%3Arust+wasm+pushed%3A%3E2024-11-03");
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
    }
}
