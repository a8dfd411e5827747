//! Which attributes a candidate may write, and what their values may hold.
//!
//! Attributes are allowed by name from a fixed list, not refused by name
//! from a list of dangers: an attribute this check does not know (a
//! compiler one that reads files, like `debugger_visualizer`, or one
//! added by a later toolchain) is refused rather than trusted. The tokens
//! of every attribute body are also scanned like any other code by the
//! caller, so a macro in an attribute value (`#[doc = include_str!(…)]`)
//! is refused the same way it is anywhere else.
//!
//! serde's derive parses some string values as Rust (`with`,
//! `serialize_with`, `deserialize_with`, `default = "…"`, `bound`,
//! `getter`, `remote`, `from`, `try_from`, `into`, `crate`, `borrow`,
//! `skip_serializing_if`, …): for serde, only [`SERDE_PLAIN_STRING_KEYS`]
//! take arbitrary strings; any other string value must be a plain path or
//! trait bound (identifiers, `::`, `<>`, `,`, `+`, `'`, `&`, spaces, no
//! escapes and no forbidden identifiers), which can name code but never
//! invoke a macro (that takes a `!`) or open a block.
use super::tokens::{Tok, tokenize};
use super::{FORBIDDEN_IDENTS, shown};

/// Attributes a candidate may use. Everything here only configures
/// lints, derives, layout, inlining, tests or docs: none reads a file or
/// points the compiler or linker anywhere.
const ALLOWED_ATTRS: &[&str] = &[
    "allow",
    "warn",
    "deny",
    "forbid",
    "expect",
    "cfg",
    "cfg_attr",
    "derive",
    "doc",
    "inline",
    "cold",
    "track_caller",
    "must_use",
    "deprecated",
    "non_exhaustive",
    "repr",
    "test",
    "ignore",
    "should_panic",
    "macro_export",
    "macro_use",
    "automatically_derived",
    // `#[default]` on the variant `#[derive(Default)]` picks.
    "default",
    "no_std",
    "serde",
];
/// Tool namespaces whose attributes (`#[rustfmt::skip]`,
/// `#[diagnostic::on_unimplemented]`) only steer tools and messages.
const ALLOWED_TOOL_NAMESPACES: &[&str] = &["rustfmt", "clippy", "diagnostic"];
/// `#[doc(…)]` keys that change only how docs render (not `include`,
/// which once read a file).
const ALLOWED_DOC_KEYS: &[&str] = &["hidden", "alias", "inline", "no_inline"];
/// serde keys whose string value serde uses as plain text, never parses as Rust.
pub(super) const SERDE_PLAIN_STRING_KEYS: &[&str] = &["rename", "alias", "rename_all", "rename_all_fields", "tag", "content", "expecting"];

type Toks<'a> = &'a [(Tok, u32)];

/// Checks one attribute: `body` is what stands between `#[` and `]`.
pub(super) fn check_attribute(body: Toks<'_>, line: u32, push: &mut impl FnMut(u32, &str, String)) {
    if body.iter().any(|(t, _)| *t == Tok::Punct('$')) {
        push(line, "#[$attr]", "attributes built from macro metavariables are not allowed".into());
        return;
    }
    check_meta(body, line, push);
}

/// One attribute item: a path, then nothing, `= value` or `(…)`.
fn check_meta(item: Toks<'_>, line: u32, push: &mut impl FnMut(u32, &str, String)) {
    let (path, rest) = split_path(item);
    let Some(&name) = path.first() else {
        push(line, "#[?]", "an attribute must start with its name".into());
        return;
    };
    if path.len() > 1 {
        if !ALLOWED_TOOL_NAMESPACES.contains(&name) {
            let full = shown(&path.join("::"));
            push(line, &format!("#[{full}]"), format!("the attribute `{full}` is not one a candidate may use"));
        }
        return;
    }
    match name {
        "cfg_attr" => {
            // `cfg_attr(predicate, attr, attr, …)`: each attr as if written alone.
            for attr in split_commas(group(rest)).into_iter().skip(1) {
                check_meta(attr, line, push);
            }
        }
        "serde" => check_serde(group(rest), "serde", line, push),
        "doc" => {
            if starts_with(rest, '(') {
                for item in split_commas(group(rest)) {
                    let (key, _) = split_path(item);
                    let key = key.join("::");
                    if !ALLOWED_DOC_KEYS.contains(&key.as_str()) {
                        let key = shown(&key);
                        push(line, &format!("#[doc({key})]"), format!("`#[doc({key})]` is not allowed (only {})", ALLOWED_DOC_KEYS.join(", ")));
                    }
                }
            }
        }
        _ if ALLOWED_ATTRS.contains(&name) => {}
        "feature" => push(line, "#![feature]", "unstable compiler features are not allowed".into()),
        "path" | "link" | "link_name" | "link_section" | "link_ordinal" | "debugger_visualizer" => {
            push(line, &format!("#[{name}]"), format!("the `{name}` attribute points the compiler or linker outside the candidate"))
        }
        _ => {
            let name = shown(name);
            push(
                line,
                &format!("#[{name}]"),
                format!("the attribute `{name}` is not one a candidate may use (attributes that read files, name crates or steer the linker are refused)"),
            )
        }
    }
}

