//! The tree writer shared by every profile's builder: [`B`] writes a simulated tree's files when
//! it is fresh, or only names them when attaching to an existing one; the component lookups the
//! builders key their files on; and the PCI device directories of the GPU profiles.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use powerstack_model::cpulist::format_cpulist;
use powerstack_model::{DomainId, DomainKind};

use crate::error::SimError;
use crate::fsutil::{OutFile, create_file, mkdirs, symlink_rel};
use crate::model::Key;
use crate::msr::Shared;
use crate::profile::Profile;

/// The width of a counter file holding one number (see [`OutFile`]): 20 digits (any u64) and a
/// newline.
pub(crate) const NUMBER_WIDTH: usize = 21;

/// Writes the tree when `fresh`, else only names its files.
pub(crate) struct B<'a> {
    pub root: &'a Path,
    pub fresh: bool,
    /// Directories known to exist (saves a `mkdir` per file).
    made: RefCell<HashSet<PathBuf>>,
}

impl<'a> B<'a> {
    /// A writer of the tree at `root`: writing it when `fresh`, else attaching to it.
    pub fn new(root: &'a Path, fresh: bool) -> B<'a> {
        B { root, fresh, made: RefCell::new(HashSet::new()) }
    }

    /// The path of `rel` under the root.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Creates the parent directory of `path` once.
    fn parent(&self, path: &Path) -> Result<(), SimError> {
        if let Some(parent) = path.parent()
            && !self.made.borrow().contains(parent)
        {
            mkdirs(parent)?;
            self.made.borrow_mut().insert(parent.to_path_buf());
        }
        Ok(())
    }

    /// A file that the simulator never updates.
    pub fn file(&self, rel: &str, content: &str, mode: u32) -> Result<(), SimError> {
        if self.fresh {
            let path = self.p(rel);
            self.parent(&path)?;
            create_file(&path, content, mode)?;
        }
        Ok(())
    }

    /// A file the simulator updates or reads back (see [`OutFile`]).
    pub fn out(&self, rel: &str, content: &str, mode: u32) -> Result<OutFile, SimError> {
        let path = self.p(rel);
        if self.fresh {
            self.parent(&path)?;
            OutFile::create(path, content, mode)
        } else {
            Ok(OutFile::attach(path))
        }
    }

    /// A counter file kept at `width` bytes (see [`OutFile`]).
    pub fn counter(
        &self,
        rel: &str,
        content: &str,
        mode: u32,
        width: usize,
    ) -> Result<OutFile, SimError> {
        let path = self.p(rel);
        if self.fresh {
            self.parent(&path)?;
            OutFile::counter(path, content, mode, width)
        } else {
            Ok(OutFile::attach_counter(path, width))
        }
    }

    /// A symbolic link `rel_link` to `rel_target`, relative between the two.
    pub fn link(&self, rel_link: &str, rel_target: &str) -> Result<(), SimError> {
        if self.fresh {
            symlink_rel(&self.p(rel_link), &self.p(rel_target))?;
        }
        Ok(())
    }

    /// A directory (and its parents).
    pub fn dir(&self, rel: &str) -> Result<(), SimError> {
        if self.fresh {
            mkdirs(&self.p(rel))?;
        }
        Ok(())
    }
}

/// The index of a component (the component lists are fixed per profile).
pub(crate) fn ci(s: &Shared, kind: DomainKind, index: u32) -> usize {
    ck(s, Key::Domain(DomainId::new(kind, index)))
}

/// The index of the component with `key`.
pub(crate) fn ck(s: &Shared, key: Key) -> usize {
    s.comps.iter().position(|c| c.key == key).unwrap_or(0)
}

/// Where the kernel links every PCI device from.
pub(crate) const PCI_DEVICES: &str = "sys/bus/pci/devices";

/// Writes a PCI device directory `sys/devices/{parent}/{addr}` with its identification files and
/// `local_cpulist`, linked from `sys/bus/pci/devices`; returns the device's relative path.
pub(crate) fn pci_device(
    b: &B<'_>,
    profile: Profile,
    parent: &str,
    addr: &str,
    numa: u32,
    ids: [&str; 3],
) -> Result<String, SimError> {
    let dev = format!("sys/devices/{parent}/{addr}");
    let cpus = profile.numa_nodes().get(numa as usize).cloned().unwrap_or_default();
    let [vendor, device, class] = ids;
    for (f, v) in [
        ("numa_node", numa.to_string()),
        ("vendor", vendor.to_string()),
        ("device", device.to_string()),
        ("subsystem_vendor", vendor.to_string()),
        ("class", class.to_string()),
        ("local_cpulist", format_cpulist(&cpus)),
    ] {
        b.file(&format!("{dev}/{f}"), &format!("{v}\n"), 0o444)?;
    }
    b.link(&format!("{PCI_DEVICES}/{addr}"), &dev)?;
    Ok(dev)
}
