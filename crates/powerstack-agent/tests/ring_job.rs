//! The ring and per-job figures against the simulator's exact energies: a simulated node sampled
//! at 100 Hz for 10 s of simulated time (no sleeping), its readings turned into rows as the
//! sampler does (the [`Recorder`], with pm_counters' readings placed by a [`Placer`]), and job
//! windows computed with [`job_result`].

use std::time::Duration;

use powerstack_agent::DomainMeta;
use powerstack_agent::job::{JobWindow, job_result};
use powerstack_agent::place::{Placed, Placer};
use powerstack_agent::record::Recorder;
use powerstack_agent::ring::Ring;
use powerstack_api::job::{DataPresence, JobResultV1};
use powerstack_hw::{Platform, Root, Selection, discover};
use powerstack_model::{DomainId, DomainKind, Measurement, Value};
use powerstack_sim::{LoadPattern, Profile, SimNode, SimOptions};
use proptest::prelude::*;

/// The peak window asked for: 1 s.
const PEAK_WINDOW_US: u64 = 1_000_000;
/// The sampling period: 100 Hz.
const STEP_US: u64 = 10_000;
const STEP: Duration = Duration::from_micros(STEP_US);
/// 10 s at 100 Hz.
const STEPS: usize = 1000;
const HOST: &str = "nid000001";

/// A simulated node, the platform reading it, and the ring the samples go to.
struct Rig {
    _dir: tempfile::TempDir,
    sim: SimNode,
    platform: Platform,
    metas: Vec<DomainMeta>,
    ring: Ring,
    recorder: Recorder,
    /// A placer per column (used for the stepped ones: pm_counters).
    placers: Vec<Placer>,
    slow: Vec<bool>,
    /// Every sample: its time and the simulator's true energy of each column, J.
    truth: Vec<(u64, Vec<f64>)>,
}

