//! The hardware root: every path the project reads or writes is resolved under it.

use std::path::{Path, PathBuf};

/// A directory standing for `/` (a real system, or a simulated tree built by `powerstack-sim`).
///
/// Architecture invariant: no code in this crate opens an absolute path directly; it asks the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    /// A root at `base` (`/` for the running system).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    /// The running system's root, `/`.
    pub fn system() -> Self {
        Root::new("/")
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Resolves an absolute system path (`/sys/class/powercap`) or a relative one under the root.
    pub fn path(&self, system_path: impl AsRef<Path>) -> PathBuf {
        let p = system_path.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        self.base.join(rel)
    }

    /// Whether this is the running system's root.
    pub fn is_system(&self) -> bool {
        self.base == Path::new("/")
    }
}

impl Default for Root {
    fn default() -> Self {
        Root::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_absolute_and_relative_paths_under_the_base() {
        let r = Root::new("/tmp/sim");
        assert_eq!(r.path("/sys/class/powercap"), PathBuf::from("/tmp/sim/sys/class/powercap"));
        assert_eq!(r.path("dev/cpu/0/msr"), PathBuf::from("/tmp/sim/dev/cpu/0/msr"));
        assert_eq!(Root::system().path("/sys"), PathBuf::from("/sys"));
    }
}
