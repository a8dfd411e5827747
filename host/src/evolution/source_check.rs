//! Rejects candidate sources that could reach outside `src/` or the
//! allowed toolchain features, before anything is built.
//!
//! The check works on tokens (comments, strings, raw strings and raw
//! identifiers are understood), so whitespace, comments or `r#ident`
//! spellings do not hide a construct, and a string mentioning one is not a
//! false alarm. Refused: `include!`, `include_str!`, `include_bytes!`,
//! `env!`, `option_env!`, inline/global asm, `#[path]`, `#![feature]`,
//! `#[link]` (and `link_name`/`link_section`), macro invocations through a
//! metavariable (`$m!`, which could smuggle any of those in), a `#` that
//! does not start an attribute (a macro assembling one), the names of the
//! forbidden macros used in any way (including `env` and the SDK's
//! re-exported `wit_bindgen`), `extern crate` of anything but the allowed
//! crates, and `mod x;` whose file is not inside the candidate's `src/`.
//!
//! The check is the first wall, not the only one: the build runs in a
//! sandbox that sees no host files but the toolchain and crate sources.
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// The files of a candidate's `src/`, by path relative to `src/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CandidateSource {
    pub files: BTreeMap<String, String>,
}

/// Largest candidate accepted: files and total bytes.
pub const MAX_FILES: usize = 64;
pub const MAX_TOTAL_BYTES: usize = 1 << 20;

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
/// Attribute names that point the compiler or linker elsewhere.
const FORBIDDEN_ATTRS: &[&str] = &["path", "link", "link_name", "link_section", "link_ordinal"];
/// Crates an `extern crate` may name (what the template's manifest provides).
const ALLOWED_EXTERN_CRATES: &[&str] = &["std", "core", "alloc", "agentkernel_sdk", "serde", "serde_json", "self"];

impl CandidateSource {
    /// Reads every file under `src` (regular `.rs` files only; anything else is refused).
    pub fn read_dir(src: &Path) -> Result<CandidateSource, String> {
        let mut files = BTreeMap::new();
        let mut total = 0usize;
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = entry.path();
                let ty = entry.file_type().map_err(|e| format!("{}: {e}", path.display()))?;
                let rel = path.strip_prefix(src).expect("under src").to_string_lossy().replace('\\', "/");
                if ty.is_symlink() {
                    return Err(format!("src/{rel} is a symbolic link; candidates are plain files"));
                } else if ty.is_dir() {
                    stack.push(path);
                } else if rel.ends_with(".rs") {
                    let text = std::fs::read_to_string(&path).map_err(|e| format!("src/{rel}: {e}"))?;
                    total += text.len();
                    files.insert(rel, text);
                } else {
                    return Err(format!("src/{rel} is not a .rs file; a candidate supplies Rust sources only"));
                }
                if files.len() > MAX_FILES || total > MAX_TOTAL_BYTES {
                    return Err(format!("candidate is larger than {MAX_FILES} files / {MAX_TOTAL_BYTES} bytes"));
                }
            }
        }
        Ok(CandidateSource { files })
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

/// Every reason `source` may not be built; empty means it may.
pub fn check(source: &CandidateSource) -> Vec<Violation> {
    let mut out = Vec::new();
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
                message: format!("`{rel}` is both a file and a directory of other files"),
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
    out
}

fn is_plain_relative(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    Literal,
}

