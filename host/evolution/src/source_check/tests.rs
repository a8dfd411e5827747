//! The source check against the constructs it must refuse and the code it must pass.
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

#[test]
fn macros_inside_attribute_values_are_refused_like_anywhere_else() {
    rejected("#[doc = env!(\"HOME\")] pub struct S;", "env!");
    rejected("#![doc = include_str!(\"/etc/passwd\")]", "include_str!");
    rejected("#[doc = core::include_str!(\"/etc/passwd\")] pub fn f() {}", "include_str!");
    rejected("#[cfg_attr(all(), doc = include_bytes!(\"/etc/passwd\"))] pub fn f() {}", "include_bytes!");
    rejected("#[deprecated(note = option_env!(\"HOME\"))] pub fn f() {}", "option_env!");
    // The names alone, too (a macro could pass them on).
    rejected("#[doc = m!(include_str)] pub fn f() {}", "include_str");
}

#[test]
fn attributes_that_read_files_or_name_crates_are_refused() {
    rejected("#![debugger_visualizer(gdb_script_file = \"/etc/passwd\")]", "#[debugger_visualizer]");
    rejected("#![debugger_visualizer(natvis_file = \"../x.natvis\")]", "#[debugger_visualizer]");
    rejected("#![cfg_attr(all(), debugger_visualizer(gdb_script_file = \"/x\"))]", "#[debugger_visualizer]");
    rejected("#![doc(include = \"/etc/passwd\")]", "#[doc(include)]");
    rejected("#![crate_type = \"proc-macro\"]", "#[crate_type]");
    rejected("#![crate_name = \"x\"]", "#[crate_name]");
    rejected("#[unsafe(no_mangle)] pub fn f() {}", "#[unsafe]");
    rejected("#[export_name = \"cabi_realloc\"] pub fn f() {}", "#[export_name]");
    rejected("#[::path = \"/x.rs\"] mod x;", "#[path]");
    rejected("#[some_tool::attr] fn f() {}", "#[some_tool::attr]");
}

