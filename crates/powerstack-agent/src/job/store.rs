//! The job table kept in the agent's state directory, `STATE_DIR/jobs.json`, so that jobs outlive
//! the agent: a restart (or a crash) forgets no begun job, and an ended job's result is still
//! answered.
//!
//! - The file is written whole at every `job begin` and `job end` (before the agent answers: a
//!   mark that could not be saved is refused and undone), at start when running jobs get a gap,
//!   and at stop, when each running job's part measured by this run is added to its history.
//!   Each write is atomic: a temporary file in the same directory, `fsync`, `rename`, `fsync` of
//!   the directory; a reader (or a crash) sees the old file or the new one, never a mix.
//! - A file that cannot be read, is malformed, or belongs to another node (hostname, root or
//!   simulated profile differ) stops the agent at start with one line: it is never replaced, so
//!   nothing it holds is lost.
//! - Its size is bounded by the table's retention ([`super::MAX_ENDED_JOBS`] ended jobs, each
//!   kept [`super::ENDED_RETENTION_US`] after its end, and at most [`super::MAX_JOBS`] jobs).

use std::path::{Path, PathBuf};

use powerstack_cap::NodeId;
use serde::{Deserialize, Serialize};

use super::{JobHistory, JobWindow, Jobs, check_id};

/// The file's name in the state directory.
pub const JOBS_FILE: &str = "jobs.json";
/// The file's format, written in it.
pub const FORMAT: &str = "powerstack.jobs.v1";
/// The largest file read, bytes (far above what the retention lets it reach).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Why the job table could not be read or kept: one line naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: String,
    node: NodeId,
    /// Whether the agent that wrote it stopped cleanly just after (its running jobs' parts are
    /// in their histories); false while an agent runs.
    stopped_cleanly: bool,
    jobs: Vec<SavedJob>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedJob {
    id: String,
    user: Option<String>,
    app: Option<String>,
    begin_unix_us: u64,
    end_unix_us: Option<u64>,
    /// Who began the job (`uid N`, `token`); absent in files of agents that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caller: Option<String>,
    #[serde(default)]
    history: JobHistory,
}

/// What [`JobsFile::load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The jobs kept (an empty table when there was no file).
    pub jobs: Jobs,
    /// Whether the agent that wrote the file stopped cleanly (true when there was none).
    pub stopped_cleanly: bool,
}

/// `STATE_DIR/jobs.json` of one node.
#[derive(Clone, Debug)]
pub struct JobsFile {
    path: PathBuf,
    node: NodeId,
}

impl JobsFile {
    /// The job file in `state_dir`, for `node`.
    pub fn new(state_dir: &Path, node: NodeId) -> JobsFile {
        JobsFile { path: state_dir.join(JOBS_FILE), node }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: impl std::fmt::Display) -> StoreError {
        StoreError(format!("{}: {what}", self.path.display()))
    }

    /// Reads the kept jobs into `empty` (a table with the limits to keep). No file: the table as
    /// given. Creates nothing.
    pub fn load(&self, mut empty: Jobs) -> Result<Loaded, StoreError> {
        let keep =
            "; the agent does not replace it: repair it, or move it away to start without its jobs";
        let text = powerstack_file::read_if_exists(&self.path, "job windows file", MAX_FILE_BYTES)
            .map_err(|e| StoreError(format!("{e}{keep}")))?;
        let Some(text) = text else {
            return Ok(Loaded { jobs: empty, stopped_cleanly: true });
        };
        let file: FileV1 = serde_json::from_str(&text)
            .map_err(|e| self.error(format!("malformed job windows ({e}){keep}")))?;
        if file.format != FORMAT {
            return Err(self.error(format!("format {:?} is not {FORMAT:?}{keep}", file.format)));
        }
        if file.node != self.node {
            return Err(self.error(format!(
                "holds the jobs of {}, not of this node, {}: give this agent its own --state-dir, or move the file away",
                file.node,
                self.node
            )));
        }
        for j in file.jobs {
            let bad_end = j.end_unix_us.is_some_and(|e| e < j.begin_unix_us);
            if check_id(&j.id).is_err() || bad_end {
                return Err(self.error(format!("malformed job {:?}{keep}", j.id)));
            }
            let window = JobWindow {
                id: j.id,
                user: j.user,
                app: j.app,
                begin_unix_us: j.begin_unix_us,
                end_unix_us: j.end_unix_us,
            };
            empty.insert_by(window, j.history, j.caller);
        }
        Ok(Loaded { jobs: empty, stopped_cleanly: file.stopped_cleanly })
    }

