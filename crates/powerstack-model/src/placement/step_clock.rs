//! [`StepClock`]: when an unstamped, stepping counter stepped, and when to read it next.

/// After a read in acquisition, the next read starts this long after it ends (ns).
const ACQUIRE_GAP_NS: u64 = 5_000_000;
/// Changes seen in acquisition before the steps are known.
const ACQUIRE_CHANGES: usize = 4;
/// A change bracket wider than this (ns) in acquisition is too vague to use (a late read).
const ACQUIRE_MAX_BRACKET_NS: f64 = 30e6;
/// A counter that steps more often than this (ns) is read as a continuous one.
const CONTINUOUS_BELOW_NS: f64 = 25e6;
/// How long a counter that did not step during acquisition is read plainly before trying again.
const RETRY_ACQUIRE_NS: u64 = 10_000_000_000;
/// After a probe that came before the step, read again this long after it ends (ns).
const RETRY_GAP_NS: u64 = 4_000_000;
/// The smallest correction of the predicted step (ns).
const MIN_GAIN_NS: f64 = 250e3;
/// The correction after acquisition (ns).
const START_GAIN_NS: f64 = 2e6;
/// How many recent steps the period is fitted to.
const PERIOD_FIT: usize = 128;
/// Steps seen before the fitted period replaces the acquired one.
const PERIOD_FIT_MIN: usize = 16;
/// Probes when settled: one step in this many (every step while the phase is still moving).
const PROBE_EVERY: u32 = 4;
/// Probes after an acquisition before settling is considered (every step until then).
const FIRST_PROBES: u32 = 20;

/// What a [`StepClock`] is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepMode {
    /// Reading every few ms to find when the counter steps.
    Acquiring,
    /// The steps are known: reading about once per step, at or just after it.
    Locked,
    /// No usable steps (the counter steps faster than it can be told apart, or did not step):
    /// reading at the base period, values placed at their reads.
    Free,
}

#[derive(Clone, Copy, Debug)]
struct Read {
    start_ns: u64,
    end_ns: u64,
    mid_ns: f64,
    value: u64,
}

/// What the next read is for, when locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
    /// At the predicted step: whether it has changed yet corrects the prediction.
    Probe,
    /// After a probe that came first: again shortly.
    Retry,
    /// Safely after the predicted step: only to get the value.
    Safe,
}

/// Places the values of a counter that the hardware updates in steps and does not timestamp
/// (NVML's total energy, about every 100 ms), and schedules its reads.
///
/// A value read at time `s` was produced by the counter's last step before `s`, up to a whole
/// step earlier. Read once per step at an arbitrary moment, the value is late by an unknown part
/// of a step, and that part changes whenever a read's latency (milliseconds, with a long tail)
/// carries it across a step: a job's energy is then wrong by up to a step's energy at each end.
/// The clock learns when the counter steps and places each new value **at its step**:
///
/// 1. *Acquiring*: it reads every few ms until it has seen [`ACQUIRE_CHANGES`] changes; each change
///    lies between the two reads around it; their spacing gives the period and their positions the
///    phase. A counter that steps faster than 25 ms, or not at all, is read plainly (*Free*).
/// 2. *Locked*: it reads at each predicted step (a **probe**: if the value has already changed the
///    prediction was late, else early and a retry follows a few ms later) or safely after it. The
///    probes' outcomes move the predicted phase by an adaptive step, like a delay-locked loop,
///    and the period is refitted to the recent steps, so the prediction settles on the moment the
///    counter steps as the reads see it, and follows a drifting clock. When settled, one step in
///    four is probed: about 1.1 reads per step. A step later than a safe read is read again
///    shortly; one still missing half a period after its prediction means the prediction is lost:
///    it acquires again.
///
/// Times are the caller's monotonic ns: the start and the end of each read call. The value is
/// taken somewhere inside the call; the call's midpoint stands for it.
#[derive(Clone, Debug)]
pub struct StepClock {
    /// The period the hardware is documented or known to step at (ns), used until one is measured.
    declared_ns: f64,
    /// The read period when not locked (ns).
    base_ns: u64,
    mode: StepMode,
    prev: Option<Read>,
    /// Acquisition: when it began, and each change's bracket (midpoint, width).
    acquire_start_ns: u64,
    marks: Vec<(f64, f64)>,
    /// Free: when to acquire again (`None`: never, the counter is continuous).
    free_until_ns: Option<u64>,
    /// Locked: a predicted step (ns), the period (ns) and the correction.
    step_ns: f64,
    period_ns: f64,
    gain_ns: f64,
    turn: Turn,
    /// The step the current probe (and its retries) is after.
    probed_step_ns: f64,
    last_probe_changed: Option<bool>,
    steps_since_probe: u32,
    /// Probes since the last acquisition.
    probes: u32,
    /// The recent steps placed while locked: (step number, time ns), for the period.
    steps: std::collections::VecDeque<(f64, f64)>,
    /// The mean duration of a read call (ns).
    call_ns: f64,
    /// The measured step period, when one was (ns).
    measured_ns: Option<f64>,
}

