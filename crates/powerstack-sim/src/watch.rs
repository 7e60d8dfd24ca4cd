//! inotify watches: on the frequency attributes' directories (did anything change since the last
//! look?), and on the limit and cap files, so that a real-time animation applies what the
//! hardware does with a written limit (quantised, refused, normalised) as soon as it is written,
//! not at its next tick: a writer's read-back then sees what the hardware would show.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// An inotify instance.
#[derive(Debug)]
pub(crate) struct Watch {
    fd: OwnedFd,
}

/// The events of a write to a watched file.
pub(crate) const WRITES: u32 = libc::IN_MODIFY | libc::IN_CLOSE_WRITE;

/// The events of anything changing in a watched directory.
pub(crate) const CHANGES: u32 = libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_ATTRIB
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM;

impl Watch {
    /// A watch on nothing yet; `None` when inotify is unavailable.
    pub fn new() -> Option<Watch> {
        // SAFETY: plain system call; the result is checked before it is used as a descriptor.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        Some(Watch { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    /// Watches `path` (a file or a directory) for `mask`.
    pub fn add(&self, path: &Path, mask: u32) -> std::io::Result<()> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated path; `fd` is an inotify descriptor.
        if unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `files` for writes; `None` when inotify is unavailable, a file cannot be watched
    /// (out of watches) or there is nothing to watch (a removed device's files are skipped).
    pub fn files<'a>(files: impl IntoIterator<Item = &'a Path>) -> Option<Watch> {
        let w = Watch::new()?;
        let mut any = false;
        for path in files {
            match w.add(path, WRITES) {
                Ok(()) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return None,
            }
        }
        any.then_some(w)
    }

    /// Waits up to `timeout` for an event; returns whether one came (the events are consumed).
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: one valid pollfd and a valid timespec for the duration of the call; no signal
        // mask is changed.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        n > 0 && self.changed()
    }

    /// Whether any event came since the last call (the queue is drained; an overflow counts).
    pub fn changed(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`, which outlives the call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                any = true;
            } else if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            } else {
                return any;
            }
        }
    }
}