    /// Writes `jobs` atomically (creating the state directory if needed); `stopped_cleanly` says
    /// the agent stops now. The file as it was is untouched when this fails.
    pub fn save(&self, jobs: &Jobs, stopped_cleanly: bool) -> Result<(), StoreError> {
        let file = FileV1 {
            format: FORMAT.to_string(),
            node: self.node.clone(),
            stopped_cleanly,
            jobs: jobs
                .all()
                .into_iter()
                .map(|(w, h)| SavedJob {
                    id: w.id.clone(),
                    user: w.user.clone(),
                    app: w.app.clone(),
                    begin_unix_us: w.begin_unix_us,
                    end_unix_us: w.end_unix_us,
                    caller: jobs.caller(&w.id).map(str::to_string),
                    history: h.clone(),
                })
                .collect(),
        };
        let text = serde_json::to_vec(&file).map_err(|e| self.error(e))?;
        self.write_atomically(&text)
            .map_err(|e| self.error(format!("cannot save the job windows: {e}")))
    }

    fn write_atomically(&self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        powerstack_cap::state::write_atomically(&self.path, bytes, 0o600)
    }

    /// Whether the file exists.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId { hostname: "n1".into(), root: "/".into(), simulated: None }
    }

    #[test]
    fn jobs_and_their_histories_round_trip_and_the_clean_stop_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = JobsFile::new(dir.path(), node());
        let loaded = file.load(Jobs::default()).unwrap();
        assert!(loaded.jobs.is_empty() && loaded.stopped_cleanly);
        assert!(!file.exists(), "loading creates nothing");

        let mut jobs = Jobs::default();
        jobs.begin("a", Some("alice".into()), Some("lammps".into()), 10).unwrap();
        jobs.begin("b", None, None, 20).unwrap();
        jobs.end("b", 30).unwrap();
        let mut r = powerstack_api::job::JobResultV1::unanswered("n1", "b");
        r.energy_joules = 12.5;
        jobs.set_result("b", r.clone());
        file.save(&jobs, false).unwrap();
        let back = file.load(Jobs::default()).unwrap();
        assert!(!back.stopped_cleanly);
        assert_eq!(back.jobs.list(), jobs.list());
        assert_eq!(back.jobs.history("b").unwrap().result, Some(r));
        file.save(&jobs, true).unwrap();
        assert!(file.load(Jobs::default()).unwrap().stopped_cleanly);
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [JOBS_FILE], "no temporary file is left");
    }

    #[test]
    fn a_malformed_file_is_an_error_that_names_it_and_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = JobsFile::new(dir.path(), node());
        for bad in [
            "{\"format\": ",
            "[]",
            "{\"format\":\"powerstack.jobs.v9\",\"node\":{\"hostname\":\"n1\",\"root\":\"/\",\"simulated\":null},\"stopped_cleanly\":true,\"jobs\":[]}",
        ] {
            std::fs::write(file.path(), bad).unwrap();
            let e = file.load(Jobs::default()).unwrap_err().to_string();
            assert!(e.contains("jobs.json") && e.contains("move it away"), "{e}");
            assert_eq!(e.lines().count(), 1);
            assert_eq!(std::fs::read_to_string(file.path()).unwrap(), bad);
        }
        // A job that ends before it began.
        let mut jobs = Jobs::default();
        jobs.begin("a", None, None, 10).unwrap();
        file.save(&jobs, false).unwrap();
        let text = std::fs::read_to_string(file.path())
            .unwrap()
            .replace("\"end_unix_us\":null", "\"end_unix_us\":5");
        std::fs::write(file.path(), &text).unwrap();
        assert!(
            file.load(Jobs::default()).unwrap_err().to_string().contains("malformed job \"a\"")
        );
    }

    #[test]
    fn the_jobs_of_another_node_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = Jobs::default();
        jobs.begin("a", None, None, 10).unwrap();
        JobsFile::new(dir.path(), node()).save(&jobs, true).unwrap();
        let sim = NodeId { simulated: Some("intel-2s".into()), ..node() };
        let e = JobsFile::new(dir.path(), sim).load(Jobs::default()).unwrap_err().to_string();
        assert!(e.contains("not of this node") && e.contains("--state-dir"), "{e}");
    }

    #[test]
    fn a_file_that_cannot_be_written_leaves_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = JobsFile::new(dir.path(), node());
        let mut jobs = Jobs::default();
        jobs.begin("a", None, None, 10).unwrap();
        file.save(&jobs, false).unwrap();
        let before = std::fs::read_to_string(file.path()).unwrap();
        // The temporary file's name is taken by a directory: the write fails.
        std::fs::create_dir(dir.path().join(format!(".{JOBS_FILE}.{}.tmp", std::process::id())))
            .unwrap();
        jobs.begin("b", None, None, 20).unwrap();
        let e = file.save(&jobs, false).unwrap_err().to_string();
        assert!(e.contains("cannot save the job windows"), "{e}");
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), before);
    }
}