/// Tokens of `text` with their line numbers. Unterminated literals and
/// comments end the file (the compiler rejects them anyway).
fn tokenize(text: &str) -> Vec<(Tok, u32)> {
    let c: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line) = (0usize, 1u32);
    let count_lines = |from: usize, to: usize, line: &mut u32| {
        *line += c[from..to.min(c.len())].iter().filter(|&&ch| ch == '\n').count() as u32;
    };
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            if ch == '\n' {
                line += 1;
            }
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i, &mut line);
        } else if let Some(end) = raw_string_end(&c, i) {
            let start_line = line;
            count_lines(i, end, &mut line);
            toks.push((Tok::Literal, start_line));
            i = end;
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && next == Some('"')) {
            let start_line = line;
            let start = i;
            i += if ch == '"' { 1 } else { 2 };
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            count_lines(start, i, &mut line);
            toks.push((Tok::Literal, start_line));
        } else if ch == '\'' || (ch == 'b' && next == Some('\'')) {
            let q = if ch == 'b' { i + 1 } else { i };
            // A char literal ('x', '\n', '\u{..}') or a lifetime/label ('a).
            if c.get(q + 1) == Some(&'\\') {
                // Skip the escaped character itself (it may be a quote,
                // as in '\''), then find the closing quote.
                i = q + 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                toks.push((Tok::Literal, line));
            } else if c.get(q + 2) == Some(&'\'') {
                i = q + 3;
                toks.push((Tok::Literal, line));
            } else {
                // Lifetime: the tick, then the identifier as a literal (never a macro name).
                i = q + 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                toks.push((Tok::Literal, line));
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || (c[i] == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))) {
                i += 1;
            }
            toks.push((Tok::Literal, line));
        } else if ch.is_alphabetic() || ch == '_' {
            // `r#ident` is the identifier `ident`.
            let start = if ch == 'r' && next == Some('#') && c.get(i + 2).is_some_and(|d| d.is_alphabetic() || *d == '_') {
                i + 2
            } else {
                i
            };
            i = start;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else {
            toks.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    toks
}

/// If a raw string (`r"…"`, `r#"…"#`, `br…`, `cr…`) starts at `i`, where it ends.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c.get(j), Some('b') | Some('c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

fn check_file(rel: &str, text: &str, source: &CandidateSource, out: &mut Vec<Violation>) {
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
                    check_attribute(&toks[open + 1..end.min(toks.len())], line, &mut push);
                    k = end + 1;
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

fn check_attribute(body: &[(Tok, u32)], line: u32, push: &mut impl FnMut(u32, &str, String)) {
    for (j, (t, _)) in body.iter().enumerate() {
        let next_is = |p: char| matches!(body.get(j + 1), Some((Tok::Punct(q), _)) if *q == p);
        match t {
            Tok::Ident(a) if FORBIDDEN_ATTRS.contains(&a.as_str()) => {
                push(line, &format!("#[{a}]"), format!("the `{a}` attribute points the compiler or linker outside the candidate"));
            }
            // `#![feature(x)]`, also inside `cfg_attr`; `cfg(feature = "x")` is fine.
            Tok::Ident(a) if a == "feature" && next_is('(') => {
                push(line, "#![feature]", "unstable compiler features are not allowed".into());
            }
            Tok::Punct('$') => {
                push(line, "#[$attr]", "attributes built from macro metavariables are not allowed".into());
            }
            _ => {}
        }
    }
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
        Err(format!("`mod {name};` needs src/{as_file} or src/{as_dir}, which the candidate does not contain"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(text: &str) -> Vec<Violation> {
        check(&CandidateSource::single(text))
    }

    fn rejected(text: &str, construct: &str) {
        let v = lib(text);
        assert!(v.iter().any(|v| v.construct == construct), "{text:?} should be rejected for {construct}, got {v:?}");
    }

    #[test]
    fn clean_code_passes_even_when_strings_and_comments_mention_forbidden_things() {
        let v = lib(r####"
            // include_str!("/etc/passwd") in a comment
            /* nested /* include!("x") */ env!("HOME") */
            const A: &str = "include_bytes!(\"x\") env!(\"Y\")";
            const B: &str = r#"asm!("nop") #[path = "x"]"#;
            const C: char = '"';
            #[cfg(feature = "std")]
            fn f<'a>(x: &'a str) -> &'a str { let environment = 1; let _ = environment; x }
            #[derive(Debug)] struct S;
            mod inline { pub fn g() {} }
        "####);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn each_forbidden_macro_is_rejected() {
        rejected(r#"const X: &str = include_str!("/etc/passwd");"#, "include_str!");
        rejected(r#"const X: &[u8] = include_bytes!("/etc/passwd");"#, "include_bytes!");
        rejected(r#"include!("/tmp/x.rs");"#, "include!");
        rejected(r#"const X: &str = env!("HOME");"#, "env!");
        rejected(r#"const X: Option<&str> = option_env!("HOME");"#, "option_env!");
        rejected(r#"fn f() { unsafe { core::arch::asm!("nop") } }"#, "asm!");
        rejected(r#"std::arch::global_asm!("");"#, "global_asm!");
    }

    #[test]
    fn spacing_paths_and_raw_identifiers_do_not_hide_macros() {
        rejected("const X: &str = include_str ! (\"/etc/passwd\");", "include_str!");
        rejected("const X: &str = ::core::include_str /* hi */ !(\"/etc/passwd\");", "include_str!");
        rejected("const X: &str = r#env!(\"HOME\");", "env!");
        rejected("const X: &str = core::r#include_str!(\"/x\");", "include_str!");
    }

    #[test]
    fn macros_cannot_receive_or_build_forbidden_names() {
        rejected("macro_rules! m { ($i:ident) => { $i!(\"/etc/passwd\") } } const X: &str = m!(include_str);", "$macro!");
        rejected("use core::include_str as read;", "include_str");
        rejected("macro_rules! m { ($a:meta) => { #[$a] mod x; } }", "#[$attr]");
    }

    #[test]
    fn an_escaped_quote_char_does_not_desynchronise_the_scanner() {
        // '\'' once left the scanner inside a "string" that swallowed the
        // include_str! on the next line.
        rejected("const Q: [char; 2] = ['\\'','\"'];\nconst X: &str = include_str!(\"/etc/passwd\");\nconst Y: char = '\"';", "include_str!");
        rejected("const Q: u8 = b'\\''; const X: &str = include_str!(\"/x\");", "include_str!");
        assert!(lib("const A: [char; 4] = ['\\'', '\\\\', '\\u{1F600}', '\\x41']; const B: &str = \"'\";").is_empty());
    }

    #[test]
    fn macros_cannot_assemble_forbidden_calls_or_attributes_from_pieces() {
        // `env` handed over apart from its `!`, with the tokens between dropped.
        rejected("macro_rules! m { ($($a:tt $b:tt)*) => { $($a)* }; } const X: &str = m!(env :: ! x (\"HOME\") y);", "env");
        rejected("use std::env as e; const X: &str = e!(\"HOME\");", "env");
        // An attribute assembled from `#` and a bracket group.
        rejected("macro_rules! m { ($a:tt) => { # $a mod y; }; } m!([path = \"/x.rs\"]);", "#");
        rejected("macro_rules! m { ($($t:tt)*) => { $($t)* }; } m!(# , [path = \"/x.rs\"] mod y;);", "#");
        // wit-bindgen's generate! reads files by path.
        rejected("agentkernel_sdk::__wit_bindgen::generate!({ path: \"/etc\", world: \"x\" });", "__wit_bindgen");
    }

    #[test]
    fn path_feature_and_link_attributes_are_rejected() {
        rejected("#[path = \"/etc/x.rs\"] mod x;", "#[path]");
        rejected("#[cfg_attr(all(), path = \"../x.rs\")] mod x;", "#[path]");
        rejected("#![feature(asm_const)]", "#![feature]");
        rejected("#![cfg_attr(all(), feature(never_type))]", "#![feature]");
        rejected("#[link(wasm_import_module = \"x\")] unsafe extern \"C\" { fn f(); }", "#[link]");
        rejected("unsafe extern \"C\" { #[link_name = \"x\"] fn f(); }", "#[link_name]");
    }

    #[test]
    fn modules_must_be_files_inside_src() {
        let mut src = CandidateSource::single("mod util; mod nested { mod deep; } pub use util::*;");
        assert_eq!(check(&src).len(), 2, "util.rs and nested/deep.rs are missing");
        src.files.insert("util.rs".into(), "pub fn u() {} mod more;".into());
        src.files.insert("util/more.rs".into(), "".into());
        src.files.insert("nested/deep.rs".into(), "".into());
        assert!(check(&src).is_empty(), "{:?}", check(&src));
        rejected("mod missing;", "mod");
        rejected("macro_rules! m { ($n:ident) => { mod $n; } }", "mod $name");
        let escape = CandidateSource { files: [("lib.rs".into(), String::new()), ("../x.rs".into(), String::new())].into() };
        assert!(check(&escape).iter().any(|v| v.construct == "file path"));
        let file_and_dir = CandidateSource { files: [("lib.rs".into(), String::new()), ("lib.rs/x.rs".into(), String::new())].into() };
        assert!(check(&file_and_dir).iter().any(|v| v.construct == "file path" && v.file == "lib.rs"), "{:?}", check(&file_and_dir));
        assert!(check(&CandidateSource::default()).iter().any(|v| v.construct == "missing lib.rs"));
    }

    #[test]
    fn extern_crate_is_limited_to_the_template() {
        assert!(lib("extern crate alloc; extern crate serde_json;").is_empty());
        rejected("extern crate proc_macro;", "extern crate");
    }

    #[test]
    fn violations_carry_line_numbers() {
        let v = lib("fn a() {}\n\n// x\nconst X: &str = env!(\"A\");\n");
        assert_eq!(v[0].line, 4);
        assert!(v[0].to_string().starts_with("src/lib.rs:4:"), "{}", v[0]);
    }
}
