//! `github`'s tests with recorded fixtures. They live outside `src/`
//! because a candidate's source (what the evolution engine checks and
//! builds) may not read files with `include_str!`.
use open_source_explorer::github::*;

const PAGE1: &str = include_str!("fixtures/github_page1.json");
const PAGE2: &str = include_str!("fixtures/github_page2.json");
const EMPTY: &str = include_str!("fixtures/github_empty.json");
const LIMITED: &str = include_str!("fixtures/github_rate_limited.json");
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