impl StepClock {
    /// A clock for a counter documented to step about every `declared_ns`, read every `base_ns`
    /// when no steps can be followed.
    pub fn new(declared_ns: u64, base_ns: u64) -> StepClock {
        StepClock {
            declared_ns: declared_ns.max(1) as f64,
            base_ns: base_ns.max(1),
            mode: StepMode::Acquiring,
            prev: None,
            acquire_start_ns: 0,
            marks: Vec::with_capacity(ACQUIRE_CHANGES),
            free_until_ns: None,
            step_ns: 0.0,
            period_ns: declared_ns.max(1) as f64,
            gain_ns: START_GAIN_NS,
            turn: Turn::Probe,
            probed_step_ns: 0.0,
            last_probe_changed: None,
            steps_since_probe: 0,
            probes: 0,
            steps: std::collections::VecDeque::with_capacity(PERIOD_FIT),
            call_ns: 0.0,
            measured_ns: None,
        }
    }

    /// What the clock is doing.
    pub fn mode(&self) -> StepMode {
        self.mode
    }

    /// The counter's step period as measured (ns), once it has been.
    pub fn update_period_ns(&self) -> Option<u64> {
        match self.mode {
            StepMode::Locked => Some(self.period_ns as u64),
            _ => self.measured_ns.map(|p| p as u64),
        }
    }

    /// Feeds a read that started at `start_ns`, ended at `end_ns` and returned `value`. Returns
    /// where the value belongs (monotonic ns) when it is new (the first read, or a change), else
    /// `None`. A placed time lies after the previous read and no later than this one.
    pub fn observe(&mut self, start_ns: u64, end_ns: u64, value: u64) -> Option<u64> {
        let end_ns = end_ns.max(start_ns);
        let read =
            Read { start_ns, end_ns, mid_ns: (start_ns as f64 + end_ns as f64) / 2.0, value };
        let duration = (end_ns - start_ns) as f64;
        self.call_ns =
            if self.call_ns == 0.0 { duration } else { 0.9 * self.call_ns + 0.1 * duration };
        let Some(prev) = self.prev.replace(read) else {
            self.acquire(start_ns);
            return Some(read.mid_ns as u64);
        };
        let changed = value != prev.value;
        let placed = match self.mode {
            StepMode::Acquiring => self.acquiring(&prev, &read, changed),
            StepMode::Locked => self.locked(&prev, &read, changed),
            StepMode::Free => {
                if self.free_until_ns.is_some_and(|t| end_ns >= t) {
                    self.acquire(start_ns);
                }
                changed.then_some(read.mid_ns)
            }
        };
        placed.map(|t| t.clamp(prev.mid_ns + 1.0, read.mid_ns.max(prev.mid_ns + 1.0)) as u64)
    }

    /// When to start the next read (monotonic ns; in the past means now).
    pub fn next_read_ns(&self) -> u64 {
        let Some(prev) = self.prev else { return 0 };
        match self.mode {
            StepMode::Acquiring => prev.end_ns + ACQUIRE_GAP_NS,
            StepMode::Free => prev.start_ns + self.base_ns,
            StepMode::Locked => {
                let half_call = (self.call_ns / 2.0) as u64;
                match self.turn {
                    Turn::Retry => prev.end_ns + RETRY_GAP_NS,
                    Turn::Probe => (self.next_step(prev.mid_ns) as u64).saturating_sub(half_call),
                    Turn::Safe => self.next_step(prev.mid_ns) as u64 + self.safe_margin_ns(),
                }
            }
        }
    }

