//! Builds a candidate in a locked-down sandbox.
//!
//! The candidate supplies `src/` only. The host writes the manifest from a
//! template (the SDK by path plus vetted crates already in the lockfile; no
//! build script, no proc-macro crate of its own, no new dependency), copies
//! the workspace's `Cargo.lock` so `cargo build --offline` resolves, and
//! runs cargo under `bwrap`: its own network namespace (no network), a cleared environment,
//! toolchain and the cargo home's crate sources read-only (no `/etc`, no
//! home directory, no credentials), a private `/tmp`, only the
//! candidate's directory and the shared candidate target directory
//! writable, plus CPU / address-space / file-size rlimits and a timeout.
//! Without `bwrap` the build fails, unless the operator opted out with
//! `[evolution] sandbox = "none"` (recorded in every report).
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::source_check::{self, CandidateSource, Violation};
use super::{EvolutionConfig, SandboxMode};

/// Dependencies a candidate may use: the SDK (added by path) and these.
pub const ALLOWED_DEPENDENCIES: &[(&str, &str)] =
    &[("serde", r#"{ version = "1", features = ["derive"] }"#), ("serde_json", r#""1""#)];

/// Most bytes of compiler output kept.
const MAX_LOG_BYTES: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("rejected before building: {}", .0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    Rejected(Vec<Violation>),
    #[error("the build failed:\n{log}")]
    Compile { log: String },
    #[error("the build did not finish within {0:?}")]
    Timeout(Duration),
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
            BuildError::SandboxUnavailable(_) => "sandbox-unavailable",
            BuildError::Setup(_) => "setup",
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
    /// Shared by every candidate build, so dependencies compile once.
    pub target_dir: PathBuf,
    pub sysroot: PathBuf,
    pub cargo_home: PathBuf,
    pub timeout: Duration,
    pub cpu_seconds: u64,
    pub address_space_bytes: u64,
    pub file_size_bytes: u64,
}

impl BuildSettings {
    /// Resolves paths from the configuration and the environment.
    pub fn resolve(config: &EvolutionConfig, data_dir: &Path) -> Result<BuildSettings, BuildError> {
        let sdk_dir = config.sdk.clone().unwrap_or_else(crate::scaffold::default_sdk_path);
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
        })
    }
}

/// A built candidate.
#[derive(Debug, Clone)]
pub struct Built {
    pub component: Vec<u8>,
    pub duration: Duration,
    /// Compiler output (warnings), possibly empty.
    pub log: String,
}

/// The manifest every candidate is built with.
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
    let setup = |e: std::io::Error| BuildError::Setup(format!("{}: {e}", work_dir.display()));
    // A directory already holding exactly this crate is reused as it is
    // (untouched files keep cargo's fingerprints fresh); anything else is
    // replaced.
    let manifest_text = manifest(package, &settings.sdk_dir);
    let reusable = std::fs::read_to_string(work_dir.join("Cargo.toml")).is_ok_and(|m| m == manifest_text)
        && CandidateSource::read_dir(&work_dir.join("src")).is_ok_and(|s| &s == source);
    if !reusable {
        if work_dir.exists() {
            std::fs::remove_dir_all(work_dir).map_err(setup)?;
        }
        std::fs::create_dir_all(work_dir.join("src")).map_err(setup)?;
        source.write_to(&work_dir.join("src")).map_err(setup)?;
        std::fs::write(work_dir.join("Cargo.toml"), &manifest_text).map_err(setup)?;
        if let Some(lock) = &settings.lockfile {
            std::fs::copy(lock, work_dir.join("Cargo.lock")).map_err(setup)?;
        }
    }
    let work_dir = work_dir.canonicalize().map_err(setup)?;

    let cargo = settings.sysroot.join("bin/cargo");
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
    let env: Vec<(&str, String)> = vec![
        ("PATH", format!("{}:/usr/bin:/bin", settings.sysroot.join("bin").display())),
        ("HOME", "/tmp".into()),
        ("CARGO_HOME", settings.cargo_home.display().to_string()),
        ("RUSTC", settings.sysroot.join("bin/rustc").display().to_string()),
        ("CARGO_TARGET_DIR", settings.target_dir.display().to_string()),
        ("CARGO_TERM_PROGRESS_WHEN", "never".into()),
    ];
    let mut command = match settings.sandbox {
        SandboxMode::Bwrap => {
            let mut c = std::process::Command::new("bwrap");
            c.args(["--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]);
            // Programs and shared libraries only: no /etc (users, hosts,
            // keys), no /home, no /root, no /var. Of /etc, the dynamic
            // loader's cache and Debian's alternatives (`cc`, which links
            // the build scripts of vetted crates, is a link through them).
            for sys in ["/usr", "/bin", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/alternatives"] {
                if Path::new(sys).exists() {
                    c.args(["--ro-bind", sys, sys]);
                }
            }
            // The private /tmp first: binds below may live under /tmp (a
            // checkout or data dir there) and must be mounted over it.
            c.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
            let mut ro = vec![settings.sysroot.clone(), settings.sdk_dir.clone()];
            // Of the cargo home, the downloaded crate sources and cargo's
            // own configuration (source replacement), never credentials.
            for part in ["registry", "git", "config.toml", "config"] {
                let p = settings.cargo_home.join(part);
                if p.exists() {
                    ro.push(p);
                }
            }
            if let Some(root) = &settings.workspace_root {
                ro.push(root.join("Cargo.toml"));
                if root.join("wit").exists() {
                    ro.push(root.join("wit"));
                }
            }
            for p in &ro {
                c.arg("--ro-bind").arg(p).arg(p);
            }
            c.arg("--bind").arg(&work_dir).arg(&work_dir);
            c.arg("--bind").arg(&settings.target_dir).arg(&settings.target_dir);
            for (k, v) in &env {
                c.args(["--setenv", k, v]);
            }
            c.arg("--chdir").arg(&work_dir).arg(&cargo).args(&cargo_args);
            c
        }
        SandboxMode::None => {
            let mut c = std::process::Command::new(&cargo);
            c.env_clear().envs(env.iter().map(|(k, v)| (k, v))).current_dir(&work_dir).args(&cargo_args);
            c
        }
    };
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
    let started = Instant::now();
    let child = command.spawn().map_err(|e| BuildError::Setup(format!("cannot start the build: {e}")))?;
    let output = match tokio::time::timeout(settings.timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(BuildError::Setup(format!("build process: {e}"))),
        // Dropping the child kills bwrap, and with it the whole sandbox.
        Err(_) => return Err(BuildError::Timeout(settings.timeout)),
    };
    let log = tail(&String::from_utf8_lossy(&output.stderr), MAX_LOG_BYTES);
    if !output.status.success() {
        return Err(BuildError::Compile { log });
    }
    let artifact = settings.target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")));
    let component = std::fs::read(&artifact)
        .map_err(|e| BuildError::Setup(format!("the build succeeded but {} is unreadable: {e}", artifact.display())))?;
    Ok(Built { component, duration: started.elapsed(), log })
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
    // SAFETY: a plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// The last `max` bytes of `s` (compiler errors that matter come last).
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
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
