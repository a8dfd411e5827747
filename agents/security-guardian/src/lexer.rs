//! A small Rust lexer for review: separates code from comments and string
//! literals, so a rule about code (`unsafe`) does not fire on a comment or
//! a string, and a rule about literals (a URL, `/proc`) sees only literals.
//!
//! Line numbers survive: every removed character keeps its newlines.

/// One file, split for the rules.
#[derive(Debug, Default, PartialEq)]
pub struct Lexed {
    /// The code with comments blanked and each string literal replaced by
    /// a placeholder `"\u{1}N"` (N indexes `literals`), newlines kept.
    pub code: String,
    /// The string literals' raw contents (escapes not processed).
    pub literals: Vec<String>,
}

/// The placeholder for literal `index` in [`Lexed::code`].
pub fn placeholder(index: usize) -> String {
    format!("\"\u{1}{index}\"")
}

/// Newlines of `text`, so blanked text keeps line numbers.
fn newlines_of(chars: &[char]) -> String {
    chars.iter().filter(|c| **c == '\n').collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where a raw string starting at `i` (`r`, `r#`, `br#`...) has its opening
/// quote, and how many `#` it uses.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if chars.get(j) == Some(&'b') || chars.get(j) == Some(&'c') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some((j + hashes, hashes))
}

/// Splits `source` into code and literals (see [`Lexed`]).
pub fn lex(source: &str) -> Lexed {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Lexed::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_is_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            let end = chars[i..].iter().position(|c| *c == '\n').map_or(chars.len(), |p| i + p);
            i = end;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let end = block_comment_end(&chars, i);
            out.code.push(' ');
            out.code.push_str(&newlines_of(&chars[i..end]));
            i = end;
        } else if let Some((quote, hashes)) = (!prev_is_ident).then(|| raw_string_start(&chars, i)).flatten() {
            let end = raw_string_end(&chars, quote + 1, hashes);
            push_literal(&mut out, &chars[quote + 1..end.min(chars.len())]);
            i = (end + 1 + hashes).min(chars.len());
        } else if c == '"' {
            let end = string_end(&chars, i + 1);
            push_literal(&mut out, &chars[i + 1..end.min(chars.len())]);
            i = (end + 1).min(chars.len());
        } else if c == '\'' {
            i = char_or_lifetime(&chars, i, &mut out.code);
        } else {
            out.code.push(c);
            i += 1;
        }
    }
    out
}

fn push_literal(out: &mut Lexed, body: &[char]) {
    out.code.push_str(&placeholder(out.literals.len()));
    out.code.push_str(&newlines_of(body));
    out.literals.push(body.iter().collect());
}

/// The index just past a (nested) block comment starting at `start`.
fn block_comment_end(chars: &[char], start: usize) -> usize {
    let (mut depth, mut i) = (0usize, start);
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    chars.len()
}

/// The index of the closing quote of a normal string whose body starts at `i`.
fn string_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The index of the closing quote of a raw string with `hashes` hashes.
fn raw_string_end(chars: &[char], mut i: usize, hashes: usize) -> usize {
    while i < chars.len() {
        if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes {
            return i;
        }
        i += 1;
    }
    chars.len()
}

/// A char literal is dropped (it cannot hold a payload); a lifetime is code.
fn char_or_lifetime(chars: &[char], i: usize, code: &mut String) -> usize {
    if chars.get(i + 1) == Some(&'\\') {
        let close = chars[i + 2..].iter().position(|c| *c == '\'').map_or(chars.len(), |p| i + 2 + p);
        code.push_str("' '");
        return (close + 1).min(chars.len());
    }
    if chars.get(i + 2) == Some(&'\'') {
        code.push_str("' '");
        return i + 3;
    }
    code.push('\'');
    i + 1
}

/// Blanks every item annotated `#[cfg(test)]` (its braces' contents or up
/// to its `;`), keeping newlines: test code is not shipped in the component.
pub fn without_test_code(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= chars.len() {
        if chars[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let end = item_end(&chars, i + marker.len());
        for c in &mut chars[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    chars.into_iter().collect()
}

/// The end of the item starting at `from`: past its matching `}` or its `;`.
fn item_end(chars: &[char], from: usize) -> usize {
    let mut depth = 0usize;
    for (offset, c) in chars[from..].iter().enumerate() {
        match c {
            ';' if depth == 0 => return from + offset + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return from + offset + 1;
                }
            }
            _ => {}
        }
    }
    chars.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_strings_leave_the_code() {
        let l = lex("let a = \"unsafe /proc\"; // unsafe\n/* unsafe\n */ let b = r#\"x\"y\"#;");
        assert!(!l.code.contains("unsafe"), "{}", l.code);
        assert_eq!(l.literals, vec!["unsafe /proc".to_string(), "x\"y".to_string()]);
        assert_eq!(l.code.matches('\n').count(), 2, "lines kept");
    }

    #[test]
    fn char_literals_and_lifetimes() {
        let l = lex("fn f<'a>(x: &'a str) -> char { let q = '\"'; '\\'' }");
        assert!(l.literals.is_empty(), "{:?}", l.literals);
        assert!(l.code.contains("&'a str"));
    }

    #[test]
    fn test_modules_are_blanked() {
        let code = "fn a() {}\n#[cfg(test)]\nmod tests {\n fn b() { unsafe {} }\n}\nfn c() {}";
        let out = without_test_code(code);
        assert!(!out.contains("unsafe") && out.contains("fn c()"), "{out}");
        assert_eq!(out.matches('\n').count(), code.matches('\n').count());
    }
}
