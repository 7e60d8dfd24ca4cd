//! [`DevMsr`]: the msr device files, `pread`/`pwrite` of 8 bytes at offset = register address.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{MSR_HINT, MsrIo};
use crate::error::HwError;
use crate::root::Root;

/// One opened msr device.
#[derive(Debug)]
struct Device {
    file: File,
    path: PathBuf,
}

/// [`MsrIo`] over `/dev/cpu/N/msr_safe` (preferred) or `/dev/cpu/N/msr` under a root. Devices are
/// opened on first use and kept open.
#[derive(Debug)]
pub struct DevMsr {
    dev_cpu: PathBuf,
    open: HashMap<u32, Device>,
    cpus: Vec<u32>,
    file_image: bool,
}

impl DevMsr {
    /// Finds the msr devices under `root` (`/dev/cpu/N/msr_safe` or `/dev/cpu/N/msr`). Nothing is
    /// opened yet.
    pub fn new(root: &Root) -> DevMsr {
        let dev_cpu = root.path("/dev/cpu");
        let mut cpus = Vec::new();
        let mut file_image = None;
        for (name, path) in crate::file::list_dir(&dev_cpu).unwrap_or_default() {
            let Ok(cpu) = name.parse::<u32>() else { continue };
            let found =
                ["msr_safe", "msr"].iter().find_map(|f| std::fs::metadata(path.join(f)).ok());
            if let Some(meta) = found {
                cpus.push(cpu);
                file_image.get_or_insert(meta.file_type().is_file());
            }
        }
        cpus.sort_unstable();
        DevMsr { dev_cpu, open: HashMap::new(), cpus, file_image: file_image.unwrap_or(false) }
    }

    /// The CPUs that have an msr device, sorted.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    /// Opens the device of `cpu`: `msr_safe` if it is there, else `msr`; read-write when allowed,
    /// else read-only (writes then fail).
    fn device(&mut self, cpu: u32) -> Result<&Device, HwError> {
        use std::collections::hash_map::Entry;
        let slot = match self.open.entry(cpu) {
            Entry::Occupied(o) => return Ok(o.into_mut()),
            Entry::Vacant(v) => v,
        };
        let dir = self.dev_cpu.join(cpu.to_string());
        let safe = dir.join("msr_safe");
        let dev = match open_rw_or_ro(&safe) {
            Ok(file) => Device { file, path: safe },
            Err(safe_err) => {
                let plain = dir.join("msr");
                match open_rw_or_ro(&plain) {
                    Ok(file) => Device { file, path: plain },
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let path = if safe_err.kind() == std::io::ErrorKind::NotFound {
                            plain
                        } else {
                            safe
                        };
                        return Err(HwError::from_io(&path, safe_err, MSR_HINT));
                    }
                    Err(e) => return Err(HwError::from_io(&plain, e, MSR_HINT)),
                }
            }
        };
        Ok(slot.insert(dev))
    }
}

fn open_rw_or_ro(path: &Path) -> std::io::Result<File> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
        Err(_) => File::open(path),
    }
}

impl MsrIo for DevMsr {
    fn read(&mut self, cpu: u32, addr: u32) -> Result<u64, HwError> {
        let dev = self.device(cpu)?;
        let mut buf = [0u8; 8];
        let n = dev
            .file
            .read_at(&mut buf, u64::from(addr))
            .map_err(|e| HwError::from_io(&dev.path, e, MSR_HINT))?;
        if n != buf.len() {
            return Err(HwError::malformed(
                &dev.path,
                format!("short read of register {addr:#x}: {n} of 8 bytes"),
            ));
        }
        Ok(u64::from_le_bytes(buf))
    }

    fn write(&mut self, cpu: u32, addr: u32, value: u64) -> Result<(), HwError> {
        let dev = self.device(cpu)?;
        let n = dev
            .file
            .write_at(&value.to_le_bytes(), u64::from(addr))
            .map_err(|e| HwError::from_io(&dev.path, e, MSR_HINT))?;
        if n != 8 {
            return Err(HwError::malformed(
                &dev.path,
                format!("short write of register {addr:#x}: {n} of 8 bytes"),
            ));
        }
        Ok(())
    }

    fn is_file_image(&self) -> bool {
        self.file_image
    }
}
