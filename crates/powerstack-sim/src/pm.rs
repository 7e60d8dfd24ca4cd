//! The HPE Cray pm_counters controller: value files updated at 10 Hz on the controller's own
//! clock, written the way [`PmFaults`] says (on time and whole, or late, torn, out of order with
//! `freshness`, on a drifting clock).

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::error::SimError;
use crate::faults::{PmFaults, mix64};
use crate::fsutil::OutFile;

/// The controller's update period (10 Hz), on its own clock, ns.
pub(crate) const PM_PERIOD_NS: i64 = 100_000_000;

/// At most this many update boundaries are captured in one step; a longer step counts the older
/// ones in `freshness` without capturing them.
const MAX_CAPTURED: i64 = 64;

/// In real time, how long each intermediate state of a torn write lasts.
const TORN_PAUSE: Duration = Duration::from_micros(250);

/// Seeds of the pseudo-random draws.
const LATE_SEED: u64 = 0x1a7e_0000_0000_0001;
const TORN_SEED: u64 = 0x7042_0000_0000_0002;

/// What a pm_counters file holds at one moment of an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmStage {
    /// Truncated to empty ([`PmFaults::torn`] only).
    Emptied,
    /// Holding the first part of its new line ([`PmFaults::torn`] only).
    Partial,
    /// Holding its new line.
    Written,
}

/// Sees each change the controller makes to a pm_counters file, right after it is on disk:
/// the file's path, the stage, and what the file now holds. While it runs, nothing else is
/// written, so it can read any file of the root as a reader would see it at that moment.
pub type PmObserver = Box<dyn FnMut(&Path, PmStage, &str) + Send>;

/// Where changes are shown, and whether torn writes pause in real time.
pub(crate) struct Emit<'a> {
    pub observer: Option<&'a mut PmObserver>,
    pub realtime: bool,
}

impl Emit<'_> {
    fn show(&mut self, path: &Path, stage: PmStage, shown: &str) {
        if let Some(o) = self.observer.as_mut() {
            o(path, stage, shown);
        }
        if self.realtime && stage != PmStage::Written {
            std::thread::sleep(TORN_PAUSE);
        }
    }
}

/// A [`PmObserver`] slot that a `Debug` type can hold.
#[derive(Default)]
pub(crate) struct ObserverSlot(pub Option<PmObserver>);

impl fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(PmObserver)" } else { "None" })
    }
}

/// One pm_counters power/energy pair.
#[derive(Debug)]
pub(crate) struct PmComp {
    pub comp: usize,
    pub power: OutFile,
    pub energy: OutFile,
    /// Joules the counter showed when the simulation (re)started counting.
    pub offset_j: u64,
    /// Energy since then, J.
    pub since: f64,
}

/// One update, captured at its boundary, waiting for its publication.
#[derive(Debug)]
struct Update {
    /// The controller's stamp, µs.
    stamp_us: i64,
    /// The node time (unix ns) from which it is published.
    due_ns: i64,
    /// Per component: whole joules and whole watts.
    energy_j: Vec<u64>,
    power_w: Vec<u64>,
}

/// The pm_counters controller.
#[derive(Debug)]
pub(crate) struct PmCounters {
    pub comps: Vec<PmComp>,
    pub freshness: OutFile,
    pub generation: OutFile,
    pub startup: OutFile,
    pub fresh: u64,
    pub generation_n: u64,
    pub startup_us: i64,
    pub faults: PmFaults,
    /// The node time (unix ns) at which the controller's clock was set to it.
    pub anchor_ns: i64,
    pending: VecDeque<Update>,
    /// The due time of the newest captured update (publications keep their order).
    last_due_ns: i64,
    /// Torn writes so far (each one's split point is drawn from it).
    torn_writes: u64,
}

