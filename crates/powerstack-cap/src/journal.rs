//! The restore journal: what every control powerstack wrote was set to before its first write.
//!
//! `STATE_DIR/journal.json` (internal state, not an API) holds, per control, the original setting
//! and the last value powerstack wrote (and who wrote it), and the node it belongs to (its root,
//! host name and simulator profile): originals are only ever put back on that node. A write
//! session marks the journal as in progress before its first write and clears the mark when it
//! has finished (or rolled back); a mark found at start means a previous run died part way, and
//! the originals are put back.
//!
//! A journal is written only under the state directory's lock ([`crate::state::StateLock`]), held
//! by one writer at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::CapError;
use crate::state::{NodeId, StateDir, StateLock};

/// Identifies one control across runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlKey {
    /// The provider (`powercap`, `msr`, `hwmon`, `nvml`).
    pub provider: String,
    /// The domain (`package-0`, `gpu-2`).
    pub domain: String,
    /// The constraint (`long_term`, `short_term`, `cap`).
    pub constraint: String,
}

impl ControlKey {
    /// Whether this key names a domain of `info` (same provider, same domain id).
    pub fn matches(&self, info: &powerstack_model::DomainInfo) -> bool {
        info.provider == self.provider && info.id.to_string() == self.domain
    }
}

impl std::fmt::Display for ControlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.domain, self.constraint, self.provider)
    }
}

/// A control's setting, as far as restoring it goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// The limit, watts.
    pub limit_watts: Option<f64>,
    /// The averaging window, seconds.
    pub time_window_s: Option<f64>,
    /// The enable.
    pub enabled: Option<bool>,
}

/// A write powerstack made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Written {
    /// The limit written, watts (as read back).
    pub limit_watts: f64,
    /// When, µs since the Unix epoch.
    pub at_unix_us: i64,
    /// Who: user name (or uid) of the process.
    pub by: String,
    /// What: the command or API call.
    pub via: String,
}

/// One journaled control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Which control.
    pub key: ControlKey,
    /// Where it lives, for people (`intel-rapl:0`).
    pub source: String,
    /// Its setting before powerstack first wrote it.
    pub original: Setting,
    /// The last write powerstack made.
    pub last_written: Option<Written>,
}

/// A write session that has not finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InProgress {
    /// When it began, µs since the Unix epoch.
    pub started_unix_us: i64,
    /// The process.
    pub pid: u32,
    /// What it was doing.
    pub via: String,
}

/// What a restore of sysfs attributes did: the paths restored, and those that could not be with
/// the reason.
pub type FileRestore = (Vec<String>, Vec<(String, String)>);

/// A sysfs attribute powerstack wrote (frequency, governor, EPP, C-state, uncore settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The attribute, relative to the hardware root (`sys/devices/system/cpu/cpufreq/policy3/scaling_max_freq`).
    pub path: String,
    /// Its content before powerstack first wrote it (first line, trimmed).
    pub original: String,
    /// The last value powerstack wrote, and who.
    pub last_written: Option<FileWritten>,
}

/// A write of a sysfs attribute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileWritten {
    /// The value written.
    pub value: String,
    /// When, µs since the Unix epoch.
    pub at_unix_us: i64,
    /// Who.
    pub by: String,
    /// What.
    pub via: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct JournalFile {
    version: u32,
    /// The node the originals were read on (absent in version 1 journals).
    #[serde(default)]
    node: Option<NodeId>,
    in_progress: Option<InProgress>,
    entries: Vec<Entry>,
    #[serde(default)]
    files: Vec<FileEntry>,
}

impl JournalFile {
    /// Whether nothing is left to restore.
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.files.is_empty() && self.in_progress.is_none()
    }
}

/// The journal format written; version 1 (without the node) is still read.
const VERSION: u32 = 2;

/// The journal, locked for this process.
pub struct Journal {
    dir: PathBuf,
    data: JournalFile,
    /// The state directory's lock, held while open for writing; `None` when opened with
    /// [`Journal::read`].
    lock: Option<Arc<StateLock>>,
    /// What opening it had to say (a journal that named no node).
    notes: Vec<String>,
}

impl Journal {
    /// Opens the journal of the state directory locked by `lock` for `node`. A malformed journal
    /// is an error, never silently replaced: it may hold the only record of the original limits.
    /// A journal of another node with something left to restore is refused (its originals belong
    /// there); one that names no node (version 1) is taken as `node`'s, with a note, and bound to
    /// it at once.
    pub fn open(lock: Arc<StateLock>, node: &NodeId) -> Result<Journal, CapError> {
        let dir = lock.dir().to_path_buf();
        let mut data = load(&dir.join("journal.json"))?
            .unwrap_or(JournalFile { version: VERSION, ..Default::default() });
        let mut notes = Vec::new();
        let unbound = data.node.is_none() && !data.is_empty();
        if unbound {
            notes.push(format!(
                "{}: the journal names no node (written by an older powerstack); its originals are taken as this node's ({node})",
                dir.join("journal.json").display()
            ));
        }
        check_node(&dir, &data, node)?;
        data.node = Some(node.clone());
        data.version = VERSION;
        let journal = Journal { dir, data, lock: Some(lock), notes };
        if unbound {
            journal.save()?;
        }
        Ok(journal)
    }

