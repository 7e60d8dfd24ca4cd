//! The job table's rules: ids, marks, the full table, retention and restarts.

use super::*;

#[test]
fn ids_are_checked() {
    for ok in ["1", "f2Xy.3:step_1-a", &"a".repeat(128)] {
        assert_eq!(check_id(ok), Ok(()), "{ok}");
    }
    for bad in ["", "a b", "ƒ2Xy", "a/b", &"a".repeat(129)] {
        assert!(matches!(check_id(bad), Err(JobError::BadId { .. })), "{bad}");
    }
}

#[test]
fn begin_and_end_follow_the_rules() {
    let mut jobs = Jobs::default();
    let w = jobs.begin("j1", Some("alice".into()), None, 100).unwrap();
    assert!(w.is_running());
    assert!(matches!(
        jobs.begin("j1", None, None, 200),
        Err(JobError::AlreadyBegun { begin_unix_us: 100, .. })
    ));
    assert!(matches!(jobs.end("j1", 99), Err(JobError::EndBeforeBegin { .. })));
    assert_eq!(jobs.end("j1", 150).unwrap().end_unix_us, Some(150));
    let e = jobs.end("j1", 160).unwrap_err();
    assert_eq!(e, JobError::AlreadyEnded { id: "j1".into(), end_unix_us: 150 });
    assert!(e.to_string().contains("j1"));
    assert!(matches!(jobs.end("nope", 1), Err(JobError::Unknown { .. })));
    assert!(matches!(jobs.begin("j1", None, None, 200), Err(JobError::AlreadyBegun { .. })));
    assert!(matches!(
        jobs.begin("j2", Some("a\nb".into()), None, 1),
        Err(JobError::BadLabel { field: "user", .. })
    ));
    // Overlapping jobs, listed by begin time.
    jobs.begin("j0", None, Some("app".into()), 120).unwrap();
    jobs.begin("j3", None, None, 50).unwrap();
    let ids: Vec<&str> = jobs.list().iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["j3", "j1", "j0"]);
    assert_eq!(JobV1::from(jobs.get("j0").unwrap()).app.as_deref(), Some("app"));
}

#[test]
fn a_full_table_replaces_the_first_ended_job_or_refuses() {
    let mut jobs = Jobs::with_limit(2);
    jobs.begin("a", None, None, 1).unwrap();
    jobs.begin("b", None, None, 2).unwrap();
    assert!(matches!(jobs.begin("c", None, None, 3), Err(JobError::TooMany { max: 2, .. })));
    jobs.end("b", 5).unwrap();
    jobs.begin("c", None, None, 6).unwrap();
    assert!(jobs.get("b").is_none());
    assert_eq!(jobs.len(), 2);
}

#[test]
fn ended_jobs_are_kept_for_the_retention_by_count_and_by_age() {
    let mut jobs = Jobs::default().with_retention(2, 1000);
    jobs.begin("run", None, None, 0).unwrap();
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        let t = 10 * i as u64 + 1;
        jobs.begin(id, None, None, t).unwrap();
        jobs.end(id, t + 1).unwrap();
    }
    // Three ended, two kept (beyond the count, the one that ended first goes, when the
    // third ends); the running job stays whatever its age.
    assert!(jobs.get("a").is_none());
    jobs.begin("d", None, None, 40).unwrap();
    assert!(jobs.get("b").is_some() && jobs.get("c").is_some() && jobs.get("run").is_some());
    // An ended job is forgotten once it ended longer ago than the age limit.
    assert_eq!(jobs.forget_old(12 + 1000), 0);
    assert_eq!(jobs.forget_old(12 + 1001), 1);
    assert!(jobs.get("b").is_none() && jobs.get("c").is_some());
    assert_eq!(jobs.forget_old(u64::MAX), 1);
    assert!(jobs.get("run").is_some() && jobs.get("d").is_some());
}

#[test]
fn a_restart_gives_running_jobs_a_gap_from_where_their_figures_stop() {
    let mut jobs = Jobs::default();
    jobs.begin("old", None, None, 100).unwrap();
    jobs.begin("done", None, None, 100).unwrap();
    jobs.end("done", 150).unwrap();
    // A clean stop at 200: the part measured (from 100 to the last settled sample, 190) is
    // carried; the next start, at 250, adds the gap 190..250.
    jobs.carry(|w, from| {
        assert_eq!((w.id.as_str(), from), ("old", 100));
        JobResultV1 {
            result_start_time: 100,
            result_end_time: 190,
            data_presence: DataPresence::Complete,
            ..JobResultV1::unanswered("n", &w.id)
        }
    });
    jobs.resume(250, "agent restarted");
    let h = jobs.history("old").unwrap();
    assert_eq!(h.carried.len(), 1);
    assert_eq!((h.gaps[0].start_unix_us, h.gaps[0].end_unix_us), (190, 250));
    assert_eq!(h.part_begin_us(jobs.get("old").unwrap()), 250);
    assert_eq!(jobs.history("done").unwrap(), &JobHistory::default());
    // A crash (nothing carried) after a job began at 300: the gap runs from its beginning;
    // for the older job, from the start of the run that died.
    jobs.begin("new", None, None, 300).unwrap();
    jobs.resume(400, "agent killed or crashed");
    let gap = |id: &str| {
        let g = jobs.history(id).unwrap().gaps.last().unwrap().clone();
        (g.start_unix_us, g.end_unix_us)
    };
    assert_eq!(gap("new"), (300, 400));
    assert_eq!(gap("old"), (250, 400));
    // A part with no data is not carried.
    jobs.carry(|w, _| JobResultV1::unanswered("n", &w.id));
    assert_eq!(jobs.history("new").unwrap().carried.len(), 0);
    // At a stop, an ended job without a result gets one (once); running jobs do not.
    let measured = |w: &JobWindow, _: &JobHistory| JobResultV1 {
        data_presence: DataPresence::Complete,
        ..JobResultV1::unanswered("n", &w.id)
    };
    jobs.settle(measured);
    let kept = jobs.history("done").unwrap().result.clone().unwrap();
    assert_eq!(kept.data_presence, DataPresence::Complete);
    assert!(jobs.history("old").unwrap().result.is_none());
    jobs.settle(|_, _| panic!("measured again"));
}
