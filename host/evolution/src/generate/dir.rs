//! `--generator dir:PATH`: candidates from a directory, one per entry.
//!
//! The directory is not trusted: an entry that is a symbolic link, FIFO,
//! socket or device becomes a candidate that fails with that reason (a
//! link is never followed, so no other file or directory is read or
//! named), and reading is bounded in bytes (`source_check::read`) and in
//! time: each generation step's reads run on the blocking pool under the
//! build timeout, so a read that stalls fails its candidates instead of
//! the host, and Ctrl-C (which drops the evolution) is never held up.
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::Candidate;
use crate::source_check::CandidateSource;
use crate::source_check::read::{ReadError, read_regular_file, read_tree};

/// Most entries a candidate directory may hold.
pub const MAX_ENTRIES: usize = 1024;
/// How long one generation step may read, unless the evolution sets it
/// (to its build timeout): the default build timeout.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Candidates from a directory, one per entry, in name order: a `NAME.rs`
/// file (it becomes `src/lib.rs`), or a directory `NAME/` holding `src/`
/// (or the `.rs` files directly).
pub struct DirGenerator {
    pub dir: PathBuf,
    pub(super) entries: Vec<PathBuf>,
    pub(super) position: usize,
    timeout: Duration,
}

impl DirGenerator {
    pub fn open(dir: &Path) -> Result<Self, String> {
        let rd = std::fs::read_dir(dir).map_err(|e| format!("candidate directory {}: {e}", dir.display()))?;
        let mut entries = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| format!("candidate directory {}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().to_string();
            // The entry's own type (never a link's target's). Links and
            // other special files are kept, to fail as candidates by name.
            let Ok(ty) = entry.file_type() else { continue };
            if name.starts_with('.') || !(ty.is_dir() || ty.is_symlink() || name.ends_with(".rs")) {
                continue;
            }
            entries.push(entry.path());
            if entries.len() > MAX_ENTRIES {
                return Err(format!("candidate directory {} holds more than {MAX_ENTRIES} entries", dir.display()));
            }
        }
        entries.sort();
        if entries.is_empty() {
            return Err(format!("candidate directory {} holds no NAME.rs files or NAME/ crates", dir.display()));
        }
        Ok(DirGenerator { dir: dir.to_path_buf(), entries, position: 0, timeout: DEFAULT_READ_TIMEOUT })
    }

    /// Bounds each generation step's reading by `timeout` (the evolution's build timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The next `count` candidates (`usize::MAX`: all the rest). Each is
    /// read on the blocking pool; once the step's time is up, the ones
    /// not read yet fail with a timeout.
    pub(super) async fn next(&mut self, count: usize) -> Vec<Candidate> {
        let end = self.position.saturating_add(count).min(self.entries.len());
        let deadline = Instant::now() + self.timeout;
        let mut out = Vec::new();
        for path in &self.entries[self.position..end] {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
            let label = name.trim_end_matches(".rs").to_string();
            // Past the deadline no new read starts: on a hung file system
            // each would hold a blocking thread for good.
            if Instant::now() >= deadline {
                let source = Err(format!("reading the candidates took longer than {:?} (the build timeout)", self.timeout));
                out.push(Candidate { label, origin: format!("dir:{}", path.display()), source });
                continue;
            }
            let read = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_candidate(&path, &name))
            };
            let source = match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(source)) => source,
                Ok(Err(panic)) => Err(format!("reading the candidate failed: {panic}")),
                Err(_) => Err(format!("reading the candidates took longer than {:?} (the build timeout)", self.timeout)),
            };
            out.push(Candidate { label, origin: format!("dir:{}", path.display()), source });
        }
        self.position = end;
        out
    }
}

