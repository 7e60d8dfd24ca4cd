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
use powerstack_hw::{DiscoverOptions, Platform, Provider, Root, Selection, discover_with, platform};
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
        let truth = self.truth.lock().unwrap();
        let at = |t: u64, c: usize| -> f64 {
            let i = truth.partition_point(|(ts, _)| *ts <= t);
            assert!(i > 0 && i < truth.len(), "no truth around {t}");
            let ((t0, e0), (t1, e1)) = (&truth[i - 1], &truth[i]);
            e0[c] + (e1[c] - e0[c]) * (t - t0) as f64 / (t1 - t0) as f64
        };
        cols.iter().map(|&c| at(mono(b), c) - at(mono(a), c)).sum()
    }

    /// The columns of the node figure.
    fn node_cols(&self) -> Vec<usize> {
        let kinds: Vec<DomainKind> = self.domains().iter().map(|d| d.info.id.kind).collect();
        node_parts(&kinds)
    }

    /// The columns of one domain kind and index.
    fn cols_of(&self, kind: DomainKind, index: u32) -> Vec<usize> {
        (0..self.domains().len())
            .filter(|&c| self.domains()[c].info.id == DomainId::new(kind, index))
            .collect()
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
    let runs: Vec<_> = Profile::ALL
        .into_iter()
        .map(|profile| {
            std::thread::spawn(move || {
                let live = Live::start(profile, SimOptions::default(), 100.0, |p| p);
                let r = live.run_job(2.5);
                let e = live.true_joules(&live.node_cols(), r.result_start_time, r.result_end_time);
                (profile, r, e)
            })
        })
        .collect();
    for run in runs {
        let (profile, r, e) = run.join().unwrap();
        assert!(off(r.energy_joules, e) < 0.005, "{profile}: {} J, true {e} J", r.energy_joules);
        assert!(r.node_power > 0.0, "{profile}: {r:?}");
        assert_eq!(r.peak_window_s, 1.0, "{profile}");
        assert!(
            r.peak_node_power <= 1.02 * r.node_power,
            "{profile}: peak {} W, mean {} W",
            r.peak_node_power,
            r.node_power
        );
        assert!(r.domain_power.values().all(|&w| w >= 0.0 || w == -1.0), "{profile}: {r:?}");
    }
}