#[test]
fn serde_strings_parsed_as_code_may_only_be_paths_or_bounds() {
    let serde = |attr: &str| format!("use serde::Serialize;\n#[derive(Serialize)]\npub struct S<T> {{\n    {attr}\n    x: T,\n}}\n");
    // serde parses these as Rust: a macro inside the string is expanded.
    for (attr, construct) in [
        (r#"#[serde(bound = "T: Into<[u8; { include_bytes!(\"/etc/passwd\").len() }]>")]"#, "#[serde(bound)]"),
        (r#"#[serde(bound(serialize = "T: X<{ env!(\"HOME\").len() }>"))]"#, "#[serde(bound)]"),
        (r#"#[serde(serialize_with = "in\x63lude_str")]"#, "#[serde(serialize_with)]"),
        (r#"#[serde(with = "include_str")]"#, "#[serde(with)]"),
        (r##"#[serde(deserialize_with = r#"wit_bindgen::x"#)]"##, "#[serde(deserialize_with)]"),
        (r#"#[serde(default = "m!()")]"#, "#[serde(default)]"),
        (r#"#[serde(skip_serializing_if = "{ x }")]"#, "#[serde(skip_serializing_if)]"),
        (r#"#[serde(getter = "f!()")]"#, "#[serde(getter)]"),
        (r#"#[cfg_attr(all(), serde(from = "[u8; { env!(\"X\").len() }]"))]"#, "#[serde(from)]"),
        (r#"#[serde(crate = "x!()")]"#, "#[serde(crate)]"),
        (r#"#[serde(some_future_key = "x!()")]"#, "#[serde(some_future_key)]"),
    ] {
        rejected(&serde(attr), construct);
    }
    // Plain strings and plain paths stay fine.
    for attr in [
        r#"#[serde(rename = "include_str!(\"/etc/passwd\")", alias = "env!", rename_all = "camelCase")]"#,
        r#"#[serde(rename(serialize = "a { b } !", deserialize = "c"))]"#,
        r#"#[serde(default = "default_max", skip_serializing_if = "Option::is_none")]"#,
        r#"#[serde(with = "crate::codec", bound = "T: Serialize + Clone, T: Into<u8>")]"#,
        r#"#[serde(borrow = "'a + 'b", default, flatten)]"#,
    ] {
        let v = lib(&serde(attr));
        assert!(v.is_empty(), "{attr} should pass: {v:?}");
    }
}

#[test]
fn ordinary_attributes_still_pass() {
    let v = lib(r#"
        #![allow(dead_code)]
        #![cfg_attr(not(test), deny(unused))]
        #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[non_exhaustive]
        #[repr(C)]
        pub struct S { #[serde(default)] a: u8 }
        #[derive(Default)] pub enum E { #[default] A, B }
        /// Docs.
        #[doc = "more docs"]
        #[doc(hidden)]
        #[inline(always)]
        #[must_use = "use it"]
        #[deprecated(since = "1.0", note = "old")]
        #[rustfmt::skip]
        #[allow(clippy::all)]
        pub fn f() -> u8 { 0 }
        #[cfg(test)] mod t { #[test] #[should_panic] fn x() {} }
    "#);
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn a_candidate_full_of_violations_keeps_the_first_few_and_their_count() {
    // ~1 MiB of forbidden names: one violation per name.
    let text = "env ".repeat(MAX_TOTAL_BYTES / 4 - 16);
    let v = lib(&text);
    assert_eq!(v.len(), MAX_VIOLATIONS_KEPT + 1, "the first {MAX_VIOLATIONS_KEPT} and a count");
    assert!(v[..MAX_VIOLATIONS_KEPT].iter().all(|v| v.construct == "env"));
    let more = &v[MAX_VIOLATIONS_KEPT];
    assert_eq!(more.construct, MORE_VIOLATIONS);
    assert!(more.message.starts_with(&format!("{} violations in all", MAX_TOTAL_BYTES / 4 - 16)), "{}", more.message);
    assert!(serde_json::to_string(&v).unwrap().len() < 8 * 1024);
    // A few violations are listed as they are, with no count line.
    assert_eq!(lib("env env").len(), 2);
}

#[test]
fn long_candidate_names_are_shortened_in_violations() {
    let name = "x".repeat(100_000);
    let v = lib(&format!("extern crate {name}; mod {name};"));
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|v| v.message.len() < 400), "{v:?}");
}

#[test]
fn every_bundled_agent_and_demo_candidate_passes_except_the_one_reading_host_files() {
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agents");
    let mut checked = 0;
    let mut needing_other_crates = Vec::new();
    for entry in std::fs::read_dir(&agents).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if src.is_dir() {
            // An agent whose dependencies go beyond the candidate template's
            // (the SDK, serde, serde_json) cannot be evolved: its incumbent
            // does not build from the template. Its source is checked all
            // the same: the dependency is the only thing in the way.
            if !foreign_dependencies(&dir.join("Cargo.toml")).is_empty() {
                needing_other_crates.push(dir.file_name().unwrap().to_string_lossy().into_owned());
            }
            let v = check(&CandidateSource::read_dir(&src).unwrap());
            assert!(v.is_empty(), "{}: {v:?}", src.display());
            checked += 1;
        }
    }
    assert!(checked >= 6, "{checked} agents checked");
    // researcher parses Atom with roxmltree, which candidate builds do not
    // offer (README, "Evolution"); no other bundled agent may need more.
    assert_eq!(needing_other_crates, ["researcher"], "agents whose dependencies candidate builds do not offer");
    for entry in std::fs::read_dir(agents.join("primes/candidates")).unwrap() {
        let path = entry.unwrap().path();
        let source = match path.extension() {
            Some(e) if e == "rs" => CandidateSource::single(&std::fs::read_to_string(&path).unwrap()),
            None => CandidateSource::read_dir(&path.join("src")).unwrap(),
            _ => continue,
        };
        let hostile = path.file_stem().is_some_and(|s| s == "reads-host-files");
        assert_eq!(check(&source).is_empty(), !hostile, "{}: {:?}", path.display(), check(&source));
    }
}

/// The `[dependencies]` of the manifest at `path` that the candidate
/// template (`sandbox_build`) does not provide.
fn foreign_dependencies(path: &Path) -> Vec<String> {
    let manifest: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let deps = manifest.get("dependencies").and_then(|d| d.as_table()).cloned().unwrap_or_default();
    deps.keys().filter(|name| !["agentkernel-sdk", "serde", "serde_json"].contains(&name.as_str())).cloned().collect()
}
