//! File helpers: in-place updates through kept-open descriptors, relative symlinks, removal.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::SimError;

/// Creates `dir` and its parents (mode 0755).
pub(crate) fn mkdirs(dir: &Path) -> Result<(), SimError> {
    fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))
}

/// Creates (or replaces) a small file with `content` and `mode`, creating its directory.
pub(crate) fn write_file(path: &Path, content: &str, mode: u32) -> Result<File, SimError> {
    if let Some(parent) = path.parent() {
        mkdirs(parent)?;
    }
    create_file(path, content, mode)
}

/// Creates (or replaces) a small file with `content` and `mode`; its directory must exist.
pub(crate) fn create_file(path: &Path, content: &str, mode: u32) -> Result<File, SimError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| SimError::io(path, e))?;
    file.write_all_at(content.as_bytes(), 0).map_err(|e| SimError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| SimError::io(path, e))?;
    Ok(file)
}

/// Opens an existing file for reading and writing, even when its mode says read-only (the
/// simulator owns the tree: it adds the owner's write bit for the open and restores the mode).
pub(crate) fn open_rw(path: &Path) -> Result<File, SimError> {
    let open = || OpenOptions::new().read(true).write(true).open(path);
    match open() {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let mode = fs::metadata(path).map_err(|e| SimError::io(path, e))?.permissions().mode();
            fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o200))
                .map_err(|e| SimError::io(path, e))?;
            let f = open();
            let restored = fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777));
            let f = f.map_err(|e| SimError::io(path, e))?;
            restored.map_err(|e| SimError::io(path, e))?;
            Ok(f)
        }
        Err(e) => Err(SimError::io(path, e)),
    }
}

/// Reads a small text file; `None` when it cannot be read.
pub(crate) fn read_small(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// The relative path from directory `from` to `to` (both absolute, lexical).
pub(crate) fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component<'_>> = from.components().collect();
    let b: Vec<Component<'_>> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Creates the symlink `link` pointing at `target` with a relative path, so the tree can move.
pub(crate) fn symlink_rel(link: &Path, target: &Path) -> Result<(), SimError> {
    let parent = link.parent().unwrap_or(Path::new("/"));
    mkdirs(parent)?;
    let rel = relative(parent, target);
    std::os::unix::fs::symlink(&rel, link).map_err(|e| SimError::io(link, e))
}

/// Truncates every regular file under `path` (or `path` itself) to zero bytes, without following
/// symlinks: readers holding them open then read nothing, like a vanished sysfs device.
pub(crate) fn truncate_tree(path: &Path) -> Result<(), SimError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SimError::io(path, e)),
    };
    if meta.is_dir() {
        let entries = fs::read_dir(path).map_err(|e| SimError::io(path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SimError::io(path, e))?;
            truncate_tree(&entry.path())?;
        }
    } else if meta.is_file() && meta.len() > 0 {
        open_rw(path)?.set_len(0).map_err(|e| SimError::io(path, e))?;
    }
    Ok(())
}

/// Removes a directory tree, a file or a symlink (never following it); absent is fine.
pub(crate) fn remove_any(path: &Path) -> Result<(), SimError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SimError::io(path, e)),
    };
    let r = if meta.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    r.map_err(|e| SimError::io(path, e))
}

/// `content` (a line ending in a newline) padded with spaces before its newline to `width` bytes,
/// when it is shorter.
pub(crate) fn padded(content: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if content.len() >= width {
        return std::borrow::Cow::Borrowed(content);
    }
    let line = content.strip_suffix('\n').unwrap_or(content);
    let mut out = String::with_capacity(width);
    out.push_str(line);
    out.extend(std::iter::repeat_n(' ', width - line.len() - 1));
    out.push('\n');
    std::borrow::Cow::Owned(out)
}

