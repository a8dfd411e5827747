//! Agents in Python and JavaScript. `new` writes a directory that needs
//! nothing from a checkout: the agent and its unit tests (`templates/`), a
//! copy of the language's helper layer (`sdk/python/agentkernel`,
//! `sdk/js`) and of the WIT package (`wit/`), all embedded in this binary.
//! `build` makes a component of such a directory with componentize-py, or
//! rolldown then componentize-js, as `scripts/deps/polyglot.sh` does.
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Lang, ScaffoldError, install_component, io, type_name};

/// The agentkernel WIT package: a new agent's `wit/deps/agentkernel-agent/`.
const WIT_PACKAGE: &[(&str, &str)] = &[
    ("agents.wit", include_str!("../../../../wit/agents.wit")),
    ("aws-ec2.wit", include_str!("../../../../wit/aws-ec2.wit")),
    ("evolution.wit", include_str!("../../../../wit/evolution.wit")),
    ("http.wit", include_str!("../../../../wit/http.wit")),
    ("llm.wit", include_str!("../../../../wit/llm.wit")),
    ("log.wit", include_str!("../../../../wit/log.wit")),
    ("memory.wit", include_str!("../../../../wit/memory.wit")),
    ("types.wit", include_str!("../../../../wit/types.wit")),
    ("world.wit", include_str!("../../../../wit/world.wit")),
];

/// The Python helper layer: a new Python agent's `agentkernel/` package.
const PYTHON_SDK: &[(&str, &str)] = &[
    ("__init__.py", include_str!("../../../../sdk/python/agentkernel/__init__.py")),
    ("_wit.py", include_str!("../../../../sdk/python/agentkernel/_wit.py")),
    ("llm.py", include_str!("../../../../sdk/python/agentkernel/llm.py")),
    ("log.py", include_str!("../../../../sdk/python/agentkernel/log.py")),
    ("memory.py", include_str!("../../../../sdk/python/agentkernel/memory.py")),
    ("testing.py", include_str!("../../../../sdk/python/agentkernel/testing.py")),
];

/// The JavaScript helper layer: a new JavaScript agent's `sdk/`.
const JS_SDK: &[(&str, &str)] = &[
    ("agentkernel.js", include_str!("../../../../sdk/js/agentkernel.js")),
    ("testing.js", include_str!("../../../../sdk/js/testing.js")),
];

/// The agent's world, both languages: `log` and `memory` only.
const WORLD_TEMPLATE: &str = include_str!("templates/world.wit");

const PYTHON_TEMPLATES: &[(&str, &str)] = &[
    ("app.py", include_str!("templates/python/app.py")),
    ("test_app.py", include_str!("templates/python/test_app.py")),
    ("README.md", include_str!("templates/python/README.md")),
    (".gitignore", "__pycache__/\n*.wasm\n"),
];

const JS_TEMPLATES: &[(&str, &str)] = &[
    ("index.js", include_str!("templates/js/index.js")),
    ("agent.js", include_str!("templates/js/agent.js")),
    ("agent.test.js", include_str!("templates/js/agent.test.js")),
    ("package.json", include_str!("templates/js/package.json")),
    ("README.md", include_str!("templates/js/README.md")),
    (".gitignore", "node_modules/\n*.wasm\n"),
];

/// WIT's keywords: not usable as a world's or package's name.
const WIT_KEYWORDS: &[&str] = &[
    "_", "as", "async", "bool", "borrow", "char", "constructor", "enum", "error-context", "export", "f32", "f64",
    "flags", "float32", "float64", "from", "func", "future", "import", "include", "interface", "list", "map", "option",
    "own", "package", "record", "resource", "result", "s8", "s16", "s32", "s64", "static", "stream", "string", "tuple",
    "type", "u8", "u16", "u32", "u64", "use", "variant", "with", "world",
];

/// The most of a failed tool's output an error carries (its end).
const MAX_TOOL_OUTPUT: usize = 8 * 1024;

/// An external tool `build` runs, with where it is looked for and how to
/// install it (the pins of `scripts/deps/polyglot.sh`).
struct Tool {
    name: &'static str,
    env: &'static str,
    install: &'static str,
    /// Also looked for in the agent's `node_modules/.bin/`.
    npm: bool,
}

