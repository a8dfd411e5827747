//! arXiv's Atom API answer (`/api/query`), parsed into papers.
//!
//! The feed is Atom (`http://www.w3.org/2005/Atom`) with two extension
//! namespaces: `opensearch:totalResults` (how many papers match in all) and
//! `arxiv:primary_category`. Elements are matched by namespace URI, never
//! by prefix, so a feed that binds other prefixes parses the same. arXiv
//! reports a bad query as a feed with one entry whose id is under
//! `/api/errors`: that is an [`AtomError::Api`], not a paper.
use roxmltree::{Document, Node, ParsingOptions};
use serde::{Deserialize, Serialize};

pub const ATOM: &str = "http://www.w3.org/2005/Atom";
pub const ARXIV: &str = "http://arxiv.org/schemas/atom";
pub const OPENSEARCH: &str = "http://a9.com/-/spec/opensearch/1.1/";

/// Entries read from one feed; the rest are ignored.
pub const MAX_ENTRIES: usize = 50;
/// Largest document parsed, in bytes (the http capability caps what arrives).
pub const MAX_DOCUMENT_BYTES: usize = 2 << 20;
/// XML nodes a document may have: a bound on the parser's memory.
const MAX_NODES: u32 = 200_000;
/// Text kept per field, in bytes.
pub const MAX_TITLE_BYTES: usize = 300;
pub const MAX_SUMMARY_BYTES: usize = 1200;
pub const MAX_AUTHORS: usize = 10;
pub const MAX_CATEGORIES: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum AtomError {
    Malformed(String),
    NotAFeed(String),
    Api(String),
    TooLarge(usize),
}

impl std::fmt::Display for AtomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AtomError::Malformed(m) => write!(f, "malformed XML: {m}"),
            AtomError::NotAFeed(root) => write!(f, "not an Atom feed: the root element is {root}"),
            AtomError::Api(m) => write!(f, "arXiv refused the query: {m}"),
            AtomError::TooLarge(n) => write!(f, "the document is {n} bytes; at most {MAX_DOCUMENT_BYTES} are parsed"),
        }
    }
}

impl std::error::Error for AtomError {}

impl AtomError {
    /// The stable code callers and the host see.
    pub fn code(&self) -> &'static str {
        match self {
            AtomError::Malformed(_) | AtomError::NotAFeed(_) => "malformed",
            AtomError::Api(_) => "api-error",
            AtomError::TooLarge(_) => "too-large",
        }
    }
}

/// One paper of the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paper {
    /// The arXiv id without its version (`2401.01234`, `hep-th/9901001`):
    /// a new version of a paper is not a new finding.
    pub id: String,
    pub version: Option<String>,
    pub title: String,
    pub summary: String,
    pub published: String,
    pub authors: Vec<String>,
    /// The abstract page (`link[@rel=alternate]`).
    pub url: String,
    pub pdf_url: Option<String>,
    pub primary_category: Option<String>,
    pub categories: Vec<String>,
}

/// A parsed feed: how many papers match in all, and the first entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    pub total_results: Option<u64>,
    pub papers: Vec<Paper>,
}

/// Parses an arXiv Atom document. An empty feed is `Ok` with no papers.
pub fn parse(xml: &str) -> Result<Feed, AtomError> {
    if xml.len() > MAX_DOCUMENT_BYTES {
        return Err(AtomError::TooLarge(xml.len()));
    }
    let options = ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..ParsingOptions::default() };
    let doc = Document::parse_with_options(xml, options).map_err(|e| AtomError::Malformed(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name((ATOM, "feed")) {
        let ns = root.tag_name().namespace().unwrap_or("no namespace");
        return Err(AtomError::NotAFeed(format!("{} ({ns})", root.tag_name().name())));
    }
    let total_results = child_text(root, OPENSEARCH, "totalResults").and_then(|t| t.trim().parse().ok());
    let mut papers = Vec::new();
    for entry in root.children().filter(|n| n.has_tag_name((ATOM, "entry"))).take(MAX_ENTRIES) {
        let raw_id = child_text(entry, ATOM, "id").unwrap_or_default();
        if raw_id.contains("/api/errors") {
            let why = child_text(entry, ATOM, "summary").unwrap_or_else(|| "unknown error".into());
            return Err(AtomError::Api(clip(&squash(&why), MAX_SUMMARY_BYTES)));
        }
        if let Some(paper) = paper(entry, &raw_id) {
            papers.push(paper);
        }
    }
    Ok(Feed { total_results, papers })
}

/// One entry as a paper; `None` when it has no usable id or title.
fn paper(entry: Node, raw_id: &str) -> Option<Paper> {
    let (id, version) = split_id(raw_id)?;
    let title = clip(&squash(&child_text(entry, ATOM, "title")?), MAX_TITLE_BYTES);
    if title.is_empty() {
        return None;
    }
    let summary = clip(&squash(&child_text(entry, ATOM, "summary").unwrap_or_default()), MAX_SUMMARY_BYTES);
    let published = child_text(entry, ATOM, "published").map(|t| t.trim().to_string()).unwrap_or_default();
    let authors = entry
        .children()
        .filter(|n| n.has_tag_name((ATOM, "author")))
        .filter_map(|a| child_text(a, ATOM, "name"))
        .map(|n| clip(&squash(&n), 100))
        .take(MAX_AUTHORS)
        .collect();
    let mut url = None;
    let mut pdf_url = None;
    for link in entry.children().filter(|n| n.has_tag_name((ATOM, "link"))) {
        let href = link.attribute("href").unwrap_or_default();
        if link.attribute("title") == Some("pdf") {
            pdf_url.get_or_insert_with(|| href.to_string());
        } else if link.attribute("rel").unwrap_or("alternate") == "alternate" {
            url.get_or_insert_with(|| href.to_string());
        }
    }
    let primary_category = entry
        .children()
        .find(|n| n.has_tag_name((ARXIV, "primary_category")))
        .and_then(|n| n.attribute("term"))
        .map(str::to_string);
    let categories = entry
        .children()
        .filter(|n| n.has_tag_name((ATOM, "category")))
        .filter_map(|n| n.attribute("term"))
        .map(str::to_string)
        .take(MAX_CATEGORIES)
        .collect();
    Some(Paper {
        url: url.unwrap_or_else(|| format!("https://arxiv.org/abs/{id}")),
        id,
        version,
        title,
        summary,
        published,
        authors,
        pdf_url,
        primary_category,
        categories,
    })
}

/// `http://arxiv.org/abs/2401.01234v2` → (`2401.01234`, `v2`).
pub fn split_id(raw: &str) -> Option<(String, Option<String>)> {
    let raw = raw.trim();
    let id = raw.split_once("/abs/").map_or(raw, |(_, rest)| rest);
    if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_whitespace()) {
        return None;
    }
    let digits = id.bytes().rev().take_while(u8::is_ascii_digit).count();
    let cut = id.len() - digits;
    if digits > 0 && cut > 1 && id.as_bytes()[cut - 1] == b'v' {
        return Some((id[..cut - 1].to_string(), Some(id[cut - 1..].to_string())));
    }
    Some((id.to_string(), None))
}

fn child_text(node: Node, ns: &str, name: &str) -> Option<String> {
    let child = node.children().find(|n| n.has_tag_name((ns, name)))?;
    Some(child.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect())
}

/// Collapses runs of whitespace (arXiv wraps titles and abstracts).
pub fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` bytes of `text`, cut on a char boundary.
pub fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
