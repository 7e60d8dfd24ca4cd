//! The sampler in real time against the simulator's truth: a simulated node animated by a thread
//! of this test (its exact energies recorded at every step, on the same monotonic clock the agent
//! uses), the agent's sampler threads reading it, and job figures compared with that truth.
//!
//! Wall-clock waits are only for the node to run; no assertion is on a duration.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use powerstack_agent::job::{JobWindow, job_result};
use powerstack_agent::sampler::{self, Sampler, Sources};
use powerstack_agent::{DomainMeta, Shared};
use powerstack_api::job::JobResultV1;
use powerstack_hw::{
    DiscoverOptions, Platform, Provider, Root, Selection, discover_with, platform,
};
use powerstack_model::power::node_parts;
use powerstack_model::{DomainId, DomainKind};
use powerstack_sim::{Profile, SimNode, SimOptions};

/// The simulator's exact energy of each ring column, J, at a monotonic time (ns).
type Truth = Arc<Mutex<Vec<(u64, Vec<f64>)>>>;

/// A simulated node animated in real time, and an agent's sampler reading it.
struct Live {
    _dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    sim: Option<JoinHandle<()>>,
    sampler: Option<Sampler>,
    truth: Truth,
    /// The load to set (`f64` bits), read by the simulator's thread at every step.
    load: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl Live {
    /// Creates `profile` with `opts`, animates it every 2 ms, and starts a sampler at `rate_hz`
    /// over its providers, each passed through `wrap` first (to inject faults).
    fn start(
        profile: Profile,
        opts: SimOptions,
        rate_hz: f64,
        wrap: impl Fn(Box<dyn Provider>) -> Box<dyn Provider>,
    ) -> Live {
        let dir = tempfile::tempdir().unwrap();
        let load = Arc::new(AtomicU64::new(opts.load.to_bits()));
        let mut sim = SimNode::create(dir.path(), profile, opts).unwrap();
        let root = Root::new(dir.path());
        let found = discover_with(&root, &Selection::Auto, &DiscoverOptions::default());
        let providers = found.platform.into_providers().into_iter().map(wrap).collect();
        let (platform, _) = Platform::new(providers);
        let (sources, warnings) = Sources::new(platform);
        assert!(warnings.is_empty(), "{warnings:?}");
        let ids: Vec<DomainId> = sources.domains.iter().map(|d| d.info.id).collect();
        let shared = Arc::new(Shared::new(
            "live".into(),
            Some(profile.as_str().into()),
            sources.domains.clone(),
            rate_hz,
            200_000,
            1_000_000,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let truth: Truth = Arc::default();
        let animate = {
            let (stop, truth, load) = (stop.clone(), truth.clone(), load.clone());
            std::thread::spawn(move || {
                let mut last = Instant::now();
                let mut set = f64::NAN;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(2));
                    let l = f64::from_bits(load.load(Ordering::Relaxed));
                    if l != set {
                        sim.set_load(l);
                        set = l;
                    }
                    let now = Instant::now();
                    sim.advance(now - last).unwrap();
                    last = now;
                    let e = ids.iter().map(|id| sim.true_energy_joules(*id).unwrap_or(0.0));
                    truth.lock().unwrap().push((platform::mono_ns(), e.collect()));
                }
            })
        };
        // The truth begins before the first sample.
        let deadline = Instant::now() + Duration::from_secs(5);
        while truth.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the simulator did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        let sampler = sampler::start(sources, shared.clone(), rate_hz, stop.clone()).unwrap();
        let live = Live {
            _dir: dir,
            stop,
            sim: Some(animate),
            sampler: Some(sampler),
            truth,
            load,
            shared,
        };
        live.wait_settled(live.now_us());
        live
    }

    fn now_us(&self) -> u64 {
        self.shared.clock.now_unix_us()
    }

    fn set_load(&self, load: f64) {
        self.load.store(load.to_bits(), Ordering::Relaxed);
    }

    /// Waits until every column is final up to `t_us` (at most 5 s).
    fn wait_settled(&self, t_us: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.settled_us.load(Ordering::Relaxed) < t_us {
            assert!(Instant::now() < deadline, "the columns did not settle");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The job over `begin..end` (µs since the epoch), once its columns have settled.
    fn job(&self, begin: u64, end: u64) -> JobResultV1 {
        self.wait_settled(end);
        let w = JobWindow {
            id: "j".into(),
            user: None,
            app: None,
            begin_unix_us: begin,
            end_unix_us: Some(end),
        };
        let ring = self.shared.ring.lock().unwrap();
        let peak = self.shared.peak_window_us(None);
        job_result(&ring, &self.shared.domains, &w, self.now_us(), "live", peak)
    }

    /// Runs a job of `seconds` from now.
    fn run_job(&self, seconds: f64) -> JobResultV1 {
        let begin = self.now_us();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        self.job(begin, self.now_us())
    }

    fn domains(&self) -> &[DomainMeta] {
        &self.shared.domains
    }

    /// The true energy of columns `cols` over the µs window `a..b` (interpolated between the
    /// simulator's steps, over which its power is constant).
    fn true_joules(&self, cols: &[usize], a: u64, b: u64) -> f64 {
        let clock = self.shared.clock;
        let mono = |unix: u64| clock.anchor_mono_ns + (unix - clock.anchor_unix_us) * 1000;
        // The simulator's thread may lag behind: wait for its step past `b`.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.truth.lock().unwrap().last().is_none_or(|l| l.0 <= mono(b)) {
            assert!(Instant::now() < deadline, "the simulator stopped");
            std::thread::sleep(Duration::from_millis(2));
        }
        let truth = self.truth.lock().unwrap();
        let at = |t: u64, c: usize| -> f64 {
            let i = truth.partition_point(|(ts, _)| *ts <= t);
            assert!(i > 0 && i < truth.len(), "no truth around {t}");
            let ((t0, e0), (t1, e1)) = (&truth[i - 1], &truth[i]);
            e0[c] + (e1[c] - e0[c]) * (t - t0) as f64 / (t1 - t0) as f64
        };
        cols.iter().map(|&c| at(mono(b), c) - at(mono(a), c)).sum()
    }

    /// The longest time between two simulator steps within the µs window `a..b`, ms: how late
    /// the simulated hardware's files could be.
    fn longest_step_ms(&self, a: u64, b: u64) -> f64 {
        let clock = self.shared.clock;
        let mono = |unix: u64| clock.anchor_mono_ns + (unix - clock.anchor_unix_us) * 1000;
        let truth = self.truth.lock().unwrap();
        let steps = truth.windows(2).filter(|w| w[1].0 >= mono(a) && w[0].0 <= mono(b));
        steps.map(|w| (w[1].0 - w[0].0) as f64 / 1e6).fold(0.0, f64::max)
    }

    /// The columns of the node figure.
    fn node_cols(&self) -> Vec<usize> {
        let kinds: Vec<DomainKind> = self.domains().iter().map(|d| d.info.id.kind).collect();
        node_parts(&kinds)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.sampler.take() {
            s.join();
        }
        if let Some(t) = self.sim.take() {
            let _ = t.join();
        }
    }
}

/// How far `got` is from `want`, relative.
fn off(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

#[test]
fn on_every_profile_under_steady_load_the_energy_is_true_and_the_peak_is_the_mean() {
    // Two nodes at a time: each simulator must keep its files current (a simulator thread
    // starved for 20 ms is hardware 20 ms late, which no reader can correct).
    for pair in Profile::ALL.chunks(2) {
        let runs: Vec<_> = pair
            .iter()
            .map(|&profile| {
                std::thread::spawn(move || {
                    let live = Live::start(profile, SimOptions::default(), 100.0, |p| p);
                    let r = live.run_job(2.5);
                    let (a, b) = (r.result_start_time, r.result_end_time);
                    let e = live.true_joules(&live.node_cols(), a, b);
                    (profile, r, e, live.longest_step_ms(a, b))
                })
            })
            .collect();
        for run in runs {
            let (profile, r, e, step_ms) = run.join().unwrap();
            let what = format!("{profile} (longest simulator step {step_ms:.1} ms)");
            assert!(off(r.energy_joules, e) < 0.005, "{what}: {} J, true {e} J", r.energy_joules);
            assert!(r.node_power > 0.0, "{what}: {r:?}");
            assert_eq!(r.peak_window_s, 1.0, "{what}");
            assert!(
                r.peak_node_power <= 1.02 * r.node_power,
                "{what}: peak {} W, mean {} W",
                r.peak_node_power,
                r.node_power
            );
            assert!(r.domain_power.values().all(|&w| w >= 0.0 || w == -1.0), "{what}: {r:?}");
        }
    }
}

impl Live {
    /// The simulator's highest mean power of `cols` over any `window_us` within `a..b`, W (the
    /// truth's steps are 2 ms apart: windows are tried every 2 ms).
    fn true_peak(&self, cols: &[usize], a: u64, b: u64, window_us: u64) -> f64 {
        let mut best = 0.0f64;
        let mut s = a;
        while s + window_us <= b {
            best = best.max(self.true_joules(cols, s, s + window_us) * 1e6 / window_us as f64);
            s += 2_000;
        }
        best
    }
}

#[test]
fn under_a_square_wave_the_peak_is_the_high_level_on_pm_counters_and_nvml() {
    let runs: Vec<_> = [Profile::CrayEx, Profile::Nvidia4gpu]
        .into_iter()
        .map(|profile| {
            std::thread::spawn(move || {
                let opts = SimOptions { load: 0.2, ..SimOptions::default() };
                let live = Live::start(profile, opts, 100.0, |p| p);
                let begin = live.now_us();
                std::thread::sleep(Duration::from_millis(1500));
                live.set_load(0.9);
                std::thread::sleep(Duration::from_millis(2000));
                live.set_load(0.2);
                std::thread::sleep(Duration::from_millis(1500));
                let r = live.job(begin, live.now_us());
                let (a, b) = (r.result_start_time, r.result_end_time);
                let cols = live.node_cols();
                let e = live.true_joules(&cols, a, b);
                let high = live.true_peak(&cols, a, b, 1_000_000);
                (profile, r, e, high, live.longest_step_ms(a, b))
            })
        })
        .collect();
    for run in runs {
        let (profile, r, e, high, step_ms) = run.join().unwrap();
        let what = format!("{profile} (longest simulator step {step_ms:.1} ms)");
        assert!(off(r.energy_joules, e) < 0.005, "{what}: {} J, true {e} J", r.energy_joules);
        assert!(
            off(r.peak_node_power, high) < 0.02,
            "{what}: peak {} W, the high level {high} W",
            r.peak_node_power
        );
        assert!(r.peak_node_power > 1.3 * r.node_power, "{what}: {r:?}");
    }
}
