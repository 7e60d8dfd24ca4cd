//! A job's figures across agent restarts, and the result kept at its end.
//!
//! The ring is in memory: an agent that stops (or dies) loses it. What a job's figures need from
//! before is therefore kept in its [`JobHistory`]: the figures of the part each earlier run of
//! the agent measured (saved when it stopped cleanly), the gaps while no agent ran (or while the
//! one that died had measured: lost with it), and, once the job has ended, the result answered
//! then. [`answer`] puts them together:
//!
//! - an ended job answers the result kept at its end, so a query after a restart (or after the
//!   ring has let the window go) answers the same numbers. Asked for another peak window, it is
//!   computed again when the ring still holds every sample it was computed from;
//! - otherwise the part this run measured (from the ring, see [`job_result`]) is combined with the
//!   carried parts: energies add up, a mean power is the energy over the time its parts cover
//!   (the gaps left out), the peak is the highest part's, `samples` the sum, and a result with a
//!   gap is `Partial`, with the gaps listed.
//!
//! Energy across a gap is not claimed: the ring keeps each counter counted from its first
//! reading in this run, not the hardware's raw value, so the counters of two runs cannot be
//! compared, and a counter that restarted between them (a reboot, a driver reload, a controller
//! restart) could not be told from one that counted on.

use powerstack_api::job::{JobFigures, JobResultV1};

use super::{JobHistory, JobWindow, NodeView, job_result};
use crate::ring::Ring;
use powerstack_job::combine::combine_figures;

/// What a query of job `window` answers on `node`: the result kept at its end, else its figures
/// now ([`measure`]). `peak_window_us` is the window the peak is taken over; `peak_asked`
/// whether the query asked for it (a kept result taken over another window is then computed
/// again when the ring still holds all it was computed from).
pub fn answer(
    node: &NodeView<'_>,
    ring: &Ring,
    window: &JobWindow,
    history: &JobHistory,
    peak_window_us: u64,
    peak_asked: bool,
) -> JobResultV1 {
    let Some(kept) = &history.result else {
        return measure(node, ring, window, history, peak_window_us);
    };
    let same_window = (kept.peak_window_s - peak_window_us as f64 / 1e6).abs() < 1e-9;
    if !peak_asked || same_window {
        return kept.clone();
    }
    let fresh = measure(node, ring, window, history, peak_window_us);
    if fresh.samples >= kept.samples && fresh.data_presence == kept.data_presence {
        fresh
    } else {
        kept.clone()
    }
}

/// Job `window`'s figures now: the part this run of the agent measured, from the ring, combined
/// with the parts and gaps of its history.
pub fn measure(
    node: &NodeView<'_>,
    ring: &Ring,
    window: &JobWindow,
    history: &JobHistory,
    peak_window_us: u64,
) -> JobResultV1 {
    let (now, host, domains) = (node.now_unix_us, node.hostname, node.domains);
    if history.carried.is_empty() && history.gaps.is_empty() {
        return job_result(ring, domains, window, now, host, peak_window_us);
    }
    let begin = history.part_begin_us(window).min(window.end_unix_us.unwrap_or(u64::MAX));
    let part = JobWindow { begin_unix_us: begin, ..window.clone() };
    let here = job_result(ring, domains, &part, now, host, peak_window_us);
    combine(here, history)
}