    /// Checks that this journal's originals belong to `node` (see [`Journal::open`]); for a
    /// journal opened with [`Journal::read`].
    pub fn check_node(&self, node: &NodeId) -> Result<(), CapError> {
        check_node(&self.dir, &self.data, node)
    }

    /// What opening the journal had to say, as lines.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Reads the journal in `state_dir` without creating, locking or ever writing it (for
    /// reports and dry runs: they need no write permission); `None` when there is none.
    pub fn read(state_dir: &Path) -> Result<Option<Journal>, CapError> {
        let data = load(&state_dir.join("journal.json"))?;
        Ok(data.map(|data| Journal {
            dir: state_dir.to_path_buf(),
            data,
            lock: None,
            notes: Vec::new(),
        }))
    }

    /// Every journaled control.
    pub fn entries(&self) -> &[Entry] {
        &self.data.entries
    }

    /// The entry of a control.
    pub fn entry(&self, key: &ControlKey) -> Option<&Entry> {
        self.data.entries.iter().find(|e| &e.key == key)
    }

    /// The unfinished session left by a run that died, if any.
    pub fn in_progress(&self) -> Option<&InProgress> {
        self.data.in_progress.as_ref()
    }

    /// Records originals not yet known and marks a session in progress; saved before any write.
    pub fn begin(
        &mut self,
        originals: Vec<(ControlKey, String, Setting)>,
        via: &str,
    ) -> Result<(), CapError> {
        for (key, source, original) in originals {
            if self.entry(&key).is_none() {
                self.data.entries.push(Entry { key, source, original, last_written: None });
            }
        }
        self.data.in_progress = Some(InProgress {
            started_unix_us: now_unix_us(),
            pid: std::process::id(),
            via: via.to_string(),
        });
        self.save()
    }

    /// Records a successful write.
    pub fn record_write(&mut self, key: &ControlKey, written: Written) {
        if let Some(e) = self.data.entries.iter_mut().find(|e| &e.key == key) {
            e.last_written = Some(written);
        }
    }

    /// Ends the session and saves.
    pub fn finish(&mut self) -> Result<(), CapError> {
        self.data.in_progress = None;
        self.save()
    }

    /// Forgets controls whose originals were restored, ends any session and saves (when that
    /// changed anything).
    pub fn forget(&mut self, restored: &[ControlKey]) -> Result<(), CapError> {
        let before = self.data.entries.len();
        self.data.entries.retain(|e| !restored.contains(&e.key));
        if self.data.entries.len() == before && self.data.in_progress.is_none() {
            return Ok(());
        }
        self.data.in_progress = None;
        self.save()
    }

    /// Every journaled sysfs attribute.
    pub fn file_entries(&self) -> &[FileEntry] {
        &self.data.files
    }

    /// The entry of a sysfs attribute.
    pub fn file_entry(&self, path: &str) -> Option<&FileEntry> {
        self.data.files.iter().find(|e| e.path == path)
    }

    /// Records the originals of sysfs attributes not yet known and marks a session in progress;
    /// saved before any write.
    pub fn begin_files(
        &mut self,
        originals: Vec<(String, String)>,
        via: &str,
    ) -> Result<(), CapError> {
        for (path, original) in originals {
            if self.file_entry(&path).is_none() {
                self.data.files.push(FileEntry { path, original, last_written: None });
            }
        }
        self.data.in_progress = Some(InProgress {
            started_unix_us: now_unix_us(),
            pid: std::process::id(),
            via: via.to_string(),
        });
        self.save()
    }

    /// Records a successful write of a sysfs attribute.
    pub fn record_file_write(&mut self, path: &str, written: FileWritten) {
        if let Some(e) = self.data.files.iter_mut().find(|e| e.path == path) {
            e.last_written = Some(written);
        }
    }

