//! Where the state directory is, and how its files are read.

use std::ffi::{CStr, OsStr, c_uint, c_void};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nvml_wrapper_sys::bindings::{
    nvmlReturn_enum_NVML_ERROR_NO_PERMISSION as NO_PERMISSION,
    nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED as NOT_SUPPORTED,
    nvmlReturn_enum_NVML_ERROR_UNKNOWN as UNKNOWN, nvmlReturn_t,
};

/// The environment variable naming the state directory directly.
const DIR_ENV: &str = "POWERSTACK_MOCK_NVML_DIR";
/// The environment variable naming a simulated root.
const ROOT_ENV: &str = "POWERSTACK_ROOT";
/// The state directory under a root.
const STATE_UNDER_ROOT: &str = "var/lib/powerstack-sim/nvml";
/// Where the library is installed under a root, for deriving the root from the load path.
const LIB_LOCATIONS: [&str; 2] =
    ["usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "usr/lib64/libnvidia-ml.so.1"];

/// An address inside this library, to ask the loader where it was loaded from.
static ANCHOR: u8 = 0;

/// The path this library was loaded from, as the loader recorded it.
fn load_path() -> Option<PathBuf> {
    let anchor: *const c_void = std::ptr::addr_of!(ANCHOR).cast();
    // SAFETY: `Dl_info` is a plain C struct of pointers, for which all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `anchor` is an address inside this library and `info` is a valid, writable
    // `Dl_info`; dladdr only writes to it.
    let found = unsafe { libc::dladdr(anchor, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr succeeded, so `dli_fname` points to the NUL-terminated name the loader keeps
    // for this library, valid while it is loaded (it is: we are running its code).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

/// The root a library loaded from `path` was installed under, when it is one of [`LIB_LOCATIONS`].
fn root_of(path: &Path) -> Option<PathBuf> {
    LIB_LOCATIONS.iter().find_map(|loc| {
        if !path.ends_with(loc) {
            return None;
        }
        let mut root = path;
        for _ in Path::new(loc).components() {
            root = root.parent()?;
        }
        Some(if root.as_os_str().is_empty() { PathBuf::from(".") } else { root.to_path_buf() })
    })
}

/// Where the state directory is, by the rules in the crate documentation.
pub(crate) fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(root) = load_path().as_deref().and_then(root_of) {
        return Some(root.join(STATE_UNDER_ROOT));
    }
    std::env::var_os(ROOT_ENV)
        .filter(|r| !r.is_empty())
        .map(|r| PathBuf::from(r).join(STATE_UNDER_ROOT))
}

/// The first line of a state file, trimmed. A missing file is a feature the GPU lacks.
pub(crate) fn read_text(path: &Path) -> Result<String, nvmlReturn_t> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.lines().next().unwrap_or("").trim().to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(NOT_SUPPORTED),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(NO_PERMISSION),
        Err(_) => Err(UNKNOWN),
    }
}

pub(crate) fn read_u64(path: &Path) -> Result<u64, nvmlReturn_t> {
    read_text(path)?.parse().map_err(|_| UNKNOWN)
}

pub(crate) fn read_u32(path: &Path) -> Result<c_uint, nvmlReturn_t> {
    c_uint::try_from(read_u64(path)?).map_err(|_| UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_root_from_the_install_location() {
        assert_eq!(
            root_of(Path::new("/tmp/r/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")),
            Some(PathBuf::from("/tmp/r"))
        );
        assert_eq!(
            root_of(Path::new("/tmp/r/usr/lib64/libnvidia-ml.so.1")),
            Some(PathBuf::from("/tmp/r"))
        );
        assert_eq!(
            root_of(Path::new("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")),
            Some(PathBuf::from("/"))
        );
        assert_eq!(root_of(Path::new("/tmp/target/debug/libpowerstack_mock_nvml.so")), None);
    }
}
