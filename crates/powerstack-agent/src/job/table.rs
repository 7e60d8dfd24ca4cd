//! The job table: windows marked at their beginning and end, ids and labels checked, and each
//! job's history (parts measured before an agent restart, gaps, its result at the end), with a
//! bounded retention of ended jobs.

use std::collections::BTreeMap;

use powerstack_api::job::{DataPresence, JobGapV1, JobResultV1, JobV1};
use serde::{Deserialize, Serialize};

/// The longest job id, in characters.
pub const MAX_ID_LEN: usize = 128;
/// The longest `user` or `app` label, in characters.
pub const MAX_LABEL_LEN: usize = 256;
/// How many job windows [`Jobs::default`] keeps; beyond that, a new job replaces the ended job
/// that ended first.
pub const MAX_JOBS: usize = 10_000;
/// How many running jobs [`Jobs::default`] lets one caller have begun (the agent's
/// `max_running_jobs_per_caller`): one caller cannot fill the table and block the others.
pub const DEFAULT_MAX_RUNNING_PER_CALLER: usize = 1000;

/// One job's time window on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobWindow {
    /// The job's id: 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 . _ : -`.
    pub id: String,
    /// Who the job belongs to, when the job mark said.
    pub user: Option<String>,
    /// The job's application, when the job mark said.
    pub app: Option<String>,
    /// When the job began, µs since the Unix epoch.
    pub begin_unix_us: u64,
    /// When the job ended, µs since the Unix epoch; `None` while it runs.
    pub end_unix_us: Option<u64>,
}

impl JobWindow {
    /// Whether the job has not ended.
    pub fn is_running(&self) -> bool {
        self.end_unix_us.is_none()
    }
}

impl From<&JobWindow> for JobV1 {
    fn from(w: &JobWindow) -> JobV1 {
        JobV1 {
            id: w.id.clone(),
            user: w.user.clone(),
            app: w.app.clone(),
            begin_unix_us: w.begin_unix_us,
            end_unix_us: w.end_unix_us,
        }
    }
}

/// Why a job mark was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The id is empty, too long, or has a character outside `A-Z a-z 0-9 . _ : -` (`id` holds at
    /// most its first 40 characters).
    #[error("bad job id {id:?}: use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'")]
    BadId {
        /// The id (shortened).
        id: String,
    },
    /// A `user` or `app` label is too long or holds a control character.
    #[error("job {id}: bad {field}: use at most 256 characters and no control characters")]
    BadLabel {
        /// The job's id.
        id: String,
        /// `user` or `app`.
        field: &'static str,
    },
    /// A job with this id is already known (running or ended).
    #[error("job {id} has already begun (at {begin_unix_us} µs since the epoch): use another id")]
    AlreadyBegun {
        /// The job's id.
        id: String,
        /// When the known job began, µs since the Unix epoch.
        begin_unix_us: u64,
    },
    /// No job has this id (never begun, or forgotten).
    #[error("job {id} is unknown: begin it first")]
    Unknown {
        /// The job's id.
        id: String,
    },
    /// The job has already ended.
    #[error("job {id} has already ended (at {end_unix_us} µs since the epoch)")]
    AlreadyEnded {
        /// The job's id.
        id: String,
        /// When it ended, µs since the Unix epoch.
        end_unix_us: u64,
    },
    /// The end mark is earlier than the beginning.
    #[error(
        "job {id} cannot end at {end_unix_us} µs since the epoch, before it began ({begin_unix_us} µs)"
    )]
    EndBeforeBegin {
        /// The job's id.
        id: String,
        /// When it began, µs since the Unix epoch.
        begin_unix_us: u64,
        /// The refused end, µs since the Unix epoch.
        end_unix_us: u64,
    },
    /// The caller has begun as many running jobs as one caller may.
    #[error(
        "job {id}: {caller} has {max} running jobs already, the most one caller may begin: end some first"
    )]
    CallerQuota {
        /// The refused job's id.
        id: String,
        /// Who began them (`uid N`, `token`).
        caller: String,
        /// The most running jobs one caller may have begun.
        max: usize,
    },
    /// The job table is full of running jobs.
    #[error("job {id}: {max} jobs are running already: end some first")]
    TooMany {
        /// The refused job's id.
        id: String,
        /// The most jobs kept.
        max: usize,
    },
}

/// Longest window of a job's peak power, ms (an hour).
pub const MAX_PEAK_WINDOW_MS: u64 = 3_600_000;

