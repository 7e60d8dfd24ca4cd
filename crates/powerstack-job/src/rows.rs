//! [`Rows`]: a [`Series`] held in two vectors (times, and counters row after row), for samples
//! loaded from a store or built by a test.

use std::ops::Range;

use crate::figures::Series;

/// Samples in time order: one time (µs since the Unix epoch) and `columns` counters each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    columns: usize,
    times: Vec<u64>,
    ticks: Vec<u64>,
}

impl Rows {
    /// No samples, `columns` counters a sample.
    pub fn new(columns: usize) -> Rows {
        Rows { columns, times: Vec::new(), ticks: Vec::new() }
    }

    /// Appends a sample. A time before the newest sample's is refused (`false`), so the rows stay
    /// in time order; `ticks` shorter than a row is padded with the previous row's counters (0
    /// for the first), longer is cut.
    pub fn push(&mut self, unix_us: u64, ticks: &[u64]) -> bool {
        if self.times.last().is_some_and(|&t| unix_us < t) {
            return false;
        }
        let n = ticks.len().min(self.columns);
        let prev = self.times.len().checked_sub(1).map(|p| p * self.columns);
        self.ticks.extend_from_slice(&ticks[..n]);
        for c in n..self.columns {
            let v = prev.and_then(|p| self.ticks.get(p + c)).copied().unwrap_or(0);
            self.ticks.push(v);
        }
        self.times.push(unix_us);
        true
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Sample `i`'s time.
    pub fn time(&self, i: usize) -> Option<u64> {
        self.times.get(i).copied()
    }
}

impl Series for Rows {
    fn columns(&self) -> usize {
        self.columns
    }
    fn row(&self, i: usize) -> Option<(u64, &[u64])> {
        let t = *self.times.get(i)?;
        Some((t, self.ticks.get(i * self.columns..(i + 1) * self.columns)?))
    }
    fn first_at_or_after(&self, unix_us: u64) -> Option<usize> {
        let i = self.times.partition_point(|&t| t < unix_us);
        (i < self.times.len()).then_some(i)
    }
    fn last_at_or_before(&self, unix_us: u64) -> Option<usize> {
        self.times.partition_point(|&t| t <= unix_us).checked_sub(1)
    }
    fn span(&self) -> Option<(u64, u64)> {
        Some((*self.times.first()?, *self.times.last()?))
    }
    fn runs(&self, rows: Range<usize>) -> impl Iterator<Item = (&[u64], &[u64])> {
        let end = rows.end.min(self.times.len());
        let start = rows.start.min(end);
        let ticks = &self.ticks[start * self.columns..end * self.columns];
        std::iter::once((&self.times[start..end], ticks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_found_by_time_and_refuse_to_go_back() {
        let mut r = Rows::new(2);
        assert!(r.push(10, &[1, 2]));
        assert!(r.push(20, &[3]));
        assert!(!r.push(15, &[9, 9]));
        assert_eq!(r.row(1), Some((20, &[3u64, 2][..])));
        assert_eq!(r.first_at_or_after(11), Some(1));
        assert_eq!(r.first_at_or_after(21), None);
        assert_eq!(r.last_at_or_before(19), Some(0));
        assert_eq!(r.last_at_or_before(9), None);
        assert_eq!(r.span(), Some((10, 20)));
        let runs: Vec<_> = r.runs(0..2).collect();
        assert_eq!(runs, vec![(&[10u64, 20][..], &[1u64, 2, 3, 2][..])]);
    }
}
