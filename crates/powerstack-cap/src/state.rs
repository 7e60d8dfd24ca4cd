//! The state directory: one lock for whoever may write, and the node its journal belongs to.
//!
//! `STATE_DIR/lock` is held with an exclusive `flock` by whoever may write controls: a command
//! for its run, the agent for its whole life (it may write at any time). The holder writes its pid
//! and command into the file, so that a caller turned away can say who holds it. A command waits
//! up to [`LOCK_WAIT`] for another command; an agent is never waited for (it does not let go), the
//! caller is refused at once and told to go through the agent or stop it. Nothing is restored or
//! changed before the lock is held.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use powerstack_hw::Root;
use serde::{Deserialize, Serialize};

use crate::CapError;

/// The state directory of a real node.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/powerstack";

/// How long a command waits for another command holding the state directory's lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting caller tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// The flag that ends a wait for the lock (see [`stop_waiting_on`]).
static STOP_WAITING: OnceLock<&'static AtomicBool> = OnceLock::new();

/// Ends any wait of this process for a state directory's lock once `flag` is raised (a command's
/// SIGINT and SIGTERM flag): the wait ends with [`CapError::Stopped`], nothing written. Set once;
/// a later call is ignored.
pub fn stop_waiting_on(flag: &'static AtomicBool) {
    let _ = STOP_WAITING.set(flag);
}

/// The state directory to use on a node: `given`, except that on a simulated node the real
/// node's [`DEFAULT_STATE_DIR`] stands for `var/lib/powerstack` under the simulated root, so an
/// experiment never records simulated originals in the real node's journal.
pub fn state_dir_for(given: &Path, root: &Root, simulated: bool) -> PathBuf {
    if simulated && given == Path::new(DEFAULT_STATE_DIR) {
        root.path(DEFAULT_STATE_DIR)
    } else {
        given.to_path_buf()
    }
}

/// The host name of the machine running this process.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The node a journal belongs to: its originals can only be put back there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeId {
    /// The hardware root, canonical (`/` on a real node).
    pub root: String,
    /// The host name.
    pub hostname: String,
    /// The simulator profile of a simulated node.
    pub simulated: Option<String>,
}

impl NodeId {
    /// This machine's node under `root`; `simulated` names the profile of a simulated one.
    pub fn new(root: &Root, simulated: Option<&str>) -> NodeId {
        let base = std::fs::canonicalize(root.base()).unwrap_or_else(|_| root.base().to_path_buf());
        NodeId {
            root: base.display().to_string(),
            hostname: hostname(),
            simulated: simulated.map(str::to_string),
        }
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "root {} on host {}", self.root, self.hostname)?;
        if let Some(p) = &self.simulated {
            write!(f, " (SIMULATED {p})")?;
        }
        Ok(())
    }
}

/// Writes a state file atomically: a temporary file beside it (created with `mode`), fsync,
/// rename over `path`, fsync of the directory. A reader sees the old file or the new one, never a
/// part; a failed write removes its temporary file and leaves the old one.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)?.sync_all()
}

/// Who holds the lock, as written into the lock file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// The process.
    pub pid: u32,
    /// The command (`powerstack cap node 800`, `powerstack agent`).
    pub command: String,
    /// Since when, µs since the Unix epoch.
    pub since_unix_us: i64,
    /// For an agent: where it takes cap changes (its socket, its TCP address). `None` for a
    /// command, which lets go when it ends.
    pub agent_api: Option<String>,
}

impl Holder {
    /// This process, running `command`.
    pub fn command(command: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            command: command.to_string(),
            since_unix_us: powerstack_hw::clock::unix_us(),
            agent_api: None,
        }
    }

    /// This process, an agent taking cap changes at `api`.
    pub fn agent(command: &str, api: &str) -> Holder {
        Holder { agent_api: Some(api.to_string()), ..Holder::command(command) }
    }
}

/// The exclusive lock of a state directory, held until dropped.
#[derive(Debug)]
pub struct StateLock {
    dir: PathBuf,
    _file: File,
}