/// Parses a peak window as people type it (`2s`, `500ms`), µs: 1 ms to [`MAX_PEAK_WINDOW_MS`]
/// (an hour). The agent's query parameter and the client's
/// `--peak-window` both take it so.
pub fn parse_peak_window_us(text: &str) -> Result<u64, String> {
    let d = powerstack_model::duration::parse_duration(text).map_err(|e| e.to_string())?;
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if !(1000..=MAX_PEAK_WINDOW_MS * 1000).contains(&us) {
        return Err(format!("{text:?} is out of range: give 1ms to 1h"));
    }
    Ok(us)
}

/// Checks a job id: 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 . _ : -`.
pub fn check_id(id: &str) -> Result<(), JobError> {
    // The one rule, shared with the site and the clients.
    if powerstack_api::site::is_job_id(id) {
        Ok(())
    } else {
        Err(JobError::BadId { id: id.chars().take(40).collect() })
    }
}

fn check_label(id: &str, field: &'static str, label: Option<&str>) -> Result<(), JobError> {
    match label {
        Some(l) if l.chars().count() > MAX_LABEL_LEN || l.chars().any(char::is_control) => {
            Err(JobError::BadLabel { id: id.to_string(), field })
        }
        _ => Ok(()),
    }
}

/// How many ended jobs [`Jobs::default`] keeps (windows and results); beyond that, the job that
/// ended first is forgotten.
pub const MAX_ENDED_JOBS: usize = 1000;
/// How long [`Jobs::default`] keeps an ended job after its end, µs (7 days).
pub const ENDED_RETENTION_US: u64 = 7 * 24 * 3600 * 1_000_000;

/// What a job's figures need besides its window, kept with it (and in the state directory): the
/// parts measured by earlier runs of the agent, the gaps between them, and the result answered
/// at its end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobHistory {
    /// The figures of the parts of the window measured by earlier runs of the agent (each saved
    /// when that run stopped), oldest first.
    #[serde(default)]
    pub carried: Vec<JobResultV1>,
    /// Where the agent was not running while the job ran, oldest first.
    #[serde(default)]
    pub gaps: Vec<JobGapV1>,
    /// The result answered at the job's end: what a later query answers, after the ring has let
    /// the window go or the agent has restarted.
    #[serde(default)]
    pub result: Option<JobResultV1>,
}

impl JobHistory {
    /// Where the part of `window` measured by this run of the agent begins: after the last part
    /// carried and the last gap, else at the job's beginning.
    pub fn part_begin_us(&self, window: &JobWindow) -> u64 {
        let carried = self.carried.iter().map(|r| r.result_end_time);
        let gaps = self.gaps.iter().map(|g| g.end_unix_us);
        carried.chain(gaps).fold(window.begin_unix_us, u64::max)
    }
}

/// One kept job.
#[derive(Clone, Debug)]
struct Kept {
    window: JobWindow,
    history: JobHistory,
    /// Who began the job (`uid N` on the socket, `token` over TCP); `None` for a job kept by an
    /// agent that did not record it.
    caller: Option<String>,
}

/// The job windows of this node, by id, with their histories.
#[derive(Clone, Debug)]
pub struct Jobs {
    jobs: BTreeMap<String, Kept>,
    max_jobs: usize,
    max_ended: usize,
    retention_us: u64,
    max_running_per_caller: usize,
}

impl Default for Jobs {
    fn default() -> Jobs {
        Jobs::with_limit(MAX_JOBS)
    }
}

impl Jobs {
    /// An empty table keeping at most `max_jobs` windows (at least one): when full, a new job
    /// replaces the ended job that ended first; when every kept job runs, it is refused. Ended
    /// jobs are kept as [`Jobs::default`] keeps them ([`MAX_ENDED_JOBS`],
    /// [`ENDED_RETENTION_US`]).
    pub fn with_limit(max_jobs: usize) -> Jobs {
        Jobs {
            jobs: BTreeMap::new(),
            max_jobs: max_jobs.max(1),
            max_ended: MAX_ENDED_JOBS,
            retention_us: ENDED_RETENTION_US,
            max_running_per_caller: DEFAULT_MAX_RUNNING_PER_CALLER,
        }
    }

    /// This table letting one caller have at most `max` running jobs (at least one).
    pub fn with_caller_quota(mut self, max: usize) -> Jobs {
        self.max_running_per_caller = max.max(1);
        self
    }

    /// This table keeping at most `max_ended` ended jobs, each for at most `retention_us` after
    /// its end.
    pub fn with_retention(mut self, max_ended: usize, retention_us: u64) -> Jobs {
        self.max_ended = max_ended;
        self.retention_us = retention_us;
        self
    }

