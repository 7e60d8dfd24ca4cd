//! Applying a plan: journal the originals, write, read back, roll back on the first failure.

use std::path::PathBuf;

use powerstack_cap::StateDir;
use powerstack_cap::journal::{self, FileWritten, Journal};
use powerstack_hw::Root;
use powerstack_hw::file::{read_trimmed, write_attr};

use crate::FreqError;
use crate::config::PoolsFile;
use crate::plan::{self, Assignment, Plan, State, Write};
use crate::topology::{FreqTopology, discover};

/// The applied configuration, kept next to the journal.
pub const STORED_FILE: &str = "pools.toml";

/// Reads sysfs and the journal for the planner.
pub struct Live<'a> {
    root: &'a Root,
    journal: Option<&'a Journal>,
}

impl<'a> Live<'a> {
    /// Sysfs under `root`, with originals from `journal` when given.
    pub fn new(root: &'a Root, journal: Option<&'a Journal>) -> Live<'a> {
        Live { root, journal }
    }
}

impl State for Live<'_> {
    fn current(&self, path: &str) -> Option<String> {
        read_trimmed(&self.root.path(path), "sysfs attribute")
            .ok()
            .map(|s| s.lines().next().unwrap_or("").to_string())
    }

    fn original(&self, path: &str) -> Option<String> {
        self.journal.and_then(|j| j.file_entry(path)).map(|e| e.original.clone())
    }
}

/// A frequency-pools session on one node. Opened for writing ([`Pools::open`]), the state
/// directory is locked for its lifetime (one writer at a time) and a run that died part way has
/// been repaired; opened read-only ([`Pools::open_read`]), it plans and shows, and writes nothing.
pub struct Pools<'a> {
    root: &'a Root,
    state_dir: PathBuf,
    /// The journal; `None` when read-only and there is none.
    journal: Option<Journal>,
    topology: FreqTopology,
    via: String,
    after_write: Option<Box<dyn FnMut() + 'a>>,
    stop: Option<Box<dyn FnMut() -> bool + 'a>>,
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The writes made, in order, with what was there before.
    pub writes: Vec<Write>,
}