impl PmCounters {
    /// A controller showing `comps`, with its control files, whose clock agrees with the node's at
    /// `anchor_ns`.
    pub fn new(
        comps: Vec<PmComp>,
        [freshness, generation, startup]: [OutFile; 3],
        startup_us: i64,
        faults: PmFaults,
        anchor_ns: i64,
    ) -> PmCounters {
        PmCounters {
            comps,
            freshness,
            generation,
            startup,
            fresh: 1,
            generation_n: 1,
            startup_us,
            faults,
            anchor_ns,
            pending: VecDeque::new(),
            last_due_ns: anchor_ns,
            torn_writes: 0,
        }
    }

    /// Sets the controller's clock to the node's at node time `now_ns` (create, open).
    pub fn set_clock(&mut self, now_ns: i64) {
        self.anchor_ns = now_ns;
        self.last_due_ns = now_ns;
        self.pending.clear();
    }

    fn rate(&self) -> f64 {
        1.0 + self.faults.drift_ppm * 1e-6
    }

    /// The controller's clock at node time `t`, ns.
    pub fn ctl_ns(&self, t: i64) -> i64 {
        if self.faults.drift_ppm == 0.0 {
            return t;
        }
        let since = t.saturating_sub(self.anchor_ns) as f64;
        self.anchor_ns.saturating_add((since * self.rate()).round() as i64)
    }

    /// The node time at which the controller's clock reads `c`, ns.
    fn node_ns(&self, c: i64) -> i64 {
        if self.faults.drift_ppm == 0.0 {
            return c;
        }
        let since = c.saturating_sub(self.anchor_ns) as f64;
        self.anchor_ns.saturating_add((since / self.rate()).round() as i64)
    }

    /// The publication delay of update `n`, ns.
    fn delay_ns(&self, n: i64) -> i64 {
        let late = i64::try_from(self.faults.late.as_nanos()).unwrap_or(i64::MAX);
        if late <= 0 {
            return 0;
        }
        (mix64(LATE_SEED ^ n as u64) % (late as u64 + 1)) as i64
    }

    /// The node step `(t0, t1]` (`dt_s` long) in which component `j` drew `powers[j]`: captures
    /// the updates whose boundaries (on the controller's clock) fall in it, with the exact energy
    /// at each, then publishes those due by `t1` (only the newest is written; `freshness` counts
    /// them all).
    pub fn step(
        &mut self,
        powers: &[f64],
        (t0, t1, dt_s): (i64, i64, f64),
        emit: &mut Emit<'_>,
    ) -> Result<(), SimError> {
        let (b0, b1) =
            (self.ctl_ns(t0).div_euclid(PM_PERIOD_NS), self.ctl_ns(t1).div_euclid(PM_PERIOD_NS));
        let first = (b0 + 1).max(b1 - MAX_CAPTURED + 1);
        self.fresh = self.fresh.saturating_add((first - b0 - 1).max(0) as u64);
        for n in first..=b1 {
            let boundary = n.saturating_mul(PM_PERIOD_NS);
            let tn = self.node_ns(boundary).clamp(t0, t1);
            let due_ns = tn.saturating_add(self.delay_ns(n)).max(self.last_due_ns);
            self.last_due_ns = due_ns;
            let u = self.capture(powers, (tn - t0) as f64 / 1e9, boundary.div_euclid(1000), due_ns);
            self.pending.push_back(u);
        }
        for pc in &mut self.comps {
            pc.since += powers.get(pc.comp).copied().unwrap_or(0.0) * dt_s;
        }
        let mut newest = None;
        while self.pending.front().is_some_and(|u| u.due_ns <= t1) {
            newest = self.pending.pop_front();
            self.fresh = self.fresh.saturating_add(1);
        }
        match newest {
            Some(u) => self.write(&u, emit),
            None => Ok(()),
        }
    }