impl Rig {
    fn new(profile: Profile, pattern: LoadPattern, capacity: usize) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let opts = SimOptions { pattern, ..SimOptions::default() };
        let sim = SimNode::create(dir.path(), profile, opts).unwrap();
        let platform = discover(&Root::new(dir.path()), &Selection::Auto).platform;
        let metas: Vec<DomainMeta> = platform
            .catalog()
            .iter()
            .map(|info| {
                let joules_per_tick = match info.measurement {
                    Measurement::Energy(spec) => spec.joules_per_tick,
                    Measurement::Power => panic!("{}: the test expects energy counters", info.id),
                };
                DomainMeta { info: info.clone(), joules_per_tick }
            })
            .collect();
        let ring = Ring::new(capacity, metas.len());
        let slow: Vec<bool> = metas.iter().map(|m| m.info.provider == "pm_counters").collect();
        let recorder = Recorder::new(&slow);
        let placers = metas.iter().map(|_| Placer::new(100_000_000, 100_000_000)).collect();
        Rig { _dir: dir, sim, platform, metas, ring, recorder, placers, slow, truth: Vec::new() }
    }

    fn col(&self, id: DomainId) -> usize {
        self.metas.iter().position(|m| m.info.id == id).unwrap_or_else(|| panic!("no {id}"))
    }

    fn sample(&mut self) {
        let t = u64::try_from(self.sim.unix_us()).unwrap();
        let mono = self.sim.mono_ns();
        let snap = self.platform.sample_at(mono, self.sim.unix_us());
        for (c, v) in snap.values.iter().enumerate() {
            let ticks = match v {
                Value::Energy { total_ticks, .. } => Some(*total_ticks),
                _ => None,
            };
            if !self.slow[c] {
                self.recorder.set(c, ticks);
            } else {
                // Simulated monotonic and wall clocks advance together.
                let at = |m: u64| t - (mono - m) / 1000;
                match self.placers[c].observe(v, mono, mono) {
                    Some(Placed::New(a)) => self.recorder.anchor(c, at(a.mono_ns), a.ticks),
                    Some(Placed::Again(r)) => {
                        let again = r.anchors.iter().map(|a| (at(a.mono_ns), a.ticks)).collect();
                        self.recorder.redraw(c, at(r.from_mono_ns), again);
                    }
                    None => {}
                }
            }
        }
        self.recorder.push(&mut self.ring, t);
        let truth =
            self.metas.iter().map(|m| self.sim.true_energy_joules(m.info.id).unwrap()).collect();
        self.truth.push((t, truth));
    }

    /// Samples now, then `steps` times: advance 10 ms, sample.
    fn run(&mut self, steps: usize) {
        if self.truth.is_empty() {
            self.sample();
        }
        for _ in 0..steps {
            self.sim.advance(STEP).unwrap();
            self.sample();
        }
    }

    /// The time of sample `k` (0 = the first), µs.
    fn t(&self, k: usize) -> u64 {
        self.truth[0].0 + k as u64 * STEP_US
    }

    /// The true energy of column `c` at `t`: the simulator's power is constant over each step, so
    /// its energy is linear between samples.
    fn true_joules(&self, c: usize, t: u64) -> f64 {
        let i = self.truth.partition_point(|(ts, _)| *ts <= t).max(1) - 1;
        let (t0, e0) = (&self.truth[i].0, self.truth[i].1[c]);
        match self.truth.get(i + 1) {
            Some((t1, e1)) if t > *t0 => e0 + (e1[c] - e0) * (t - t0) as f64 / (t1 - t0) as f64,
            _ => e0,
        }
    }

    fn true_energy(&self, cols: &[usize], from: u64, to: u64) -> f64 {
        cols.iter().map(|&c| self.true_joules(c, to) - self.true_joules(c, from)).sum()
    }

    fn result(&self, begin: u64, end: Option<u64>, now: u64) -> JobResultV1 {
        let w = JobWindow {
            id: "job-1".into(),
            user: Some("alice".into()),
            app: None,
            begin_unix_us: begin,
            end_unix_us: end,
        };
        job_result(&self.ring, &self.metas, &w, now, HOST, PEAK_WINDOW_US)
    }

    /// The columns of the node figure, as the test knows each profile: psys on intel-2s, the node
    /// counter on cray-ex.
    fn node_cols(&self) -> Vec<usize> {
        match self.sim.profile() {
            Profile::Intel2s => vec![self.col(DomainId::new(DomainKind::Platform, 0))],
            Profile::CrayEx => vec![self.col(DomainId::NODE)],
            p => panic!("no node rule for {p:?} in this test"),
        }
    }

    /// Checks every figure of `r` against the truth over `from..to`, within `tol(true joules)`
    /// joules of energy.
    fn check(&self, r: &JobResultV1, from: u64, to: u64, tol: impl Fn(f64) -> f64) {
        assert_eq!((r.result_start_time, r.result_end_time), (from, to));
        let secs = (to - from) as f64 / 1e6;
        let e = self.true_energy(&self.node_cols(), from, to);
        assert!(
            (r.energy_joules - e).abs() <= tol(e),
            "node energy {} J, true {e} J",
            r.energy_joules
        );
        let p = e / secs;
        assert!(
            (r.node_power - p).abs() <= tol(e) / secs,
            "node power {} W, true {p} W",
            r.node_power
        );
        for (key, kind) in [
            ("cpu_power_", DomainKind::Package),
            ("mem_power_", DomainKind::Memory),
            ("gpu_power_", DomainKind::Gpu),
        ] {
            let indices: std::collections::BTreeSet<u32> = self
                .metas
                .iter()
                .filter(|m| m.info.id.kind == kind)
                .map(|m| m.info.id.index)
                .collect();
            for i in indices {
                let cols: Vec<usize> = (0..self.metas.len())
                    .filter(|&c| {
                        self.metas[c].info.id.kind == kind && self.metas[c].info.id.index == i
                    })
                    .collect();
                let e = self.true_energy(&cols, from, to);
                let got = r.domain_power[&format!("{key}{i}")];
                assert!(
                    (got - e / secs).abs() <= tol(e) / secs,
                    "{key}{i}: {got:.6} W, true {:.6} W over {from}..{to}: {:.3} J off",
                    e / secs,
                    (got - e / secs) * secs
                );
            }
        }
        let samples = self.truth.iter().filter(|(t, _)| (from..=to).contains(t)).count();
        assert_eq!(r.samples, samples as u64);
        assert!(
            r.peak_node_power >= r.node_power * (1.0 - 1e-9),
            "peak {} < mean {}",
            r.peak_node_power,
            r.node_power
        );
    }
}

