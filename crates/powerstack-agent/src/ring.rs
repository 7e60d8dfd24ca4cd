//! The sample ring: the newest samples of every domain, in time order, in fixed memory.
//!
//! A sample is one timestamp (µs since the Unix epoch) and one extended energy counter per domain
//! (ticks of that domain's unit, see [`crate::DomainMeta`]): nothing that can be derived (power,
//! joules) is stored, so one sample costs [`Ring::bytes_per_sample`] bytes. Both arrays are
//! allocated once, at [`Ring::new`]; a push never allocates. When the ring is full, a push drops
//! the oldest sample.
//!
//! Timestamps never decrease (the sampler guarantees it; a push that would go back in time is
//! stamped with the newest time instead), so a time is found by binary search
//! ([`Ring::first_at_or_after`], [`Ring::last_at_or_before`]).

use std::ops::Range;

use powerstack_model::DomainInfo;

/// What the stored counters of one domain mean.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainMeta {
    /// The catalog entry.
    pub info: DomainInfo,
    /// Joules per stored tick. Energy domains: their counter's unit. Power-only domains: the agent
    /// integrates their power into µJ (1e-6).
    pub joules_per_tick: f64,
}

/// A fixed-capacity ring of samples: a timestamp and one extended counter per domain.
#[derive(Debug, Clone)]
pub struct Ring {
    capacity: usize,
    domains: usize,
    /// Timestamps, µs; physical slot `p` holds the sample whose counters are
    /// `ticks[p * domains..(p + 1) * domains]`.
    times: Vec<u64>,
    /// Extended counters, one row of `domains` per slot.
    ticks: Vec<u64>,
    /// Physical slot of the oldest sample.
    start: usize,
    /// Samples held.
    len: usize,
    /// Per column: whether it has held a reading (see [`Ring::set_read`]); all `true` until the
    /// writer says otherwise.
    read: Vec<bool>,
}

impl Ring {
    /// An empty ring holding up to `capacity` samples (at least one) of `domains` counters each.
    /// Allocates all of its memory now.
    pub fn new(capacity: usize, domains: usize) -> Ring {
        let capacity = capacity.max(1);
        Ring {
            capacity,
            domains,
            times: Vec::with_capacity(capacity),
            ticks: Vec::with_capacity(capacity.saturating_mul(domains)),
            start: 0,
            len: 0,
            read: vec![true; domains],
        }
    }

    /// Records whether column `col` has held a reading: a column that never has (its domain
    /// could never be read) holds 0s that measure nothing, and has no power, energy or share of
    /// the node figure ([`Ring::was_read`]). The sampler's recorder keeps it; a ring filled
    /// directly has every column read.
    pub fn set_read(&mut self, col: usize, read: bool) {
        if let Some(r) = self.read.get_mut(col) {
            *r = read;
        }
    }

    /// Whether column `col` has held a reading ([`Ring::set_read`]).
    pub fn was_read(&self, col: usize) -> bool {
        self.read.get(col).copied().unwrap_or(false)
    }

    /// Bytes one sample takes: one `u64` timestamp and one `u64` counter per domain.
    pub fn bytes_per_sample(&self) -> usize {
        8 + 8 * self.domains
    }