    /// Marks the beginning of job `id` at `at_us` (µs since the Unix epoch), by no caller in
    /// particular: [`Jobs::begin_by`] with no caller.
    pub fn begin(
        &mut self,
        id: &str,
        user: Option<String>,
        app: Option<String>,
        at_us: u64,
    ) -> Result<&JobWindow, JobError> {
        self.begin_by(id, user, app, None, at_us)
    }

    /// Marks the beginning of job `id` at `at_us` (µs since the Unix epoch) by `caller` (kept
    /// with the job). Ended jobs past the retention are forgotten first; when the table is full,
    /// the ended job that ended first is forgotten to make room.
    ///
    /// Refused when the id is malformed ([`JobError::BadId`]), a label is
    /// ([`JobError::BadLabel`]), a job with this id is known ([`JobError::AlreadyBegun`]), the
    /// caller has its quota of running jobs ([`JobError::CallerQuota`]), or the table is full of
    /// running jobs ([`JobError::TooMany`]).
    pub fn begin_by(
        &mut self,
        id: &str,
        user: Option<String>,
        app: Option<String>,
        caller: Option<&str>,
        at_us: u64,
    ) -> Result<&JobWindow, JobError> {
        check_id(id)?;
        check_label(id, "user", user.as_deref())?;
        check_label(id, "app", app.as_deref())?;
        if let Some(known) = self.jobs.get(id) {
            return Err(JobError::AlreadyBegun {
                id: id.to_string(),
                begin_unix_us: known.window.begin_unix_us,
            });
        }
        if let Some(caller) = caller {
            let running = self
                .jobs
                .values()
                .filter(|k| k.window.is_running() && k.caller.as_deref() == Some(caller))
                .count();
            if running >= self.max_running_per_caller {
                return Err(JobError::CallerQuota {
                    id: id.to_string(),
                    caller: caller.to_string(),
                    max: self.max_running_per_caller,
                });
            }
        }
        self.forget_old(at_us);
        if self.jobs.len() >= self.max_jobs {
            match self.ended_first().into_iter().next() {
                Some(old) => {
                    self.jobs.remove(&old);
                }
                None => {
                    return Err(JobError::TooMany { id: id.to_string(), max: self.max_jobs });
                }
            }
        }
        let window =
            JobWindow { id: id.to_string(), user, app, begin_unix_us: at_us, end_unix_us: None };
        let kept =
            Kept { window, history: JobHistory::default(), caller: caller.map(str::to_string) };
        Ok(&self.jobs.entry(id.to_string()).or_insert(kept).window)
    }

    /// Marks the end of job `id` at `at_us` (µs since the Unix epoch). Ended jobs past the
    /// retention are forgotten first.
    ///
    /// Refused when the id is malformed ([`JobError::BadId`]), no such job is known
    /// ([`JobError::Unknown`]), it has ended ([`JobError::AlreadyEnded`]), or `at_us` is before
    /// its beginning ([`JobError::EndBeforeBegin`]).
    pub fn end(&mut self, id: &str, at_us: u64) -> Result<&JobWindow, JobError> {
        check_id(id)?;
        let Some(job) = self.jobs.get_mut(id).map(|k| &mut k.window) else {
            return Err(JobError::Unknown { id: id.to_string() });
        };
        if let Some(end_unix_us) = job.end_unix_us {
            return Err(JobError::AlreadyEnded { id: id.to_string(), end_unix_us });
        }
        if at_us < job.begin_unix_us {
            return Err(JobError::EndBeforeBegin {
                id: id.to_string(),
                begin_unix_us: job.begin_unix_us,
                end_unix_us: at_us,
            });
        }
        job.end_unix_us = Some(at_us);
        self.forget(at_us, Some(id));
        self.get(id).ok_or_else(|| JobError::Unknown { id: id.to_string() })
    }