/// serde's attribute list: `key`, `key = "value"` or `key(…)` (whose
/// `serialize = …`/`deserialize = …` values mean what `key`'s would).
fn check_serde(items: Toks<'_>, parent: &str, line: u32, push: &mut impl FnMut(u32, &str, String)) {
    for item in split_commas(items) {
        let (path, rest) = split_path(item);
        let key = path.join("::");
        let meaning = if matches!(key.as_str(), "serialize" | "deserialize") { parent } else { key.as_str() };
        if starts_with(rest, '(') {
            check_serde(group(rest), meaning, line, push);
            continue;
        }
        let Some((Tok::Str { text, raw }, _)) = rest.get(1).filter(|_| starts_with(rest, '=')) else { continue };
        if SERDE_PLAIN_STRING_KEYS.contains(&meaning) {
            continue;
        }
        if let Err(why) = plain_path_or_bound(text, *raw) {
            let (key, meaning) = (shown(&key), shown(meaning));
            let written = if key == meaning { format!("{key} = \"…\"") } else { format!("{meaning}({key} = \"…\")") };
            push(
                line,
                &format!("#[serde({meaning})]"),
                format!("serde parses `{written}` as Rust code, so it may only name paths or bounds: {why}"),
            );
        }
    }
}

/// Whether a string serde parses as code is only a path or a trait bound.
fn plain_path_or_bound(text: &str, raw: bool) -> Result<(), String> {
    if !raw && text.contains('\\') {
        return Err("escapes could spell any name".into());
    }
    if let Some(bad) = text.chars().find(|c| !(c.is_alphanumeric() || "_:<>,+'& ".contains(*c))) {
        return Err(format!("`{}` is not allowed (only identifiers, `::`, `<>`, `,`, `+`, `'`, `&`)", bad.escape_default()));
    }
    for (tok, _) in tokenize(text) {
        if let Tok::Ident(name) = tok {
            if FORBIDDEN_IDENTS.contains(&name.as_str()) {
                return Err(format!("the identifier `{name}` is reserved"));
            }
        }
    }
    Ok(())
}

/// The leading path (`a`, `::a::b`) of an item, and the tokens after it.
fn split_path(item: Toks<'_>) -> (Vec<&str>, Toks<'_>) {
    let mut path = Vec::new();
    let mut k = 0;
    loop {
        if starts_with(&item[k..], ':') && starts_with(&item[(k + 1).min(item.len())..], ':') {
            k += 2;
        }
        match item.get(k) {
            Some((Tok::Ident(s), _)) => {
                path.push(s.as_str());
                k += 1;
            }
            _ => break,
        }
        if !(starts_with(&item[k..], ':') && starts_with(&item[(k + 1).min(item.len())..], ':')) {
            break;
        }
    }
    (path, &item[k..])
}

fn starts_with(toks: Toks<'_>, p: char) -> bool {
    matches!(toks.first(), Some((Tok::Punct(q), _)) if *q == p)
}

/// The tokens inside the group `rest` starts with (`( … )`), or none.
fn group(rest: Toks<'_>) -> Toks<'_> {
    if !starts_with(rest, '(') && !starts_with(rest, '[') && !starts_with(rest, '{') {
        return &[];
    }
    let mut depth = 0usize;
    for (k, (t, _)) in rest.iter().enumerate() {
        match t {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return &rest[1..k];
                }
            }
            _ => {}
        }
    }
    &rest[1..]
}

/// `items` split at the commas outside any group.
fn split_commas(items: Toks<'_>) -> Vec<Toks<'_>> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (k, (t, _)) in items.iter().enumerate() {
        match t {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => depth = depth.saturating_sub(1),
            Tok::Punct(',') if depth == 0 => {
                out.push(&items[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}