    /// The most samples the ring holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Counters per sample.
    pub fn domains(&self) -> usize {
        self.domains
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the ring holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a sample taken at `unix_us` (µs since the Unix epoch), dropping the oldest when the
    /// ring is full.
    ///
    /// `ticks` holds one extended counter per domain, in column order. Should it hold fewer, the
    /// missing columns keep the previous sample's values (0 for the first); extra values are
    /// ignored. A time before the newest sample's is replaced by the newest time, so the ring stays
    /// in time order.
    pub fn push(&mut self, unix_us: u64, ticks: &[u64]) {
        let t = self.newest_time().map_or(unix_us, |newest| unix_us.max(newest));
        let d = self.domains;
        let n = ticks.len().min(d);
        if self.len < self.capacity {
            // Filling: slots are appended in order (start stays 0), within the reserved capacity.
            let prev = self.len.checked_sub(1).map(|p| p * d);
            self.times.push(t);
            self.ticks.extend_from_slice(&ticks[..n]);
            for c in n..d {
                let v = prev.and_then(|p| self.ticks.get(p + c)).copied().unwrap_or(0);
                self.ticks.push(v);
            }
            self.len += 1;
        } else {
            // Full: the oldest slot becomes the newest.
            let slot = self.start;
            let prev = (slot + self.capacity - 1) % self.capacity;
            self.times[slot] = t;
            let (row, prev_row) = (slot * d, prev * d);
            self.ticks[row..row + n].copy_from_slice(&ticks[..n]);
            for c in n..d {
                self.ticks[row + c] = self.ticks[prev_row + c];
            }
            self.start = (slot + 1) % self.capacity;
        }
    }

    /// Physical slot of logical index `i` (0 = oldest); `i` must be below `len`.
    fn slot(&self, i: usize) -> usize {
        let p = self.start + i;
        if p >= self.capacity { p - self.capacity } else { p }
    }

    /// The timestamp of the `i`-th sample in time order (0 = oldest), µs.
    pub fn time(&self, i: usize) -> Option<u64> {
        (i < self.len).then(|| self.times[self.slot(i)])
    }

    /// The counter of column `col` in the `i`-th sample in time order (0 = oldest).
    pub fn value(&self, i: usize, col: usize) -> Option<u64> {
        if i >= self.len || col >= self.domains {
            return None;
        }
        self.ticks.get(self.slot(i) * self.domains + col).copied()
    }

    /// The `i`-th sample in time order (0 = oldest): its timestamp (µs) and counters.
    pub fn get(&self, i: usize) -> Option<(u64, &[u64])> {
        (i < self.len).then(|| self.row(self.slot(i)))
    }

    #[inline]
    fn row(&self, slot: usize) -> (u64, &[u64]) {
        let d = self.domains;
        (self.times[slot], &self.ticks[slot * d..(slot + 1) * d])
    }

    /// The oldest sample kept.
    pub fn oldest(&self) -> Option<(u64, &[u64])> {
        self.get(0)
    }

    /// The newest sample.
    pub fn newest(&self) -> Option<(u64, &[u64])> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    fn newest_time(&self) -> Option<u64> {
        self.len.checked_sub(1).and_then(|i| self.time(i))
    }

    /// The number of samples (from the oldest) whose time satisfies `pred`, for a `pred` that holds
    /// for a prefix of the ring (a binary search).
    fn partition_point(&self, pred: impl Fn(u64) -> bool) -> usize {
        // The logical order is times[start..] then times[..start] (before the ring is full,
        // start is 0 and the second part is empty).
        let (a, b) = self.times.split_at(self.start.min(self.times.len()));
        let (first, second) = (b, a);
        let n = first.partition_point(|&t| pred(t));
        if n < first.len() { n } else { first.len() + second.partition_point(|&t| pred(t)) }
    }

    /// The index (in time order) of the first sample taken at or after `unix_us`.
    pub fn first_at_or_after(&self, unix_us: u64) -> Option<usize> {
        let i = self.partition_point(|t| t < unix_us);
        (i < self.len).then_some(i)
    }

    /// The index (in time order) of the last sample taken at or before `unix_us`.
    pub fn last_at_or_before(&self, unix_us: u64) -> Option<usize> {
        self.partition_point(|t| t <= unix_us).checked_sub(1)
    }

    /// The samples taken from `since_us` to `until_us` (both included), oldest first.
    pub fn samples_between(
        &self,
        since_us: u64,
        until_us: u64,
    ) -> impl Iterator<Item = (u64, &[u64])> {
        let lo = self.partition_point(|t| t < since_us);
        let hi = self.partition_point(|t| t <= until_us).max(lo);
        self.range(lo..hi)
    }

    /// Rewrites column `col` of every sample taken after `after_us`, newest first, with
    /// `value(time)`; returns how many. The sampler draws a column through a reading that arrives
    /// after the samples it belongs among (a slow source's, placed at the time it refers to).
    pub fn rewrite_after(
        &mut self,
        col: usize,
        after_us: u64,
        mut value: impl FnMut(u64) -> u64,
    ) -> usize {
        if col >= self.domains {
            return 0;
        }
        let mut n = 0;
        for i in (0..self.len).rev() {
            let slot = self.slot(i);
            let t = self.times[slot];
            if t <= after_us {
                break;
            }
            self.ticks[slot * self.domains + col] = value(t);
            n += 1;
        }
        n
    }

    /// The samples of logical indices `range` (clamped to the ring), oldest first, read from at
    /// most two contiguous runs of slots.
    pub(crate) fn range(&self, range: Range<usize>) -> impl Iterator<Item = (u64, &[u64])> {
        let hi = range.end.min(self.len);
        let lo = range.start.min(hi);
        let (p0, p1) = (self.start + lo, self.start + hi);
        let first = p0.min(self.capacity)..p1.min(self.capacity);
        let second = p0.saturating_sub(self.capacity)..p1.saturating_sub(self.capacity);
        first.chain(second).map(move |slot| self.row(slot))
    }

    /// The samples of logical indices `range` (clamped to the ring) as at most two contiguous
    /// runs of slots, oldest first: each the timestamps and the counters (`domains` per sample,
    /// sample after sample).
    pub(crate) fn slices(&self, range: Range<usize>) -> [(&[u64], &[u64]); 2] {
        let hi = range.end.min(self.len);
        let lo = range.start.min(hi);
        let (p0, p1) = (self.start + lo, self.start + hi);
        let d = self.domains;
        let run = |a: usize, b: usize| (&self.times[a..b], &self.ticks[a * d..b * d]);
        [
            run(p0.min(self.capacity), p1.min(self.capacity)),
            run(p0.saturating_sub(self.capacity), p1.saturating_sub(self.capacity)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_drops_the_oldest_and_keeps_time_order() {
        let mut r = Ring::new(3, 2);
        assert!(r.is_empty());
        assert_eq!(r.bytes_per_sample(), 24);
        for t in 1..=5u64 {
            r.push(t * 10, &[t, 100 + t]);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.oldest(), Some((30, &[3, 103][..])));
        assert_eq!(r.newest(), Some((50, &[5, 105][..])));
        assert_eq!(r.get(1), Some((40, &[4, 104][..])));
        assert_eq!(r.get(3), None);
        let between: Vec<u64> = r.samples_between(35, 50).map(|(t, _)| t).collect();
        assert_eq!(between, vec![40, 50]);
        assert_eq!(r.first_at_or_after(41), Some(2));
        assert_eq!(r.first_at_or_after(51), None);
        assert_eq!(r.last_at_or_before(29), None);
        assert_eq!(r.last_at_or_before(45), Some(1));
    }

    #[test]
    fn short_rows_keep_previous_values_and_time_never_goes_back() {
        let mut r = Ring::new(2, 3);
        r.push(10, &[1, 2, 3]);
        r.push(5, &[7]);
        assert_eq!(r.newest(), Some((10, &[7, 2, 3][..])));
        r.push(20, &[8, 9, 10, 11]);
        r.push(30, &[]);
        assert_eq!(r.oldest(), Some((20, &[8, 9, 10][..])));
        assert_eq!(r.newest(), Some((30, &[8, 9, 10][..])));
    }

    #[test]
    fn a_column_is_rewritten_after_a_time_only() {
        let mut r = Ring::new(3, 2);
        for t in 1..=5u64 {
            r.push(t * 10, &[t, 100 + t]);
        }
        assert_eq!(r.rewrite_after(1, 35, |t| t + 1), 2);
        assert_eq!(r.get(0), Some((30, &[3, 103][..])));
        assert_eq!(r.get(1), Some((40, &[4, 41][..])));
        assert_eq!(r.get(2), Some((50, &[5, 51][..])));
        assert_eq!(r.rewrite_after(2, 0, |_| 0), 0);
    }

    #[test]
    fn a_zero_capacity_holds_one_sample_and_zero_domains_work() {
        let mut r = Ring::new(0, 0);
        r.push(1, &[]);
        r.push(2, &[]);
        assert_eq!(r.capacity(), 1);
        assert_eq!(r.newest(), Some((2, &[][..])));
        assert_eq!(r.samples_between(0, 10).count(), 1);
    }
}
