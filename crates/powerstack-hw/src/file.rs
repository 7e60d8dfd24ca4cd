//! Kept-open attribute files read with `pread`, and one-shot helpers for discovery.
//!
//! Sysfs attributes re-run their `show()` on every `pread` at offset 0, so a file opened once at
//! discovery and re-read is correct and about eight times cheaper than open + read + close.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::HwError;

/// The largest attribute we read (sysfs attributes are at most one page; ours are a line).
const ATTR_MAX: usize = 256;

/// An attribute file kept open for repeated reads.
#[derive(Debug)]
pub struct AttrFile {
    file: File,
    path: PathBuf,
    hint: &'static str,
    /// The file was removed and nothing took its place: reads fail as for a vanished device.
    gone: bool,
}

/// What [`AttrFile::revalidate`] found at the file's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revalidated {
    /// The descriptor still reads the file at the path.
    Same,
    /// Another file took the path's place (a device registered again, a simulated root written
    /// again): it is open now, and its values start a new counter.
    Reopened,
    /// Nothing is at the path any more: reads fail as for a vanished device until something is.
    Gone,
}

impl AttrFile {
    /// Opens `path` for reading. `hint` names the kind of file in permission advice.
    ///
    /// The file is opened with `O_NOATIME` where the kernel allows it (the file's owner, or
    /// root), so a read never updates the access time. Reading sysfs does not touch it anyway, but
    /// a root on a regular file system (a simulated node) would otherwise dirty an inode on every
    /// read of a sampler running at up to 1000 Hz (about 2 µs per sample on tmpfs, see
    /// BENCHMARKS.md).
    pub fn open(path: impl Into<PathBuf>, hint: &'static str) -> Result<AttrFile, HwError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.into();
        let no_atime =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(&path);
        let file = match no_atime {
            Ok(f) => f,
            Err(_) => File::open(&path).map_err(|e| HwError::from_io(&path, e, hint))?,
        };
        Ok(AttrFile { file, path, hint, gone: false })
    }

    /// Checks that the kept-open descriptor still reads the file at the path, and reopens the path
    /// when another file took its place. A descriptor keeps reading the file it was opened on
    /// after that file is removed or replaced (a plain file's last content forever, where a
    /// removed sysfs attribute would fail): a reader that only ever `pread`s it cannot tell. Two
    /// `stat`s, so callers do it only when a value has stopped changing, never at every read.
    pub fn revalidate(&mut self) -> Revalidated {
        use std::os::unix::fs::MetadataExt;
        let open = self.file.metadata().ok().filter(|m| m.nlink() > 0).map(|m| (m.dev(), m.ino()));
        let at_path = std::fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        match (open, at_path) {
            (Some(a), Some(b)) if a == b => {
                self.gone = false;
                Revalidated::Same
            }
            (_, Some(_)) => match AttrFile::open(&self.path, self.hint) {
                Ok(fresh) => {
                    *self = fresh;
                    Revalidated::Reopened
                }
                Err(_) => {
                    self.gone = true;
                    Revalidated::Gone
                }
            },
            (_, None) => {
                self.gone = true;
                Revalidated::Gone
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file's one line into `buf` and returns it, trimmed. An empty file is treated as
    /// a vanished device (a removed sysfs device reads as nothing, or fails with ENODEV); a file
    /// holding more than one line is malformed (a sysfs attribute is one line: the kernel never
    /// writes a second, so a second is no value to pick from).
    pub fn read_line<'a>(&self, buf: &'a mut [u8; ATTR_MAX]) -> Result<&'a str, HwError> {
        if self.gone {
            return Err(HwError::Vanished { path: self.path.clone() });
        }
        let n =
            self.file.read_at(buf, 0).map_err(|e| HwError::from_io(&self.path, e, self.hint))?;
        if n == 0 {
            return Err(HwError::Vanished { path: self.path.clone() });
        }
        let bytes = &buf[..n];
        let (line, rest) = match bytes.iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (bytes, &[][..]),
        };
        if !rest.is_empty() {
            return Err(self.more_than_one_line(bytes));
        }
        std::str::from_utf8(line)
            .map(str::trim)
            .map_err(|_| HwError::malformed(&self.path, "not UTF-8 text"))
    }

    #[cold]
    fn more_than_one_line(&self, bytes: &[u8]) -> HwError {
        HwError::malformed(
            &self.path,
            format!(
                "holds more than one line ({:?}); the kernel writes one value and a newline",
                String::from_utf8_lossy(bytes)
            ),
        )
    }

