//! `agentkernel new` and `agentkernel build`: start an agent anywhere on
//! disk (a Rust crate, or a Python or JavaScript directory: `polyglot`), and
//! build one into the agents directory.
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

mod polyglot;

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{0}")]
    InvalidName(String),
    #[error("{0} already exists; choose another --path")]
    Exists(PathBuf),
    #[error("the SDK was not found at {0}; pass --sdk PATH (the `sdk/` directory of an agentkernel checkout)")]
    SdkMissing(PathBuf),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("cargo failed: {0}")]
    Cargo(String),
    #[error(
        "{0} is not an agent directory: it needs Cargo.toml (Rust), app.py (Python, componentize-py) or index.js (JavaScript, componentize-js)"
    )]
    NotAnAgent(PathBuf),
    #[error("{path}: {message}")]
    World { path: PathBuf, message: String },
    #[error("{tool} was not found ({hint}); install it with: {install}")]
    ToolMissing { tool: &'static str, hint: String, install: &'static str },
    #[error("{tool} failed ({status}): {output}")]
    ToolFailed { tool: &'static str, status: String, output: String },
}

/// The language of an agent `new` creates and `build` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// A crate depending on the Rust SDK (`cargo build --target wasm32-wasip2`).
    #[default]
    Rust,
    /// `app.py` and the Python helper layer, made a component by componentize-py.
    Python,
    /// `index.js` and the JavaScript helper layer, made a component by componentize-js.
    Js,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// The language of the agent in `dir`, from the file that makes it one:
    /// `Cargo.toml`, `app.py` or `index.js` (in that order).
    pub fn of_dir(dir: &Path) -> Option<Lang> {
        [(Lang::Rust, "Cargo.toml"), (Lang::Python, "app.py"), (Lang::Js, "index.js")]
            .into_iter()
            .find(|(_, file)| dir.join(file).is_file())
            .map(|(lang, _)| lang)
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Lang::Rust),
            "python" | "py" => Ok(Lang::Python),
            "js" | "javascript" => Ok(Lang::Js),
            other => Err(format!("unknown language {other:?}: rust, python or js")),
        }
    }
}

/// Where a new Rust agent's `agentkernel-sdk` dependency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A local `sdk/` directory: `--sdk PATH`, or the checkout this binary was built from.
    Path(PathBuf),
    /// The published crate of this version (a binary installed without its checkout).
    Registry(&'static str),
}

/// The SDK version a registry dependency asks for: the workspace shares one
/// version, so the SDK released with this binary has this crate's.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

impl SdkSource {
    /// `explicit` (from `--sdk`) when given; else the `sdk/` of the checkout
    /// this binary was built from, if it is still there; else the published crate.
    pub fn choose(explicit: Option<PathBuf>) -> SdkSource {
        match explicit {
            Some(path) => SdkSource::Path(path),
            None => {
                let checkout = default_sdk_path();
                if checkout.join("Cargo.toml").is_file() {
                    SdkSource::Path(checkout)
                } else {
                    SdkSource::Registry(SDK_VERSION)
                }
            }
        }
    }

    /// The dependency's right-hand side in Cargo.toml.
    fn dependency(&self) -> Result<String, ScaffoldError> {
        match self {
            SdkSource::Registry(version) => Ok(format!("\"{version}\"")),
            SdkSource::Path(path) => {
                let sdk = path.canonicalize().map_err(|_| ScaffoldError::SdkMissing(path.clone()))?;
                if !sdk.join("Cargo.toml").is_file() {
                    return Err(ScaffoldError::SdkMissing(sdk));
                }
                // A TOML string, escaped: a path may hold quotes or newlines.
                let sdk_path = toml::Value::String(sdk.display().to_string().replace('\\', "/"));
                Ok(format!("{{ path = {sdk_path} }}"))
            }
        }
    }
}

