//! Builds a candidate in a locked-down sandbox.
//!
//! The candidate supplies `src/` only. The host writes the manifest from a
//! template (the SDK by path plus vetted crates already in the lockfile; no
//! build script, no proc-macro crate of its own, no new dependency), copies
//! the workspace's `Cargo.lock` so `cargo build --offline` resolves, and
//! runs cargo under `bwrap` (what it sees: [`sandbox`]): its own
//! namespaces (no network, no other process), a cleared environment, a
//! host-written cargo config, no `/proc`, only its own crate and its own
//! target directory writable, plus CPU / address-space / file-size
//! rlimits, a cap on the disk it fills ([`target_dirs`]), a timeout, and
//! output kept bounded while it streams ([`build_output`]).
//! Without `bwrap` the build fails, unless the operator opted out with
//! `[evolution] sandbox = "none"` (recorded in every report).
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::source_check::{self, CandidateSource, Violation};
use super::{EvolutionConfig, SandboxMode};

pub mod build_output;
pub mod sandbox;
pub mod target_dirs;

use self::sandbox::Stage;
use self::target_dirs::Layout;

/// Dependencies a candidate may use: the SDK (added by path) and these.
pub const ALLOWED_DEPENDENCIES: &[(&str, &str)] =
    &[("serde", r#"{ version = "1", features = ["derive"] }"#), ("serde_json", r#""1""#)];

/// How often a running build's disk use is measured.
const DISK_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// The least time the host's own build of the dependencies gets (a cold
/// build of the SDK, wit-bindgen and serde takes about a minute on 2 cores).
const DEPENDENCIES_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("rejected before building: {}", .0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    Rejected(Vec<Violation>),
    #[error("the build failed:\n{log}")]
    Compile { log: String },
    #[error("the build did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the build wrote more than {limit} bytes to disk (build_disk_bytes)")]
    DiskLimit { limit: u64 },
    #[error("{0}")]
    SandboxUnavailable(String),
    #[error("{0}")]
    Setup(String),
}

impl BuildError {
    pub fn kind(&self) -> &'static str {
        match self {
            BuildError::Rejected(_) => "rejected",
            BuildError::Compile { .. } => "compile-error",
            BuildError::Timeout(_) => "timeout",
            BuildError::DiskLimit { .. } => "disk-limit",
            BuildError::SandboxUnavailable(_) => "sandbox-unavailable",
            BuildError::Setup(_) => "setup",
        }
    }
}

/// What a build's result means for a run.
pub enum BuildOutcome {
    Built(Built),
    /// The candidate's fault (`kind` as [`BuildError::kind`]): reported,
    /// and the run goes on.
    Failed { kind: &'static str, errors: Vec<String>, violations: Vec<Violation> },
    /// Nothing can be built here (no sandbox, cargo does not start, the
    /// disk is full): the run stops rather than fail every candidate.
    Unavailable(BuildError),
}

impl From<Result<Built, BuildError>> for BuildOutcome {
    fn from(result: Result<Built, BuildError>) -> BuildOutcome {
        match result {
            Ok(built) => BuildOutcome::Built(built),
            Err(e @ (BuildError::SandboxUnavailable(_) | BuildError::Setup(_))) => BuildOutcome::Unavailable(e),
            Err(BuildError::Rejected(violations)) => BuildOutcome::Failed { kind: "rejected", errors: vec![], violations },
            Err(BuildError::Compile { log }) => {
                let errors = error_lines(&log);
                let errors = if errors.is_empty() { vec![log] } else { errors };
                BuildOutcome::Failed { kind: "compile-error", errors, violations: vec![] }
            }
            Err(e @ (BuildError::Timeout(_) | BuildError::DiskLimit { .. })) => {
                BuildOutcome::Failed { kind: e.kind(), errors: vec![e.to_string()], violations: vec![] }
            }
        }
    }
}

/// Where the build finds the toolchain, SDK and lockfile, and its limits.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSettings {
    pub sandbox: SandboxMode,
    pub sdk_dir: PathBuf,
    /// The SDK's workspace root (its `Cargo.toml` is inherited from), if any.
    pub workspace_root: Option<PathBuf>,
    pub lockfile: Option<PathBuf>,
    /// Holds the host-built dependencies every candidate build starts from
    /// and, while it runs, each build's own target directory.
    pub target_dir: PathBuf,
    pub sysroot: PathBuf,
    pub cargo_home: PathBuf,
    pub timeout: Duration,
    pub cpu_seconds: u64,
    pub address_space_bytes: u64,
    pub file_size_bytes: u64,
    /// Bytes one build may add to its target directory.
    pub disk_bytes: u64,
    /// Past this size the shared dependencies are wiped and built again.
    pub deps_max_bytes: u64,
}

impl BuildSettings {
    /// Resolves paths from the configuration and the environment.
    pub fn resolve(config: &EvolutionConfig, data_dir: &Path) -> Result<BuildSettings, BuildError> {
        let sdk_dir = config.sdk.clone().unwrap_or_else(agentkernel_core::scaffold::default_sdk_path);
        let sdk_dir = sdk_dir
            .canonicalize()
            .map_err(|e| BuildError::Setup(format!("SDK at {}: {e} (set [evolution] sdk)", sdk_dir.display())))?;
        let workspace_root = sdk_dir.parent().filter(|r| r.join("Cargo.toml").exists()).map(Path::to_path_buf);
        let lockfile = config
            .lockfile
            .clone()
            .or_else(|| workspace_root.as_ref().map(|r| r.join("Cargo.lock")))
            .filter(|p| p.exists());
        let target_dir = config.target_dir.clone().unwrap_or_else(|| data_dir.join("evolve").join("target"));
        std::fs::create_dir_all(&target_dir).map_err(|e| BuildError::Setup(format!("{}: {e}", target_dir.display())))?;
        let target_dir = target_dir.canonicalize().map_err(|e| BuildError::Setup(e.to_string()))?;
        let sysroot = match &config.sysroot {
            Some(s) => s.clone(),
            None => {
                let out = std::process::Command::new("rustc")
                    .args(["--print", "sysroot"])
                    .output()
                    .map_err(|e| BuildError::Setup(format!("cannot run rustc to find the toolchain: {e}")))?;
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        if !sysroot.join("lib/rustlib/wasm32-wasip2").exists() {
            return Err(BuildError::Setup(format!(
                "toolchain {} has no wasm32-wasip2 target (rustup target add wasm32-wasip2)",
                sysroot.display()
            )));
        }
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .ok_or_else(|| BuildError::Setup("cannot find the cargo home (set CARGO_HOME)".into()))?;
        Ok(BuildSettings {
            sandbox: config.sandbox,
            sdk_dir,
            workspace_root,
            lockfile,
            target_dir,
            sysroot,
            cargo_home,
            timeout: Duration::from_secs(config.build_timeout_secs),
            cpu_seconds: config.build_cpu_secs,
            address_space_bytes: config.build_memory_bytes,
            file_size_bytes: config.build_file_bytes,
            disk_bytes: config.build_disk_bytes,
            deps_max_bytes: config.target_dir_max_bytes,
        })
    }

    fn layout(&self) -> Layout {
        Layout { root: self.target_dir.clone() }
    }
}

/// A built candidate.
#[derive(Debug, Clone)]
pub struct Built {
    pub component: Vec<u8>,
    pub duration: Duration,
    /// Compiler output (warnings), possibly empty, at most
    /// [`build_output::MAX_LOG_BYTES`] and a line counting what was dropped.
    pub log: String,
}

/// The manifest every candidate is built with; `sdk_dir` is where the
/// build sees the SDK.
pub fn manifest(package: &str, sdk_dir: &Path) -> String {
    let deps: String = ALLOWED_DEPENDENCIES.iter().map(|(n, spec)| format!("{n} = {spec}\n")).collect();
    format!(
        r#"# Written by agentkernel: candidates supply src/ only.
[package]
name = "{package}"
version = "0.1.0"
edition = "2024"
publish = false
build = false
autobins = false
autoexamples = false
autotests = false
autobenches = false

[lib]
path = "src/lib.rs"
crate-type = ["cdylib"]

[dependencies]
agentkernel-sdk = {{ path = "{sdk}" }}
{deps}
[profile.release]
debug = false

# Standalone: never part of an enclosing workspace.
[workspace]
"#,
        sdk = sdk_dir.display().to_string().replace('\\', "/").replace('"', "\\\""),
    )
}

/// Checks `source`, writes it to `work_dir` with the template manifest and
/// builds it. `package` names the crate (and so its artifact) uniquely.
pub async fn build(settings: &BuildSettings, source: &CandidateSource, work_dir: &Path, package: &str) -> Result<Built, BuildError> {
    let violations = source_check::check(source);
    if !violations.is_empty() {
        return Err(BuildError::Rejected(violations));
    }
    build_in_sandbox(settings, source, work_dir, package).await
}

/// [`build`] without the source check: the sandbox alone. Public so the
/// containment tests can show what a source that slipped past the check
/// could still reach (nothing of the host's files); the engine always
/// calls [`build`].
#[doc(hidden)]
pub async fn build_in_sandbox(settings: &BuildSettings, source: &CandidateSource, work_dir: &Path, package: &str) -> Result<Built, BuildError> {
    if settings.sandbox == SandboxMode::Bwrap && which("bwrap").is_none() {
        return Err(BuildError::SandboxUnavailable(
            "bwrap (bubblewrap) is not installed, so candidates cannot be built in a sandbox: \
             install it (apt-get install bubblewrap) or set [evolution] sandbox = \"none\" to build \
             unsandboxed (every report records it)"
                .into(),
        ));
    }
    let layout = settings.layout();
    let target = layout.candidate(package);
    // Removes the build's target directory however the build ends,
    // including when this future is dropped (Ctrl-C, shutdown, an aborted
    // task), so an interrupted build leaves no copy of the dependencies.
    struct RemoveOnDrop<'a>(&'a Path);
    impl Drop for RemoveOnDrop<'_> {
        fn drop(&mut self) {
            let _ = target_dirs::remove(self.0);
        }
    }
    let _remove = RemoveOnDrop(&target);
    let result = async {
        let setup = |e: std::io::Error| BuildError::Setup(format!("{}: {e}", work_dir.display()));
        {
            // Held until this build's target directory is a full copy.
            let _lock = layout.lock_deps().await.map_err(|e| BuildError::Setup(format!("locking the dependencies: {e}")))?;
            prepare_dependencies(settings, &layout).await?;
            target_dirs::remove(&target).and_then(|()| target_dirs::copy_tree(&layout.deps(), &target)).map_err(|e| {
                BuildError::Setup(format!("copying the dependencies to {}: {e}", target.display()))
            })?;
        }
        write_crate(settings, source, work_dir, package).map_err(setup)?;
        let work_dir = work_dir.canonicalize().map_err(setup)?;
        let started = Instant::now();
        let bounds = Bounds { timeout: settings.timeout, disk_bytes: settings.disk_bytes };
        let log = run_cargo(settings, Stage::Candidate, &work_dir, &target, bounds).await?;
        let artifact = target.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")));
        let component = std::fs::read(&artifact)
            .map_err(|e| BuildError::Setup(format!("the build succeeded but {} is unreadable: {e}", artifact.display())))?;
        Ok(Built { component, duration: started.elapsed(), log })
    }
    .await;
    // No output of a build outlives it: its artifacts, cargo's message
    // cache and rustc's long-type files go; the component is in the
    // result. The crate (its sources and manifest, a few KiB) stays.
    let cleaned = target_dirs::remove(&target);
    match (result, cleaned) {
        (Ok(_), Err(e)) => Err(BuildError::Setup(format!("cleaning after the build: {e}"))),
        (result, _) => result,
    }
}

/// Writes the candidate's crate: its `src/`, the template manifest, the
/// workspace's lockfile.
fn write_crate(settings: &BuildSettings, source: &CandidateSource, work_dir: &Path, package: &str) -> std::io::Result<()> {
    target_dirs::remove(work_dir)?;
    std::fs::create_dir_all(work_dir.join("src"))?;
    source.write_to(&work_dir.join("src"))?;
    std::fs::write(work_dir.join("Cargo.toml"), manifest(package, &sandbox::sdk_path(settings)))?;
    if let Some(lock) = &settings.lockfile {
        std::fs::copy(lock, work_dir.join("Cargo.lock"))?;
    }
    Ok(())
}

/// Builds the dependencies (a stub crate with the candidates' manifest)
/// into `deps/`, wiping it first when it grew past `deps_max_bytes`; a
/// no-op for cargo when nothing changed. Called with the lock held.
async fn prepare_dependencies(settings: &BuildSettings, layout: &Layout) -> Result<(), BuildError> {
    let setup = |e: std::io::Error| BuildError::Setup(format!("preparing the dependencies in {}: {e}", layout.root.display()));
    let operator_config = ["config.toml", "config"].iter().find_map(|f| std::fs::read_to_string(settings.cargo_home.join(f)).ok());
    let config = sandbox::cargo_config(operator_config.as_deref());
    if std::fs::read_to_string(layout.cargo_config()).ok().as_deref() != Some(config.as_str()) {
        std::fs::write(layout.cargo_config(), &config).map_err(setup)?;
    }
    if target_dirs::dir_size(&layout.deps()) > settings.deps_max_bytes {
        target_dirs::remove(&layout.deps()).map_err(setup)?;
    }
    std::fs::create_dir_all(layout.deps()).map_err(setup)?;
    let stub = CandidateSource::single("//! The candidates' dependencies, built once by the host.\n");
    let crate_dir = layout.deps_crate();
    let unchanged = std::fs::read_to_string(crate_dir.join("Cargo.toml")).ok()
        == Some(manifest("agentkernel-candidate-deps", &sandbox::sdk_path(settings)))
        && settings.lockfile.as_ref().is_none_or(|l| std::fs::read(l).ok() == std::fs::read(crate_dir.join("Cargo.lock")).ok());
    if !unchanged {
        write_crate(settings, &stub, &crate_dir, "agentkernel-candidate-deps").map_err(setup)?;
    }
    let crate_dir = crate_dir.canonicalize().map_err(setup)?;
    // Vetted code only, built once: bounded like a candidate build, but
    // given the time a cold build of the SDK and its macros needs.
    let bounds = Bounds { timeout: settings.timeout.max(DEPENDENCIES_TIMEOUT), disk_bytes: settings.deps_max_bytes };
    run_cargo(settings, Stage::Dependencies, &crate_dir, &layout.deps(), bounds).await.map(drop).map_err(|e| match e {
        e @ BuildError::SandboxUnavailable(_) => e,
        // Whatever stops it, no candidate can be built.
        e => BuildError::Setup(format!("the candidates' dependencies do not build: {e}")),
    })
}

/// How long a build may run and how many bytes it may add to its target
/// directory.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    timeout: Duration,
    disk_bytes: u64,
}

