//! Rejects candidate sources that could reach outside `src/` or the
//! allowed toolchain features, before anything is built.
//!
//! The check works on tokens ([`tokens`]: comments, strings, raw strings
//! and raw identifiers are understood), so whitespace, comments or
//! `r#ident` spellings do not hide a construct, and a string mentioning one
//! is not a false alarm. Refused: `include!`, `include_str!`,
//! `include_bytes!`, `env!`, `option_env!`, inline/global asm, macro
//! invocations through a metavariable (`$m!`, which could smuggle any of
//! those in), a `#` that does not start an attribute (a macro assembling
//! one), the names of the forbidden macros used in any way (including
//! `env` and the SDK's re-exported `wit_bindgen`), `extern crate` of
//! anything but the allowed crates, `mod x;` whose file is not inside the
//! candidate's `src/`, and every attribute not on [`attributes`]' list
//! (`#[path]`, `#![feature]`, `#[link]`, `debugger_visualizer`,
//! `#![crate_type]`, … and serde strings serde would parse as more than a
//! path). Attribute bodies are scanned like all other tokens, so
//! `#[doc = include_str!(…)]` is refused as `include_str!`.
//!
//! A candidate's violations are counted, and only the first
//! [`MAX_VIOLATIONS_KEPT`] kept (then one line saying how many there were):
//! a file full of forbidden names must not become a report of hundreds of
//! megabytes.
//!
//! The check is the first wall, not the only one: the build runs in a
//! sandbox that sees no host files but the toolchain and crate sources.
mod attributes;
pub mod read;
mod tokens;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use self::tokens::{Tok, tokenize};

/// The files of a candidate's `src/`, by path relative to `src/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CandidateSource {
    pub files: BTreeMap<String, String>,
}

/// Largest candidate accepted: files and total bytes.
pub const MAX_FILES: usize = 64;
pub const MAX_TOTAL_BYTES: usize = 1 << 20;
/// Violations kept per candidate; the rest are only counted.
pub const MAX_VIOLATIONS_KEPT: usize = 20;
/// The `construct` of the line that says how many violations were found
/// when more than [`MAX_VIOLATIONS_KEPT`] were.
pub const MORE_VIOLATIONS: &str = "more violations";
/// Longest candidate-chosen name (identifier, attribute) a violation repeats.
const MAX_NAME_SHOWN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Violation {
    pub file: String,
    pub line: u32,
    pub construct: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "src/{}:{}: {} ({})", self.file, self.line, self.message, self.construct)
    }
}

/// Macros that read files or the build environment, or emit raw machine code.
const FORBIDDEN_MACROS: &[&str] =
    &["include", "include_str", "include_bytes", "env", "option_env", "asm", "global_asm", "naked_asm", "llvm_asm"];
/// Identifiers never allowed at all, so no macro can receive and invoke
/// them: identifiers cannot be pieced together on stable Rust, so a name
/// that never appears can never be called. `env` is here too (not only
/// `env!`): a `macro_rules!` can drop the tokens between `env` and a `!`
/// it was handed separately, and `std::env` is empty in an agent anyway.
/// `wit_bindgen` (re-exported by the SDK) because its `generate!` reads
/// files named by path at compile time.
const FORBIDDEN_IDENTS: &[&str] = &[
    "include",
    "include_str",
    "include_bytes",
    "env",
    "option_env",
    "asm",
    "global_asm",
    "naked_asm",
    "llvm_asm",
    "wit_bindgen",
    "__wit_bindgen",
];
/// Crates an `extern crate` may name (what the template's manifest provides).
const ALLOWED_EXTERN_CRATES: &[&str] = &["std", "core", "alloc", "agentkernel_sdk", "serde", "serde_json", "self"];

impl CandidateSource {
    /// Reads every file under `src` (regular `.rs` files only; anything
    /// else is refused, see [`read`]). `src` itself may be a link: this is
    /// for the operator's own crate and the host's build directories; a
    /// candidate's files are read with [`read::read_tree`] without that.
    pub fn read_dir(src: &Path) -> Result<CandidateSource, String> {
        read::read_tree(src, true).map_err(|e| e.to_string())
    }

