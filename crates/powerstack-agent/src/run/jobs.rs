//! The job table across the agent's life: loaded at start, given gaps once sampling runs, and
//! kept at stop with what this run measured ([`crate::job::store`] is the file itself).

use std::sync::atomic::Ordering;

use powerstack_api::job::{GAP_CRASH, GAP_RESTART, JobResultV1};
use powerstack_cap::NodeId;

use crate::config::AgentConfig;
use crate::http::lock;
use crate::job::store::{JobsFile, Loaded, StoreError};
use crate::job::{JobWindow, Jobs, carry, job_result};
use crate::state::Shared;

/// At start, before anything else touches the state directory: the job file of the agent
/// configured by `config` on this node, and what it keeps.
pub fn open(config: &AgentConfig, node: NodeId) -> Result<(JobsFile, Loaded), StoreError> {
    let file = JobsFile::new(&config.state_dir, node);
    let loaded =
        file.load(Jobs::default().with_caller_quota(config.max_running_jobs_per_caller))?;
    Ok((file, loaded))
}

/// At start, once every column has its first sample: gives each running job the gap from where
/// its figures stop to that sample ([`GAP_RESTART`] when the agent before stopped cleanly, else
/// [`GAP_CRASH`]), and keeps the table (nothing is written when no job runs). Returns what to
/// tell the operator, if anything.
pub fn resume(shared: &Shared, stopped_cleanly: bool) -> Option<String> {
    let resume_us = match shared.settled_us.load(Ordering::Relaxed) {
        0 => shared.clock.now_unix_us(),
        t => t,
    };
    let mut jobs = lock(&shared.jobs);
    let running = jobs.list().iter().filter(|w| w.is_running()).count();
    if running == 0 {
        return None;
    }
    jobs.resume(resume_us, if stopped_cleanly { GAP_RESTART } else { GAP_CRASH });
    Some(match shared.save_jobs(&jobs) {
        Ok(()) => format!("{running} job(s) begun before this start run on, with a gap"),
        Err(e) => format!("{e}; job marks are refused until it can be written"),
    })
}

/// At stop, once the sampler has stopped: adds to each running job's history the figures of its
/// part measured by this run (up to the last settled sample), gives each ended job without a
/// result its figures now, and keeps the table, marked as stopped cleanly. Nothing is written
/// when there is no job and no file, nor by an agent that never `served` (it has changed no job,
/// and leaves the file as it found it).
pub fn keep_at_stop(shared: &Shared, served: bool) -> Result<(), StoreError> {
    let Some(file) = shared.jobs_file.as_ref().filter(|_| served) else { return Ok(()) };
    let mut jobs = lock(&shared.jobs);
    if jobs.is_empty() && !file.exists() {
        return Ok(());
    }
    let settled = shared.settled_us.load(Ordering::Relaxed);
    let (now, peak_window_us) = (shared.clock.now_unix_us(), shared.peak_window_us(None));
    let ring = lock(&shared.ring);
    jobs.carry(|w, from| {
        if settled <= from {
            return JobResultV1::unanswered(&shared.hostname, &w.id);
        }
        let part = JobWindow { begin_unix_us: from, end_unix_us: Some(settled), ..w.clone() };
        job_result(&ring, &shared.domains, &part, now, &shared.hostname, peak_window_us)
    });
    jobs.settle(|w, h| carry::measure(&shared.job_view(), &ring, w, h, peak_window_us));
    file.save(&jobs, true)
}