/// Runs cargo for `stage` with its rlimits and `bounds`; its output,
/// bounded.
async fn run_cargo(settings: &BuildSettings, stage: Stage, crate_dir: &Path, target_dir: &Path, bounds: Bounds) -> Result<String, BuildError> {
    let cargo_args: Vec<String> = [
        "build",
        "--offline",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--color",
        "never",
        // The same small stack as the workspace's agents (see .cargo/config.toml).
        "--config",
        r#"target.wasm32-wasip2.rustflags=["-C","link-arg=-zstack-size=131072"]"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut command = sandbox::command(settings, stage, crate_dir, target_dir, &settings.layout().cargo_config(), &cargo_args);
    let (cpu, address_space, file_size) = (settings.cpu_seconds, settings.address_space_bytes, settings.file_size_bytes);
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            set_limit(libc::RLIMIT_CPU, cpu)?;
            set_limit(libc::RLIMIT_AS, address_space)?;
            set_limit(libc::RLIMIT_FSIZE, file_size)?;
            Ok(())
        });
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| BuildError::Setup(format!("cannot start the build: {e}")))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let output = async {
        match (stdout, stderr) {
            (Some(out), Some(err)) => build_output::capture(out, err).await,
            _ => Ok(build_output::BoundedLog::default()),
        }
    };
    let disk_at_start = target_dirs::dir_size(target_dir);
    let disk_cap = async {
        let mut tick = tokio::time::interval(DISK_CHECK_INTERVAL);
        loop {
            tick.tick().await;
            let dir = target_dir.to_path_buf();
            let size = tokio::task::spawn_blocking(move || target_dirs::dir_size(&dir)).await.unwrap_or(0);
            if size.saturating_sub(disk_at_start) > bounds.disk_bytes {
                return;
            }
        }
    };
    let finished = async {
        let (log, status) = tokio::join!(output, child.wait());
        (log, status)
    };
    // Dropping the child on a timeout or over the disk cap kills bwrap,
    // and with it the whole sandbox.
    let (log, status) = tokio::select! {
        r = tokio::time::timeout(bounds.timeout, finished) => r.map_err(|_| BuildError::Timeout(bounds.timeout))?,
        () = disk_cap => return Err(BuildError::DiskLimit { limit: bounds.disk_bytes }),
    };
    // A build faster than the first measurement is measured once more.
    if target_dirs::dir_size(target_dir).saturating_sub(disk_at_start) > bounds.disk_bytes {
        return Err(BuildError::DiskLimit { limit: bounds.disk_bytes });
    }
    let status = status.map_err(|e| BuildError::Setup(format!("build process: {e}")))?;
    let log = log.map_err(|e| BuildError::Setup(format!("reading the build's output: {e}")))?.into_text();
    if !status.success() {
        return Err(BuildError::Compile { log });
    }
    Ok(log)
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
    // SAFETY: a plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Just the compiler's `error` diagnostics from a build log (for reports