const COMPONENTIZE_PY: Tool = Tool {
    name: "componentize-py",
    env: "AGENTKERNEL_COMPONENTIZE_PY",
    install: "pip install componentize-py==0.25.1",
    npm: false,
};
const JS_INSTALL: &str = "npm install --save-dev @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4 \
                          (in the agent's directory, or with -g)";
const ROLLDOWN: Tool = Tool { name: "rolldown", env: "AGENTKERNEL_ROLLDOWN", install: JS_INSTALL, npm: true };
const COMPONENTIZE_JS: Tool =
    Tool { name: "componentize-js", env: "AGENTKERNEL_COMPONENTIZE_JS", install: JS_INSTALL, npm: true };

/// The interfaces of the agentkernel package a bundle leaves as imports.
const INTERFACES: [&str; 8] = ["types", "log", "memory", "llm", "agents", "http", "aws-ec2", "evolution"];

/// Creates a Python (`app.py`) or JavaScript (`index.js`) agent named
/// `name` at `dir`.
pub(super) fn new_agent(lang: Lang, name: &str, dir: &Path) -> Result<(), ScaffoldError> {
    agentkernel_runtime::validate_agent_name(name).map_err(ScaffoldError::InvalidName)?;
    check_world_name(name)?;
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let (templates, sdk_dir, sdk) = if lang == Lang::Python {
        (PYTHON_TEMPLATES, "agentkernel", PYTHON_SDK)
    } else {
        (JS_TEMPLATES, "sdk", JS_SDK)
    };
    for (file, template) in templates {
        write(dir, file, &fill(template, name))?;
    }
    write(dir, "wit/world.wit", &fill(WORLD_TEMPLATE, name))?;
    for (file, text) in WIT_PACKAGE {
        write(dir, &format!("wit/deps/agentkernel-agent/{file}"), text)?;
    }
    for (file, text) in sdk {
        write(dir, &format!("{sdk_dir}/{file}"), text)?;
    }
    Ok(())
}

/// A template with the agent's name (`{name}`) and class name (`{Type}`) in.
fn fill(template: &str, name: &str) -> String {
    let mut class = type_name(name);
    // `none` → `None`: a Python keyword, not a class name.
    if matches!(class.as_str(), "None" | "True" | "False") {
        class.push_str("Agent");
    }
    template.replace("{name}", name).replace("{Type}", &class)
}

fn write(dir: &Path, file: &str, text: &str) -> Result<(), ScaffoldError> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))
}

/// A Python or JavaScript agent's name is also its world's and package's
/// name in WIT, which is stricter than an agent name.
fn check_world_name(name: &str) -> Result<(), ScaffoldError> {
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.split('-').any(str::is_empty) {
        return Err(ScaffoldError::InvalidName(format!(
            "agent name {name:?} is also the name of the agent's WIT world: it must start with a letter, \
             with no empty part between '-'s (e.g. `weather-2`)"
        )));
    }
    if WIT_KEYWORDS.contains(&name) {
        return Err(ScaffoldError::InvalidName(format!(
            "agent name {name:?} is a WIT keyword, and the name of the agent's WIT world: choose another"
        )));
    }
    Ok(())
}