    /// Restores every journaled sysfs attribute under `root` to its original and forgets those
    /// restored. The kernel refuses some values until others are back (an EPP while the
    /// `performance` governor is on, a minimum above the current maximum), so the restore goes in
    /// passes, each writing and reading back what is still different, until everything matches or
    /// a pass makes no progress. Returns (restored, failed with reasons).
    pub fn restore_files(&mut self, root: &powerstack_hw::Root) -> Result<FileRestore, CapError> {
        let read = |p: &str| {
            powerstack_hw::file::read_trimmed(&root.path(p), "sysfs attribute")
                .ok()
                .map(|c| c.lines().next().unwrap_or("").to_string())
        };
        let mut pending: Vec<FileEntry> = self.data.files.clone();
        let mut restored = Vec::new();
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            for e in pending {
                if read(&e.path).as_deref() == Some(e.original.as_str()) {
                    restored.push(e.path.clone());
                    continue;
                }
                let result = powerstack_hw::file::write_attr(
                    &root.path(&e.path),
                    &e.original,
                    "sysfs attribute",
                );
                match (result, read(&e.path)) {
                    (Ok(()), Some(now)) if now == e.original => restored.push(e.path.clone()),
                    (Ok(()), now) => {
                        errors.insert(
                            e.path.clone(),
                            format!(
                                "reads back {:?}, not {:?}",
                                now.unwrap_or_default(),
                                e.original
                            ),
                        );
                        still.push(e);
                    }
                    (Err(err), _) => {
                        errors.insert(e.path.clone(), err.to_string());
                        still.push(e);
                    }
                }
            }
            pending = still;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        let failed = pending
            .iter()
            .map(|e| (e.path.clone(), errors.remove(&e.path).unwrap_or_default()))
            .collect();
        let before = self.data.files.len();
        self.data.files.retain(|e| !restored.contains(&e.path));
        if self.data.files.len() != before {
            self.save()?;
        }
        Ok((restored, failed))
    }

    /// Writes the journal atomically: a temporary file, fsync, rename, fsync of the directory.
    fn save(&self) -> Result<(), CapError> {
        let path = self.dir.join("journal.json");
        if self.lock.is_none() {
            return Err(CapError::State {
                path,
                detail: "the journal was opened read-only".into(),
            });
        }
        let text = serde_json::to_string_pretty(&self.data)
            .map_err(|e| CapError::State { path: path.clone(), detail: e.to_string() })?;
        crate::state::write_atomically(&path, text.as_bytes(), 0o644).map_err(|e| {
            CapError::State { path: path.clone(), detail: format!("cannot write it: {e}") }
        })?;
        powerstack_hw::fault::step();
        Ok(())
    }
}

/// Refuses a journal of another node that still holds something to restore.
fn check_node(dir: &Path, data: &JournalFile, node: &NodeId) -> Result<(), CapError> {
    let Some(owner) = &data.node else { return Ok(()) };
    if owner == node || data.is_empty() {
        return Ok(());
    }
    let held = data.entries.len() + data.files.len();
    let todo = if Path::new(&owner.root).exists() {
        format!(
            "restore it there (`--root {}`), or give this node its own --state-dir; if that node is gone for good, move journal.json away, accepting that the {held} original(s) it holds are lost",
            owner.root
        )
    } else {
        format!(
            "that root no longer exists: give this node its own --state-dir, or move journal.json away, accepting that the {held} original(s) it holds are lost"
        )
    };
    Err(CapError::State {
        path: dir.to_path_buf(),
        detail: format!(
            "the journal belongs to another node ({owner}), not to this one ({node}): {todo}"
        ),
    })
}

/// The largest journal read: one holds an entry per limit and setting a session changed.
const MAX_JOURNAL_BYTES: u64 = 64 << 20;

/// Reads and checks a journal file; `None` when there is none. A malformed journal is an error,
/// never silently replaced: it may hold the only record of the original limits.
fn load(path: &Path) -> Result<Option<JournalFile>, CapError> {
    let text = powerstack_file::read_if_exists(path, "journal", MAX_JOURNAL_BYTES)
        .map_err(|e| CapError::File(e.to_string()))?;
    let Some(text) = text else { return Ok(None) };
    let data = serde_json::from_str::<JournalFile>(&text).map_err(|e| CapError::State {
        path: path.to_path_buf(),
        detail: format!(
            "malformed journal ({e}); it records the limits to restore: repair it, or move it away if you accept losing them"
        ),
    })?;
    if data.version != VERSION && data.version != 1 {
        return Err(CapError::State {
            path: path.to_path_buf(),
            detail: format!(
                "journal version {} is not {VERSION}: written by another powerstack version",
                data.version
            ),
        });
    }
    Ok(Some(data))
}

impl StateDir {
    /// The journal, locked for writing: under the lock held by [`StateDir::hold`], or under one
    /// taken now for `via` (creating the directory). Refused when the journal belongs to another
    /// node.
    pub fn journal(&self, via: &str) -> Result<Journal, CapError> {
        Journal::open(self.lock_for(via)?, self.node())
    }

    /// The journal without locking, creating or writing anything (reports, dry runs); `None`
    /// when there is none.
    pub fn read(&self) -> Result<Option<Journal>, CapError> {
        crate::trust::check_state_dir(self.path())?;
        Journal::read(self.path())
    }
}

/// Wall-clock µs since the Unix epoch.
pub fn now_unix_us() -> i64 {
    powerstack_hw::clock::unix_us()
}

/// The user running this process, for "who set it".
pub fn current_user() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|text| {
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
    });
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}