/// 0.5% of the true energy (RAPL counters: µJ and 61 µJ ticks).
fn rapl(e: f64) -> f64 {
    e * 0.005
}

/// pm_counters count whole joules: two readings differ from the truth by less than 1 J.
fn pm(_e: f64) -> f64 {
    1.0
}

#[test]
fn a_job_on_intel_2s_has_the_true_energy_and_power_of_every_domain() {
    let mut rig = Rig::new(Profile::Intel2s, LoadPattern::Sine, 2000);
    rig.run(STEPS);
    let none = rig.result(0, Some(1), 1);
    let keys: Vec<&str> = none.domain_power.keys().map(String::as_str).collect();
    assert_eq!(keys, ["cpu_power_0", "cpu_power_1", "mem_power_0", "mem_power_1"]);
    // The whole 10 s, on samples.
    let (a, b) = (rig.t(0), rig.t(STEPS));
    let r = rig.result(a, Some(b), b);
    assert_eq!(r.data_presence, DataPresence::Complete);
    assert!(!r.running);
    assert_eq!(
        (r.hostname.as_str(), r.job_id.as_str(), r.user.as_deref()),
        (HOST, "job-1", Some("alice"))
    );
    rig.check(&r, a, b, rapl);
    assert_eq!(r.samples, STEPS as u64 + 1);
    // Edges between samples are interpolated.
    let (a, b) = (rig.t(150) + 3_300, rig.t(870) + 7_100);
    let r = rig.result(a, Some(b), rig.t(STEPS));
    assert_eq!(r.data_presence, DataPresence::Complete);
    rig.check(&r, a, b, rapl);
    // The load is a sine: the peak is above the mean.
    assert!(r.peak_node_power > r.node_power * 1.01, "{} vs {}", r.peak_node_power, r.node_power);
}

#[test]
fn a_job_on_cray_ex_is_right_within_the_pm_counters_joule() {
    let mut rig = Rig::new(Profile::CrayEx, LoadPattern::Steps, 2000);
    rig.run(STEPS);
    let r = rig.result(0, Some(1), 1);
    assert!(r.domain_power.contains_key("cpu_power_0"), "{:?}", r.domain_power);
    assert!(r.domain_power.contains_key("gpu_power_0"), "{:?}", r.domain_power);
    // pm_counters publish every 100 ms: windows on those boundaries.
    for (a, b) in [(0, STEPS), (100, 900), (250, 750)] {
        let (a, b) = (rig.t(a), rig.t(b));
        let r = rig.result(a, Some(b), b);
        assert_eq!(r.data_presence, DataPresence::Complete);
        rig.check(&r, a, b, pm);
    }
    // Between samples and between pm_counters updates: interpolated over the 100 ms runs of
    // the counters (the power is steady within each here).
    let (a, b) = (rig.t(123) + 4_000, rig.t(876) + 1_500);
    let r = rig.result(a, Some(b), rig.t(STEPS));
    rig.check(&r, a, b, pm);
    // 0.2 then 0.9 load every 5 s: the peak is the high step's power, well above the mean.
    let (a, b) = (rig.t(0), rig.t(STEPS));
    let r = rig.result(a, Some(b), b);
    let high = rig.true_energy(&rig.node_cols(), rig.t(600), rig.t(900)) / 3.0;
    assert!(r.peak_node_power > r.node_power * 1.2);
    // Counters that change every 100 ms in a 100 Hz ring: the peak is over 1 s, not over 10 ms
    // intervals (which would show 10 times the power, then nothing).
    assert_eq!(r.peak_window_s, 1.0);
    assert!(
        (r.peak_node_power - high).abs() <= high * 0.02,
        "peak {} vs {high}",
        r.peak_node_power
    );
}

