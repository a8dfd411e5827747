//! Reading a candidate's files without trusting the file system: regular
//! files only (a symbolic link, FIFO, socket or device is refused, never
//! followed or opened for its content), every read capped by what is left
//! of the candidate's byte budget, and directories counted too.
//!
//! Each file is checked with `lstat` before it is opened (so a device is
//! never opened at all), then opened with `O_NOFOLLOW | O_NONBLOCK` (a
//! link swapped in meanwhile fails with `ELOOP`; a FIFO opens at once
//! instead of waiting for a writer) and checked again with `fstat` on the
//! opened descriptor. These are blocking calls: callers run them on the
//! blocking pool under a timeout (see `generate::dir`).
use std::collections::BTreeMap;
use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::{CandidateSource, MAX_FILES, MAX_TOTAL_BYTES};

/// Most directories one candidate's tree may hold.
pub const MAX_DIRS: usize = MAX_FILES;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0} is a symbolic link; a candidate is plain files")]
    Symlink(String),
    #[error("{path} is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{0} is not a .rs file; a candidate supplies Rust sources only")]
    NotRust(String),
    #[error("{0} is not UTF-8 text")]
    NotUtf8(String),
    #[error("candidate is larger than {MAX_FILES} files / {MAX_DIRS} directories / {MAX_TOTAL_BYTES} bytes")]
    TooLarge,
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &str) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io { path: path.to_string(), source }
}

fn kind(ty: &FileType) -> &'static str {
    if ty.is_symlink() {
        "a symbolic link"
    } else if ty.is_dir() {
        "a directory"
    } else if ty.is_fifo() {
        "a FIFO"
    } else if ty.is_socket() {
        "a socket"
    } else if ty.is_char_device() {
        "a character device"
    } else if ty.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// The text of the regular file at `path` (shown as `shown` in errors), at
/// most `limit` bytes, else [`ReadError::TooLarge`].
pub fn read_regular_file(path: &Path, shown: &str, limit: usize) -> Result<String, ReadError> {
    let ty = std::fs::symlink_metadata(path).map_err(io(shown))?.file_type();
    if ty.is_symlink() {
        return Err(ReadError::Symlink(shown.into()));
    }
    if !ty.is_file() {
        return Err(ReadError::NotRegular { path: shown.into(), kind: kind(&ty) });
    }
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) { ReadError::Symlink(shown.into()) } else { ReadError::Io { path: shown.into(), source: e } }
    })?;
    let ty = file.metadata().map_err(io(shown))?.file_type();
    if !ty.is_file() {
        return Err(ReadError::NotRegular { path: shown.into(), kind: kind(&ty) });
    }
    read_capped(file, shown, limit)
}

fn read_capped(file: File, shown: &str, limit: usize) -> Result<String, ReadError> {
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(io(shown))?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8(shown.into()))
}

/// Every file under `root` (regular `.rs` files only; anything else is
/// refused). `root` itself must be a real directory unless `follow_root`
/// (the operator's own source crate may be reached through a link; a
/// candidate's may not).
pub fn read_tree(root: &Path, follow_root: bool) -> Result<CandidateSource, ReadError> {
    let root_shown = root.display().to_string();
    let root_ty = if follow_root { std::fs::metadata(root) } else { std::fs::symlink_metadata(root) }.map_err(io(&root_shown))?.file_type();
    if root_ty.is_symlink() {
        return Err(ReadError::Symlink(root_shown));
    }
    if !root_ty.is_dir() {
        return Err(ReadError::NotRegular { path: root_shown, kind: kind(&root_ty) });
    }
    let mut files = BTreeMap::new();
    let (mut total, mut dirs) = (0usize, 0usize);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        dirs += 1;
        if dirs > MAX_DIRS {
            return Err(ReadError::TooLarge);
        }
        let dir_rel = dir.strip_prefix(root).unwrap_or(&dir).to_string_lossy().to_string();
        let dir_shown = if dir_rel.is_empty() { "src/".to_string() } else { format!("src/{dir_rel}/") };
        for entry in std::fs::read_dir(&dir).map_err(io(&dir_shown))? {
            let entry = entry.map_err(io(&dir_shown))?;
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let shown = format!("src/{rel}");
            // The entry's own type: a link is a link, never its target.
            let ty = entry.file_type().map_err(io(&shown))?;
            if ty.is_symlink() {
                return Err(ReadError::Symlink(shown));
            } else if ty.is_dir() {
                stack.push(path);
            } else if !ty.is_file() {
                return Err(ReadError::NotRegular { path: shown, kind: kind(&ty) });
            } else if !rel.ends_with(".rs") {
                return Err(ReadError::NotRust(shown));
            } else {
                if files.len() >= MAX_FILES {
                    return Err(ReadError::TooLarge);
                }
                let text = read_regular_file(&path, &shown, MAX_TOTAL_BYTES - total)?;
                total += text.len();
                files.insert(rel, text);
            }
        }
    }
    Ok(CandidateSource { files })
}