/// Builds the Python or JavaScript agent at `dir` into `agents_dir` as
/// `<world>.wasm`, where `<world>` is the world of `wit/world.wit`.
pub(super) fn build_agent(lang: Lang, dir: &Path, agents_dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let world = world_name(dir)?;
    let scratch = Scratch::new(&world)?;
    let out = scratch.0.join(format!("{world}.wasm"));
    let last_tool = if lang == Lang::Python {
        let tool = find(&COMPONENTIZE_PY, dir)?;
        let mut cmd = Command::new(&tool);
        // As polyglot.sh does: componentize-py puts the site-packages of the
        // venv it runs from on the path, not those of whichever python3 is
        // first on PATH, so what is bundled does not depend on the machine.
        if let Some(venv) = venv_of(&tool) {
            cmd.env("VIRTUAL_ENV", venv);
        }
        // Its errors without a Rust backtrace (which would push the Python
        // one out of the output an error keeps).
        cmd.env("RUST_LIB_BACKTRACE", "0");
        cmd.args(["-q", "-d", "wit", "-w", world.as_str(), "componentize", "app", "-p", ".", "-o"]).arg(&out).current_dir(dir);
        run(COMPONENTIZE_PY.name, &tool, &mut cmd)?;
        COMPONENTIZE_PY.name
    } else {
        let rolldown = find(&ROLLDOWN, dir)?;
        let componentize = find(&COMPONENTIZE_JS, dir)?;
        // One module, the agent and the helper layer, with the WIT
        // interfaces left as imports.
        let bundle = scratch.0.join(format!("{world}.js"));
        let mut cmd = Command::new(&rolldown);
        cmd.arg("index.js").arg("-o").arg(&bundle).args(["-f", "esm", "-p", "neutral"]).current_dir(dir);
        for iface in INTERFACES {
            cmd.arg("-e").arg(format!("agentkernel:agent/{iface}@0.1.0"));
        }
        run(ROLLDOWN.name, &rolldown, &mut cmd)?;
        // No HTTP in the engine: `fetch` would import wasi:http, which the
        // host does not give agents (they have the `http` capability).
        let mut cmd = Command::new(&componentize);
        cmd.arg(&bundle)
            .args(["--wit", "wit", "-n", world.as_str(), "-d", "http", "fetch-event", "-o"])
            .arg(&out)
            .current_dir(dir);
        run(COMPONENTIZE_JS.name, &componentize, &mut cmd)?;
        COMPONENTIZE_JS.name
    };
    if std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(ScaffoldError::ToolFailed {
            tool: last_tool,
            status: "exit status 0".into(),
            output: format!("it wrote no component to {}", out.display()),
        });
    }
    install_component(&out, agents_dir, &format!("{world}.wasm"))
}

/// The name of the world in `dir/wit/world.wit` (its first `world NAME` line).
fn world_name(dir: &Path) -> Result<String, ScaffoldError> {
    let path = dir.join("wit/world.wit");
    let text = std::fs::read_to_string(&path).map_err(|e| ScaffoldError::World {
        path: path.clone(),
        message: format!("{e} (a Python or JavaScript agent's world is wit/world.wit)"),
    })?;
    let name = parse_world_name(&text)
        .ok_or_else(|| ScaffoldError::World { path: path.clone(), message: "no `world NAME {` line in it".into() })?;
    // It names the tools' arguments and the installed file: an agent name.
    agentkernel_runtime::validate_agent_name(&name)
        .map_err(|e| ScaffoldError::World { path, message: format!("the world's name is the agent's: {e}") })?;
    Ok(name)
}

fn parse_world_name(wit: &str) -> Option<String> {
    wit.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("world")?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let name: String = rest
            .trim_start()
            .trim_start_matches('%')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        (!name.is_empty()).then_some(name)
    })
}