/// One entry's sources: `NAME.rs` as `src/lib.rs`, or `NAME/src/` (else
/// `NAME/`) as `src/`. Blocking; errors name the entry, never a link's target.
fn read_candidate(path: &Path, name: &str) -> Result<CandidateSource, String> {
    let shown = |e: ReadError| format!("{name}: {e}");
    let ty = std::fs::symlink_metadata(path).map_err(|e| format!("{name}: {e}"))?.file_type();
    if ty.is_dir() {
        let src = path.join("src");
        // `NAME/src` when it exists in any form (a link there is refused, not skipped).
        let root = if std::fs::symlink_metadata(&src).is_ok() { src } else { path.to_path_buf() };
        read_tree(&root, false).map_err(shown)
    } else {
        let text = read_regular_file(path, name, crate::source_check::MAX_TOTAL_BYTES).map_err(|e| match e {
            ReadError::TooLarge => shown(e),
            // The others name the entry already.
            e => e.to_string(),
        })?;
        Ok(CandidateSource::single(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(dir: &Path) -> Vec<Candidate> {
        let mut g = DirGenerator::open(dir).unwrap().with_timeout(Duration::from_secs(5));
        // Bounded itself: on a host that blocks in open() this fails instead of hanging.
        tokio::time::timeout(Duration::from_secs(20), g.next(usize::MAX)).await.expect("reading the candidates is bounded")
    }

    fn error_of<'a>(cands: &'a [Candidate], label: &str) -> &'a str {
        let c = cands.iter().find(|c| c.label == label).unwrap_or_else(|| panic!("no candidate {label}"));
        c.source.as_ref().err().map(String::as_str).unwrap_or_else(|| panic!("{label} was read: {:?}", c.source))
    }

    const SECRET: &str = "TOP-SECRET-CONTENT";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_symlinked_candidate_file_is_refused_without_reading_its_target() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.rs"), SECRET).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.rs"), dir.path().join("link.rs")).unwrap();
        std::fs::write(dir.path().join("plain.rs"), "pub fn f() {}\n").unwrap();
        let cands = read_all(dir.path()).await;
        let err = error_of(&cands, "link");
        assert!(err.contains("symbolic link") && !err.contains(SECRET) && !err.contains("secret.rs"), "{err}");
        assert!(cands.iter().any(|c| c.label == "plain" && c.source.is_ok()), "the other candidate is unaffected");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_symlinked_candidate_directory_is_not_walked() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("src")).unwrap();
        std::fs::write(outside.path().join("src/lib.rs"), SECRET).unwrap();
        std::fs::write(outside.path().join("src/private-name.rs"), "").unwrap();
        let dir = tempfile::tempdir().unwrap();
        // A link as the candidate, and a real candidate whose src/ is a link.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("src"), dir.path().join("real/src")).unwrap();
        let cands = read_all(dir.path()).await;
        for label in ["linked", "real"] {
            let err = error_of(&cands, label);
            assert!(err.contains("symbolic link") && !err.contains("private-name") && !err.contains(SECRET), "{label}: {err}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fifo_fails_its_candidate_at_once_instead_of_blocking_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mkfifo").arg(dir.path().join("fifo.rs")).status().unwrap();
        assert!(status.success());
        std::fs::create_dir_all(dir.path().join("crate/src")).unwrap();
        std::process::Command::new("mkfifo").arg(dir.path().join("crate/src/lib.rs")).status().unwrap();
        let started = std::time::Instant::now();
        let cands = read_all(dir.path()).await;
        assert!(error_of(&cands, "fifo").contains("is a FIFO, not a regular file"), "{}", error_of(&cands, "fifo"));
        assert!(error_of(&cands, "crate").contains("src/lib.rs is a FIFO"), "{}", error_of(&cands, "crate"));
        assert!(started.elapsed() < Duration::from_secs(2), "refused at once, not at the timeout");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_link_to_dev_zero_is_refused_and_large_files_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.rs")).unwrap();
        std::fs::create_dir_all(dir.path().join("crate/src")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("crate/src/lib.rs")).unwrap();
        // A regular file past the candidate's byte budget.
        std::fs::write(dir.path().join("huge.rs"), vec![b' '; crate::source_check::MAX_TOTAL_BYTES + 1]).unwrap();
        let cands = read_all(dir.path()).await;
        assert!(error_of(&cands, "zero").contains("symbolic link"), "{}", error_of(&cands, "zero"));
        assert!(error_of(&cands, "crate").contains("symbolic link"), "{}", error_of(&cands, "crate"));
        assert!(error_of(&cands, "huge").contains("larger than"), "{}", error_of(&cands, "huge"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn devices_are_refused_without_being_opened() {
        // A device node cannot be made without privileges; what lstat sees
        // for one is what the reader checks, shown here through /dev/null.
        let err = read_regular_file(Path::new("/dev/null"), "null.rs", 10).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }
}