impl<'a> Pools<'a> {
    /// Opens the session for writing: locks `state` (see [`StateDir::journal`]), repairs an
    /// interrupted run (through `recover`, which the caller provides so that power limits are
    /// restored too), and discovers the node's frequency topology.
    pub fn open(
        root: &'a Root,
        state: &StateDir,
        via: &str,
        recover: impl FnOnce(&mut Journal) -> Result<(), FreqError>,
    ) -> Result<Pools<'a>, FreqError> {
        let mut journal = state.journal(via)?;
        recover(&mut journal)?;
        Ok(Pools::new(root, state, via, Some(journal)))
    }

    /// Opens the session read-only: the journal is read (for the originals) without locking,
    /// creating or repairing anything, so nothing is created by a command that then fails
    /// validation, and showing never waits for a writer. [`Pools::apply`] and [`Pools::reset`]
    /// are refused.
    pub fn open_read(root: &'a Root, state: &StateDir) -> Result<Pools<'a>, FreqError> {
        let journal = state.read()?;
        if let Some(j) = &journal {
            j.check_node(state.node())?;
        }
        Ok(Pools::new(root, state, "", journal))
    }

    fn new(root: &'a Root, state: &StateDir, via: &str, journal: Option<Journal>) -> Pools<'a> {
        Pools {
            root,
            state_dir: state.path().to_path_buf(),
            journal,
            topology: discover(root),
            via: via.to_string(),
            after_write: None,
            stop: None,
        }
    }

    /// A hook run after every write, before its read-back (tests let the simulator apply the
    /// kernel's rules there).
    pub fn set_after_write(&mut self, hook: Box<dyn FnMut() + 'a>) {
        self.after_write = Some(hook);
    }

    /// Asked before each write whether to go on (the caller's SIGINT or SIGTERM): when it says
    /// stop, nothing more is written, what this call had written is restored, and the answer is
    /// [`FreqError::Stopped`].
    pub fn set_stop(&mut self, stop: Box<dyn FnMut() -> bool + 'a>) {
        self.stop = Some(stop);
    }

    fn stop_asked(&mut self) -> bool {
        self.stop.as_mut().is_some_and(|stop| stop())
    }

    /// The hardware root.
    pub fn root(&self) -> &Root {
        self.root
    }

    /// The node's frequency topology.
    pub fn topology(&self) -> &FreqTopology {
        &self.topology
    }

    /// The journal; `None` when opened read-only and there is none.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    fn writable(&mut self) -> Result<&mut Journal, FreqError> {
        self.journal.as_mut().ok_or_else(|| FreqError::State {
            path: self.state_dir.clone(),
            detail: "the pools session was opened read-only".into(),
        })
    }

    /// The configuration in force (the last one applied), if any.
    pub fn stored(&self) -> Result<Option<PoolsFile>, FreqError> {
        let path = self.state_dir.join(STORED_FILE);
        powerstack_cap::trust::check_state_dir(&self.state_dir)
            .map_err(|e| FreqError::State { path: path.clone(), detail: e.to_string() })?;
        let text = powerstack_file::read_if_exists(
            &path,
            "pools file in force",
            powerstack_file::TEXT_MAX_BYTES,
        )?;
        let Some(text) = text else { return Ok(None) };
        PoolsFile::parse(&text).map(Some).map_err(|e| FreqError::State {
            path,
            detail: format!("the applied configuration is unreadable: {e}"),
        })
    }

    /// The assignment in force, from the stored configuration.
    pub fn current_assignment(&self) -> Result<Option<Assignment>, FreqError> {
        match self.stored()? {
            Some(f) => Ok(plan::assign(&self.topology, &f).ok()),
            None => Ok(None),
        }
    }

    /// The writes that `reset` would make, without making them: everything shared, without a
    /// profile, so every attribute goes back to its boot value.
    pub fn plan_reset(&self) -> Result<Plan, FreqError> {
        let live = Live::new(self.root, self.journal.as_ref());
        plan::plan(&self.topology, self.root.base(), &PoolsFile::default(), None, &live)
    }

    /// Validates `file` against the node and the pool rules and returns the writes it needs;
    /// writes nothing.
    pub fn plan(&self, file: &PoolsFile) -> Result<Plan, FreqError> {
        let previous = self.current_assignment()?;
        let live = Live::new(self.root, self.journal.as_ref());
        plan::plan(&self.topology, self.root.base(), file, previous.as_ref(), &live)
    }

    /// Applies `file`: plans, records the originals, writes each value, reads it back, and on the
    /// first failure restores what this call had already written. On success the file becomes the
    /// configuration in force.
    pub fn apply(&mut self, file: &PoolsFile) -> Result<Applied, FreqError> {
        let plan = self.plan(file)?;
        let applied = self.execute(&plan)?;
        self.store(Some(file))?;
        Ok(applied)
    }

    /// Restores every boot-time setting powerstack changed (frequencies, governors, EPP, C-states,
    /// uncore), in a safe order, and forgets the applied configuration.
    pub fn reset(&mut self) -> Result<Applied, FreqError> {
        let plan = self.plan_reset()?;
        let applied = self.execute(&plan)?;
        let root = self.root;
        let (_, failed) = self.writable()?.restore_files(root)?;
        if let Some((path, why)) = failed.first() {
            return Err(FreqError::State {
                path: self.root.path(path),
                detail: format!(
                    "could not be restored ({why}); it stays in the journal for the next reset"
                ),
            });
        }
        self.store(None)?;
        Ok(applied)
    }

    fn store(&self, file: Option<&PoolsFile>) -> Result<(), FreqError> {
        let path = self.state_dir.join(STORED_FILE);
        let io = |e: std::io::Error| FreqError::State { path: path.clone(), detail: e.to_string() };
        match file {
            Some(f) => {
                powerstack_cap::state::write_atomically(&path, f.to_toml().as_bytes(), 0o644)
                    .map_err(io)?;
                powerstack_hw::fault::step();
                Ok(())
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            },
        }
    }

    fn execute(&mut self, plan: &Plan) -> Result<Applied, FreqError> {
        if plan.writes.is_empty() {
            return Ok(Applied::default());
        }
        let originals = plan.writes.iter().map(|w| (w.path.clone(), w.current.clone())).collect();
        let via = self.via.clone();
        self.writable()?.begin_files(originals, &via)?;
        let mut done: Vec<Write> = Vec::new();
        for w in &plan.writes {
            let outcome =
                if self.stop_asked() { Err(None) } else { self.write_one(w).map_err(Some) };
            match outcome {
                Ok(()) => done.push(w.clone()),
                Err(cause) => {
                    let rollback = self.roll_back(&done);
                    let _ = self.writable().map(|j| j.finish());
                    return Err(match cause {
                        Some(cause) => FreqError::RolledBack { cause: Box::new(cause), rollback },
                        None => FreqError::Stopped { rollback },
                    });
                }
            }
        }
        let by = journal::current_user();
        let at_unix_us = journal::now_unix_us();
        for w in &done {
            let written = FileWritten {
                value: w.value.clone(),
                at_unix_us,
                by: by.clone(),
                via: self.via.clone(),
            };
            self.writable()?.record_file_write(&w.path, written);
        }
        self.writable()?.finish()?;
        Ok(Applied { writes: done })
    }

    fn write_one(&mut self, w: &Write) -> Result<(), FreqError> {
        let path = self.root.path(&w.path);
        write_attr(&path, &w.value, "sysfs attribute")
            .map_err(|source| FreqError::Hardware { what: w.what.clone(), source })?;
        if let Some(hook) = self.after_write.as_mut() {
            hook();
        }
        let read = read_trimmed(&path, "sysfs attribute")
            .map(|s| s.lines().next().unwrap_or("").to_string())
            .map_err(|source| FreqError::Hardware { what: w.what.clone(), source })?;
        if read != w.value {
            return Err(FreqError::ReadBack { what: w.what.clone(), wrote: w.value.clone(), read });
        }
        Ok(())
    }

    fn roll_back(&mut self, done: &[Write]) -> String {
        if done.is_empty() {
            return "nothing had been written".to_string();
        }
        let mut failed = Vec::new();
        for w in done.iter().rev() {
            let path = self.root.path(&w.path);
            let ok = write_attr(&path, &w.current, "sysfs attribute").is_ok();
            if let Some(hook) = self.after_write.as_mut() {
                hook();
            }
            let back = read_trimmed(&path, "sysfs attribute")
                .ok()
                .map(|s| s.lines().next().unwrap_or("").to_string());
            if !ok || back.as_deref() != Some(w.current.as_str()) {
                failed.push(w.what.clone());
            }
        }
        if failed.is_empty() {
            format!("restored the {} setting(s) already written", done.len())
        } else {
            format!("could not restore {}; run `powerstack pools reset`", failed.join(", "))
        }
    }
}