#[test]
fn overlapping_jobs_share_samples_and_each_is_right() {
    let mut rig = Rig::new(Profile::Intel2s, LoadPattern::Steps, 2000);
    rig.run(STEPS);
    let now = rig.t(STEPS);
    let (a1, b1) = (rig.t(100) + 1_234, rig.t(700));
    let (a2, b2) = (rig.t(400), rig.t(950) + 5_000);
    let r1 = rig.result(a1, Some(b1), now);
    let r2 = rig.result(a2, Some(b2), now);
    rig.check(&r1, a1, b1, rapl);
    rig.check(&r2, a2, b2, rapl);
    // The high-load step (5 s on) is only in the second job's window: its mean is higher.
    assert!(r2.node_power > r1.node_power);
}

#[test]
fn a_job_that_began_before_the_oldest_sample_is_partial_over_what_is_kept() {
    // 300 samples: the ring keeps the last 2.99 s.
    let mut rig = Rig::new(Profile::Intel2s, LoadPattern::Sine, 300);
    rig.run(STEPS);
    assert_eq!(rig.ring.len(), 300);
    let oldest = rig.t(STEPS - 299);
    assert_eq!(rig.ring.oldest().unwrap().0, oldest);
    let end = rig.t(900) + 4_000;
    let r = rig.result(rig.t(100), Some(end), rig.t(STEPS));
    assert_eq!(r.data_presence, DataPresence::Partial);
    rig.check(&r, oldest, end, rapl);
}

#[test]
fn a_window_enclosing_the_whole_buffer_is_partial_not_none() {
    let mut rig = Rig::new(Profile::Intel2s, LoadPattern::Sine, 300);
    rig.run(STEPS);
    let (oldest, newest) = (rig.ring.oldest().unwrap().0, rig.ring.newest().unwrap().0);
    let r = rig.result(oldest - 5_000_000, Some(newest + 5_000_000), newest + 6_000_000);
    assert_eq!(r.data_presence, DataPresence::Partial);
    rig.check(&r, oldest, newest, rapl);
    assert_eq!(r.samples, 300);
}

#[test]
fn a_window_outside_the_buffer_is_none_with_no_figures() {
    let mut rig = Rig::new(Profile::Intel2s, LoadPattern::Steady, 300);
    rig.run(STEPS);
    let (oldest, newest) = (rig.ring.oldest().unwrap().0, rig.ring.newest().unwrap().0);
    for (a, b) in [(oldest - 2_000_000, oldest - 1), (newest + 1, newest + 1_000_000)] {
        let r = rig.result(a, Some(b), newest);
        assert_eq!(r.data_presence, DataPresence::None);
        assert_eq!((r.samples, r.result_start_time, r.result_end_time), (0, 0, 0));
        assert_eq!((r.node_power, r.energy_joules, r.peak_node_power), (-1.0, -1.0, -1.0));
        assert_eq!(r.domain_power.len(), 4);
        assert!(r.domain_power.values().all(|&v| v == -1.0), "{:?}", r.domain_power);
    }
    // An empty ring has nothing for any window.
    let empty = Ring::new(10, rig.metas.len());
    let w =
        JobWindow { id: "x".into(), user: None, app: None, begin_unix_us: 0, end_unix_us: None };
    let r = job_result(&empty, &rig.metas, &w, 5, HOST, PEAK_WINDOW_US);
    assert_eq!(r.data_presence, DataPresence::None);
}

#[test]
fn a_zero_length_job_has_no_energy_and_no_power() {
    let mut rig = Rig::new(Profile::Intel2s, LoadPattern::Steady, 100);
    rig.run(50);
    let t = rig.t(20) + 5_000;
    let r = rig.result(t, Some(t), rig.t(50));
    assert_eq!(r.data_presence, DataPresence::Complete);
    assert_eq!((r.energy_joules, r.node_power, r.peak_node_power, r.samples), (0.0, -1.0, -1.0, 0));
    assert!(r.domain_power.values().all(|&v| v == -1.0));
}

#[test]
fn a_counter_wrap_inside_a_job_keeps_its_energy_right() {
    let mut rig = Rig::new(Profile::Intel2s, LoadPattern::Steady, 2000);
    let pkg0 = DomainId::new(DomainKind::Package, 0);
    rig.sim.near_wrap(pkg0, 2.0).unwrap();
    let file = rig.sim.root().join("sys/class/powercap/intel-rapl:0/energy_uj");
    let raw = || std::fs::read_to_string(&file).unwrap().trim().parse::<u64>().unwrap();
    let before = raw();
    rig.run(STEPS);
    assert!(raw() < before, "package-0's counter did not wrap");
    let (a, b) = (rig.t(50) + 2_500, rig.t(600) + 500);
    let r = rig.result(a, Some(b), rig.t(STEPS));
    rig.check(&r, a, b, rapl);
    let c = rig.col(pkg0);
    let e = rig.true_energy(&[c], a, b);
    let secs = (b - a) as f64 / 1e6;
    assert!(r.domain_power["cpu_power_0"] * secs > 0.9 * e);
}