/// A file the simulator updates in place through a descriptor kept open across updates, only when
/// the content changes: one `pwrite` at offset 0 (then `set_len` when the new content is shorter).
///
/// A **counter** file ([`OutFile::counter`]) is kept at a fixed width: its value is padded with
/// spaces before the newline to the widest value it is expected to show, so every update is one
/// `pwrite` of the same size and the file's size never changes. A reader's `pread` (tmpfs takes
/// the page lock around a write's copy) then sees the old value or the new one: never an empty
/// file, never the stale tail of a longer value, never the first digits of a longer one read
/// with the old size.
#[derive(Debug)]
pub(crate) struct OutFile {
    path: PathBuf,
    file: Option<File>,
    last: Option<String>,
    gone: bool,
    /// A counter's width (bytes, newline included); 0 for a file written at its content's length.
    width: usize,
}

impl OutFile {
    /// Creates the file with `content` and `mode` (its directory must exist), keeping it open.
    pub fn create(path: PathBuf, content: &str, mode: u32) -> Result<OutFile, SimError> {
        let file = create_file(&path, content, mode)?;
        Ok(OutFile {
            path,
            file: Some(file),
            last: Some(content.to_string()),
            gone: false,
            width: 0,
        })
    }

    /// Creates a counter file of `width` bytes showing `content` (see [`OutFile`]).
    pub fn counter(
        path: PathBuf,
        content: &str,
        mode: u32,
        width: usize,
    ) -> Result<OutFile, SimError> {
        let width = width.max(content.len());
        let file = create_file(&path, &padded(content, width), mode)?;
        Ok(OutFile { path, file: Some(file), last: Some(content.to_string()), gone: false, width })
    }

    /// Attaches to an existing file (opened on first write); a missing file is marked gone.
    pub fn attach(path: PathBuf) -> OutFile {
        let last = read_small(&path);
        let gone = fs::symlink_metadata(&path).is_err();
        OutFile { path, file: None, last, gone, width: 0 }
    }

