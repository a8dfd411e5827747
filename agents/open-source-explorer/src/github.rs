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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub's rate limit is spent{}", reset_text(*.reset))]
    RateLimited { reset: Option<i64> },
    #[error("GitHub refused the query: {0}")]
    Invalid(String),
    #[error("GitHub answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("GitHub's answer is not search JSON: {0}")]
    Malformed(String),
    #[error("http {code}: {message}")]
    Http { code: String, message: String },
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE1: &str = include_str!("../tests/fixtures/github_page1.json");
    const PAGE2: &str = include_str!("../tests/fixtures/github_page2.json");
    const EMPTY: &str = include_str!("../tests/fixtures/github_empty.json");
    const LIMITED: &str = include_str!("../tests/fixtures/github_rate_limited.json");
    const BASE: &str = "https://api.github.com";

    fn page(status: u16, body: &str, headers: &[(&str, &str)]) -> Page {
        Page { status, body: body.as_bytes().to_vec(), headers: headers.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect() }
    }

    const LINK1: &str = "<https://api.github.com/search/repositories?q=rust+wasm&sort=stars&order=desc&per_page=3&page=2>; rel=\"next\", <https://api.github.com/search/repositories?q=rust+wasm&sort=stars&order=desc&per_page=3&page=2>; rel=\"last\"";

    #[test]
    fn pages_are_followed_through_the_link_header() {
        let mut asked = Vec::new();
        let out = search(BASE, search_url(BASE, "rust+wasm", 3), |u| {
            asked.push(u.to_string());
            Ok(if u.ends_with("page=1") {
                page(200, PAGE1, &[("Link", LINK1), ("x-ratelimit-remaining", "9")])
            } else {
                page(200, PAGE2, &[("x-ratelimit-remaining", "8")])
            })
        });
        assert_eq!(asked.len(), 2, "{asked:?}");
        assert_eq!(out.pages, 2);
        assert_eq!(out.total_count, Some(5));
        assert!(out.stopped.is_none());
        assert_eq!(out.repos.len(), 5);
        let r = &out.repos[0];
        assert_eq!(r.full_name, "wasmtime-dev/wasmtime-agents");
        assert_eq!(r.stars, 15234);
        assert_eq!(r.language.as_deref(), Some("Rust"));
        assert_eq!(r.topics, vec!["wasm", "webassembly", "agents", "rust"]);
        assert_eq!(out.repos[4].language, None, "a null language");
    }

    #[test]
    fn a_rate_limit_stops_the_search_and_keeps_what_was_found() {
        let out = search(BASE, search_url(BASE, "x", 3), |u| {
            Ok(if u.ends_with("page=1") {
                page(200, PAGE1, &[("link", LINK1)])
            } else {
                page(403, LIMITED, &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1733240000")])
            })
        });
        assert_eq!(out.repos.len(), 3);
        assert_eq!(out.stopped, Some(GithubError::RateLimited { reset: Some(1733240000) }));
        // Remaining 0 on a good page: the next page is not asked for.
        let mut calls = 0;
        let out = search(BASE, search_url(BASE, "x", 3), |_| {
            calls += 1;
            Ok(page(200, PAGE1, &[("link", LINK1), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "7")]))
        });
        assert_eq!((calls, out.stopped.unwrap().code()), (1, "rate-limited".to_string()));
    }

    #[test]
    fn empty_malformed_and_foreign_links() {
        let out = search(BASE, search_url(BASE, "zz", 3), |_| Ok(page(200, EMPTY, &[])));
        assert!(out.repos.is_empty() && out.stopped.is_none());
        assert_eq!(out.total_count, Some(0));
        let out = search(BASE, search_url(BASE, "zz", 3), |_| Ok(page(200, "<html>", &[])));
        assert_eq!(out.stopped.unwrap().code(), "malformed");
        let foreign = "<https://evil.example/search?page=2>; rel=\"next\"";
        let mut calls = 0;
        search(BASE, search_url(BASE, "x", 3), |_| {
            calls += 1;
            Ok(page(200, PAGE1, &[("link", foreign)]))
        });
        assert_eq!(calls, 1, "a next link off the base is not followed");
        let out = search(BASE, search_url(BASE, "x", 3), |_| Ok(page(422, r#"{"message":"Validation Failed"}"#, &[])));
        assert_eq!(out.stopped.unwrap().code(), "invalid-query");
    }

    #[test]
    fn pages_are_capped() {
        let mut calls = 0;
        let out = search(BASE, search_url(BASE, "x", 3), |_| {
            calls += 1;
            Ok(page(200, PAGE1, &[("link", LINK1)]))
        });
        assert_eq!(calls, MAX_PAGES);
        assert_eq!(out.repos.len(), 9);
    }
}