    /// The ids of the ended jobs, the one that ended first first.
    fn ended_first(&self) -> Vec<String> {
        let mut ended: Vec<(u64, &String)> =
            self.jobs.iter().filter_map(|(id, k)| Some((k.window.end_unix_us?, id))).collect();
        ended.sort();
        ended.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// Forgets the ended jobs past the retention at `now_us`: those that ended longer than its
    /// age ago, then the ones that ended first beyond its count. Returns how many.
    pub fn forget_old(&mut self, now_us: u64) -> usize {
        self.forget(now_us, None)
    }

    /// [`Jobs::forget_old`], never forgetting job `keep` (the one just ended).
    fn forget(&mut self, now_us: u64, keep: Option<&str>) -> usize {
        let before = self.jobs.len();
        let retention_us = self.retention_us;
        self.jobs.retain(|id, k| {
            Some(id.as_str()) == keep
                || k.window.end_unix_us.is_none_or(|e| e.saturating_add(retention_us) >= now_us)
        });
        let mut ended = self.ended_first();
        ended.retain(|id| Some(id.as_str()) != keep);
        let excess =
            ended.len().saturating_sub(self.max_ended.saturating_sub(usize::from(keep.is_some())));
        for id in &ended[..excess] {
            self.jobs.remove(id);
        }
        before - self.jobs.len()
    }

    /// The job with this id.
    pub fn get(&self, id: &str) -> Option<&JobWindow> {
        self.jobs.get(id).map(|k| &k.window)
    }

    /// Who began the job with this id, when that was recorded.
    pub fn caller(&self, id: &str) -> Option<&str> {
        self.jobs.get(id)?.caller.as_deref()
    }

    /// The history of the job with this id.
    pub fn history(&self, id: &str) -> Option<&JobHistory> {
        self.jobs.get(id).map(|k| &k.history)
    }

    /// Keeps `result` as the result of job `id` (answered at its end); false when no such job
    /// is known.
    pub fn set_result(&mut self, id: &str, result: JobResultV1) -> bool {
        match self.jobs.get_mut(id) {
            Some(k) => {
                k.history.result = Some(result);
                true
            }
            None => false,
        }
    }

    /// Every job, by begin time (then id).
    pub fn list(&self) -> Vec<&JobWindow> {
        self.all().into_iter().map(|(w, _)| w).collect()
    }

    /// Every job with its history, by begin time (then id).
    pub fn all(&self) -> Vec<(&JobWindow, &JobHistory)> {
        let mut all: Vec<(&JobWindow, &JobHistory)> =
            self.jobs.values().map(|k| (&k.window, &k.history)).collect();
        all.sort_by(|(a, _), (b, _)| (a.begin_unix_us, &a.id).cmp(&(b.begin_unix_us, &b.id)));
        all
    }

    /// Adds a job as it was kept (loaded from the state directory); a job with the same id is
    /// replaced.
    pub fn insert(&mut self, window: JobWindow, history: JobHistory) {
        self.insert_by(window, history, None);
    }

    /// [`Jobs::insert`], with who began the job.
    pub fn insert_by(&mut self, window: JobWindow, history: JobHistory, caller: Option<String>) {
        self.jobs.insert(window.id.clone(), Kept { window, history, caller });
    }

    /// At a stop: adds to each running job's history the figures `measure` gives of the part
    /// measured by this run of the agent (`measure(window, part_begin_us)`; a part with no data
    /// is not kept).
    pub fn carry(&mut self, mut measure: impl FnMut(&JobWindow, u64) -> JobResultV1) {
        for k in self.jobs.values_mut().filter(|k| k.window.is_running()) {
            let r = measure(&k.window, k.history.part_begin_us(&k.window));
            if r.data_presence != DataPresence::None {
                k.history.carried.push(r);
            }
        }
    }

    /// At a stop: keeps as the result of each ended job that has none yet (its end was answered
    /// before every column had settled) what `measure` gives now (`measure(window, history)`; a
    /// result with no data is not kept).
    pub fn settle(&mut self, mut measure: impl FnMut(&JobWindow, &JobHistory) -> JobResultV1) {
        for k in self.jobs.values_mut() {
            if k.window.is_running() || k.history.result.is_some() {
                continue;
            }
            let r = measure(&k.window, &k.history);
            if r.data_presence != DataPresence::None {
                k.history.result = Some(r);
            }
        }
    }

    /// At a start: adds to each running job the gap from where its figures stop to `resume_us`
    /// (the first sample of this run), caused as `cause` says ([`powerstack_api::job::GAP_RESTART`]
    /// after a clean stop, else [`powerstack_api::job::GAP_CRASH`]).
    pub fn resume(&mut self, resume_us: u64, cause: &str) {
        for k in self.jobs.values_mut().filter(|k| k.window.is_running()) {
            let start = k.history.part_begin_us(&k.window);
            if start < resume_us {
                k.history.gaps.push(JobGapV1 {
                    start_unix_us: start,
                    end_unix_us: resume_us,
                    cause: cause.to_string(),
                });
            }
        }
    }

    /// Jobs known.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is known.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

#[cfg(test)]
mod tests;
