//! The build directories under the candidate target directory:
//!
//! - `deps/`: the dependencies (SDK, wit-bindgen, serde…) built by the
//!   host from a stub crate with the candidates' manifest, so they compile
//!   once; no candidate builds in it or sees it.
//! - `candidates/PACKAGE/`: one candidate build's target directory, a copy
//!   of `deps/` (so its dependencies are fresh), removed after the build:
//!   a candidate sees no other candidate's outputs, and its junk (cargo's
//!   message cache, rustc's `*.long-type-*.txt`) goes with it.
//! - `cargo-config.toml`: the cargo configuration builds get.
//! - `deps.lock`: held while `deps/` is built or copied (hosts and test
//!   processes share one target directory).
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn deps(&self) -> PathBuf {
        self.root.join("deps")
    }
    pub fn deps_crate(&self) -> PathBuf {
        self.root.join("deps-crate")
    }
    pub fn candidate(&self, package: &str) -> PathBuf {
        self.root.join("candidates").join(package)
    }
    pub fn cargo_config(&self) -> PathBuf {
        self.root.join("cargo-config.toml")
    }
    /// Takes the dependency lock (blocking until other holders let go).
    pub async fn lock_deps(&self) -> io::Result<DepsLock> {
        let path = self.root.join("deps.lock");
        tokio::task::spawn_blocking(move || {
            let file = File::options().create(true).truncate(false).write(true).open(&path)?;
            // SAFETY: a plain syscall on an open descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(DepsLock { _file: file })
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Released when dropped (closing the file releases the `flock`).
pub struct DepsLock {
    _file: File,
}

/// Bytes of the regular files under `dir` (symlinks not followed); 0 if
/// it does not exist.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Copies `from` to `to` (which must not exist), keeping modification
/// times: cargo decides what is fresh by comparing them.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)?;
            let modified = entry.metadata()?.modified()?;
            File::options().write(true).open(&dst)?.set_modified(modified)?;
        }
    }
    Ok(())
}

/// Removes `dir` and everything under it; already gone is fine.
pub fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_tree_keeps_contents_and_modification_times() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("a/b")).unwrap();
        std::fs::write(from.join("a/b/f"), "xyz").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::options().write(true).open(from.join("a/b/f")).unwrap().set_modified(old).unwrap();
        let to = dir.path().join("to");
        copy_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("a/b/f")).unwrap(), "xyz");
        assert_eq!(std::fs::metadata(to.join("a/b/f")).unwrap().modified().unwrap(), old);
        assert_eq!(dir_size(&to), 3);
        remove(&to).unwrap();
        remove(&to).unwrap();
        assert!(!to.exists());
    }
}
