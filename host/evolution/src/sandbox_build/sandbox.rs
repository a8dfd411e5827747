//! What a build sees: the `bwrap` command line.
//!
//! Everything a build may read is mounted at a fixed place under
//! `/sandbox` or `/build`, never at its host path, so no path a build can
//! print names the host's layout:
//!
//! | in the sandbox | what | |
//! |---|---|---|
//! | `/usr/lib`, `/lib`, `/lib64`, `/etc/ld.so.cache` | shared libraries the toolchain links against | read-only |
//! | `/usr`, `/bin`, `/etc/alternatives` | the C toolchain: only for the host's dependency build (build scripts link with `cc`) | read-only |
//! | `/sandbox/toolchain` | the Rust toolchain (sysroot) | read-only |
//! | `/sandbox/workspace/{Cargo.toml,wit,SDK}` | the SDK, its workspace manifest and the WIT world | read-only |
//! | `/sandbox/cargo-home/config.toml` | written by the host: offline, plus the operator's source replacement | read-only |
//! | `/sandbox/cargo-home/registry/{index,cache,src}` | downloaded crate sources | read-only |
//! | `/build/crate` | this candidate's crate (host-written manifest, its `src/`) | writable |
//! | `/build/target` | this build's own target directory (a copy of the host-built dependencies) | writable |
//! | `/tmp`, `/dev` | private tmpfs; `null`, `zero`, `full`, `random`, `urandom`, `tty` | |
//!
//! A candidate's build gets no `/proc` at all (its mount table would
//! name the host paths behind every mount); the host's dependency build,
//! which compiles only vetted crates, gets a private one in its own PID
//! namespace because the linker of build scripts needs `/proc/self/exe`.
use std::path::{Path, PathBuf};

use super::BuildSettings;
use crate::SandboxMode;

pub const TOOLCHAIN: &str = "/sandbox/toolchain";
const WORKSPACE: &str = "/sandbox/workspace";
pub const CARGO_HOME: &str = "/sandbox/cargo-home";
pub const CRATE: &str = "/build/crate";
pub const TARGET: &str = "/build/target";

/// Which build runs: the host's own build of the dependencies, or a
/// candidate's (which sees less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Dependencies,
    Candidate,
}

/// Where the SDK is as the build sees it (the manifest names it).
pub fn sdk_path(settings: &BuildSettings) -> PathBuf {
    match (settings.sandbox, &settings.workspace_root) {
        (SandboxMode::None, _) => settings.sdk_dir.clone(),
        // The SDK keeps its directory name inside its workspace, so the
        // workspace's `members` still name it.
        (SandboxMode::Bwrap, Some(_)) => Path::new(WORKSPACE).join(settings.sdk_dir.file_name().unwrap_or("sdk".as_ref())),
        (SandboxMode::Bwrap, None) => PathBuf::from("/sandbox/sdk"),
    }
}

/// The cargo configuration a sandboxed build gets instead of the cargo
/// home's: offline, and the operator's source replacement (so the crate
/// sources are found where they were downloaded), nothing else: no
/// `[env]`, no registry tokens, no `[build]` or target settings.
pub fn cargo_config(operator_config: Option<&str>) -> String {
    let mut out = String::from("# Written by agentkernel for sandboxed candidate builds.\n[net]\noffline = true\n");
    let operator: Option<toml::Table> = operator_config.and_then(|t| toml::from_str(t).ok());
    let sources = operator.as_ref().and_then(|c| c.get("source")).and_then(|s| s.as_table());
    for (name, source) in sources.into_iter().flatten() {
        let Some(source) = source.as_table() else { continue };
        let mut kept = toml::Table::new();
        for key in ["replace-with", "registry"] {
            if let Some(v @ toml::Value::String(s)) = source.get(key) {
                // A URL carrying credentials (`https://user:token@…`) is a
                // secret, not a location the offline build needs.
                if !s.contains('@') {
                    kept.insert(key.into(), v.clone());
                }
            }
        }
        if !kept.is_empty() {
            let mut table = toml::Table::new();
            table.insert(name.clone(), toml::Value::Table(kept));
            let mut wrapper = toml::Table::new();
            wrapper.insert("source".into(), toml::Value::Table(table));
            out.push_str(&toml::to_string(&wrapper).unwrap_or_default());
        }
    }
    out
}