/// The figures of the parts of a job measured by several runs of the agent (`history`'s carried
/// parts, then `here`, this run's), with `history`'s gaps. Names, labels and `running` are
/// `here`'s.
pub fn combine(here: JobResultV1, history: &JobHistory) -> JobResultV1 {
    let parts: Vec<JobFigures> =
        history.carried.iter().chain(std::iter::once(&here)).map(JobResultV1::figures).collect();
    let figures = combine_figures(&parts, !history.gaps.is_empty());
    JobResultV1 {
        user: here.user.clone(),
        app: here.app.clone(),
        running: here.running,
        gaps: history.gaps.clone(),
        ..JobResultV1::unanswered(&here.hostname, &here.job_id)
    }
    .with_figures(&figures)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use powerstack_api::job::{DataPresence, GAP_RESTART, JobGapV1, NOT_MEASURED};

    use super::*;
    use crate::ring::DomainMeta;

    /// A part from `from_s` to `to_s` (seconds) at `watts` on the node, split between two
    /// sockets' CPUs, with 10 samples a second.
    fn part(from_s: u64, to_s: u64, watts: f64, peak: f64) -> JobResultV1 {
        let secs = (to_s - from_s) as f64;
        JobResultV1 {
            running: false,
            node_power: watts,
            energy_joules: watts * secs,
            domain_power: BTreeMap::from([
                ("cpu_power_0".to_string(), watts / 2.0),
                ("mem_power_0".to_string(), NOT_MEASURED),
            ]),
            peak_node_power: peak,
            peak_window_s: 1.0,
            result_start_time: from_s * 1_000_000,
            result_end_time: to_s * 1_000_000,
            samples: (to_s - from_s) * 10 + 1,
            data_presence: DataPresence::Complete,
            ..JobResultV1::unanswered("n1", "j")
        }
    }

    fn gap(from_s: u64, to_s: u64) -> JobGapV1 {
        JobGapV1 {
            start_unix_us: from_s * 1_000_000,
            end_unix_us: to_s * 1_000_000,
            cause: GAP_RESTART.into(),
        }
    }

    /// A node's ring and its columns.
    struct Node {
        ring: Ring,
        domains: Vec<DomainMeta>,
    }

    impl Node {
        fn view(&self) -> NodeView<'_> {
            NodeView { hostname: "n1", domains: &self.domains, now_unix_us: T0 + 3_600_000_000 }
        }
    }

    /// A node measured by one 10 W node counter, 10 samples kept at 10 Hz, holding `rows` rows
    /// from `T0`.
    fn node(rows: u64) -> Node {
        use powerstack_model::{CounterSpec, DomainId, DomainInfo, Measurement};
        let info = DomainInfo {
            id: DomainId::NODE,
            provider: "fake",
            source: "fake".into(),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
            limits: vec![],
            socket: None,
            label: None,
        };
        let meta = DomainMeta { info, joules_per_tick: 1e-6 };
        let mut node = Node { ring: Ring::new(10, 1), domains: vec![meta] };
        push(&mut node, 0..rows);
        node
    }

    const T0: u64 = 1_700_000_000_000_000;

    fn push(node: &mut Node, rows: std::ops::Range<u64>) {
        for i in rows {
            node.ring.push(T0 + i * 100_000, &[i * 1_000_000]);
        }
    }

    #[test]
    fn an_ended_job_answers_its_kept_result_after_the_ring_has_let_it_go() {
        let mut node = node(8);
        let window = JobWindow {
            id: "j".into(),
            user: None,
            app: None,
            begin_unix_us: T0 + 100_000,
            end_unix_us: Some(T0 + 600_000),
        };
        let mut history = JobHistory::default();
        let at_end = answer(&node.view(), &node.ring, &window, &history, 1_000_000, false);
        assert_eq!(at_end.data_presence, DataPresence::Complete);
        assert!((at_end.node_power - 10.0).abs() < 1e-9, "{at_end:?}");
        history.result = Some(at_end.clone());
        // While the ring holds the window, another peak window is computed afresh.
        let other = answer(&node.view(), &node.ring, &window, &history, 200_000, true);
        assert_eq!((other.peak_window_s, other.energy_joules), (0.2, at_end.energy_joules));
        // Once the ring has let the window go, the result kept at the end is the answer, asked
        // for another peak window or not.
        push(&mut node, 8..30);
        assert_eq!(
            measure(&node.view(), &node.ring, &window, &history, 1_000_000).data_presence,
            DataPresence::None
        );
        assert_eq!(answer(&node.view(), &node.ring, &window, &history, 1_000_000, false), at_end);
        assert_eq!(answer(&node.view(), &node.ring, &window, &history, 200_000, true), at_end);
    }

    #[test]
    fn parts_add_up_around_a_gap_and_the_result_is_partial_saying_where() {
        // 100 W for 10 s, a 5 s gap, 200 W for 30 s.
        let history = JobHistory {
            carried: vec![part(0, 10, 100.0, 120.0)],
            gaps: vec![gap(10, 15)],
            result: None,
        };
        let mut here = part(15, 45, 200.0, 210.0);
        here.running = true;
        let r = combine(here, &history);
        assert_eq!(r.data_presence, DataPresence::Partial);
        assert_eq!(r.gaps, history.gaps);
        assert!(r.running);
        assert_eq!(r.energy_joules, 100.0 * 10.0 + 200.0 * 30.0);
        // The mean is over the 40 s measured, not the 45 s of the window.
        assert_eq!(r.node_power, 7000.0 / 40.0);
        assert_eq!(r.domain_power["cpu_power_0"], 3500.0 / 40.0);
        assert_eq!(r.domain_power["mem_power_0"], NOT_MEASURED);
        assert_eq!(r.peak_node_power, 210.0);
        assert_eq!((r.result_start_time, r.result_end_time), (0, 45_000_000));
        assert_eq!(r.samples, 101 + 301);
    }

    #[test]
    fn nothing_measured_on_either_side_of_a_gap_is_none() {
        let history = JobHistory { carried: vec![], gaps: vec![gap(0, 5)], result: None };
        let r = combine(JobResultV1::unanswered("n1", "j"), &history);
        assert_eq!(r.data_presence, DataPresence::None);
        assert_eq!((r.energy_joules, r.node_power, r.samples), (NOT_MEASURED, NOT_MEASURED, 0));
        assert_eq!(r.gaps.len(), 1);
    }

    #[test]
    fn the_peak_is_never_below_the_mean_and_a_part_without_data_is_left_out() {
        let history = JobHistory {
            carried: vec![part(0, 10, 300.0, 300.0), JobResultV1::unanswered("n1", "j")],
            gaps: vec![gap(10, 12)],
            result: None,
        };
        // A part whose own peak is below the combined mean cannot lower the peak under it.
        let r = combine(part(12, 22, 100.0, 100.0), &history);
        assert_eq!(r.node_power, 200.0);
        assert_eq!(r.peak_node_power, 300.0);
        assert_eq!(r.samples, 202);
    }
}
