//! The source check's tokenizer: identifiers, punctuation and literals
//! with their line numbers. Comments, strings, raw strings, char literals,
//! lifetimes and raw identifiers are understood, so none of them hides a
//! construct or raises a false alarm.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Punct(char),
    /// A string literal: its text between the quotes as written (escapes
    /// not processed), and whether it was raw (`r"…"`, where a `\` is a
    /// backslash). Attribute rules read what derives would parse.
    Str { text: String, raw: bool },
    /// Any other literal (numbers, chars, lifetimes).
    Literal,
}

/// Tokens of `text` with their line numbers. Unterminated literals and
/// comments end the file (the compiler rejects them anyway).
pub(super) fn tokenize(text: &str) -> Vec<(Tok, u32)> {
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
        } else if let Some((open, close, end)) = raw_string_end(&c, i) {
            let start_line = line;
            count_lines(i, end, &mut line);
            toks.push((Tok::Str { text: c[open..close].iter().collect(), raw: true }, start_line));
            i = end;
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && next == Some('"')) {
            let start_line = line;
            let start = i;
            i += if ch == '"' { 1 } else { 2 };
            let open = i;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            let close = i.min(c.len());
            i += 1;
            count_lines(start, i, &mut line);
            toks.push((Tok::Str { text: c[open..close].iter().collect(), raw: false }, start_line));
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

/// If a raw string (`r"…"`, `r#"…"#`, `br…`, `cr…`) starts at `i`: where
/// its text starts and stops, and where the literal ends.
fn raw_string_end(c: &[char], i: usize) -> Option<(usize, usize, usize)> {
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
    let open = j;
    while j < c.len() {
        if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
            return Some((open, j, j + 1 + hashes));
        }
        j += 1;
    }
    Some((open, c.len(), c.len()))
}
