use super::*;

fn register(started_unix_us: u64, columns: usize) -> StreamRegisterV1 {
    let column = powerstack_api::site::StreamDomainV1 {
        domain: "package".into(),
        index: 0,
        die: None,
        provider: "powercap".into(),
        joules_per_tick: 1e-6,
        read: true,
        limit_watts: None,
        max_power_watts: None,
    };
    StreamRegisterV1 {
        hostname: "n1".into(),
        simulated: None,
        started_unix_us,
        domains: vec![column; columns],
        topology: None,
        control_url: None,
    }
}

fn row(t: u64) -> Vec<u64> {
    vec![t, t * 10, t * 20]
}

/// The samples of every sealed batch, oldest first, as (stream, seq, times).
fn sealed(spool: &Spool) -> Vec<(String, u64, Vec<u64>)> {
    let mut out = Vec::new();
    for s in &spool.streams {
        for b in &s.sealed {
            let batch = spool.read(&s.id, b.seq).unwrap();
            assert_eq!(batch.seq, b.seq);
            assert_eq!(batch.samples.len() as u64, b.samples);
            out.push((s.id.clone(), b.seq, batch.samples.iter().map(|r| r[0]).collect()));
        }
    }
    out
}

const A: &str = "00000000000000aa";
const B: &str = "00000000000000bb";

#[test]
fn rows_are_appended_sealed_in_order_and_removed_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, notes) = Spool::open(dir.path()).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert!(spool.front().is_none());
    spool.begin(A, register(1, 2)).unwrap();
    assert_eq!(spool.current_id(), Some(A));
    for t in 1..=3 {
        spool.append(row(t)).unwrap();
    }
    assert_eq!(spool.open_rows(), 3);
    assert!(spool.seal_current().unwrap());
    assert!(!spool.seal_current().unwrap(), "nothing open: nothing sealed");
    spool.append(row(4)).unwrap();
    spool.seal_current().unwrap();
    assert_eq!(sealed(&spool), [(A.into(), 1, vec![1, 2, 3]), (A.into(), 2, vec![4])]);
    assert_eq!(spool.batches(), 2);
    let on_disk: u64 = walk(dir.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(spool.bytes(), on_disk);
    let front = spool.front().unwrap();
    assert_eq!((front.stream, front.batch.seq, front.register.started_unix_us), (A, 1, 1));
    assert_eq!(spool.delivered(A).unwrap(), 3);
    assert_eq!(spool.front().unwrap().batch.seq, 2);
    assert_eq!(spool.delivered(A).unwrap(), 1);
    assert!(spool.front().is_none());
    // The current stream stays (rows go on being appended to it).
    assert_eq!(spool.stream_ids(), [A]);
    assert!(dir.path().join(A).join(REGISTER_FILE).exists());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn an_open_batch_is_cut_at_the_most_samples_a_batch_may_carry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path()).unwrap();
    spool.begin(A, register(1, 2)).unwrap();
    let n = MAX_BATCH_SAMPLES as u64;
    for t in 1..=n + 1 {
        spool.append(row(t)).unwrap();
    }
    assert_eq!(spool.batches(), 1);
    assert_eq!(spool.open_rows(), 1);
    assert_eq!(spool.front().unwrap().batch.samples, n);
}

#[test]
fn a_restart_recovers_earlier_streams_oldest_first_and_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut spool, _) = Spool::open(dir.path()).unwrap();
        spool.begin(B, register(100, 2)).unwrap();
        spool.append(row(101)).unwrap();
        spool.seal_current().unwrap();
        spool.append(row(102)).unwrap();
        spool.append(row(103)).unwrap();
        // B ends (a column was read at last); A, begun later, is the current one.
        spool.begin(A, register(200, 2)).unwrap();
        spool.append(row(201)).unwrap();
        // Killed here: A's row is only in its open file, and half a row follows it.
    }
    let open = dir.path().join(A).join(OPEN_FILE);
    std::fs::OpenOptions::new().append(true).open(&open).unwrap().write_all(b"[202,20").unwrap();
    // A stream killed before its registration was written holds nothing.
    std::fs::create_dir(dir.path().join("00000000000000cc")).unwrap();
    let (spool, notes) = Spool::open(dir.path()).unwrap();
    assert_eq!(
        sealed(&spool),
        [(B.into(), 1, vec![101]), (B.into(), 2, vec![102, 103]), (A.into(), 1, vec![201])]
    );
    assert!(
        notes.iter().any(|n| n.contains("4 sample(s) in 3 batch(es) of 2 earlier stream(s)")),
        "{notes:?}"
    );
    assert_eq!(spool.current_id(), None);
    assert!(!open.exists());
    assert!(!dir.path().join("00000000000000cc").exists());
}