    fn safe_margin_ns(&self) -> u64 {
        (self.period_ns / 5.0) as u64
    }

    /// The first predicted step after the one a read at `mid` has seen.
    fn next_step(&self, mid: f64) -> f64 {
        let after = mid + self.period_ns / 4.0;
        let k = ((after - self.step_ns) / self.period_ns).floor() + 1.0;
        self.step_ns + k * self.period_ns
    }

    /// The predicted step a read at `mid` (which saw a change) has seen: the latest one no later
    /// than a quarter period after it (a step may come a little early).
    fn seen_step(&self, mid: f64) -> f64 {
        let k = ((mid + self.period_ns / 4.0 - self.step_ns) / self.period_ns).floor();
        self.step_ns + k * self.period_ns
    }

    fn acquire(&mut self, now_ns: u64) {
        self.mode = StepMode::Acquiring;
        self.acquire_start_ns = now_ns;
        self.marks.clear();
    }

    fn acquiring(&mut self, prev: &Read, read: &Read, changed: bool) -> Option<f64> {
        let placed = changed.then(|| {
            let mid = (prev.mid_ns + read.mid_ns) / 2.0;
            self.marks.push((mid, read.mid_ns - prev.mid_ns));
            mid
        });
        let limit = (5.0 * self.declared_ns) as u64;
        if self.marks.len() >= ACQUIRE_CHANGES
            || read.end_ns.saturating_sub(self.acquire_start_ns) >= limit
        {
            self.finish_acquiring(read.end_ns);
        }
        placed
    }

    /// Works out the period and phase from the changes seen, or gives up to plain reads.
    fn finish_acquiring(&mut self, now_ns: u64) {
        let good: Vec<f64> =
            self.marks.iter().filter(|m| m.1 <= ACQUIRE_MAX_BRACKET_NS).map(|m| m.0).collect();
        let mut gaps: Vec<f64> = good.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_by(f64::total_cmp);
        let Some(&median) = gaps.get(gaps.len() / 2) else {
            // Fewer than two usable changes: a still or slow counter. Read plainly for a while.
            self.mode = StepMode::Free;
            self.free_until_ns = Some(now_ns + RETRY_ACQUIRE_NS);
            return;
        };
        if median < CONTINUOUS_BELOW_NS {
            self.mode = StepMode::Free;
            self.free_until_ns = None;
            self.measured_ns = Some(median);
            return;
        }
        // Number the steps (a gap of two periods is two steps), then fit period and phase.
        let mut k = vec![0.0];
        for w in good.windows(2) {
            let last = k.last().copied().unwrap_or(0.0);
            k.push(last + ((w[1] - w[0]) / median).round().max(1.0));
        }
        let (first, last) = (good[0], good[good.len() - 1]);
        let steps = k[k.len() - 1];
        let period = (last - first) / steps;
        let phase =
            good.iter().zip(&k).map(|(m, k)| m - k * period).sum::<f64>() / good.len() as f64;
        self.period_ns = period;
        self.measured_ns = Some(period);
        self.step_ns = phase + steps * period;
        self.gain_ns = START_GAIN_NS;
        self.turn = Turn::Probe;
        self.last_probe_changed = None;
        self.steps_since_probe = 0;
        self.probes = 0;
        self.steps.clear();
        self.mode = StepMode::Locked;
    }

    fn locked(&mut self, prev: &Read, read: &Read, changed: bool) -> Option<f64> {
        match self.turn {
            Turn::Probe => {
                self.probed_step_ns = self.next_step(prev.mid_ns);
                // A probe that ran far from its step (a late thread) tells nothing about it.
                if (read.mid_ns - self.probed_step_ns).abs() <= self.gain_ns.max(1e6) {
                    self.correct(changed);
                }
                if changed {
                    Some(self.captured(read))
                } else {
                    self.turn = Turn::Retry;
                    None
                }
            }
            Turn::Retry if changed => Some(self.captured(read)),
            Turn::Retry => {
                if read.mid_ns > self.probed_step_ns + self.period_ns / 2.0 {
                    self.acquire(read.start_ns);
                }
                None
            }
            Turn::Safe if changed => {
                self.steps_since_probe += 1;
                Some(self.captured(read))
            }
            Turn::Safe => {
                // The step is later than predicted by more than the margin: read again shortly,
                // as after a probe that came first; the retries give up (and the steps are
                // sought again) half a period after the predicted step.
                self.probed_step_ns = self.next_step(prev.mid_ns);
                self.turn = Turn::Retry;
                None
            }
        }
    }

