//! What an unprivileged reader gets ([`crate::access::Tier::Unprivileged`]): the one place the
//! agent's figures are coarsened and its writers' details removed.
//!
//! Linux made `energy_uj` readable by root only (CVE-2020-8694, PLATYPUS): energy read often and
//! finely enough leaks what a process computes. The agent must not reopen that, so for an
//! unprivileged caller every figure is
//!
//! - **as of the last whole second** of the agent's clock ([`as_of_us`]): nothing newer shows;
//! - **averaged over at least one second**: power is a mean between two samples at least
//!   [`COARSE_INTERVAL_US`] apart; `/v1/samples` gives at most one sample per whole second (the
//!   last one at or before each boundary, shown at that boundary), so that each difference is a
//!   mean over its second;
//! - **rounded**: power to whole watts ([`watts`], to nearest) and energy to whole joules
//!   ([`joules`], down); `/v1/samples` counters are whole joules (`joules_per_tick` 1).
//!
//! Every route (`/v1/power`, `/v1/samples`, `/v1/jobs`, `/v1/jobs/{id}`) and `/metrics` coarsen
//! through these functions.

use powerstack_api::cap::CapsV1;
use powerstack_api::job::JobResultV1;
use powerstack_model::PowerReport;

/// The shortest interval an unprivileged caller's power is averaged over, µs.
pub const COARSE_INTERVAL_US: u64 = 1_000_000;

/// A power as an unprivileged caller sees it: whole watts, to nearest.
pub fn watts(w: f64) -> f64 {
    w.round()
}

/// An energy as an unprivileged caller sees it: whole joules, rounded down.
pub fn joules(j: f64) -> f64 {
    j.floor()
}

/// The last whole-second boundary at or before `unix_us`, µs: what an unprivileged caller's
/// figures are as of.
pub fn as_of_us(unix_us: u64) -> u64 {
    unix_us - unix_us % COARSE_INTERVAL_US
}

/// The whole-second boundary a sample taken at `unix_us` stands for when it is the last sample at
/// or before it: its time rounded up to the whole second.
pub fn boundary_of(unix_us: u64) -> u64 {
    unix_us.div_ceil(COARSE_INTERVAL_US).saturating_mul(COARSE_INTERVAL_US)
}

/// A counter of `ticks` (of `joules_per_tick` each) in whole joules, rounded down.
pub fn whole_joules(ticks: u64, joules_per_tick: f64) -> u64 {
    joules(ticks as f64 * joules_per_tick) as u64
}

/// Rounds a power report (its window already chosen at whole seconds).
pub fn report(r: &mut PowerReport) {
    for d in &mut r.domains {
        d.power_watts = d.power_watts.map(watts);
        d.energy_joules = d.energy_joules.map(joules);
    }
    if let Some(n) = &mut r.node {
        n.watts = watts(n.watts);
    }
}

/// Coarsens a job's result; `labels` says whether the caller may see its `user` and `app`.
pub fn job(r: &mut JobResultV1, labels: bool) {
    r.node_power = watts(r.node_power);
    r.energy_joules = joules(r.energy_joules);
    r.peak_node_power = watts(r.peak_node_power);
    for w in r.domain_power.values_mut() {
        *w = watts(*w);
    }
    if !labels {
        r.user = None;
        r.app = None;
    }
}

/// What is left of a writer's `via` (`powerstack cap node 800`, `powerstack agent (HTTP, alice
/// (uid 1000), pid 42)`) for an unprivileged caller: the program, `powerstack cap`,
/// `powerstack agent`.
pub fn program(via: &str) -> String {
    let head = via.split('(').next().unwrap_or("");
    head.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// Removes the writers' users, pids and command lines from a caps document, keeping the program
/// that wrote each limit.
pub fn caps(doc: &mut CapsV1) {
    if let Some(n) = &mut doc.node {
        n.min_watts = watts(n.min_watts);
        n.max_watts = watts(n.max_watts);
        n.uncappable_watts = watts(n.uncappable_watts);
        n.cap_in_force_watts = watts(n.cap_in_force_watts);
        n.standing_watts = n.standing_watts.map(watts);
    }
    for c in &mut doc.controls {
        c.set_detail = c
            .set_detail
            .as_deref()
            .map(|d| program(d.split_once(" via ").map_or(d, |(_, via)| via)));
    }
    for w in &mut doc.warnings {
        if w.starts_with("a previous run (pid") {
            *w = "a previous run was interrupted while writing limits; the next cap change restores the originals".into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_whole_and_as_of_whole_seconds() {
        assert_eq!((watts(99.5), watts(99.49), joules(12.999)), (100.0, 99.0, 12.0));
        assert_eq!(as_of_us(5_999_999), 5_000_000);
        assert_eq!(as_of_us(6_000_000), 6_000_000);
        assert_eq!(boundary_of(5_000_001), 6_000_000);
        assert_eq!(boundary_of(6_000_000), 6_000_000);
        assert_eq!(whole_joules(2_500_000, 1e-6), 2);
    }

    #[test]
    fn writers_are_named_by_their_program_only() {
        assert_eq!(program("powerstack cap node 800 --clamp"), "powerstack cap");
        assert_eq!(
            program("powerstack agent (HTTP, alice (uid 1000), pid 42)"),
            "powerstack agent"
        );
        let mut doc: CapsV1 = serde_json::from_value(serde_json::json!({
            "schema": "x", "hostname": "h", "simulated": false, "simulated_profile": null,
            "controls": [{
                "domain": "package", "index": 0, "constraint": "long_term", "limit_watts": 100.0,
                "min_watts": null, "max_watts": null, "default_watts": null,
                "time_window_s": null, "enabled": null, "locked": false, "provider": "p",
                "source": "s", "set_by": "powerstack",
                "set_detail": "alice (uid 1000) via powerstack agent (HTTP, alice (uid 1000), pid 42)",
                "set_at_unix_us": 1, "original_watts": 150.0
            }],
            "warnings": ["a previous run (pid 7, powerstack cap node 800) was interrupted while writing limits; the next cap change restores the originals"]
        }))
        .unwrap();
        caps(&mut doc);
        assert_eq!(doc.controls[0].set_detail.as_deref(), Some("powerstack agent"));
        assert!(!doc.warnings[0].contains("pid"), "{:?}", doc.warnings);
    }
}