#[test]
fn a_running_job_reports_up_to_the_newest_sample() {
    let mut rig = Rig::new(Profile::CrayEx, LoadPattern::Sine, 2000);
    rig.run(500);
    let (a, newest) = (rig.t(200), rig.t(500));
    let r = rig.result(a, None, newest + 7_000);
    assert!(r.running);
    assert_eq!(r.data_presence, DataPresence::Complete);
    rig.check(&r, a, newest, pm);
    // Later, the same job covers more.
    rig.run(300);
    let r2 = rig.result(a, None, rig.t(800));
    assert_eq!(r2.result_end_time, rig.t(800));
    assert!(r2.energy_joules > r.energy_joules);
    assert!(r2.samples > r.samples);
}

/// Catalog entries for synthetic rings: kind, index and joules per tick of each column.
fn metas(columns: &[(DomainKind, u32, f64)]) -> Vec<DomainMeta> {
    columns
        .iter()
        .map(|&(kind, index, joules_per_tick)| DomainMeta {
            info: powerstack_model::DomainInfo {
                id: DomainId::new(kind, index),
                provider: "test",
                source: String::new(),
                measurement: Measurement::Energy(powerstack_model::CounterSpec::non_wrapping(
                    joules_per_tick,
                )),
                limits: vec![],
                socket: Some(index),
                label: None,
            },
            joules_per_tick,
        })
        .collect()
}

const T0: u64 = 1_795_000_000_000_000;

/// A ring of `n` samples 10 ms apart of three counters (package-0, package-1, memory-0, µJ) whose
/// increments cycle through 1, 2 and 3 J per interval times the column number plus one.
fn synthetic(n: usize) -> (Ring, Vec<DomainMeta>) {
    let metas = metas(&[
        (DomainKind::Package, 0, 1e-6),
        (DomainKind::Package, 1, 1e-6),
        (DomainKind::Memory, 0, 1e-6),
    ]);
    let mut ring = Ring::new(n, 3);
    let mut ticks = [1u64 << 40, 5, 0];
    for i in 0..n as u64 {
        if i > 0 {
            for (c, v) in ticks.iter_mut().enumerate() {
                *v += (i % 3 + 1) * (c as u64 + 1) * 1_000_000;
            }
        }
        ring.push(T0 + i * STEP_US, &ticks);
    }
    (ring, metas)
}

/// psys at 100 W (µJ, read at every sample) and two GPUs (mJ) whose counters are updated every
/// `every` samples (gpu-0 on multiples of `every`, gpu-1 half a period later) and whose readings
/// reach the recorder `late` samples after the update they carry, placed at it (as the slow
/// threads place them): gpu-0 draws 50 W, 150 W over intervals 501 to 600 (interval k: from
/// sample k - 1 to k); gpu-1 draws 30 W.
fn psys_and_gpus(every: u64, late: u64) -> (Ring, Vec<DomainMeta>) {
    let metas = metas(&[
        (DomainKind::Platform, 0, 1e-6),
        (DomainKind::Gpu, 0, 1e-3),
        (DomainKind::Gpu, 1, 1e-3),
    ]);
    let gpu0_mj = |k: u64| if (501..=600).contains(&k) { 1500 } else { 500 };
    let (mut e0, mut e1) = (0u64, 0u64);
    let mut recorder = Recorder::new(&[false, true, true]);
    let mut in_flight: Vec<(u64, usize, u64, u64)> = Vec::new();
    let mut ring = Ring::new(2000, 3);
    for i in 0..1000u64 {
        if i > 0 {
            e0 += gpu0_mj(i);
            e1 += 300;
        }
        let t = T0 + i * STEP_US;
        recorder.set(0, Some(i * 1_000_000));
        if i.is_multiple_of(every) {
            in_flight.push((i + late, 1, t, e0));
        }
        if (i + every / 2).is_multiple_of(every) {
            in_flight.push((i + late, 2, t, e1));
        }
        for &(_, c, at, v) in in_flight.iter().filter(|f| f.0 == i) {
            recorder.anchor(c, at, v);
        }
        in_flight.retain(|f| f.0 > i);
        recorder.push(&mut ring, t);
    }
    (ring, metas)
}