/// The command that runs `cargo` for `stage` on `crate_dir` (host path)
/// with `target_dir` (host path) as its target directory.
pub fn command(
    settings: &BuildSettings,
    stage: Stage,
    crate_dir: &Path,
    target_dir: &Path,
    cargo_config: &Path,
    cargo_args: &[String],
) -> std::process::Command {
    let toolchain_lib = |root: &Path| root.join("lib").display().to_string();
    match settings.sandbox {
        SandboxMode::None => {
            let env = environment(&settings.sysroot, &settings.cargo_home, target_dir, &toolchain_lib(&settings.sysroot));
            let mut c = std::process::Command::new(settings.sysroot.join("bin/cargo"));
            c.env_clear().envs(env).current_dir(crate_dir).args(cargo_args);
            c
        }
        SandboxMode::Bwrap => {
            let mut c = std::process::Command::new("bwrap");
            c.args(["--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]);
            let system: &[&str] = match stage {
                // Build scripts of vetted crates link with `cc` (through
                // Debian's alternatives).
                Stage::Dependencies => &["/usr", "/bin", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/alternatives"],
                // The toolchain's shared libraries only: the candidate's
                // crate links with the toolchain's own wasm linker.
                Stage::Candidate => &["/usr/lib", "/usr/lib64", "/lib", "/lib64", "/etc/ld.so.cache"],
            };
            for sys in system {
                if Path::new(sys).exists() {
                    c.args(["--ro-bind", sys, sys]);
                }
            }
            c.args(["--dev", "/dev", "--tmpfs", "/tmp"]);
            if stage == Stage::Dependencies {
                c.args(["--proc", "/proc"]);
            }
            let mut ro: Vec<(PathBuf, PathBuf)> = vec![(settings.sysroot.clone(), TOOLCHAIN.into())];
            ro.push((settings.sdk_dir.clone(), sdk_path(settings)));
            if let Some(root) = &settings.workspace_root {
                ro.push((root.join("Cargo.toml"), Path::new(WORKSPACE).join("Cargo.toml")));
                if root.join("wit").exists() {
                    ro.push((root.join("wit"), Path::new(WORKSPACE).join("wit")));
                }
            }
            // The cargo home is rebuilt from parts: the host's config and
            // the downloaded sources, never credentials or the operator's
            // config.
            ro.push((cargo_config.to_path_buf(), Path::new(CARGO_HOME).join("config.toml")));
            // Registry sources only: candidates' dependencies are fixed
            // (the template's) and come from the registry, and a git
            // checkout's `.git/config` may name a remote with credentials.
            for part in ["registry/index", "registry/cache", "registry/src"] {
                let p = settings.cargo_home.join(part);
                if p.exists() {
                    ro.push((p, Path::new(CARGO_HOME).join(part)));
                }
            }
            for (host, sandbox) in &ro {
                c.arg("--ro-bind").arg(host).arg(sandbox);
            }
            c.arg("--bind").arg(crate_dir).arg(CRATE);
            c.arg("--bind").arg(target_dir).arg(TARGET);
            let env = environment(Path::new(TOOLCHAIN), Path::new(CARGO_HOME), Path::new(TARGET), &toolchain_lib(Path::new(TOOLCHAIN)));
            for (k, v) in &env {
                c.arg("--setenv").arg(k).arg(v);
            }
            c.args(["--chdir", CRATE]).arg(Path::new(TOOLCHAIN).join("bin/cargo")).args(cargo_args);
            c
        }
    }
}

/// The whole environment of a build (nothing inherited).
fn environment(toolchain: &Path, cargo_home: &Path, target_dir: &Path, toolchain_lib: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PATH", format!("{}:/usr/bin:/bin", toolchain.join("bin").display())),
        ("HOME", "/tmp".into()),
        ("CARGO_HOME", cargo_home.display().to_string()),
        ("RUSTC", toolchain.join("bin/rustc").display().to_string()),
        ("CARGO_TARGET_DIR", target_dir.display().to_string()),
        ("CARGO_TERM_PROGRESS_WHEN", "never".into()),
        // rustc finds its libraries through `$ORIGIN`, which the dynamic
        // loader resolves through /proc; a candidate's build has none.
        ("LD_LIBRARY_PATH", toolchain_lib.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cargo_config_keeps_source_replacement_and_nothing_else() {
        let operator = r#"
            [env]
            SECRET = "hunter2"
            [registry]
            token = "cio-token"
            [registries.private]
            index = "sparse+https://user:tok@example.com/"
            token = "private-token"
            [build]
            rustflags = ["--cfg", "x"]
            [source.crates-io]
            replace-with = "mirror"
            [source.mirror]
            registry = "sparse+https://mirror.example.com/index/"
            [source.leaky]
            registry = "sparse+https://user:pass@mirror.example.com/"
        "#;
        let c = cargo_config(Some(operator));
        let v: toml::Table = toml::from_str(&c).unwrap();
        assert_eq!(v["net"]["offline"].as_bool(), Some(true));
        assert_eq!(v["source"]["crates-io"]["replace-with"].as_str(), Some("mirror"));
        assert_eq!(v["source"]["mirror"]["registry"].as_str(), Some("sparse+https://mirror.example.com/index/"));
        for secret in ["hunter2", "token", "pass", "rustflags", "[env]", "private"] {
            assert!(!c.contains(secret), "{secret} in {c}");
        }
        assert_eq!(cargo_config(None), cargo_config(Some("not = [toml")));
    }
}
