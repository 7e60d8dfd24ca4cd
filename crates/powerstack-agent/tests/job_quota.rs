//! The job table against one caller filling it: a quota of running jobs per caller, who began
//! each job kept in the job file (files written before that still load), and ended jobs aged out
//! so a table full of them never blocks a new job.

use powerstack_agent::job::store::{JOBS_FILE, JobsFile};
use powerstack_agent::job::{JobError, Jobs};
use powerstack_cap::state::NodeId;

fn node() -> NodeId {
    NodeId { hostname: "n1".into(), root: "/".into(), simulated: None }
}

#[test]
fn a_caller_past_its_quota_is_refused_and_others_are_not() {
    let mut jobs = Jobs::with_limit(10).with_caller_quota(2);
    jobs.begin_by("a1", None, None, Some("uid 1000"), 1).unwrap();
    jobs.begin_by("a2", None, None, Some("uid 1000"), 2).unwrap();
    let e = jobs.begin_by("a3", None, None, Some("uid 1000"), 3).unwrap_err();
    assert!(matches!(&e, JobError::CallerQuota { max: 2, .. }), "{e}");
    assert!(e.to_string().contains("uid 1000 has 2 running jobs") && !e.to_string().contains('\n'));
    assert!(jobs.get("a3").is_none(), "nothing was kept");
    jobs.begin_by("b1", None, None, Some("uid 1001"), 4).unwrap();
    jobs.begin_by("t1", None, None, Some("token"), 5).unwrap();
    // Ending one makes room; a job with no caller (kept by an older agent) counts for no one.
    jobs.end("a1", 6).unwrap();
    jobs.begin_by("a3", None, None, Some("uid 1000"), 7).unwrap();
    jobs.begin("old", None, None, 8).unwrap();
    assert_eq!(jobs.caller("a3"), Some("uid 1000"));
    assert_eq!(jobs.caller("old"), None);
}

#[test]
fn a_table_full_of_ended_jobs_forgets_the_oldest_first_and_never_blocks() {
    let mut jobs = Jobs::with_limit(3).with_retention(100, u64::MAX / 4);
    for (k, id) in ["x", "y", "z"].iter().enumerate() {
        let t = 10 * k as u64;
        jobs.begin_by(id, None, None, Some("uid 0"), t).unwrap();
    }
    // Ended in another order than begun: z first, then x, then y.
    jobs.end("z", 30).unwrap();
    jobs.end("x", 31).unwrap();
    jobs.end("y", 32).unwrap();
    jobs.begin_by("n1", None, None, Some("uid 0"), 40).unwrap();
    assert!(jobs.get("z").is_none() && jobs.get("x").is_some(), "the first ended goes first");
    jobs.begin_by("n2", None, None, Some("uid 0"), 41).unwrap();
    assert!(jobs.get("x").is_none() && jobs.get("y").is_some());
    jobs.begin_by("n3", None, None, Some("uid 0"), 42).unwrap();
    assert_eq!(jobs.len(), 3);
    // Full of running jobs: refused, naming what to do.
    let e = jobs.begin_by("n4", None, None, Some("uid 0"), 43).unwrap_err();
    assert!(matches!(e, JobError::TooMany { max: 3, .. }), "{e}");
}

#[test]
fn who_began_a_job_is_kept_in_the_job_file_and_older_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = JobsFile::new(dir.path(), node());
    let mut jobs = Jobs::default();
    jobs.begin_by("a", None, None, Some("uid 1000"), 10).unwrap();
    jobs.begin("b", None, None, 20).unwrap();
    file.save(&jobs, false).unwrap();
    let text = std::fs::read_to_string(dir.path().join(JOBS_FILE)).unwrap();
    assert!(text.contains(r#""caller":"uid 1000""#), "{text}");
    let back = file.load(Jobs::default().with_caller_quota(1)).unwrap().jobs;
    assert_eq!(back.caller("a"), Some("uid 1000"));
    assert_eq!(back.caller("b"), None);
    // The quota holds across a restart.
    let mut back = back;
    let e = back.begin_by("c", None, None, Some("uid 1000"), 30).unwrap_err();
    assert!(matches!(e, JobError::CallerQuota { .. }), "{e}");

    // A file written before callers were recorded loads; its jobs have none.
    let old = text.replace(r#""caller":"uid 1000","#, "");
    assert!(!old.contains("caller"), "{old}");
    std::fs::write(dir.path().join(JOBS_FILE), old).unwrap();
    let back = file.load(Jobs::default()).unwrap().jobs;
    assert_eq!(back.len(), 2);
    assert_eq!(back.caller("a"), None);
}