    /// A probe's outcome: a change means the step came no later than the probe (the prediction
    /// was late); none, that it is still to come (early).
    fn correct(&mut self, changed: bool) {
        let max_gain = self.period_ns / 10.0;
        self.gain_ns = match self.last_probe_changed {
            Some(last) if last == changed => (self.gain_ns * 1.5).min(max_gain),
            Some(_) => (self.gain_ns * 0.5).max(MIN_GAIN_NS),
            None => self.gain_ns,
        };
        self.last_probe_changed = Some(changed);
        self.step_ns += if changed { -self.gain_ns } else { self.gain_ns };
        self.steps_since_probe = 0;
        self.probes = self.probes.saturating_add(1);
    }

    /// Adds a placed step and refits the period: the least-squares slope of the recent steps'
    /// times against their numbers (the probes correct the phase; the fit follows the rate).
    fn fit_period(&mut self, step: f64) {
        let number = match self.steps.back() {
            Some(&(k, t)) => k + ((step - t) / self.period_ns).round().max(1.0),
            None => 0.0,
        };
        if self.steps.len() == PERIOD_FIT {
            self.steps.pop_front();
        }
        self.steps.push_back((number, step));
        if self.steps.len() < PERIOD_FIT_MIN {
            return;
        }
        let n = self.steps.len() as f64;
        let (k0, t0) = self.steps[0];
        let (mk, mt) =
            self.steps.iter().fold((0.0, 0.0), |(a, b), &(k, t)| (a + k - k0, b + t - t0));
        let (mk, mt) = (mk / n, mt / n);
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for &(k, t) in &self.steps {
            let (x, y) = (k - k0 - mk, t - t0 - mt);
            sxy += x * y;
            sxx += x * x;
        }
        if sxx > 0.0 {
            let measured = self.measured_ns.unwrap_or(self.declared_ns);
            self.period_ns = (sxy / sxx).clamp(0.8 * measured, 1.25 * measured);
        }
    }