#[test]
fn a_crash_between_the_steps_of_a_seal_seals_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut spool, _) = Spool::open(dir.path()).unwrap();
        spool.begin(A, register(1, 2)).unwrap();
        for t in 1..=2 {
            spool.append(row(t)).unwrap();
        }
        spool.seal_current().unwrap();
        for t in 3..=4 {
            spool.append(row(t)).unwrap();
        }
    }
    // As if killed after batch 2's file was written, before `cut.json` and the open file's
    // truncation: rows 3 and 4 are in both.
    let d = dir.path().join(A);
    std::fs::write(d.join(batch_name(2)), r#"{"seq":2,"samples":[[3,30,60],[4,40,80]]}"#).unwrap();
    std::fs::write(d.join(".00000000000000000003.json.1.tmp"), "{").unwrap();
    let (mut spool, _) = Spool::open(dir.path()).unwrap();
    assert_eq!(sealed(&spool), [(A.into(), 1, vec![1, 2]), (A.into(), 2, vec![3, 4])]);
    assert!(!d.join(".00000000000000000003.json.1.tmp").exists());
    // Once everything is delivered, the stream (not current) is gone.
    spool.delivered(A).unwrap();
    spool.delivered(A).unwrap();
    assert!(spool.stream_ids().is_empty());
    assert!(!d.exists());
}

#[test]
fn a_stream_whose_batches_were_all_delivered_cuts_above_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut spool, _) = Spool::open(dir.path()).unwrap();
        spool.begin(A, register(1, 2)).unwrap();
        spool.append(row(1)).unwrap();
        spool.seal_current().unwrap();
        spool.delivered(A).unwrap();
        spool.append(row(2)).unwrap();
    }
    let (spool, _) = Spool::open(dir.path()).unwrap();
    assert_eq!(sealed(&spool), [(A.into(), 2, vec![2])]);
}

#[test]
fn bounds_drop_the_oldest_batches_and_count_their_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path()).unwrap();
    spool.begin(B, register(1, 2)).unwrap();
    for t in 1..=10u64 {
        spool.append(row(t)).unwrap();
        if t % 2 == 0 {
            spool.seal_current().unwrap();
        }
    }
    spool.begin(A, register(20, 2)).unwrap();
    spool.append(row(21)).unwrap();
    spool.seal_current().unwrap();
    assert_eq!(spool.batches(), 6);
    // Samples up to 4 are more than 10 µs older than 15.
    let (d, r) = spool.enforce(15, u64::MAX, 10);
    r.unwrap();
    assert_eq!(d, Dropped { bytes_samples: 0, age_samples: 4 });
    assert_eq!(sealed(&spool)[0], (B.into(), 3, vec![5, 6]));
    // Over the size: the oldest go until the rest fits.
    let fits = spool.bytes() - spool.front().unwrap().batch.bytes;
    let (d, r) = spool.enforce(15, fits, 1000);
    r.unwrap();
    assert_eq!(d, Dropped { bytes_samples: 2, age_samples: 0 });
    assert_eq!(sealed(&spool)[0], (B.into(), 4, vec![7, 8]));
    assert!(spool.bytes() <= fits);
    // Nothing sealed is left of B and A's one batch goes too; the current stream's files stay.
    let (d, r) = spool.enforce(15, 0, 1000);
    r.unwrap();
    assert_eq!(d.bytes_samples, 2 + 2 + 1);
    assert_eq!(spool.stream_ids(), [A]);
    assert!(!dir.path().join(B).exists());
    assert_eq!(spool.batches(), 0);
}

#[test]
fn refused_batches_are_moved_aside_and_only_the_newest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path()).unwrap();
    spool.begin(A, register(1, 2)).unwrap();
    let n = MAX_REJECTED_FILES as u64 + 2;
    for t in 1..=n {
        spool.append(row(t)).unwrap();
        spool.seal_current().unwrap();
    }
    assert_eq!(spool.set_aside(A).unwrap(), 1);
    assert_eq!(spool.front().unwrap().batch.seq, 2);
    let rejected = dir.path().join(REJECTED_DIR);
    assert!(rejected.join(format!("{A}-{}", batch_name(1))).exists());
    assert_eq!(spool.set_aside_stream(A).unwrap(), n - 1);
    assert_eq!(spool.batches(), 0);
    assert_eq!(std::fs::read_dir(&rejected).unwrap().count(), MAX_REJECTED_FILES);
    // A rejected directory is no stream.
    let (spool, _) = Spool::open(dir.path()).unwrap();
    assert!(spool.stream_ids().is_empty());
}

#[test]
fn a_renamed_stream_keeps_its_batches_and_its_open_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path()).unwrap();
    spool.begin(A, register(1, 2)).unwrap();
    spool.append(row(1)).unwrap();
    spool.seal_current().unwrap();
    spool.append(row(2)).unwrap();
    spool.rename(A, B).unwrap();
    assert_eq!(spool.current_id(), Some(B));
    spool.append(row(3)).unwrap();
    spool.seal_current().unwrap();
    assert_eq!(sealed(&spool), [(B.into(), 1, vec![1]), (B.into(), 2, vec![2, 3])]);
    assert!(!dir.path().join(A).exists());
}
