//! An inotify watch on the limit and cap files, so that a real-time animation applies what the
//! hardware does with a written limit (quantised, refused, normalised) as soon as it is written,
//! not at its next tick: a writer's read-back then sees what the hardware would show.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// Watches files for writes.
#[derive(Debug)]
pub(crate) struct FileWatch {
    fd: OwnedFd,
}

impl FileWatch {
    /// Watches `files` for writes; `None` when inotify is unavailable, a file cannot be watched
    /// (out of watches) or there is nothing to watch: the caller then waits its tick.
    pub fn new<'a>(files: impl IntoIterator<Item = &'a PathBuf>) -> Option<FileWatch> {
        // SAFETY: plain system call; the result is checked before it is used as a descriptor.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut any = false;
        for path in files {
            let c = CString::new(path.as_os_str().as_bytes()).ok()?;
            let mask = libc::IN_MODIFY | libc::IN_CLOSE_WRITE;
            // SAFETY: `c` is a valid NUL-terminated path; `fd` is an inotify descriptor.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
                // A removed device's file: nothing to watch there.
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::NotFound {
                    continue;
                }
                return None;
            }
            any = true;
        }
        any.then_some(FileWatch { fd })
    }

    /// Waits up to `timeout` for a write; returns whether one came (the events are consumed).
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: one valid pollfd and a valid timespec for the duration of the call; no signal
        // mask is changed.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        n > 0 && self.drain()
    }

    /// Consumes the pending events; returns whether there were any.
    fn drain(&self) -> bool {
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
