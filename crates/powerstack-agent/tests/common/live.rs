//! Shared by the live tests: the sampler in real time against the simulator's truth: a simulated node animated by a thread
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
use powerstack_hw::{DiscoverOptions, Platform, Provider, Root, Selection, discover_with};
use powerstack_model::power::node_parts;
use powerstack_model::{DomainId, DomainKind};
use powerstack_sim::{Profile, SimNode, SimOptions};

/// The simulator's exact energy of each ring column, J, at a monotonic time (ns).
type Truth = Arc<Mutex<Vec<(u64, Vec<f64>)>>>;

/// A simulated node animated in real time, and an agent's sampler reading it.
pub struct Live {
    _dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    sim: Option<JoinHandle<()>>,
    sampler: Option<Sampler>,
    truth: Truth,
    /// The load to set (`f64` bits), read by the simulator's thread at every step.
    load: Arc<AtomicU64>,
    pub shared: Arc<Shared>,
}

impl Live {
    /// Creates `profile` with `opts`, animates it every 2 ms, and starts a sampler at `rate_hz`
    /// over its providers, each passed through `wrap` first (to inject faults).
    pub fn start(
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
                let mut set = f64::NAN;
                let tick = Duration::from_millis(2);
                let run = sim.run_realtime_with(tick, &stop.clone(), |sim, at| {
                    // The monotonic time the step ended at (the one clock).
                    let mono = powerstack_hw::clock::mono_ns()
                        .saturating_sub(at.elapsed().as_nanos() as u64);
                    let e = ids.iter().map(|id| sim.true_energy_joules(*id).unwrap_or(0.0));
                    truth.lock().unwrap().push((mono, e.collect()));
                    let l = f64::from_bits(load.load(Ordering::Relaxed));
                    if l != set {
                        sim.set_load(l);
                        set = l;
                    }
                });
                run.unwrap();
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

    pub fn now_us(&self) -> u64 {
        self.shared.clock.now_unix_us()
    }

    pub fn set_load(&self, load: f64) {
        self.load.store(load.to_bits(), Ordering::Relaxed);
    }

    /// Waits until every column is final up to `t_us` (at most 5 s).
    pub fn wait_settled(&self, t_us: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.settled_us.load(Ordering::Relaxed) < t_us {
            assert!(Instant::now() < deadline, "the columns did not settle");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The job over `begin..end` (µs since the epoch), once its columns have settled.
    pub fn job(&self, begin: u64, end: u64) -> JobResultV1 {
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
    pub fn run_job(&self, seconds: f64) -> JobResultV1 {
        let begin = self.now_us();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        self.job(begin, self.now_us())
    }

    pub fn domains(&self) -> &[DomainMeta] {
        &self.shared.domains
    }

    /// The true energy of columns `cols` over the µs window `a..b` (interpolated between the
    /// simulator's steps, over which its power is constant).
    pub fn true_joules(&self, cols: &[usize], a: u64, b: u64) -> f64 {
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
    pub fn longest_step_ms(&self, a: u64, b: u64) -> f64 {
        let clock = self.shared.clock;
        let mono = |unix: u64| clock.anchor_mono_ns + (unix - clock.anchor_unix_us) * 1000;
        let truth = self.truth.lock().unwrap();
        let steps = truth.windows(2).filter(|w| w[1].0 >= mono(a) && w[0].0 <= mono(b));
        steps.map(|w| (w[1].0 - w[0].0) as f64 / 1e6).fold(0.0, f64::max)
    }

    /// The columns of one domain.
    pub fn cols(&self, kind: DomainKind, index: u32) -> Vec<usize> {
        let id = DomainId::new(kind, index);
        (0..self.domains().len()).filter(|&c| self.domains()[c].info.id == id).collect()
    }

    /// The columns of the node figure.
    pub fn node_cols(&self) -> Vec<usize> {
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
pub fn off(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

impl Live {
    /// The simulator's highest mean power of `cols` over any `window_us` within `a..b`, W (the
    /// truth's steps are 2 ms apart: windows are tried every 2 ms).
    pub fn true_peak(&self, cols: &[usize], a: u64, b: u64, window_us: u64) -> f64 {
        let mut best = 0.0f64;
        let mut s = a;
        while s + window_us <= b {
            best = best.max(self.true_joules(cols, s, s + window_us) * 1e6 / window_us as f64);
            s += 2_000;
        }
        best
    }
}

impl Live {
    /// Every column of the ring never goes backwards: no power is ever negative.
    pub fn assert_monotonic(&self, what: &str) {
        let ring = self.shared.ring.lock().unwrap();
        for c in 0..ring.domains() {
            for i in 1..ring.len() {
                let (a, b) = (ring.value(i - 1, c).unwrap(), ring.value(i, c).unwrap());
                assert!(b >= a, "{what}: column {c} goes back from {a} to {b} at sample {i}");
            }
        }
    }
}

/// Busy threads on every CPU while it lives.
pub struct Load(Arc<AtomicBool>, Vec<JoinHandle<()>>);

impl Load {
    pub fn full() -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) + 1);
                    }
                })
            })
            .collect();
        Load(stop, threads)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}
