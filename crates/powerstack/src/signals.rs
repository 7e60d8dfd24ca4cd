//! SIGINT and SIGTERM: one mechanism for every command.
//!
//! [`catch`] blocks both signals before any other thread exists, so every thread inherits the
//! mask and they stay pending until one thread takes them with `sigwaitinfo`. No handler runs and
//! nothing polls: that thread sleeps in the kernel until a signal (or the deadline) comes, then
//! records which signal it was, raises the stop flag that loops and write sessions check, and
//! wakes whoever waits (the agent's servers). A command that writes stops before its next write,
//! rolls back what it wrote and exits with 128 + the signal's number (130 for SIGINT, 143 for
//! SIGTERM), the status a shell gives a process killed by it.
//!
//! A shell starts background commands with SIGINT ignored (`powerstack cap node 250 &`); the
//! disposition is reset to the default here, which, while the signal is blocked, keeps it pending
//! for `sigwaitinfo` (POSIX leaves it open whether an ignored signal stays pending).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

static STOP: AtomicBool = AtomicBool::new(false);
static RECEIVED: AtomicI32 = AtomicI32::new(0);
static FROM_TERMINAL: AtomicBool = AtomicBool::new(false);

/// Takes SIGINT and SIGTERM from now on: the first one (or the end of `duration`) raises the stop
/// flag and calls `on_stop` once, from the signal thread. Call it before any thread starts (a
/// thread started earlier would still die of the signal); a child process inherits the mask
/// (see [`unblock_in_child`]).
pub fn catch(
    duration: Option<Duration>,
    on_stop: impl FnOnce() + Send + 'static,
) -> anyhow::Result<()> {
    // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; SIGINT and SIGTERM are valid signals; a null old-mask
    // pointer is allowed.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        bail!("blocking SIGINT and SIGTERM: {}", std::io::Error::from_raw_os_error(rc));
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: SIG_DFL is a valid disposition for these signals; both are blocked.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // A wait for the state directory's lock (another command holds it) ends on a signal too.
    powerstack_cap::state::stop_waiting_on(&STOP);
    let deadline = duration.map(|d| Instant::now() + d);
    std::thread::Builder::new()
        .name("powerstack-signals".into())
        .spawn(move || {
            if let Some(sig) = wait(&set, deadline) {
                RECEIVED.store(sig, Ordering::SeqCst);
            }
            STOP.store(true, Ordering::SeqCst);
            on_stop();
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Waits for SIGINT or SIGTERM in `set`: the signal, or `None` once `deadline` has passed.
fn wait(set: &libc::sigset_t, deadline: Option<Instant>) -> Option<i32> {
    // SAFETY: an all-zero siginfo_t is a valid value for the kernel to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        let rc = match deadline {
            // SAFETY: `set` is initialised; `info` is a valid siginfo_t to fill in.
            None => unsafe { libc::sigwaitinfo(set, &mut info) },
            Some(end) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                let ts = libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                };
                // SAFETY: `set` and `ts` are initialised; `info` is a valid siginfo_t.
                unsafe { libc::sigtimedwait(set, &mut info, &ts) }
            }
        };
        // Else -1: interrupted, or the deadline passed (checked above).
        if rc == libc::SIGINT || rc == libc::SIGTERM {
            // Sent by the kernel: a terminal's Ctrl-C, to its whole foreground group.
            FROM_TERMINAL.store(info.si_code == libc::SI_KERNEL, Ordering::SeqCst);
            return Some(rc);
        }
    }
}

/// Has `command` start with SIGINT and SIGTERM unblocked: a child inherits the mask [`catch`]
/// set (the standard library does not clear it), and would otherwise never see them.
pub fn unblock_in_child(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, and calls only sigemptyset,
    // sigaddset and pthread_sigmask on a local set: async-signal-safe, no allocation, no lock.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            match libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) {
                0 => Ok(()),
                rc => Err(std::io::Error::from_raw_os_error(rc)),
            }
        });
    }
}

/// Whether a stop signal arrived (or the deadline passed).
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The flag itself, for code that takes an `&AtomicBool`.
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}

/// The signal that stopped the command, if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Whether the signal that stopped the command came from its terminal (Ctrl-C): the terminal
/// sent it to every process of the foreground group, children included, rather than to this
/// process alone (`kill`, `timeout`, a scheduler).
pub fn from_terminal() -> bool {
    FROM_TERMINAL.load(Ordering::SeqCst)
}

/// The exit status for a command stopped by a signal: 128 + its number.
pub fn exit_status() -> Option<u8> {
    received().and_then(|sig| u8::try_from(128 + sig).ok())
}

/// The signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// An error when a stop signal has arrived: the command stops here, before its next write.
/// `what` says what had (not) been done, as in `nothing was written`.
pub fn check(what: &str) -> anyhow::Result<()> {
    if stopped() {
        bail!("{}", interrupted(what));
    }
    Ok(())
}

/// `interrupted by SIGINT: WHAT`.
pub fn interrupted(what: &str) -> String {
    let by = received().map_or("a stop signal", name);
    format!("interrupted by {by}: {what}")
}

/// Sleeps until `deadline` (a monotonic instant), waking early when a stop signal arrives.
pub fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline || stopped() {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// A test-only pause before a write, so that a test can send a signal at a known point:
/// with `POWERSTACK_TEST_PAUSE_BEFORE_WRITE=N`, the N-th write of the command (counting from 1)
/// says `test pause before write N` on stderr and waits for a stop signal (at most a minute).
/// Unset, it costs one environment lookup per command.
pub struct TestPause {
    at: Option<usize>,
    writes: usize,
}

impl TestPause {
    /// Reads the environment.
    pub fn from_env() -> TestPause {
        let at =
            std::env::var("POWERSTACK_TEST_PAUSE_BEFORE_WRITE").ok().and_then(|v| v.parse().ok());
        TestPause { at, writes: 0 }
    }

    /// Called before each write: pauses there when asked to, then says whether to stop.
    pub fn before_write(&mut self) -> bool {
        self.writes += 1;
        if self.at == Some(self.writes) {
            eprintln!("test pause before write {}", self.writes);
            sleep_until(Instant::now() + Duration::from_secs(60));
        }
        stopped()
    }
}