impl StateLock {
    /// Creates the directory if needed and takes its lock as `me`. Another command holding it is
    /// waited for up to `wait`; an agent holding it is not waited for. Refused: one line naming
    /// the holder and what to do.
    pub fn acquire(dir: &Path, me: &Holder, wait: Duration) -> Result<StateLock, CapError> {
        let state = |path: &Path, detail: String| CapError::State { path: path.into(), detail };
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o755)
            .create(dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    state(dir, "exists and is not a directory: give the path of a directory".into())
                }
                _ => state(dir, format!("cannot create it: {e}")),
            })?;
        crate::trust::check_state_dir(dir)?;
        let path = dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| state(&path, format!("cannot open it for writing: {e}")))?;
        let deadline = Instant::now() + wait;
        loop {
            // SAFETY: flock on a valid, open file descriptor owned by `file`.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(state(&path, format!("cannot lock it: {err}")));
            }
            let holder = read_holder(&path);
            if holder.as_ref().is_some_and(|h| h.agent_api.is_some()) || Instant::now() >= deadline
            {
                return Err(state(dir, busy(holder.as_ref(), wait)));
            }
            if STOP_WAITING.get().is_some_and(|stop| stop.load(Ordering::SeqCst)) {
                let who = holder.map_or("another process".into(), |h| format!("`{}`", h.command));
                let rollback = format!(
                    "nothing was written (it was waiting for the lock of {}, held by {who})",
                    dir.display()
                );
                return Err(CapError::Stopped { rollback });
            }
            std::thread::sleep(LOCK_RETRY);
        }
        // Who holds it, for the message of a caller turned away (best effort: the lock is ours).
        if let Ok(text) = serde_json::to_string(me) {
            let _ = file.set_len(0);
            let _ = file.write_all_at(format!("{text}\n").as_bytes(), 0);
        }
        Ok(StateLock { dir: dir.to_path_buf(), _file: file })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    let text = powerstack_file::read_to_string(path, "lock file", 64 << 10).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Why the lock cannot be had, and what to do.
fn busy(holder: Option<&Holder>, wait: Duration) -> String {
    match holder {
        Some(Holder { pid, agent_api: Some(api), .. }) => format!(
            "held by the powerstack agent (pid {pid}), which may write for as long as it runs: change caps through its API ({api}: POST /v1/caps and /v1/caps/reset, see docs/api.md); for anything else, stop it first"
        ),
        Some(h) => format!(
            "held by `{}` (pid {}) for more than {} s: wait for it to finish, or check that process",
            h.command,
            h.pid,
            wait.as_secs()
        ),
        None => format!(
            "held by another powerstack process for more than {} s: wait for it to finish (`fuser` on the lock file names it)",
            wait.as_secs()
        ),
    }
}

/// A node's state directory: where its journal is, which node it serves, and the lock when this
/// process holds it for its life (see [`StateDir::hold`]).
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
    node: NodeId,
    held: Option<Arc<StateLock>>,
}

impl StateDir {
    /// The state directory `path` of `node`. Nothing is created or locked yet.
    pub fn new(path: impl Into<PathBuf>, node: NodeId) -> StateDir {
        StateDir { path: path.into(), node, held: None }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Takes the lock for as long as this value and its clones live (the agent, which may write
    /// at any time). A holder is refused as in [`StateLock::acquire`], before anything changes.
    pub fn hold(&mut self, me: &Holder) -> Result<(), CapError> {
        if self.held.is_none() {
            self.held = Some(Arc::new(StateLock::acquire(&self.path, me, LOCK_WAIT)?));
        }
        Ok(())
    }

    /// The state directory's lock: the one held by [`StateDir::hold`], or one taken now for
    /// `via` (creating the directory). The journal is opened under it
    /// ([`StateDir::journal`](crate::journal)).
    pub(crate) fn lock_for(&self, via: &str) -> Result<Arc<StateLock>, CapError> {
        match &self.held {
            Some(l) => Ok(l.clone()),
            None => Ok(Arc::new(StateLock::acquire(&self.path, &Holder::command(via), LOCK_WAIT)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_node_never_uses_the_real_nodes_state_directory() {
        let root = Root::new("/tmp/sim");
        let default = Path::new(DEFAULT_STATE_DIR);
        assert_eq!(state_dir_for(default, &root, true), Path::new("/tmp/sim/var/lib/powerstack"));
        assert_eq!(state_dir_for(default, &root, false), default);
        let given = Path::new("/tmp/state");
        assert_eq!(state_dir_for(given, &root, true), given);
    }

    #[test]
    fn a_command_waits_its_time_then_names_the_holder_and_an_agent_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            StateLock::acquire(dir.path(), &Holder::command("powerstack cap node 800"), LOCK_WAIT)
                .unwrap();
        let me = Holder::command("powerstack cap reset");
        let e = StateLock::acquire(dir.path(), &me, Duration::from_millis(50)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("held by `powerstack cap node 800`"), "{msg}");
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        drop(first);

        let agent = StateLock::acquire(
            dir.path(),
            &Holder::agent("powerstack agent", "socket /run/powerstack/agent.sock"),
            LOCK_WAIT,
        )
        .unwrap();
        // Refused at once, however long it would wait for a command.
        let e = StateLock::acquire(dir.path(), &me, Duration::from_secs(3600)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("held by the powerstack agent"), "{msg}");
        assert!(msg.contains("socket /run/powerstack/agent.sock"), "{msg}");
        assert_eq!(msg.lines().count(), 1);
        drop(agent);
        StateLock::acquire(dir.path(), &me, Duration::ZERO).unwrap();
    }
}