    /// Reads an unsigned integer attribute: one line holding one unsigned decimal (what sysfs
    /// writes), between optional blanks; anything else (a second line, a sign, letters) is
    /// malformed.
    ///
    /// The sampler reads several of these per tick, up to 1000 times a second: a line of ASCII
    /// digits is parsed straight from the bytes, in one pass over a small buffer; anything else
    /// takes the general path (UTF-8, trimming, `str::parse`) with its exact errors.
    pub fn read_u64(&self) -> Result<u64, HwError> {
        if self.gone {
            return Err(HwError::Vanished { path: self.path.clone() });
        }
        let mut small = [0u8; 64];
        let n = self
            .file
            .read_at(&mut small, 0)
            .map_err(|e| HwError::from_io(&self.path, e, self.hint))?;
        // A full buffer may hold only part of the line: the general path reads it whole.
        if n < small.len()
            && let Some(v) = small.get(..n).and_then(decimal_line)
        {
            return Ok(v);
        }
        let mut buf = [0u8; ATTR_MAX];
        let line = self.read_line(&mut buf)?;
        line.parse::<u64>().map_err(|_| {
            HwError::malformed(&self.path, format!("expected an unsigned integer, found {line:?}"))
        })
    }
}

/// [`AttrFile::revalidate`]s `files` (one per domain, in order); returns the positions of those
/// reopened: their readings now come from another file.
pub fn reopen_replaced<'a>(files: impl Iterator<Item = &'a mut AttrFile>) -> Vec<usize> {
    files
        .enumerate()
        .filter_map(|(i, f)| (f.revalidate() == Revalidated::Reopened).then_some(i))
        .collect()
}

/// The number in `bytes` when they are one line of ASCII digits, optionally between spaces, tabs
/// or `\r`, ended by `\n` or the end; `None` for anything else (empty, a sign, other characters,
/// more than a u64 holds, anything after the newline).
fn decimal_line(bytes: &[u8]) -> Option<u64> {
    let blank = |b: u8| b == b' ' || b == b'\t' || b == b'\r';
    let mut i = 0;
    while i < bytes.len() && blank(bytes[i]) {
        i += 1;
    }
    let first = i;
    let mut v: u64 = 0;
    while i < bytes.len() {
        let d = bytes[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    // Up to 19 digits always fit a u64 (the sampler's case, without a check per digit); a longer
    // number is read again, checked.
    match i - first {
        0 => return None,
        20.. => {
            v = bytes[first..i]
                .iter()
                .try_fold(0u64, |v, &b| v.checked_mul(10)?.checked_add(u64::from(b - b'0')))?;
        }
        _ => {}
    }
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => return (i + 1 == bytes.len()).then_some(v),
            b if blank(b) => i += 1,
            _ => return None,
        }
    }
    Some(v)
}

/// Reads a whole small text file once (discovery), trimmed.
pub fn read_trimmed(path: &Path, hint: &'static str) -> Result<String, HwError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| HwError::from_io(path, e, hint))
}

/// Reads an unsigned integer from a small text file once (discovery, limits): the first line, as
/// the kept-open reads take it (an attribute is one line; a writer that shortens a file in place
/// leaves a stale tail after it until it trims the file).
pub fn read_u64_once(path: &Path, hint: &'static str) -> Result<u64, HwError> {
    let text = std::fs::read_to_string(path).map_err(|e| HwError::from_io(path, e, hint))?;
    let s = text.lines().next().unwrap_or("").trim();
    s.parse::<u64>()
        .map_err(|_| HwError::malformed(path, format!("expected an unsigned integer, found {s:?}")))
}

