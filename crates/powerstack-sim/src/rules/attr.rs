//! Attribute files and their values: reading what a file shows, putting a value back in place,
//! and [`Attr`], one writable attribute with the last value the kernel accepted.

use std::cell::RefCell;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::SimError;
use crate::fsutil::open_rw;

/// A value for a message: as it is when it is one printable word, else quoted.
fn show(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic()) {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// `kstrtobool`: `1`/`y`/`Y`/`on` and `0`/`n`/`N`/`off` (only the first characters count).
pub(super) fn kstrtobool(v: &str) -> Option<bool> {
    let b = v.as_bytes();
    match (b.first()?, b.get(1)) {
        (b'1' | b'y' | b'Y', _) => Some(true),
        (b'0' | b'n' | b'N', _) => Some(false),
        (b'o' | b'O', Some(b'n' | b'N')) => Some(true),
        (b'o' | b'O', Some(b'f' | b'F')) => Some(false),
        _ => None,
    }
}

pub(super) fn parse_u64(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// The bytes of a small file (one `open`, `read`s into a stack buffer, `close`: no `stat`).
fn slurp(path: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The first line of a file, trimmed: what an attribute shows (a writer that shortens a file in
/// place leaves the stale tail of the longer value after the newline for a moment).
pub(super) fn read_trim(path: &Path) -> Option<String> {
    let bytes = slurp(path)?;
    Some(first_line(&bytes))
}

fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(bytes);
    String::from_utf8_lossy(line).trim().to_string()
}

pub(super) fn read_num(path: &Path) -> Option<u64> {
    read_trim(path)?.parse().ok()
}

/// Writes `v` and a newline in place (`pwrite` at 0, then `set_len`); a file gone is left alone.
pub(super) fn put(path: &Path, v: &str) -> Result<(), SimError> {
    let content = format!("{v}\n");
    let f = match open_rw(path) {
        Ok(f) => f,
        Err(SimError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    f.write_all_at(content.as_bytes(), 0).map_err(|e| SimError::io(path, e))?;
    f.set_len(content.len() as u64).map_err(|e| SimError::io(path, e))
}

/// Sorted `(N, path)` of the entries of `dir` named `{prefix}N`.
pub(super) fn numbered(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// One writable attribute and its last accepted value.
#[derive(Debug)]
pub(super) struct Attr {
    pub(super) path: PathBuf,
    /// The last accepted value, as the kernel shows it (without the newline).
    pub(super) last: String,
    /// What the simulator last found in the file or put there (trimmed): the only content it
    /// writes over, so that a write by someone else since is never lost (it is judged next call).
    seen: RefCell<String>,
}

impl Attr {
    pub(super) fn load(path: PathBuf) -> Option<Attr> {
        let last = read_trim(&path)?;
        Some(Attr { path, seen: RefCell::new(last.clone()), last })
    }

    pub(super) fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// What the file holds now, when it is not the last accepted value (an empty file is a write
    /// in progress: `None`).
    pub(super) fn written(&self) -> Option<String> {
        let bytes = slurp(&self.path)?;
        let v = first_line(&bytes);
        self.seen.replace(v.clone());
        if bytes.is_empty() {
            return None;
        }
        (v != self.last).then_some(v)
    }

    /// Writes `v` in place if the file, re-read just before, still holds what the simulator last
    /// found or put there; otherwise someone wrote it since, and that write stays for the next
    /// call to judge.
    fn put_over_seen(&self, v: &str) -> Result<(), SimError> {
        if read_trim(&self.path).as_deref() != Some(self.seen.borrow().as_str()) {
            return Ok(());
        }
        put(&self.path, v)?;
        self.seen.replace(v.to_string());
        Ok(())
    }

    /// Accepts the write just judged, which the kernel shows as `shown` (the file is rewritten
    /// when it shows something else: another form, or a value the kernel set meanwhile).
    pub(super) fn accept(&mut self, shown: String) -> Result<(), SimError> {
        if *self.seen.borrow() != shown {
            self.put_over_seen(&shown)?;
        }
        self.last = shown;
        Ok(())
    }

    /// A value the kernel sets itself.
    pub(super) fn force(&mut self, v: &str) -> Result<(), SimError> {
        if self.last != v || *self.seen.borrow() != v {
            self.put_over_seen(v)?;
        }
        self.last = v.to_string();
        Ok(())
    }

    /// Refuses `written`: the file is restored and the refusal described.
    pub(super) fn refuse(
        &self,
        out: &mut Vec<String>,
        who: &str,
        written: &str,
        why: &str,
    ) -> Result<(), SimError> {
        self.put_over_seen(&self.last)?;
        out.push(format!("{who} {} {} {why}: restored {}", self.name(), show(written), self.last));
        Ok(())
    }

    pub(super) fn num(&self) -> u64 {
        self.last.parse().unwrap_or(0)
    }
}

/// What becomes of a write: none, accepted (the value to show) or refused (why).
pub(super) type Verdict = Option<Result<u64, String>>;

/// Decides writes to a (min, max) pair, each already parsed and within range: both at once when
/// the new pair is ordered; otherwise the max first, then the min against the max then in force.
/// `floor` is what a max alone must not go below, `ceiling` what a min alone must not exceed.
pub(super) fn decide_pair(
    new: (Option<u64>, Option<u64>),
    floor: u64,
    ceiling: u64,
    names: (&str, &str),
) -> (Verdict, Verdict) {
    match new {
        (Some(a), Some(b)) if a <= b => (Some(Ok(a)), Some(Ok(b))),
        (nmin, nmax) => {
            let vmax = nmax.map(|b| {
                if b >= floor { Ok(b) } else { Err(format!("below {} {floor}", names.0)) }
            });
            let ceiling = match vmax {
                Some(Ok(b)) => b,
                _ => ceiling,
            };
            let vmin = nmin.map(|a| {
                if a <= ceiling { Ok(a) } else { Err(format!("above {} {ceiling}", names.1)) }
            });
            (vmin, vmax)
        }
    }
}