    /// The value of a read that saw the step: placed at the step; the next turn chosen.
    fn captured(&mut self, read: &Read) -> f64 {
        let settled = self.probes >= FIRST_PROBES && self.gain_ns <= 4.0 * MIN_GAIN_NS;
        let every = if settled { PROBE_EVERY } else { 1 };
        self.turn = if self.steps_since_probe + 1 >= every { Turn::Probe } else { Turn::Safe };
        // Anchored at the latest step, so that a change of the period moves only what follows.
        let step = self.seen_step(read.mid_ns);
        self.fit_period(step);
        self.step_ns = step;
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::test_rng as rng;

    /// A counter stepping every `period` ns (on its own clock, `ppm` off ours) from `phase`,
    /// read through calls of about 2.85 ms with a tail to 15 ms (as NVML's energy read on an
    /// H200), the value taken at a random point of the call. Runs `seconds` and returns the worst
    /// placement error after the first 2 s (ns), the placements and the reads made.
    struct Run {
        worst_ns: f64,
        placed: usize,
        reads: usize,
        clock: StepClock,
    }

    fn run(period: f64, phase: f64, ppm: f64, seconds: f64, seed: u64) -> Run {
        let mut r = rng(seed);
        let p = period / (1.0 + ppm * 1e-6);
        // The step at or before t, and its index.
        let step_before = |t: f64| ((t - phase) / p).floor();
        let mut clock = StepClock::new(100_000_000, 100_000_000);
        let mut now = 1e9;
        let (mut worst, mut placed, mut reads) = (0.0f64, 0, 0);
        while now < 1e9 + seconds * 1e9 {
            let start = now.max(clock.next_read_ns() as f64) + 50e3 * r();
            let latency = if r() < 0.02 { 2.6e6 + 12.6e6 * r() } else { 2.6e6 + 0.5e6 * r() };
            let taken = start + latency * r();
            let k = step_before(taken) + 1000.0;
            let end = start + latency;
            reads += 1;
            if let Some(at) = clock.observe(start as u64, end as u64, k as u64) {
                placed += 1;
                if start > 3e9 {
                    let truth = phase + (k - 1000.0) * p;
                    worst = worst.max((at as f64 - truth).abs());
                }
            }
            now = end;
        }
        Run { worst_ns: worst, placed, reads, clock }
    }

    #[test]
    fn places_each_step_within_a_few_ms_with_about_one_read_per_step() {
        for (seed, phase) in [(1, 1.013e9), (2, 1.0577e9), (3, 1.0999e9), (4, 1.05e9)] {
            let r = run(100e6, phase, 0.0, 60.0, seed);
            assert_eq!(r.clock.mode(), StepMode::Locked, "seed {seed}");
            assert!(r.worst_ns < 8e6, "seed {seed}: worst {} ms", r.worst_ns / 1e6);
            // 600 steps in 60 s, each placed once (and the first read).
            assert!((599..=602).contains(&r.placed), "seed {seed}: {} placed", r.placed);
            let per_step = r.reads as f64 / r.placed as f64;
            assert!(per_step < 1.3, "seed {seed}: {per_step} reads per step");
            let period = r.clock.update_period_ns().unwrap() as f64;
            assert!((period - 100e6).abs() < 0.1e6, "{period}");
        }
    }

    #[test]
    fn follows_gpu_clocks_that_drift_whatever_the_phase() {
        for seed in 5..45u64 {
            let phase = 1e9 + (seed as f64 * 7.919e6) % 100e6;
            let ppm = ((seed % 7) as f64 - 3.0) * 100.0;
            let r = run(100e6, phase, ppm, 30.0, seed);
            assert_eq!(r.clock.mode(), StepMode::Locked, "seed {seed}");
            assert!(r.worst_ns < 8e6, "seed {seed}, {ppm} ppm: worst {} ms", r.worst_ns / 1e6);
            let per_step = r.reads as f64 / r.placed as f64;
            assert!(per_step < 1.4, "seed {seed}: {per_step} reads per step");
        }
    }

    #[test]
    fn a_fast_counter_is_read_plainly() {
        let r = run(10e6, 1.0e9, 0.0, 5.0, 3);
        assert_eq!(r.clock.mode(), StepMode::Free);
        // Read at the base period (10 Hz) after acquiring.
        assert!(r.reads < 120, "{}", r.reads);
    }

    #[test]
    fn a_still_counter_is_read_plainly_and_tried_again_later() {
        let mut c = StepClock::new(100_000_000, 100_000_000);
        let mut t = 1_000_000_000u64;
        assert!(c.observe(t, t + 3_000_000, 42).is_some());
        // Acquisition lasts five declared periods, then it reads plainly.
        while c.mode() == StepMode::Acquiring {
            t = c.next_read_ns().max(t + 1);
            assert_eq!(c.observe(t, t + 3_000_000, 42), None);
            assert!(t < 2_000_000_000, "{t}");
        }
        assert_eq!(c.mode(), StepMode::Free);
        // Ten seconds later it acquires again.
        while c.mode() == StepMode::Free {
            t = c.next_read_ns();
            c.observe(t, t + 3_000_000, 42);
        }
        assert!(t > 10_000_000_000, "{t}");
        assert_eq!(c.mode(), StepMode::Acquiring);
    }

    #[test]
    fn a_placed_time_lies_between_the_reads() {
        let mut c = StepClock::new(100_000_000, 100_000_000);
        let mut t = 5_000_000_000u64;
        let mut prev_mid = 0u64;
        for k in 0..500u64 {
            let start = c.next_read_ns().max(t);
            let end = start + 3_000_000;
            if let Some(at) = c.observe(start, end, k / 3) {
                assert!(at > prev_mid && at <= (start + end) / 2, "{k}: {at}");
            }
            prev_mid = (start + end) / 2;
            t = end;
        }
    }
}