/// Creates a new agent named `name` at `dir` in `lang`. `sdk` is where a
/// Rust crate's SDK comes from; Python and JavaScript agents get a copy of
/// their helper layer instead (embedded in this binary).
pub fn new_agent_in(lang: Lang, name: &str, dir: &Path, sdk: &SdkSource) -> Result<(), ScaffoldError> {
    match lang {
        Lang::Rust => new_agent(name, dir, sdk),
        Lang::Python | Lang::Js => polyglot::new_agent(lang, name, dir),
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ScaffoldError {
    let context = context.into();
    move |source| ScaffoldError::Io { context, source }
}

/// The SDK of the checkout this binary was built from.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("sdk")
}

/// Creates a new agent crate (Rust) named `name` at `dir`.
pub fn new_agent(name: &str, dir: &Path, sdk: &SdkSource) -> Result<(), ScaffoldError> {
    agentkernel_runtime::validate_agent_name(name).map_err(ScaffoldError::InvalidName)?;
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let sdk_dependency = sdk.dependency()?;
    std::fs::create_dir_all(dir.join("src")).map_err(io(format!("creating {}", dir.display())))?;
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
# cdylib: the component; rlib: lets `cargo test` run the unit tests natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
agentkernel-sdk = {sdk_dependency}

# A standalone crate, even when created inside another workspace.
[workspace]
"#
    );
    let lib_rs = LIB_TEMPLATE.replace("{name}", name).replace("{Type}", &type_name(name));
    std::fs::write(dir.join("Cargo.toml"), cargo_toml).map_err(io("writing Cargo.toml"))?;
    std::fs::write(dir.join("src/lib.rs"), lib_rs).map_err(io("writing src/lib.rs"))?;
    std::fs::write(dir.join(".gitignore"), "/target\n").map_err(io("writing .gitignore"))?;
    std::fs::create_dir_all(dir.join(".cargo")).map_err(io("creating .cargo"))?;
    std::fs::write(dir.join(".cargo/config.toml"), CARGO_CONFIG).map_err(io("writing .cargo/config.toml"))?;
    Ok(())
}

/// Small agent stacks make calls about twice as fast (see the workspace's
/// `.cargo/config.toml` for why); a crate that needs deep recursion can raise it.
const CARGO_CONFIG: &str = r#"# A 128 KiB stack (Rust's wasm default is 1 MiB) keeps the pages a call
# touches inside what the host keeps resident between instances: calls are
# about twice as fast. Raise it if the agent recurses deeply.
[target.wasm32-wasip2]
rustflags = ["-C", "link-arg=-zstack-size=131072"]
"#;

const LIB_TEMPLATE: &str = r#"//! `{name}`: an agentkernel agent.
//!
//! Build:  cargo build --target wasm32-wasip2 --release
//! Test:   cargo test
//! Deploy: agentkernel build   (copies the component into the agents directory)
use agentkernel_sdk::prelude::*;

pub struct {Type};

/// The agent's logic, kept pure so `cargo test` covers it natively.
pub fn answer(text: &str) -> String {
    format!("{name} heard: {}", text.trim())
}

impl Agent for {Type} {
    fn describe() -> Manifest {
        Manifest::new("{name}", env!("CARGO_PKG_VERSION"), "Describe what {name} does.")
            .skill(Skill::new("{name}", "What requests this agent is good at").keywords(["{name}"]))
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        if req.text.trim().is_empty() {
            return Err(AgentError::InvalidRequest("empty request".into()));
        }
        Ok(Response::text(answer(&req.text)))
    }
}

export_agent!({Type});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_the_request_text() {
        assert_eq!(answer("  hi "), "{name} heard: hi");
    }

    #[test]
    fn describes_itself() {
        assert_eq!({Type}::describe().name, "{name}");
    }

    #[test]
    fn rejects_empty_requests() {
        assert!(matches!({Type}::handle(Request::new("s", " ")), Err(AgentError::InvalidRequest(_))));
    }
}
"#;