/// and for the repair prompt).
pub fn error_lines(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if line.starts_with("error") {
            if let Some(c) = current.take() {
                out.push(c);
            }
            if line.starts_with("error: could not compile") {
                continue;
            }
            current = Some(line.to_string());
        } else if let Some(c) = current.as_mut() {
            if line.starts_with("warning") || (line.is_empty() && c.lines().count() > 12) {
                out.push(current.take().unwrap_or_default());
            } else if c.len() < 2000 {
                c.push('\n');
                c.push_str(line);
            }
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_allows_only_the_sdk_and_vetted_crates_and_no_build_script() {
        let m = manifest("cand-1", Path::new("/x/sdk"));
        let v: toml::Value = toml::from_str(&m).unwrap();
        let deps: Vec<&String> = v["dependencies"].as_table().unwrap().keys().collect();
        assert_eq!(deps, ["agentkernel-sdk", "serde", "serde_json"]);
        assert_eq!(v["package"]["build"].as_bool(), Some(false));
        assert!(v.get("workspace").is_some());
        assert_eq!(v["lib"]["crate-type"][0].as_str(), Some("cdylib"));
    }

    #[test]
    fn error_lines_keep_errors_with_their_context() {
        let log = "   Compiling x\nwarning: unused\n  --> a\nerror[E0425]: cannot find value `y`\n --> src/lib.rs:3:5\n  |\n3 |     y\n\nerror: could not compile `x`\n";
        let e = error_lines(log);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("E0425") && e[0].contains("src/lib.rs:3:5"), "{e:?}");
    }
}