/// Reads an optional unsigned integer attribute: `Ok(None)` when the file does not exist.
pub fn read_u64_opt(path: &Path, hint: &'static str) -> Result<Option<u64>, HwError> {
    match read_u64_once(path, hint) {
        Ok(v) => Ok(Some(v)),
        Err(HwError::Vanished { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the attribute at `path` is writable at all, from its mode bits. Sysfs refuses writes to
/// an attribute without write bits even for root, so the mode (not an open attempt, which root's
/// CAP_DAC_OVERRIDE would let through on a plain file) is what tells a read-only constraint.
pub fn is_writable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o222 != 0).unwrap_or(false)
}

/// Writes an attribute the way sysfs expects: one write of the whole value at offset 0, without
/// truncating first (a reader never sees an empty file), then the length is trimmed to the value
/// (meaningful for plain files, ignored by sysfs). A refusal by the driver (`EINVAL`, `ERANGE`,
/// `EOPNOTSUPP`) is [`HwError::Refused`]; permission problems say what to do.
pub fn write_attr(path: &Path, value: &str, hint: &'static str) -> Result<(), HwError> {
    let text = format!("{value}\n");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| HwError::from_io(path, e, hint))?;
    file.write_all_at(text.as_bytes(), 0).map_err(|e| match e.raw_os_error() {
        Some(libc::EINVAL | libc::ERANGE | libc::EOPNOTSUPP | libc::ENODATA) => HwError::Refused {
            what: path.display().to_string(),
            value: value.to_string(),
            detail: e.to_string(),
        },
        _ => HwError::from_io(path, e, hint),
    })?;
    let _ = file.set_len(text.len() as u64);
    crate::fault::step();
    Ok(())
}

/// Lists the entries of a directory, sorted by name; a missing directory is an empty list.
pub fn list_dir(path: &Path) -> Result<Vec<(String, PathBuf)>, HwError> {
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HwError::from_io(path, e, "directory")),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| HwError::from_io(path, e, "directory"))?;
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_line_is_malformed_not_a_value_to_pick_from() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("energy_uj");
        std::fs::write(&p, "123\n").unwrap();
        let f = AttrFile::open(&p, "energy_uj").unwrap();
        assert_eq!(f.read_u64().unwrap(), 123);
        // The kernel writes one value and a newline; a file with two lines is no reading.
        for text in ["99\n3\n", "99\n3", "99\n\n", &format!("{}\n1\n", "9".repeat(70))] {
            std::fs::write(&p, text).unwrap();
            let e = f.read_u64().unwrap_err();
            assert!(
                matches!(e, HwError::Malformed { .. }) && e.to_string().contains("energy_uj"),
                "{text:?}: {e}"
            );
        }
        let mut buf = [0u8; ATTR_MAX];
        std::fs::write(&p, "724 W\n1 J\n").unwrap();
        assert!(matches!(f.read_line(&mut buf), Err(HwError::Malformed { .. })));
        // Padding before the newline (a simulated counter's fixed width) is one line.
        std::fs::write(&p, "42      \n").unwrap();
        assert_eq!(f.read_u64().unwrap(), 42);
    }

    #[test]
    fn a_replaced_file_is_reopened_and_a_removed_one_reads_as_vanished() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("energy_uj");
        std::fs::write(&p, "123\n").unwrap();
        let mut f = AttrFile::open(&p, "energy_uj").unwrap();
        assert_eq!(f.revalidate(), Revalidated::Same);
        // Removed and written anew: the kept descriptor still reads the old file.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "7\n").unwrap();
        assert_eq!(f.read_u64().unwrap(), 123);
        assert_eq!(f.revalidate(), Revalidated::Reopened);
        assert_eq!(f.read_u64().unwrap(), 7);
        // Removed for good: vanished, until a file is back.
        std::fs::remove_file(&p).unwrap();
        assert_eq!(f.revalidate(), Revalidated::Gone);
        assert!(matches!(f.read_u64(), Err(HwError::Vanished { .. })));
        std::fs::write(&p, "9\n").unwrap();
        assert_eq!(f.revalidate(), Revalidated::Reopened);
        assert_eq!(f.read_u64().unwrap(), 9);
    }

    #[test]
    fn a_one_shot_read_takes_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("constraint_0_power_limit_uw");
        std::fs::write(&p, "90000000\n000\n").unwrap();
        assert_eq!(read_u64_once(&p, "limit").unwrap(), 90_000_000);
    }

    #[test]
    fn an_emptied_file_reads_as_a_vanished_device() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("power1_input");
        std::fs::write(&p, "1\n").unwrap();
        let f = AttrFile::open(&p, "power1_input").unwrap();
        std::fs::write(&p, "").unwrap();
        assert!(matches!(f.read_u64(), Err(HwError::Vanished { .. })));
    }

    #[test]
    fn the_digit_fast_path_agrees_with_str_parse() {
        for text in
            ["0\n", "123456789012\n", " 42 \n", "\t7\r\n", "18446744073709551615\n", "5", "8 \n"]
                .into_iter()
                .chain(["9999999999999999999\n", "00000000000000000001\n", "7      \n"])
        {
            let line = text.lines().next().unwrap().trim();
            assert_eq!(decimal_line(text.as_bytes()), line.parse::<u64>().ok(), "{text:?}");
        }
        // Not digits (or not only): the general path decides, with its errors.
        for text in
            ["", "\n", "+5\n", "-1\n", "12a\n", "1 2\n", "18446744073709551616\n", "\u{a0}5\n"]
                .into_iter()
                .chain(["99999999999999999999\n", "   \n", "99\n3\n", "7\n\n"])
        {
            assert_eq!(decimal_line(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("energy_uj");
        std::fs::write(&p, "12a\n").unwrap();
        let f = AttrFile::open(&p, "energy_uj").unwrap();
        let e = f.read_u64().unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
    }
}
