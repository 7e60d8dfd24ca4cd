//! Reading a file a user names (a token file, a configuration, a pools TOML, a journal, a CA
//! bundle): the one way every powerstack crate reads one.
//!
//! The file is opened with `O_NONBLOCK`, so that a FIFO or a device given by mistake cannot hang
//! the process (opening a FIFO for reading otherwise waits for a writer, for ever); it must then
//! be a regular file, and at most `max_bytes` of it are read. Every error is one line that names
//! what the file is for, its path, and what failed.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// The bound for a text file a person writes (configuration, token, TOML, PEM): 1 MiB.
pub const TEXT_MAX_BYTES: u64 = 1 << 20;

/// A file that could not be read: one line naming it and what failed, as in `token file
/// /etc/powerstack/token is a FIFO, not a regular file: give the path of a regular file`.
#[derive(Debug, thiserror::Error)]
#[error("{what} {} {problem}", path.display())]
pub struct FileError {
    what: String,
    path: PathBuf,
    problem: String,
    not_found: bool,
}

impl FileError {
    fn new(what: &str, path: &Path, problem: String) -> FileError {
        FileError { what: what.to_string(), path: path.to_path_buf(), problem, not_found: false }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        self.not_found
    }

    /// What failed, without naming the file (`cannot be opened: ...`, `is a FIFO, ...`), for a
    /// caller whose message names it already.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

/// What kind of thing a path that is not a regular file is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "something else"
    }
}

fn not_regular(what: &str, path: &Path, meta: &std::fs::Metadata) -> FileError {
    let kind = kind_of(meta);
    FileError::new(
        what,
        path,
        format!("is {kind}, not a regular file: give the path of a regular file"),
    )
}

/// Opens `path` for reading without blocking and checks that it is a regular file (links are
/// followed); `what` names it in errors (`token file`, `pools file`).
pub fn open(path: &Path, what: &str) -> Result<File, FileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            // A socket cannot be opened (ENXIO): say what it is rather than the errno.
            if let Ok(meta) = std::fs::metadata(path)
                && !meta.is_file()
                && !meta.is_dir()
            {
                return not_regular(what, path, &meta);
            }
            FileError {
                not_found: e.kind() == std::io::ErrorKind::NotFound,
                ..FileError::new(what, path, format!("cannot be opened: {e}"))
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| FileError::new(what, path, format!("cannot be examined (fstat): {e}")))?;
    if !meta.is_file() {
        return Err(not_regular(what, path, &meta));
    }
    Ok(file)
}

/// The bytes of the regular file `path`, at most `max_bytes` (a larger file is refused).
pub fn read(path: &Path, what: &str, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let file = open(path, what)?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::new(what, path, format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        let most = size(max_bytes);
        return Err(FileError::new(
            what,
            path,
            format!("is larger than {most}: is it the right file?"),
        ));
    }
    Ok(bytes)
}

/// The text (UTF-8) of the regular file `path`, at most `max_bytes`.
pub fn read_to_string(path: &Path, what: &str, max_bytes: u64) -> Result<String, FileError> {
    let bytes = read(path, what, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        FileError::new(what, path, format!("is not UTF-8 text (invalid byte at offset {at})"))
    })
}

/// As [`read_to_string`], but `None` when `path` does not exist.
pub fn read_if_exists(
    path: &Path,
    what: &str,
    max_bytes: u64,
) -> Result<Option<String>, FileError> {
    match read_to_string(path, what, max_bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A size in words: `1 MiB`, `64 KiB`, `100 bytes`.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests;
