//! [`TruthLog`]: the model's true energies recorded step by step while a node runs in real time,
//! so that a test can compare what the product measured over any window with the truth.

use std::time::Instant;

use powerstack_model::DomainId;

use crate::node::SimNode;

/// (time, true energy) pairs of some domains, one record per step of a [`SimNode`]: after each
/// step of [`SimNode::run_realtime_with`], with the real [`Instant`] the step ended at and the
/// node's simulated wall clock ([`SimNode::unix_us`], what pm_counters stamp when the controller's
/// clock does not drift).
///
/// Power is constant over a step, so the truth between two records is linear in time:
/// [`TruthLog::energy_at`] interpolates, exactly as the model accumulated it. Faults change what
/// the files show, never the truth.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, Instant};
/// use powerstack_model::DomainId;
/// use powerstack_sim::{Profile, SimNode, SimOptions, TruthLog};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut node = SimNode::create(dir.path(), Profile::CrayEx, SimOptions::default()).unwrap();
/// let log = Arc::new(Mutex::new(TruthLog::new(node.domains())));
/// let stop = Arc::new(AtomicBool::new(false));
/// let (sink, flag) = (Arc::clone(&log), Arc::clone(&stop));
/// let sim = std::thread::spawn(move || {
///     node.run_realtime_with(Duration::from_millis(2), &flag, |n, at| {
///         sink.lock().unwrap().record(n, at)
///     })
/// });
/// while log.lock().unwrap().is_empty() {
///     std::thread::yield_now(); // the node has not started yet
/// }
/// let begin = Instant::now();
/// // ... the product reads dir.path() here, from this thread ...
/// std::thread::sleep(Duration::from_millis(20));
/// let end = Instant::now();
/// while log.lock().unwrap().last_instant() < Some(end) {
///     std::thread::yield_now(); // let the node step past `end`
/// }
/// stop.store(true, Ordering::Relaxed);
/// sim.join().unwrap().unwrap();
/// let truth = log.lock().unwrap().energy_between(DomainId::NODE, begin, end).unwrap();
/// assert!(truth > 0.0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct TruthLog {
    ids: Vec<DomainId>,
    at: Vec<Instant>,
    unix_us: Vec<i64>,
    /// One row per record, one column per id (NaN: not measurable then).
    joules: Vec<Vec<f64>>,
}

impl TruthLog {
    /// An empty log of `ids` (e.g. [`SimNode::domains`]).
    pub fn new(ids: Vec<DomainId>) -> TruthLog {
        TruthLog { ids, ..TruthLog::default() }
    }

    /// Records `node`'s true energies as of `at` (the instant its last step ended).
    pub fn record(&mut self, node: &SimNode, at: Instant) {
        let row = self.ids.iter().map(|&id| node.true_energy_joules(id).unwrap_or(f64::NAN));
        self.push(at, node.unix_us(), row.collect());
    }

    fn push(&mut self, at: Instant, unix_us: i64, row: Vec<f64>) {
        self.at.push(at);
        self.unix_us.push(unix_us);
        self.joules.push(row);
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The instant of the newest record.
    pub fn last_instant(&self) -> Option<Instant> {
        self.at.last().copied()
    }

    /// The records of `id`: (instant, node µs, joules).
    pub fn points(&self, id: DomainId) -> Vec<(Instant, i64, f64)> {
        let Some(col) = self.column(id) else { return Vec::new() };
        (0..self.len()).map(|k| (self.at[k], self.unix_us[k], self.joules[k][col])).collect()
    }

    fn column(&self, id: DomainId) -> Option<usize> {
        self.ids.iter().position(|&i| i == id)
    }

    /// The true energy of `id` at `t`, J (since the node was created or opened): linear between
    /// the records around `t`. `None` before the first record, after the last, or for a domain
    /// not logged or not measurable then.
    pub fn energy_at(&self, id: DomainId, t: Instant) -> Option<f64> {
        self.interpolate(id, &self.at, t, |a, b| {
            t.duration_since(a).as_secs_f64() / b.duration_since(a).as_secs_f64()
        })
    }

    /// The true energy of `id` from `a` to `b`, J.
    pub fn energy_between(&self, id: DomainId, a: Instant, b: Instant) -> Option<f64> {
        Some(self.energy_at(id, b)? - self.energy_at(id, a)?)
    }

    /// The true energy of `id` at simulated wall-clock time `unix_us` (the node's, as
    /// [`SimNode::unix_us`] reads it), J: linear between the records around it.
    pub fn energy_at_unix_us(&self, id: DomainId, unix_us: i64) -> Option<f64> {
        self.interpolate(id, &self.unix_us, unix_us, |a, b| (unix_us - a) as f64 / (b - a) as f64)
    }

    /// The energy of `id` at `key`, linear between the records whose `keys` surround it;
    /// `fraction(before, after)` tells how far between them `key` is.
    fn interpolate<K: PartialOrd + Copy>(
        &self,
        id: DomainId,
        keys: &[K],
        key: K,
        fraction: impl Fn(K, K) -> f64,
    ) -> Option<f64> {
        let col = self.column(id)?;
        let k = keys.partition_point(|&x| x < key);
        let after = *keys.get(k)?;
        let joules = if after == key {
            self.joules[k][col]
        } else {
            let prev = k.checked_sub(1)?;
            let (a, b) = (self.joules[prev][col], self.joules[k][col]);
            a + (b - a) * fraction(keys[prev], after)
        };
        Some(joules).filter(|j| !j.is_nan())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use powerstack_model::DomainKind;

    use super::*;

    #[test]
    fn the_truth_is_linear_between_records() {
        let gpu = DomainId::new(DomainKind::Gpu, 0);
        let mut log = TruthLog::new(vec![DomainId::NODE, gpu]);
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        log.push(t0, 1_000, vec![10.0, f64::NAN]);
        log.push(t0 + 10 * ms, 11_000, vec![20.0, 1.0]);
        log.push(t0 + 30 * ms, 31_000, vec![60.0, 2.0]);
        assert_eq!(log.energy_at(DomainId::NODE, t0), Some(10.0));
        assert_eq!(log.energy_at(DomainId::NODE, t0 + 5 * ms), Some(15.0));
        assert_eq!(log.energy_at(DomainId::NODE, t0 + 20 * ms), Some(40.0));
        assert_eq!(log.energy_between(DomainId::NODE, t0 + 5 * ms, t0 + 20 * ms), Some(25.0));
        assert_eq!(log.energy_at_unix_us(DomainId::NODE, 21_000), Some(40.0));
        assert_eq!(log.energy_at(DomainId::NODE, t0 + 31 * ms), None, "after the last record");
        assert_eq!(log.energy_at(gpu, t0 + 5 * ms), None, "not measurable then");
        assert_eq!(log.energy_at(gpu, t0 + 30 * ms), Some(2.0));
        assert_eq!(log.energy_at(DomainId::new(DomainKind::Memory, 0), t0), None);
        assert_eq!(log.points(gpu).len(), 3);
        assert_eq!(log.last_instant(), Some(t0 + 30 * ms));
    }
}