/// Where `tool` is: the file its environment variable names, else (npm
/// tools) the agent's `node_modules/.bin/`, else the first on `PATH`.
fn find(tool: &Tool, dir: &Path) -> Result<PathBuf, ScaffoldError> {
    if let Some(value) = std::env::var_os(tool.env).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if path.is_file() {
            return Ok(absolute(path));
        }
        return Err(ScaffoldError::ToolMissing {
            tool: tool.name,
            hint: format!("{} is {}, which is not a file", tool.env, path.display()),
            install: tool.install,
        });
    }
    let local = dir.join("node_modules/.bin").join(tool.name);
    if tool.npm && local.is_file() {
        return Ok(absolute(local));
    }
    on_path(tool.name).ok_or_else(|| ScaffoldError::ToolMissing {
        tool: tool.name,
        hint: format!("not on PATH, and {} is not set", tool.env),
        install: tool.install,
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let exts: &[&str] = if cfg!(windows) { &[".exe", ".cmd", ""] } else { &[""] };
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(move |d| exts.iter().map(move |ext| d.join(format!("{name}{ext}"))))
        .find(|p| p.is_file())
        .map(absolute)
}

/// Tools run in the agent's directory: a relative path would be ambiguous.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// The venv `tool` was installed in (`<venv>/bin/componentize-py`), if any.
fn venv_of(tool: &Path) -> Option<PathBuf> {
    let venv = tool.parent()?.parent()?;
    venv.join("pyvenv.cfg").is_file().then(|| venv.to_path_buf())
}

/// Runs `cmd` (the tool at `path`); a failure carries the end of its output.
fn run(tool: &'static str, path: &Path, cmd: &mut Command) -> Result<(), ScaffoldError> {
    let out = cmd.output().map_err(io(format!("running {tool} ({})", path.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { stderr };
    Err(ScaffoldError::ToolFailed { tool, status: out.status.to_string(), output: tail(text.trim(), MAX_TOOL_OUTPUT) })
}

/// The last `max` bytes of `text` (on a character boundary).
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// A scratch directory for a build's outputs, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Self, ScaffoldError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = absolute(std::env::temp_dir()).join(format!("agentkernel-build-{name}-{}-{nanos}", std::process::id()));
        // Not `create_dir_all`: a directory someone else made there first is refused.
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &str, ext: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(ext))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_wit_and_helper_file_is_embedded() {
        let embedded = |files: &[(&str, &str)]| files.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
        assert_eq!(embedded(WIT_PACKAGE), names_in("wit", ".wit"));
        assert_eq!(embedded(PYTHON_SDK), names_in("sdk/python/agentkernel", ".py"));
    }

    #[test]
    fn world_names_are_wit_identifiers() {
        for ok in ["hello-py", "weather-2", "a"] {
            assert!(check_world_name(ok).is_ok(), "{ok}");
        }
        for bad in ["9lives", "a--b", "a-", "list", "world"] {
            assert!(check_world_name(bad).is_err(), "{bad}");
        }
        assert_eq!(fill("{name} {Type}", "none"), "none NoneAgent");
    }

    #[test]
    fn parses_the_world_name() {
        let wit = "// the world of x\npackage agentkernel:x;\n\nworld hello-py {\n    import log;\n}\n";
        assert_eq!(parse_world_name(wit).as_deref(), Some("hello-py"));
        assert_eq!(parse_world_name("world %list {").as_deref(), Some("list"));
        assert_eq!(parse_world_name("worlds apart\n"), None);
        // A name that would read as a flag to the tools is refused.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("wit")).unwrap();
        std::fs::write(tmp.path().join("wit/world.wit"), "package a:b;\nworld -x {\n}\n").unwrap();
        assert!(matches!(world_name(tmp.path()), Err(ScaffoldError::World { .. })));
    }

    #[test]
    fn keeps_the_end_of_long_output() {
        assert_eq!(tail("short", 8), "short");
        let long = format!("{}é end", "x".repeat(20));
        let t = tail(&long, 5);
        assert!(t.ends_with(" end") && t.starts_with('…'), "{t}");
        assert!(tail("ééééé", 3).ends_with('é'));
    }

    #[test]
    fn scaffolds_are_complete_and_substituted() {
        let tmp = tempfile::tempdir().unwrap();
        for (lang, name, files) in [
            (Lang::Python, "hello-py", &["app.py", "test_app.py", "README.md", "agentkernel/testing.py"][..]),
            (Lang::Js, "hello-js", &["index.js", "agent.js", "agent.test.js", "package.json", "sdk/testing.js"][..]),
        ] {
            let dir = tmp.path().join(name);
            new_agent(lang, name, &dir).unwrap();
            for file in files.iter().chain(&["wit/world.wit", "wit/deps/agentkernel-agent/types.wit"]) {
                let text = std::fs::read_to_string(dir.join(file)).unwrap();
                assert!(!text.contains("{name}") && !text.contains("{Type}"), "{name}/{file}");
            }
            let world = std::fs::read_to_string(dir.join("wit/world.wit")).unwrap();
            assert!(world.contains(&format!("package agentkernel:{name};")), "{world}");
            assert_eq!(world_name(&dir).unwrap(), name);
            assert_eq!(Lang::of_dir(&dir), Some(lang));
            assert!(matches!(new_agent(lang, name, &dir), Err(ScaffoldError::Exists(_))));
        }
        let app = std::fs::read_to_string(tmp.path().join("hello-py/app.py")).unwrap();
        assert!(app.contains("class HelloPy(Agent):") && app.contains("WitWorld = export(HelloPy)"), "{app}");
        assert!(matches!(new_agent(Lang::Python, "9lives", &tmp.path().join("x")), Err(ScaffoldError::InvalidName(_))));
    }
}