    /// One file as `src/lib.rs`.
    pub fn single(lib_rs: &str) -> CandidateSource {
        CandidateSource { files: [("lib.rs".to_string(), lib_rs.to_string())].into() }
    }

    pub fn total_bytes(&self) -> usize {
        self.files.values().map(String::len).sum()
    }

    /// Writes the files under `src`.
    pub fn write_to(&self, src: &Path) -> std::io::Result<()> {
        for (rel, text) in &self.files {
            let path = src.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text)?;
        }
        Ok(())
    }
}

/// Every reason `source` may not be built, up to [`MAX_VIOLATIONS_KEPT`]
/// (then a [`MORE_VIOLATIONS`] line with the count); empty means it may.
pub fn check(source: &CandidateSource) -> Vec<Violation> {
    let mut out = Violations::default();
    let whole = |construct: &str, message: String| Violation { file: "(candidate)".into(), line: 0, construct: construct.into(), message };
    if !source.files.contains_key("lib.rs") {
        out.push(whole("missing lib.rs", "a candidate needs src/lib.rs".into()));
    }
    if source.files.len() > MAX_FILES || source.total_bytes() > MAX_TOTAL_BYTES {
        out.push(whole("too large", format!("more than {MAX_FILES} files or {MAX_TOTAL_BYTES} bytes")));
    }
    for (rel, text) in &source.files {
        // `lib.rs` beside `lib.rs/x.rs`: no directory can hold both.
        if source.files.keys().any(|other| other.starts_with(&format!("{rel}/"))) {
            out.push(Violation {
                file: rel.clone(),
                line: 0,
                construct: "file path".into(),
                message: format!("`{}` is both a file and a directory of other files", shown(rel)),
            });
            continue;
        }
        if !is_plain_relative(rel) || !rel.ends_with(".rs") {
            out.push(Violation {
                file: rel.clone(),
                line: 0,
                construct: "file path".into(),
                message: "file paths must be plain relative .rs paths inside src/".into(),
            });
            continue;
        }
        check_file(rel, text, source, &mut out);
    }
    out.into_vec()
}

/// Violations as found: the first [`MAX_VIOLATIONS_KEPT`] kept, all counted.
#[derive(Default)]
struct Violations {
    kept: Vec<Violation>,
    found: usize,
}

impl Violations {
    fn push(&mut self, v: Violation) {
        self.found += 1;
        if self.kept.len() < MAX_VIOLATIONS_KEPT {
            self.kept.push(v);
        }
    }

    fn into_vec(mut self) -> Vec<Violation> {
        if self.found > self.kept.len() {
            let (found, kept) = (self.found, self.kept.len());
            self.kept.push(Violation {
                file: "(candidate)".into(),
                line: 0,
                construct: MORE_VIOLATIONS.into(),
                message: format!("{found} violations in all; only the first {kept} are listed"),
            });
        }
        self.kept
    }
}

/// `name` as a violation repeats it: at most [`MAX_NAME_SHOWN`] characters.
fn shown(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME_SHOWN) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_string(),
    }
}