#[test]
fn slow_counters_drawn_through_their_placed_readings_give_exact_energy_and_a_true_peak() {
    for (every, late) in [(1, 0), (10, 0), (10, 3), (10, 30)] {
        let (ring, metas) = psys_and_gpus(every, late);
        let (a, b) = (T0 + 123 * STEP_US + 4_000, T0 + 876 * STEP_US + 1_500);
        let w = JobWindow {
            id: "g".into(),
            user: None,
            app: None,
            begin_unix_us: a,
            end_unix_us: Some(b),
        };
        let r = job_result(&ring, &metas, &w, b, HOST, PEAK_WINDOW_US);
        let secs = (b - a) as f64 / 1e6;
        // psys + the GPUs; gpu-0 draws 100 W more over one second.
        let e = 180.0 * secs + 100.0;
        let what = format!("every {every}, {late} late");
        assert!((r.energy_joules - e).abs() < 1e-6, "{what}: {} J vs {e} J", r.energy_joules);
        assert!((r.domain_power["gpu_power_0"] - (50.0 + 100.0 / secs)).abs() < 1e-9, "{what}");
        assert!((r.domain_power["gpu_power_1"] - 30.0).abs() < 1e-9, "{what}");
        // 100 + 150 + 30 W over the one second gpu-0 draws more, however rarely the GPU counters
        // are updated (read naively, a 10-sample update would look like 10 times the power over
        // one interval).
        assert!((r.peak_node_power - 280.0).abs() < 0.2, "{what}: peak {}", r.peak_node_power);
        assert_eq!(r.peak_window_s, 1.0);
        assert_eq!(r.samples, 876 - 123);
    }
}

#[test]
fn the_peak_of_a_steady_stepped_load_is_its_mean_and_of_a_square_wave_its_high_level() {
    // One node counter (J) updated every 100 ms in a 100 Hz ring: 400 W steady, then a square
    // wave of 300 W and 700 W alternating every 2 s.
    for square in [false, true] {
        let metas = metas(&[(DomainKind::Node, 0, 1.0)]);
        let mut recorder = Recorder::new(&[true]);
        let mut ring = Ring::new(5000, 1);
        let watts = |k: u64| match (square, (k / 200) % 2) {
            (false, _) => 400.0,
            (true, 0) => 300.0,
            (true, _) => 700.0,
        };
        let mut joules = 0.0f64;
        for k in 0..3000u64 {
            if k > 0 {
                joules += watts(k) * 0.01;
            }
            if k.is_multiple_of(10) {
                recorder.anchor(0, T0 + k * STEP_US, joules.floor() as u64);
            }
            recorder.push(&mut ring, T0 + k * STEP_US);
        }
        let (a, b) = (T0 + 150 * STEP_US + 3_000, T0 + 2750 * STEP_US);
        let w = JobWindow {
            id: "s".into(),
            user: None,
            app: None,
            begin_unix_us: a,
            end_unix_us: Some(b),
        };
        let r = job_result(&ring, &metas, &w, b, HOST, PEAK_WINDOW_US);
        if square {
            assert!((r.peak_node_power - 700.0).abs() < 0.02 * 700.0, "{}", r.peak_node_power);
        } else {
            assert!((r.node_power - 400.0).abs() < 0.01 * 400.0, "{}", r.node_power);
            assert!(
                r.peak_node_power <= 1.02 * r.node_power,
                "{} vs {}",
                r.peak_node_power,
                r.node_power
            );
        }
    }
}

