//! `atom`'s tests with recorded fixtures. They live outside `src/`
//! because a candidate's source (what the evolution engine checks and
//! builds) may not read files with `include_str!`.
use researcher::atom::*;

const AGENTS: &str = include_str!("fixtures/arxiv_agents.xml");
const EMPTY: &str = include_str!("fixtures/arxiv_empty.xml");
const ERROR: &str = include_str!("fixtures/arxiv_error.xml");
const MALFORMED: &str = include_str!("fixtures/arxiv_malformed.xml");

#[test]
fn a_real_feed_parses_with_namespaces_links_and_categories() {
    let feed = parse(AGENTS).unwrap();
    assert_eq!(feed.total_results, Some(18342));
    assert_eq!(feed.papers.len(), 3);
    let p = &feed.papers[0];
    assert_eq!(p.id, "2411.04468");
    assert_eq!(p.version.as_deref(), Some("v1"));
    assert!(p.title.starts_with("Magentic-One: A Generalist Multi-Agent System"), "{}", p.title);
    assert!(!p.title.contains('\n'));
    assert_eq!(p.url, "http://arxiv.org/abs/2411.04468v1");
    assert_eq!(p.pdf_url.as_deref(), Some("http://arxiv.org/pdf/2411.04468v1"));
    assert_eq!(p.primary_category.as_deref(), Some("cs.AI"));
    assert_eq!(p.categories, vec!["cs.AI", "cs.MA"]);
    assert_eq!(p.authors[0], "Adam Fourney");
    assert_eq!(p.published, "2024-11-07T06:36:19Z");
    assert_eq!(feed.papers[2].id, "cs/0112017", "old-style ids keep their archive");
}

#[test]
fn an_empty_feed_is_no_papers_not_an_error() {
    let feed = parse(EMPTY).unwrap();
    assert_eq!(feed.total_results, Some(0));
    assert!(feed.papers.is_empty());
}

#[test]
fn errors_are_typed() {
    assert_eq!(parse(MALFORMED).unwrap_err().code(), "malformed");
    let api = parse(ERROR).unwrap_err();
    assert_eq!(api.code(), "api-error");
    assert!(api.to_string().contains("incorrect id format"), "{api}");
    assert_eq!(parse("<html><body>503</body></html>").unwrap_err().code(), "malformed");
    let dtd = "<?xml version=\"1.0\"?><!DOCTYPE lol [<!ENTITY a \"aaaa\">]><feed xmlns=\"http://www.w3.org/2005/Atom\">&a;</feed>";
    assert_eq!(parse(dtd).unwrap_err().code(), "malformed", "no DTDs, so no entity expansion");
}

#[test]
fn entries_and_text_are_bounded() {
    let entry = |i: usize| {
        format!("<entry><id>http://arxiv.org/abs/2401.{i:05}v1</id><title>{}</title><summary>s</summary></entry>", "t".repeat(1000))
    };
    let body: String = (0..80).map(entry).collect();
    let xml = format!("<feed xmlns=\"{ATOM}\">{body}</feed>");
    let feed = parse(&xml).unwrap();
    assert_eq!(feed.papers.len(), MAX_ENTRIES);
    assert_eq!(feed.papers[0].title.len(), MAX_TITLE_BYTES);
}

#[test]
fn ids_lose_their_version() {
    assert_eq!(split_id("http://arxiv.org/abs/2401.01234v12").unwrap(), ("2401.01234".into(), Some("v12".into())));
    assert_eq!(split_id("hep-th/9901001").unwrap(), ("hep-th/9901001".into(), None));
    assert!(split_id("  ").is_none());
}
