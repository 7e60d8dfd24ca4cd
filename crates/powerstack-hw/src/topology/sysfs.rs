//! Reading sysfs attributes for discovery, keeping what could not be read as one line each.

use std::path::{Path, PathBuf};

use powerstack_model::cpulist::parse_cpulist;

use crate::error::HwError;
use crate::file::{list_dir, read_trimmed};
use crate::root::Root;

/// Reads attributes under a root for discovery: what cannot be read becomes a warning line
/// (`/sys/...: problem`, the path as the system path it stands for), never an error.
pub struct Sysfs<'a> {
    root: &'a Root,
    warnings: Vec<String>,
}

impl<'a> Sysfs<'a> {
    /// A reader under `root`, with no warnings yet.
    pub fn new(root: &'a Root) -> Self {
        Sysfs { root, warnings: Vec::new() }
    }

    /// The root read under.
    pub fn root(&self) -> &'a Root {
        self.root
    }

    /// The warnings so far, one line each, in the order they came.
    pub fn into_warnings(self) -> Vec<String> {
        self.warnings
    }

    /// `path` as the system path it stands for (`/sys/...`).
    pub fn show(&self, path: &Path) -> String {
        match path.strip_prefix(self.root.base()) {
            Ok(rel) if !self.root.is_system() => format!("/{}", rel.display()),
            _ => path.display().to_string(),
        }
    }

    /// A warning about `path`: `/sys/...: problem`.
    pub fn warn(&mut self, path: &Path, problem: impl std::fmt::Display) {
        let line = format!("{}: {problem}", self.show(path));
        self.warnings.push(line);
    }

    /// A warning line as it is, about no one path.
    pub fn note(&mut self, line: String) {
        self.warnings.push(line);
    }

    /// A warning about `path` that could not be read.
    pub fn warn_err(&mut self, path: &Path, err: &HwError) {
        let problem = match err {
            HwError::Vanished { .. } => "missing".to_string(),
            HwError::PermissionDenied { .. } => {
                "permission denied: run as root, or grant read access to it".to_string()
            }
            HwError::Malformed { detail, .. } => detail.clone(),
            HwError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        self.warn(path, problem);
    }

    /// An attribute that may be absent: `None` silently when it is; a warning when it exists but
    /// cannot be read.
    pub fn optional(&mut self, path: &Path) -> Option<String> {
        match read_trimmed(path, "sysfs attribute") {
            Ok(s) => Some(s),
            Err(HwError::Vanished { .. }) => None,
            Err(e) => {
                self.warn_err(path, &e);
                None
            }
        }
    }

    /// An attribute that should be there: a warning when it is absent or unreadable.
    pub fn required(&mut self, path: &Path) -> Option<String> {
        match read_trimmed(path, "sysfs attribute") {
            Ok(s) => Some(s),
            Err(e) => {
                self.warn_err(path, &e);
                None
            }
        }
    }

    fn number<T: std::str::FromStr>(&mut self, path: &Path, text: &str) -> Option<T> {
        match text.parse::<T>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.warn(path, format!("expected an unsigned integer, found {text:?}"));
                None
            }
        }
    }

    /// A number in an attribute that may be absent (see [`Sysfs::optional`]); a warning when it
    /// holds something else.
    pub fn opt_num<T: std::str::FromStr>(&mut self, path: &Path) -> Option<T> {
        let text = self.optional(path)?;
        self.number(path, &text)
    }

    /// A number in an attribute that should be there (see [`Sysfs::required`]).
    pub fn req_num<T: std::str::FromStr>(&mut self, path: &Path) -> Option<T> {
        let text = self.required(path)?;
        self.number(path, &text)
    }

    /// `text`, read from `path`, as a kernel CPU list; a warning when it is not one.
    pub fn cpulist(&mut self, path: &Path, text: &str) -> Option<Vec<u32>> {
        match parse_cpulist(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.warn(path, e);
                None
            }
        }
    }

    /// A CPU list in an attribute that should be there.
    pub fn req_cpulist(&mut self, path: &Path) -> Option<Vec<u32>> {
        let text = self.required(path)?;
        self.cpulist(path, &text)
    }

    /// The entries of a directory, (name, path); empty, with a warning, when it cannot be listed.
    pub fn list(&mut self, dir: &Path) -> Vec<(String, PathBuf)> {
        match list_dir(dir) {
            Ok(v) => v,
            Err(e) => {
                self.warn_err(dir, &e);
                Vec::new()
            }
        }
    }
}

/// The number after `prefix` in a sysfs name (`cpu12`, `policy3`, `state2`, `uncore07`).
pub fn numbered(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