    /// Attaches to an existing counter file of at least `width` bytes (its size, if wider).
    pub fn attach_counter(path: PathBuf, width: usize) -> OutFile {
        let size = fs::metadata(&path).map_or(0, |m| m.len() as usize);
        let mut f = OutFile::attach(path);
        // What it shows, as the simulator would have set it (padding is not content).
        f.last = f.last.map(|s| format!("{}\n", s.lines().next().unwrap_or("").trim_end()));
        f.width = width.max(size);
        f
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// Stops every further write (the device was removed), closing the descriptor.
    pub fn mark_gone(&mut self) {
        self.gone = true;
        self.file = None;
    }

    /// The file's current content (read from disk: others may have written it); bytes that are
    /// not UTF-8 are replaced, so garbage still reads as something to judge and normalise.
    pub fn read(&self) -> Option<String> {
        if self.gone {
            return None;
        }
        match &self.file {
            Some(f) => {
                let mut buf = [0u8; 256];
                let n = f.read_at(&mut buf, 0).ok()?;
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            None => fs::read(&self.path).ok().map(|b| String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// Rewrites the file with `want` only if it still holds `seen` (what the caller judged),
    /// re-read immediately before the write; returns whether it wrote. A write by someone else
    /// since `seen` was read is never overwritten by a value decided before it: it stays, and is
    /// judged at the next sync, as a kernel applies writes in the order they come.
    pub fn replace(&mut self, seen: &str, want: &str) -> Result<bool, SimError> {
        if self.read().as_deref() != Some(seen) {
            return Ok(false);
        }
        self.write(want)?;
        Ok(true)
    }

    /// Sets the content, writing only when it differs from what the simulator last wrote; a
    /// counter file is written at its width.
    pub fn set(&mut self, content: &str) -> Result<(), SimError> {
        if self.gone || self.last.as_deref() == Some(content) {
            return Ok(());
        }
        if self.width == 0 {
            return self.write(content);
        }
        let text = padded(content, self.width);
        self.width = self.width.max(text.len());
        self.put(&text, false)?;
        self.remember(content);
        Ok(())
    }

    fn remember(&mut self, content: &str) {
        match &mut self.last {
            Some(s) => {
                s.clear();
                s.push_str(content);
            }
            None => self.last = Some(content.to_string()),
        }
    }

    /// Writes `text` at offset 0 in one `pwrite`; `trim`: then cuts the file to its length (a
    /// shorter value leaves a stale tail after its newline until then).
    fn put(&mut self, text: &str, trim: bool) -> Result<(), SimError> {
        if self.file.is_none() {
            self.file = Some(open_rw(&self.path)?);
        }
        if let Some(f) = &self.file {
            f.write_all_at(text.as_bytes(), 0).map_err(|e| SimError::io(&self.path, e))?;
            if trim {
                f.set_len(text.len() as u64).map_err(|e| SimError::io(&self.path, e))?;
            }
        }
        Ok(())
    }

    /// What the file holds once `content` is set: padded to a counter's width.
    pub fn shown<'a>(&self, content: &'a str) -> std::borrow::Cow<'a, str> {
        padded(content, self.width)
    }

    /// Whether the simulator's last write put `content` there.
    pub fn holds(&self, content: &str) -> bool {
        self.last.as_deref() == Some(content)
    }

    /// Rewrites the file non-atomically, as a careless writer does: truncates it, writes
    /// `content[..split]`, then the rest, calling `between(path, shown)` after each of the first
    /// two steps with what the file then holds (a `split` of 0 or past the end writes the whole
    /// line after the truncation, with one call).
    pub fn write_torn(
        &mut self,
        content: &str,
        split: usize,
        mut between: impl FnMut(&Path, &str),
    ) -> Result<(), SimError> {
        if self.gone {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(open_rw(&self.path)?);
        }
        let split = if content.is_char_boundary(split) { split } else { 0 };
        if let Some(f) = &self.file {
            let io = |e| SimError::io(&self.path, e);
            f.set_len(0).map_err(io)?;
            between(&self.path, "");
            if 0 < split && split < content.len() {
                f.write_all_at(&content.as_bytes()[..split], 0).map_err(io)?;
                between(&self.path, &content[..split]);
                f.write_all_at(&content.as_bytes()[split..], split as u64).map_err(io)?;
            } else {
                f.write_all_at(content.as_bytes(), 0).map_err(io)?;
            }
        }
        self.remember(content);
        Ok(())
    }

    /// Writes the content unconditionally (the file may have been changed by someone else), at
    /// its own length: one `pwrite`, then `set_len` (a no-op unless the file held something
    /// longer, whose tail after the new value's newline is cut).
    pub fn write(&mut self, content: &str) -> Result<(), SimError> {
        if self.gone {
            return Ok(());
        }
        self.put(content, true)?;
        self.remember(content);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(
                Path::new("/r/sys/class/powercap"),
                Path::new("/r/sys/devices/virtual/powercap/intel-rapl")
            ),
            PathBuf::from("../../devices/virtual/powercap/intel-rapl")
        );
        assert_eq!(
            relative(
                Path::new("/r/sys/devices/system/cpu/cpu3"),
                Path::new("/r/sys/devices/system/cpu/cpufreq/policy3")
            ),
            PathBuf::from("../cpufreq/policy3")
        );
    }

    #[test]
    fn in_place_updates_are_seen_through_a_kept_open_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("energy_uj");
        let mut out = OutFile::create(p.clone(), "123456\n", 0o444).unwrap();
        let reader = File::open(&p).unwrap();
        out.set("99\n").unwrap();
        let mut buf = [0u8; 32];
        let n = reader.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"99\n");
        // Re-attaching to a read-only file works (owner write bit added for the open only).
        let mut again = OutFile::attach(p.clone());
        again.write("7\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "7\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o444);
    }
}