#[test]
fn a_million_sample_ring_gives_exact_figures() {
    let n = 1_000_000;
    let (ring, metas) = synthetic(n);
    assert_eq!(ring.len(), n);
    let t0 = T0;
    // From 2.5 ms into interval 10 to 7.5 ms into interval n - 11.
    let (a, b) = (t0 + 10 * STEP_US + 2_500, t0 + (n as u64 - 11) * STEP_US + 7_500);
    let w = JobWindow {
        id: "big".into(),
        user: None,
        app: None,
        begin_unix_us: a,
        end_unix_us: Some(b),
    };
    let r = job_result(&ring, &metas, &w, b, HOST, PEAK_WINDOW_US);
    assert_eq!(r.data_presence, DataPresence::Complete);
    // Interval k (from sample k - 1 to k) adds (k % 3 + 1) J per unit, units 1 + 2 + 3 = 6.
    let per_unit = |k: u64| (k % 3 + 1) as f64;
    let mut unit = 0.75 * per_unit(11) + 0.75 * per_unit(n as u64 - 10);
    unit += (12..=n as u64 - 11).map(per_unit).sum::<f64>();
    let secs = (b - a) as f64 / 1e6;
    assert!(
        (r.energy_joules - 6.0 * unit).abs() < 1e-6 * unit,
        "{} vs {}",
        r.energy_joules,
        6.0 * unit
    );
    assert!((r.node_power - 6.0 * unit / secs).abs() < 1e-6);
    assert!((r.domain_power["cpu_power_0"] - unit / secs).abs() < 1e-6);
    assert!((r.domain_power["cpu_power_1"] - 2.0 * unit / secs).abs() < 1e-6);
    assert!((r.domain_power["mem_power_0"] - 3.0 * unit / secs).abs() < 1e-6);
    assert_eq!(r.domain_power["mem_power_1"], -1.0);
    // The highest second: 100 intervals, 33 whole cycles of 1 + 2 + 3 J per unit and one of 3 J.
    assert!((r.peak_node_power - 6.0 * (33.0 * 6.0 + 3.0)).abs() < 1e-6, "{}", r.peak_node_power);
    assert_eq!(r.samples, (n - 21) as u64);
}

proptest! {
    /// The ring holds the newest `capacity` samples in time order and finds times like a linear
    /// scan.
    #[test]
    fn the_ring_keeps_the_newest_samples_in_order(
        capacity in 1usize..40,
        domains in 0usize..4,
        gaps in proptest::collection::vec(0u64..5, 0..120),
        probe in 0u64..700,
    ) {
        let mut ring = Ring::new(capacity, domains);
        let mut model: std::collections::VecDeque<(u64, Vec<u64>)> = Default::default();
        let mut t = 100u64;
        for (k, gap) in gaps.iter().enumerate() {
            t += gap;
            let row: Vec<u64> = (0..domains).map(|c| (k * 10 + c) as u64).collect();
            ring.push(t, &row);
            model.push_back((t, row));
            if model.len() > capacity {
                model.pop_front();
            }
            prop_assert_eq!(ring.len(), model.len());
        }
        prop_assert_eq!(ring.capacity(), capacity);
        prop_assert_eq!(ring.is_empty(), model.is_empty());
        prop_assert_eq!(ring.bytes_per_sample(), 8 + 8 * domains);
        for (i, (t, row)) in model.iter().enumerate() {
            prop_assert_eq!(ring.get(i), Some((*t, &row[..])));
        }
        prop_assert_eq!(ring.get(model.len()), None);
        prop_assert_eq!(ring.oldest().map(|(t, _)| t), model.front().map(|(t, _)| *t));
        prop_assert_eq!(ring.newest().map(|(t, _)| t), model.back().map(|(t, _)| *t));
        let probe = probe % (t + 3);
        let first = model.iter().position(|(ts, _)| *ts >= probe);
        let last = model.iter().rposition(|(ts, _)| *ts <= probe);
        prop_assert_eq!(ring.first_at_or_after(probe), first);
        prop_assert_eq!(ring.last_at_or_before(probe), last);
        let until = probe + 7;
        let want: Vec<(u64, Vec<u64>)> =
            model.iter().filter(|(ts, _)| (probe..=until).contains(ts)).cloned().collect();
        let got: Vec<(u64, Vec<u64>)> =
            ring.samples_between(probe, until).map(|(t, r)| (t, r.to_vec())).collect();
        prop_assert_eq!(got, want);
    }
}