/// `my-agent` → `MyAgent`: the Rust type the template declares.
fn type_name(name: &str) -> String {
    let mut t: String = name
        .split('-')
        .filter(|p| !p.is_empty())
        .map(|p| p[..1].to_ascii_uppercase() + &p[1..])
        .collect();
    if !t.starts_with(|c: char| c.is_ascii_alphabetic()) {
        t.insert_str(0, "Agent");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_depends_on_the_chosen_sdk() {
        let tmp = tempfile::tempdir().unwrap();
        // Without a checkout: the published crate of this version.
        let registry = tmp.path().join("published");
        new_agent("published", &registry, &SdkSource::Registry(SDK_VERSION)).unwrap();
        let toml = std::fs::read_to_string(registry.join("Cargo.toml")).unwrap();
        assert!(toml.contains(&format!("agentkernel-sdk = \"{SDK_VERSION}\"")), "{toml}");
        // From this checkout (a test binary sits beside it): its sdk/ by path.
        assert!(matches!(SdkSource::choose(None), SdkSource::Path(_)));
        let local = tmp.path().join("local");
        new_agent("local", &local, &SdkSource::choose(None)).unwrap();
        let toml = std::fs::read_to_string(local.join("Cargo.toml")).unwrap();
        assert!(toml.contains("agentkernel-sdk = { path = \"") && toml.contains("/sdk\" }"), "{toml}");
        // A --sdk that is no SDK: a clear error, and nothing written.
        let missing = SdkSource::choose(Some(tmp.path().join("nowhere")));
        assert!(matches!(new_agent("x", &tmp.path().join("x"), &missing), Err(ScaffoldError::SdkMissing(_))));
        assert!(!tmp.path().join("x").exists());
        // A path with a quote and a newline stays one TOML string.
        let odd = tmp.path().join("a\"b\nc");
        std::fs::create_dir_all(&odd).unwrap();
        std::fs::write(odd.join("Cargo.toml"), "[package]\n").unwrap();
        new_agent("odd", &tmp.path().join("odd"), &SdkSource::Path(odd.clone())).unwrap();
        let toml: toml::Table = std::fs::read_to_string(tmp.path().join("odd/Cargo.toml")).unwrap().parse().unwrap();
        let path = toml["dependencies"]["agentkernel-sdk"]["path"].as_str().unwrap();
        assert_eq!(Path::new(path), odd.canonicalize().unwrap());
    }

    #[test]
    fn type_names_are_rust_identifiers() {
        assert_eq!(type_name("my-agent"), "MyAgent");
        assert_eq!(type_name("9lives"), "Agent9lives");
    }

    #[test]
    fn languages_parse_and_print() {
        for lang in Lang::ALL {
            assert_eq!(lang.to_string().parse::<Lang>(), Ok(lang));
        }
        assert_eq!("Python".parse::<Lang>(), Ok(Lang::Python));
        assert_eq!("javascript".parse::<Lang>(), Ok(Lang::Js));
        assert!("cobol".parse::<Lang>().unwrap_err().contains("rust, python or js"));
        assert_eq!(Lang::default(), Lang::Rust);
    }

    #[test]
    fn build_refuses_a_directory_that_is_no_agent() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_agent(dir.path(), &dir.path().join("agents.d")).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotAnAgent(_)), "{err}");
        assert!(err.to_string().contains("app.py"), "{err}");
    }
}

/// Builds the agent at `dir` and copies the component into `agents_dir`,
/// atomically. Returns its path. A crate (`Cargo.toml`) is built for
/// wasm32-wasip2 (release); a Python (`app.py`) or JavaScript (`index.js`)
/// directory with componentize-py or componentize-js.
pub fn build_agent(dir: &Path, agents_dir: &Path) -> Result<PathBuf, ScaffoldError> {
    match Lang::of_dir(dir) {
        Some(Lang::Rust) => build_crate(dir, agents_dir),
        Some(lang @ (Lang::Python | Lang::Js)) => polyglot::build_agent(lang, dir, agents_dir),
        None => Err(ScaffoldError::NotAnAgent(dir.to_path_buf())),
    }
}

fn build_crate(crate_dir: &Path, agents_dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let manifest = crate_dir.join("Cargo.toml");
    let meta = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(&manifest)
        .output()
        .map_err(io("running cargo metadata"))?;
    if !meta.status.success() {
        return Err(ScaffoldError::Cargo(String::from_utf8_lossy(&meta.stderr).trim().to_string()));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&meta.stdout).map_err(|e| ScaffoldError::Cargo(format!("cargo metadata: {e}")))?;
    let target_dir = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let manifest_abs = manifest.canonicalize().map_err(io(format!("{}", manifest.display())))?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["manifest_path"].as_str().map(PathBuf::from).as_ref() == Some(&manifest_abs)))
        .or_else(|| meta["packages"].get(0))
        .ok_or_else(|| ScaffoldError::Cargo("no package found".into()))?;
    let name = package["name"].as_str().unwrap_or_default().to_string();

    let status = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(&manifest)
        .status()
        .map_err(io("running cargo build"))?;
    if !status.success() {
        return Err(ScaffoldError::Cargo(format!("cargo build exited with {status}")));
    }
    let artifact = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
    install_component(&artifact, agents_dir, &format!("{name}.wasm"))
}

/// Copies `component` into `agents_dir/file_name` via a hidden temporary
/// file and a rename, so the host never sees a half-written component.
pub fn install_component(component: &Path, agents_dir: &Path, file_name: &str) -> Result<PathBuf, ScaffoldError> {
    std::fs::create_dir_all(agents_dir).map_err(io(format!("creating {}", agents_dir.display())))?;
    let dest = agents_dir.join(file_name);
    let tmp = agents_dir.join(format!(".{file_name}.tmp"));
    std::fs::copy(component, &tmp).map_err(io(format!("copying {}", component.display())))?;
    std::fs::rename(&tmp, &dest).map_err(io(format!("installing {}", dest.display())))?;
    Ok(dest)
}
