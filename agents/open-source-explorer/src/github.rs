//! GitHub's repository search (`GET /search/repositories`): the JSON, the
//! `Link` header's pagination, and the rate-limit headers.
//!
//! Pages are followed through `rel="next"` up to a cap, and only while the
//! link stays under the same base URL. A 403 or 429 that says the limit is
//! spent (`x-ratelimit-remaining: 0`, `retry-after`, or the message) stops
//! the search with what was found so far, and says so; `x-ratelimit-remaining:
//! 0` on a good page stops before asking for the next one.
use serde::{Deserialize, Serialize};

use crate::scoring::clip;

/// Pages followed per search, at most.
pub const MAX_PAGES: u32 = 3;
/// Repositories per page, at most (GitHub allows 100).
pub const MAX_PER_PAGE: u32 = 30;
/// Repositories kept per search, at most.
pub const MAX_REPOS: usize = 60;
pub const MAX_DESCRIPTION_BYTES: usize = 600;
pub const MAX_TOPICS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub enum GithubError {
    RateLimited { reset: Option<i64> },
    Invalid(String),
    Status { status: u16, message: String },
    Malformed(String),
    Http { code: String, message: String },
}

impl std::fmt::Display for GithubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GithubError::RateLimited { reset } => write!(f, "GitHub's rate limit is spent{}", reset_text(*reset)),
            GithubError::Invalid(m) => write!(f, "GitHub refused the query: {m}"),
            GithubError::Status { status, message } => write!(f, "GitHub answered HTTP {status}: {message}"),
            GithubError::Malformed(m) => write!(f, "GitHub's answer is not search JSON: {m}"),
            GithubError::Http { code, message } => write!(f, "http {code}: {message}"),
        }
    }
}

impl std::error::Error for GithubError {}

fn reset_text(reset: Option<i64>) -> String {
    reset.map(|r| format!(" until {r} (unix time)")).unwrap_or_default()
}

impl GithubError {
    pub fn code(&self) -> String {
        match self {
            GithubError::RateLimited { .. } => "rate-limited".into(),
            GithubError::Invalid(_) => "invalid-query".into(),
            GithubError::Status { .. } => "status".into(),
            GithubError::Malformed(_) => "malformed".into(),
            GithubError::Http { code, .. } => code.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    total_count: u64,
    #[serde(default)]
    incomplete_results: bool,
    items: Vec<RawRepo>,
}

#[derive(Debug, Deserialize)]
struct RawRepo {
    full_name: String,
    html_url: String,
    description: Option<String>,
    #[serde(default)]
    stargazers_count: u64,
    language: Option<String>,
    pushed_at: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
}

/// One repository, bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repo {
    pub full_name: String,
    pub url: String,
    pub description: String,
    pub stars: u64,
    pub language: Option<String>,
    pub pushed_at: String,
    pub topics: Vec<String>,
}

/// One HTTP answer, as the search needs it.
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What one search gave: the repositories found before it stopped, and why it stopped early.
#[derive(Debug, Default)]
pub struct SearchOutcome {
    pub repos: Vec<Repo>,
    pub total_count: Option<u64>,
    pub incomplete_results: bool,
    pub pages: u32,
    pub stopped: Option<GithubError>,
}

/// `{base}/search/repositories?q=...&sort=stars&order=desc&per_page=N&page=1`.
pub fn search_url(base: &str, query: &str, per_page: u32) -> String {
    format!("{base}/search/repositories?q={query}&sort=stars&order=desc&per_page={}&page=1", per_page.clamp(1, MAX_PER_PAGE))
}

/// Runs a search from `first_url`, following `next` links with `get`.
pub fn search(base: &str, first_url: String, mut get: impl FnMut(&str) -> Result<Page, GithubError>) -> SearchOutcome {
    let mut out = SearchOutcome::default();
    let mut url = Some(first_url);
    while let Some(u) = url.take() {
        if out.pages >= MAX_PAGES || out.repos.len() >= MAX_REPOS {
            break;
        }
        let page = match get(&u).and_then(check_status) {
            Ok(p) => p,
            Err(e) => {
                out.stopped = Some(e);
                break;
            }
        };
        out.pages += 1;
        match parse_page(&page.body) {
            Ok(parsed) => {
                out.total_count = Some(parsed.total_count);
                out.incomplete_results |= parsed.incomplete_results;
                let room = MAX_REPOS - out.repos.len();
                out.repos.extend(parsed.items.into_iter().take(room).map(repo));
            }
            Err(e) => {
                out.stopped = Some(e);
                break;
            }
        }
        if page.header("x-ratelimit-remaining").map(str::trim) == Some("0") {
            // Asking again would only earn a 403: stop, and say until when.
            if next_link(page.header("link")).is_some() {
                out.stopped = Some(GithubError::RateLimited { reset: reset_of(&page) });
            }
            break;
        }
        url = next_link(page.header("link")).filter(|n| n.starts_with(base));
    }
    out
}

fn reset_of(page: &Page) -> Option<i64> {
    page.header("x-ratelimit-reset").and_then(|r| r.trim().parse().ok())
}

/// Errors by status; a 403/429 is a rate limit when GitHub says so.
fn check_status(page: Page) -> Result<Page, GithubError> {
    if page.status == 200 {
        return Ok(page);
    }
    let message = serde_json::from_slice::<serde_json::Value>(&page.body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(|m| clip(m, 300)))
        .unwrap_or_default();
    let spent = page.header("x-ratelimit-remaining").map(str::trim) == Some("0")
        || page.header("retry-after").is_some()
        || message.to_lowercase().contains("rate limit");
    match page.status {
        403 | 429 if spent => Err(GithubError::RateLimited { reset: reset_of(&page) }),
        422 => Err(GithubError::Invalid(message)),
        status => Err(GithubError::Status { status, message }),
    }
}

fn parse_page(body: &[u8]) -> Result<SearchPage, GithubError> {
    serde_json::from_slice(body).map_err(|e| GithubError::Malformed(e.to_string()))
}

fn repo(r: RawRepo) -> Repo {
    Repo {
        full_name: clip(&r.full_name, 200),
        url: clip(&r.html_url, 300),
        description: clip(r.description.as_deref().unwrap_or("").trim(), MAX_DESCRIPTION_BYTES),
        stars: r.stargazers_count,
        language: r.language.map(|l| clip(&l, 40)),
        pushed_at: clip(r.pushed_at.as_deref().unwrap_or(""), 40),
        topics: r.topics.into_iter().take(MAX_TOPICS).map(|t| clip(&t, 50)).collect(),
    }
}

/// The `rel="next"` URL of a `Link` header:
/// `<https://api.github.com/search/repositories?q=x&page=2>; rel="next", <...>; rel="last"`.
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim();
        is_next.then(|| target.strip_prefix('<')?.strip_suffix('>').map(str::to_string)).flatten()
    })
}
