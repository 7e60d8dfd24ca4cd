//! The animation lock: whatever animates a root ([`crate::SimNode::run_realtime`], so `powerstack
//! sim run`) holds an exclusive `flock` on its `powerstack-sim.toml` while it does, so that a
//! second animation is refused and `create` can say that the root is live.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::config::CONFIG_FILE;
use crate::error::SimError;

/// Held while a root is animated; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

/// `flock(op | LOCK_NB)` on `file`: whether it was granted.
fn try_flock(file: &File, op: i32) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) }
}

/// Takes the animation lock of the root `dir`; refused while another process (or another
/// animation in this one) holds it.
pub(crate) fn take(dir: &Path) -> Result<RunLock, SimError> {
    let path = dir.join(CONFIG_FILE);
    let file = File::open(&path).map_err(|e| SimError::io(&path, e))?;
    match try_flock(&file, libc::LOCK_EX) {
        Ok(true) => Ok(RunLock { _file: file }),
        Ok(false) => Err(SimError::AlreadyAnimated { path: dir.to_path_buf() }),
        Err(e) => Err(SimError::io(&path, e)),
    }
}

/// Whether something animates the root `dir` now.
pub(crate) fn is_animated(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(CONFIG_FILE)) else { return false };
    matches!(try_flock(&file, libc::LOCK_SH), Ok(false))
}