fn is_plain_relative(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

fn check_file(rel: &str, text: &str, source: &CandidateSource, out: &mut Violations) {
    let toks = tokenize(text);
    let mut push = |line: u32, construct: &str, message: String| {
        out.push(Violation { file: rel.to_string(), line, construct: construct.to_string(), message });
    };
    let ident = |k: usize| match toks.get(k) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let punct = |k: usize, p: char| matches!(toks.get(k), Some((Tok::Punct(q), _)) if *q == p);

    // Inline `mod x { … }` blocks open while scanning, with the brace depth
    // they close at: nested `mod y;` files live under them.
    let mut inline_mods: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut k = 0;
    while k < toks.len() {
        let line = toks[k].1;
        match &toks[k].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                while inline_mods.last().is_some_and(|(_, d)| *d > depth) {
                    inline_mods.pop();
                }
            }
            Tok::Punct('$') if ident(k + 1).is_some() && punct(k + 2, '!') => {
                push(line, "$macro!", "invoking a macro through a metavariable could hide a forbidden macro".into());
            }
            Tok::Punct('#') => {
                let open = if punct(k + 1, '!') { k + 2 } else { k + 1 };
                if punct(open, '[') {
                    let end = matching(&toks, open);
                    attributes::check_attribute(&toks[open + 1..end.min(toks.len())], line, &mut push);
                    // The body is code too (`#[doc = include_str!(…)]`):
                    // scanned on like any other tokens.
                    k = open + 1;
                    continue;
                }
                // Outside raw strings and identifiers (already consumed), a
                // `#` only starts an attribute. One followed by anything else
                // is a macro assembling an attribute from pieces whose body
                // this check would never see.
                push(line, "#", "a `#` that does not start an attribute: attributes assembled by macros are not allowed".into());
            }
            Tok::Ident(name) => {
                let name = name.as_str();
                if FORBIDDEN_MACROS.contains(&name) && punct(k + 1, '!') {
                    push(line, &format!("{name}!"), format!("`{name}!` reads outside the candidate or emits raw code"));
                } else if FORBIDDEN_IDENTS.contains(&name) {
                    let why = match name {
                        "env" => "`std::env` is empty inside an agent, and the name could smuggle in `env!`",
                        "wit_bindgen" | "__wit_bindgen" => "its `generate!` reads files at compile time; use the SDK's API",
                        _ => "it names a forbidden macro",
                    };
                    push(line, name, format!("the identifier `{name}` is reserved: {why}"));
                } else if name == "extern" && ident(k + 1) == Some("crate") {
                    let krate = ident(k + 2).unwrap_or("?");
                    if !ALLOWED_EXTERN_CRATES.contains(&krate) {
                        let krate = shown(krate);
                        push(line, "extern crate", format!("`extern crate {krate}`: only the template's dependencies are available"));
                    }
                } else if name == "mod" {
                    match (ident(k + 1), toks.get(k + 2).map(|t| &t.0)) {
                        (Some(m), Some(Tok::Punct(';'))) => {
                            let parents: Vec<&str> = inline_mods.iter().map(|(n, _)| n.as_str()).collect();
                            if let Err(msg) = resolve_module(rel, &parents, m, source) {
                                push(line, "mod", msg);
                            }
                        }
                        (Some(m), Some(Tok::Punct('{'))) => {
                            inline_mods.push((m.to_string(), depth + 1));
                        }
                        (None, _) if punct(k + 1, '$') => {
                            push(line, "mod $name", "module declarations through a macro are not allowed".into())
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        k += 1;
    }
}

/// Index of the `]` closing the `[` at `open` (or the end).
fn matching(toks: &[(Tok, u32)], open: usize) -> usize {
    let mut depth = 0;
    for (k, (t, _)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Where `mod name;` declared in `rel` (inside inline modules `parents`)
/// must find its file; an error unless it is a file of the candidate.
fn resolve_module(rel: &str, parents: &[&str], name: &str, source: &CandidateSource) -> Result<(), String> {
    let file = Path::new(rel);
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut dir: PathBuf = file.parent().map(Path::to_path_buf).unwrap_or_default();
    if !matches!(stem, "lib" | "mod" | "main") {
        dir.push(stem);
    }
    for p in parents {
        dir.push(p);
    }
    let as_file = dir.join(format!("{name}.rs")).to_string_lossy().replace('\\', "/");
    let as_dir = dir.join(name).join("mod.rs").to_string_lossy().replace('\\', "/");
    if source.files.contains_key(&as_file) || source.files.contains_key(&as_dir) {
        Ok(())
    } else {
        let (name, as_file, as_dir) = (shown(name), shown(&as_file), shown(&as_dir));
        Err(format!("`mod {name};` needs src/{as_file} or src/{as_dir}, which the candidate does not contain"))
    }
}

#[cfg(test)]
mod tests;