    /// The update `extra_s` seconds after the last step's end state (`since`).
    fn capture(&self, powers: &[f64], extra_s: f64, stamp_us: i64, due_ns: i64) -> Update {
        let mut u = Update { stamp_us, due_ns, energy_j: Vec::new(), power_w: Vec::new() };
        for pc in &self.comps {
            let p = powers.get(pc.comp).copied().unwrap_or(0.0);
            // To the µJ first, so that float noise cannot take a whole joule off.
            let uj = ((pc.since + p * extra_s) * 1e6).round().max(0.0) as u64;
            u.energy_j.push(pc.offset_j.saturating_add(uj / 1_000_000));
            u.power_w.push(p.round().max(0.0) as u64);
        }
        u
    }

    /// A controller restart at node time `now_ns`: `generation` up by one, `startup` now, every
    /// energy from 0, pending updates dropped; written at once.
    pub fn restart(
        &mut self,
        powers: &[f64],
        now_ns: i64,
        emit: &mut Emit<'_>,
    ) -> Result<(), SimError> {
        let now_us = self.ctl_ns(now_ns).div_euclid(1000);
        self.generation_n += 1;
        self.startup_us = now_us;
        self.fresh += 1;
        self.pending.clear();
        self.last_due_ns = now_ns;
        for pc in &mut self.comps {
            pc.offset_j = 0;
            pc.since = 0.0;
        }
        let u = self.capture(powers, 0.0, now_us, now_ns);
        self.write(&u, emit)
    }

    /// Writes an update: each component's energy and power, then `freshness` (or, with
    /// [`PmFaults::freshness_mid_update`], after half the components), `generation`, `startup`.
    fn write(&mut self, u: &Update, emit: &mut Emit<'_>) -> Result<(), SimError> {
        let fresh = format!("{}\n", self.fresh);
        let generation_n = format!("{}\n", self.generation_n);
        let startup_us = format!("{}\n", self.startup_us);
        let PmCounters { comps, freshness, generation, startup, faults, torn_writes, .. } = self;
        let mut torn = || {
            faults.torn.then(|| {
                *torn_writes += 1;
                mix64(TORN_SEED ^ *torn_writes)
            })
        };
        let middle = faults.freshness_mid_update.then_some((comps.len() / 2).max(1));
        for (i, pc) in comps.iter_mut().enumerate() {
            if middle == Some(i) {
                put(freshness, &fresh, torn(), emit)?;
            }
            let (e, p) = (u.energy_j.get(i).copied(), u.power_w.get(i).copied());
            let ts = u.stamp_us;
            put(&mut pc.energy, &format!("{} J {ts} us\n", e.unwrap_or(0)), torn(), emit)?;
            put(&mut pc.power, &format!("{} W {ts} us\n", p.unwrap_or(0)), torn(), emit)?;
        }
        if middle.is_none_or(|m| m >= comps.len()) {
            put(freshness, &fresh, torn(), emit)?;
        }
        put(generation, &generation_n, torn(), emit)?;
        put(startup, &startup_us, torn(), emit)
    }

    pub fn files_mut(&mut self) -> impl Iterator<Item = &mut OutFile> {
        self.comps.iter_mut().flat_map(|c| [&mut c.power, &mut c.energy]).chain([
            &mut self.freshness,
            &mut self.generation,
            &mut self.startup,
        ])
    }
}

/// Writes `text` into `file` when it shows something else: at once, or torn at a point drawn from
/// `torn`.
fn put(
    file: &mut OutFile,
    text: &str,
    torn: Option<u64>,
    emit: &mut Emit<'_>,
) -> Result<(), SimError> {
    if file.is_gone() || file.holds(text) {
        return Ok(());
    }
    match torn {
        Some(r) => {
            let split =
                if text.len() >= 2 { 1 + (r % (text.len() as u64 - 1)) as usize } else { 0 };
            file.write_torn(text, split, |path, shown| {
                let stage = if shown.is_empty() { PmStage::Emptied } else { PmStage::Partial };
                emit.show(path, stage, shown);
            })?;
            emit.show(file.path(), PmStage::Written, text);
        }
        None => {
            file.set(text)?;
            emit.show(file.path(), PmStage::Written, &file.shown(text));
        }
    }
    Ok(())
}
