//! Validation and planning: every change checked against the domain's limits before anything
//! is written ([`validate`], [`plan`]), and node caps split into per-domain changes
//! ([`plan_node_cap`]).

use powerstack_model::window::seconds_text;
use powerstack_model::{
    DomainInfo, DomainKind, LimitWrite, PowerLimit, PowerReport, WindowRefusal,
};

use crate::allocate::{AllocError, Allocation, Cappable, Policy, allocate};
use crate::{CapError, Planned, Request, key_of};

/// When the hardware reports no minimum for a limit, powerstack never writes less than this share
/// of the domain's maximum (a node cap never gives a domain less either).
pub const ASSUMED_MIN_SHARE: f64 = 0.25;

/// The least limit powerstack writes when neither a minimum nor a maximum is known: below it a
/// limit rounds to nothing on RAPL (1/8 W units) and passes the 1 W read-back tolerance as 0 W.
pub const LEAST_LIMIT_WATTS: f64 = 1.0;

/// The lowest limit powerstack gives a control, and what it is (to follow "the minimum is"): the
/// hardware's minimum when it reports one above zero, else [`ASSUMED_MIN_SHARE`] of its maximum,
/// else [`LEAST_LIMIT_WATTS`].
pub fn lowest_watts(limit: &PowerLimit) -> (f64, String) {
    if let Some(m) = limit.min_watts.filter(|m| *m > 0.0) {
        return (m, "the hardware's".into());
    }
    match limit.max_watts.filter(|m| *m > 0.0) {
        Some(max) => (
            ASSUMED_MIN_SHARE * max,
            format!("a quarter of the {max} W maximum, as the hardware reports none"),
        ),
        None => (LEAST_LIMIT_WATTS, "1 W, the least powerstack writes".into()),
    }
}

/// The allowed range of a limit, as text.
pub fn range_text(limit: &PowerLimit) -> String {
    let (min, _) = lowest_watts(limit);
    let max = limit
        .max_watts
        .filter(|m| *m > 0.0)
        .map(|m| format!("{m} W"))
        .unwrap_or_else(|| "no known maximum".into());
    format!("[{min} W .. {max}]")
}

/// Checks a write against the domain's limit: a finite positive value, at least the lowest limit
/// (see [`lowest_watts`]), at most the known maximum; the limit exists and is not locked; a time
/// window is one the limit can hold. Returns the current limit.
pub fn validate(info: &DomainInfo, write: &LimitWrite) -> Result<PowerLimit, CapError> {
    let what = format!("{} {}", info.id, write.constraint);
    let Some(limit) = info.limit(&write.constraint) else {
        let names: Vec<&str> = info.limits.iter().map(|l| l.name.as_str()).collect();
        return Err(CapError::NoSuchControl {
            what,
            available: if names.is_empty() {
                "it has no power limit".into()
            } else {
                format!("its limits are {}", names.join(", "))
            },
        });
    };
    let range = range_text(limit);
    let w = write.limit_watts;
    if !w.is_finite() || w <= 0.0 {
        return Err(CapError::Invalid { what, value: crate::watts_text(w), range });
    }
    if limit.locked {
        return Err(CapError::Locked { what });
    }
    if limit.max_watts.is_some_and(|m| m > 0.0 && w > m + 1e-9) {
        return Err(CapError::OutOfRange { what, value: w, range });
    }
    let (lowest_watts, why) = lowest_watts(limit);
    if w < lowest_watts - 1e-9 {
        return Err(CapError::BelowMinimum { what, value: w, range, lowest_watts, why });
    }
    if let Some(t) = write.time_window_s {
        check_window(&what, limit, t)?;
    }
    Ok(limit.clone())
}

/// Checks that `limit` can hold a time window of `t` seconds.
fn check_window(what: &str, limit: &PowerLimit, t: f64) -> Result<(), CapError> {
    let refuse = |value: String, detail: String| CapError::TimeWindow {
        what: what.to_string(),
        value,
        detail,
    };
    if !(t.is_finite() && t > 0.0) {
        return Err(refuse(
            format!("{t} s"),
            "is not positive: give a positive duration (`1s`, `28ms`)".into(),
        ));
    }
    let value = seconds_text(t);
    let Some(windows) = limit.time_windows else {
        if limit.time_window_s.is_none() {
            return Err(refuse(value, "cannot be set: this limit has no averaging window".into()));
        }
        return Ok(());
    };
    match windows.check(t) {
        Ok(()) => Ok(()),
        Err(WindowRefusal::OutOfRange) => Err(refuse(
            value,
            format!("is outside what the hardware can hold, {}", windows.describe()),
        )),
        Err(WindowRefusal::OffGrid { below_s, above_s }) => Err(refuse(
            value,
            format!(
                "cannot be held: the hardware would set {} (its windows are {}, rounded down); ask for {} or {}",
                seconds_text(below_s),
                windows.describe(),
                seconds_text(below_s),
                seconds_text(above_s)
            ),
        )),
    }
}

/// Checks that no domain of a plan ends up with a short-term limit below its long-term limit,
/// counting the limits in force where the plan leaves them (a disabled or zero short-term limit
/// in force is not counted).
fn check_short_term(catalog: &[DomainInfo], planned: &[Planned]) -> Result<(), CapError> {
    let mut indices: Vec<usize> = planned
        .iter()
        .filter(|p| matches!(p.write.constraint.as_str(), "long_term" | "short_term"))
        .map(|p| p.index)
        .collect();
    indices.dedup();
    for i in indices {
        let Some(info) = catalog.get(i) else { continue };
        let effective = |c: &str| {
            let asked = planned.iter().rev().find(|p| p.index == i && p.write.constraint == c);
            match asked {
                Some(p) => Some((p.write.limit_watts, "asked")),
                None => info
                    .limit(c)
                    .filter(|l| l.enabled != Some(false))
                    .and_then(|l| l.limit_watts)
                    .filter(|w| *w > 0.0)
                    .map(|w| (w, "in force")),
            }
        };
        if let (Some((long_watts, long_from)), Some((short_watts, short_from))) =
            (effective("long_term"), effective("short_term"))
            && short_watts < long_watts - 1e-9
        {
            return Err(CapError::ShortBelowLong {
                domain: info.id.to_string(),
                short_watts,
                short_from,
                long_watts,
                long_from,
            });
        }
    }
    Ok(())
}

/// Raises every request below its control's lowest limit (see [`lowest_watts`]) to that limit
/// (`--clamp`); returns whether any was raised. Everything else is left to [`plan`].
pub fn clamp_to_lowest(catalog: &[DomainInfo], requests: &mut [Request]) -> bool {
    let mut clamped = false;
    for r in requests.iter_mut() {
        let lowest = catalog
            .get(r.index)
            .and_then(|d| d.limit(&r.write.constraint))
            .map(|l| lowest_watts(l).0);
        if let Some(lowest) = lowest
            && r.write.limit_watts.is_finite()
            && r.write.limit_watts < lowest
        {
            r.write.limit_watts = lowest;
            clamped = true;
        }
    }
    clamped
}

/// The limit a node cap sets on a domain of this kind: the package and memory long-term limit, the
/// GPU cap.
pub fn node_cap_constraint(kind: DomainKind) -> Option<&'static str> {
    match kind {
        DomainKind::Package | DomainKind::Memory => Some("long_term"),
        DomainKind::Gpu => Some("cap"),
        _ => None,
    }
}

/// The domains a node cap can be spread over (catalog index and bounds), and the measured power of
/// what cannot be capped, from a recent power report.
pub fn node_cap_inputs(
    catalog: &[DomainInfo],
    report: &PowerReport,
) -> (Vec<(usize, Cappable)>, f64) {
    let mut cappable = Vec::new();
    let mut capped_watts = 0.0;
    let mut uncapped_components = 0.0;
    for (i, info) in catalog.iter().enumerate() {
        let measured = report.domains.get(i).and_then(|d| d.power_watts);
        let limit =
            node_cap_constraint(info.id.kind).and_then(|c| info.limit(c)).filter(|l| !l.locked);
        match limit {
            Some(l) => {
                let max = l.max_watts.filter(|m| *m > 0.0).or(l.limit_watts).unwrap_or(0.0);
                if max <= 0.0 {
                    uncapped_components += measured.unwrap_or(0.0);
                    continue;
                }
                let min =
                    l.min_watts.filter(|m| *m > 0.0).unwrap_or(ASSUMED_MIN_SHARE * max).min(max);
                cappable.push((i, Cappable { id: info.id, min_watts: min, max_watts: max }));
                capped_watts += measured.unwrap_or(0.0);
            }
            None if matches!(
                info.id.kind,
                DomainKind::Package | DomainKind::Memory | DomainKind::Gpu
            ) =>
            {
                uncapped_components += measured.unwrap_or(0.0);
            }
            None => {}
        }
    }
    // With a direct node measurement, everything outside the cappable domains is uncappable
    // (fans, board, NICs, uncapped memory); otherwise only the uncapped components are known.
    // A node figure that contains a direct measure (a node meter, or psys) covers what the
    // components do not: the difference is uncappable.
    let direct = |i: &usize| catalog.get(*i).is_some_and(|d| d.id.kind.is_node_level());
    let uncappable = match &report.node {
        Some(n) => match &n.source {
            powerstack_model::NodeSource::Direct(_) => (n.watts - capped_watts).max(0.0),
            powerstack_model::NodeSource::Sum(parts) if parts.iter().any(direct) => {
                (n.watts - capped_watts).max(0.0)
            }
            powerstack_model::NodeSource::Sum(_) => uncapped_components,
        },
        None => uncapped_components,
    };
    (cappable, uncappable)
}

/// Validates every request against `catalog`, and the short-term limits against the long-term
/// ones; writes nothing. The whole list is checked before anything can be applied, so a bad value
/// never leaves a change half-made.
pub fn plan(catalog: &[DomainInfo], requests: &[Request]) -> Result<Vec<Planned>, CapError> {
    let planned = requests
        .iter()
        .map(|r| {
            let info = catalog.get(r.index).ok_or_else(|| CapError::NoSuchControl {
                what: format!("domain #{}", r.index),
                available: format!("the node has {} domains", catalog.len()),
            })?;
            let previous = validate(info, &r.write)?;
            Ok(Planned {
                index: r.index,
                id: info.id,
                key: key_of(info, &r.write.constraint),
                source: info.source.clone(),
                write: r.write.clone(),
                previous,
            })
        })
        .collect::<Result<Vec<Planned>, CapError>>()?;
    check_short_term(catalog, &planned)?;
    Ok(planned)
}

/// A node cap, planned: the requests to make and the split behind them.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCapPlan {
    /// One request per cappable domain (long-term limits enabled, GPU caps).
    pub requests: Vec<Request>,
    /// How the cap was split.
    pub allocation: Allocation,
}

/// Splits a node cap of `watts` over `catalog`'s cappable domains with `policy`, from a recent
/// power `report` (for the power that cannot be capped). Refuses a cap that is not a positive
/// number of watts, one above what the node can draw (except with the Variorum policy, which
/// ignores everything but the packages), and one below what it can reach unless `clamp`.
pub fn plan_node_cap(
    catalog: &[DomainInfo],
    report: &PowerReport,
    watts: f64,
    policy: Policy,
    clamp: bool,
) -> Result<NodeCapPlan, CapError> {
    if !watts.is_finite() || watts <= 0.0 {
        return Err(CapError::Invalid {
            what: "node cap".into(),
            value: crate::watts_text(watts),
            range: "a positive number of watts".into(),
        });
    }
    let (cappable, uncappable) = node_cap_inputs(catalog, report);
    let domains: Vec<Cappable> = cappable.iter().map(|(_, c)| c.clone()).collect();
    // Before any range: with nothing cappable, the range would be made of measured power alone.
    if domains.is_empty() {
        return Err(AllocError::NothingToCap.into());
    }
    if policy != Policy::Variorum {
        let most_watts = uncappable + domains.iter().map(|c| c.max_watts).sum::<f64>();
        let least_watts = uncappable + domains.iter().map(|c| c.min_watts).sum::<f64>();
        if watts > most_watts {
            return Err(CapError::AboveNodeMaximum { watts, most_watts, least_watts });
        }
    }
    let allocation = allocate(policy, watts, &domains, uncappable, clamp)?;
    let requests = allocation
        .shares
        .iter()
        .filter_map(|(id, share)| {
            let (i, _) = cappable.iter().find(|(_, c)| c.id == *id)?;
            let constraint = node_cap_constraint(id.kind)?;
            // Round to a milliwatt: hardware rounds further, and the read-back allows for it.
            let share = (share * 1000.0).round() / 1000.0;
            let enabled = (constraint == "long_term").then_some(true);
            Some(Request {
                index: *i,
                write: LimitWrite {
                    constraint: constraint.to_string(),
                    limit_watts: share,
                    time_window_s: None,
                    enabled,
                },
            })
        })
        .collect();
    Ok(NodeCapPlan { requests, allocation })
}

#[cfg(test)]
pub(crate) mod tests {
    use powerstack_model::{CounterSpec, DomainId, Measurement, TimeWindows};

    use super::*;

    /// A limit of `watts` in `min..max`, enabled, with a RAPL window.
    pub(crate) fn limit(name: &str, watts: f64, min: Option<f64>, max: Option<f64>) -> PowerLimit {
        PowerLimit {
            name: name.into(),
            limit_watts: Some(watts),
            min_watts: min,
            max_watts: max,
            time_window_s: Some(1.0),
            time_windows: Some(TimeWindows::rapl(976e-6, None)),
            enabled: Some(true),
            ..PowerLimit::default()
        }
    }

    /// A RAPL package without a reported minimum (long-term 150 W of at most 150 W, short-term
    /// 180 W of at most 300 W), and a GPU cap with a range and no window.
    fn catalog() -> Vec<DomainInfo> {
        let pkg = DomainInfo {
            id: DomainId::new(DomainKind::Package, 0),
            provider: "powercap",
            source: "intel-rapl:0".into(),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
            limits: vec![
                limit("long_term", 150.0, None, Some(150.0)),
                limit("short_term", 180.0, None, Some(300.0)),
            ],
            socket: Some(0),
            label: None,
        };
        let gpu = DomainInfo {
            id: DomainId::new(DomainKind::Gpu, 0),
            provider: "nvml",
            limits: vec![PowerLimit {
                time_window_s: None,
                time_windows: None,
                ..limit("cap", 300.0, Some(200.0), Some(700.0))
            }],
            ..pkg.clone()
        };
        vec![pkg, gpu]
    }

    fn req(index: usize, constraint: &str, watts: f64, window_s: Option<f64>) -> Request {
        Request {
            index,
            write: LimitWrite {
                constraint: constraint.into(),
                limit_watts: watts,
                time_window_s: window_s,
                enabled: None,
            },
        }
    }

    fn refused(requests: &[Request]) -> String {
        match plan(&catalog(), requests) {
            Ok(p) => panic!("accepted: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_limit_below_the_lowest_is_refused_with_where_that_comes_from_and_clamp_raises_it() {
        let m = refused(&[req(0, "long_term", 0.0001, None)]);
        assert_eq!(
            m,
            "package-0 long_term: 0.0001 W is below the allowed range [37.5 W .. 150 W] (the minimum is a quarter of the 150 W maximum, as the hardware reports none); give at least 37.5 W, or clamp to apply that minimum (`--clamp`; `clamp: true` through the agent)"
        );
        let m = refused(&[req(1, "cap", 150.0, None)]);
        assert!(m.contains("[200 W .. 700 W] (the minimum is the hardware's)"), "{m}");
        // No range at all: 1 W is the least.
        let mut bare = catalog();
        bare[1].limits[0].min_watts = None;
        bare[1].limits[0].max_watts = None;
        let e = plan(&bare, &[req(1, "cap", 0.5, None)]).unwrap_err().to_string();
        assert!(e.contains("(the minimum is 1 W, the least powerstack writes)"), "{e}");

        let mut requests = vec![req(0, "long_term", 0.0001, None), req(1, "cap", 250.0, None)];
        assert!(clamp_to_lowest(&catalog(), &mut requests));
        assert_eq!(requests[0].write.limit_watts, 37.5);
        assert_eq!(requests[1].write.limit_watts, 250.0);
        assert!(plan(&catalog(), &requests).is_ok());
        assert!(!clamp_to_lowest(&catalog(), &mut requests), "nothing left to raise");
    }

    #[test]
    fn a_time_window_must_be_one_the_limit_can_hold() {
        assert!(plan(&catalog(), &[req(0, "long_term", 100.0, Some(1.0))]).is_ok());
        let m = refused(&[req(0, "long_term", 100.0, Some(100.0 * 3600.0))]);
        assert!(m.starts_with("package-0 long_term: a time window of 100 h cannot be held"), "{m}");
        assert!(
            m.contains("would set 90.97 h") && m.ends_with("ask for 90.97 h or 109.2 h"),
            "{m}"
        );
        let m = refused(&[req(0, "long_term", 100.0, Some(1e-4))]);
        assert!(m.contains("100 µs is outside what the hardware can hold, [976 µs .. "), "{m}");
        let m = refused(&[req(0, "long_term", 100.0, Some(-1.0))]);
        assert!(m.contains("-1 s is not positive: give a positive duration"), "{m}");
        let m = refused(&[req(1, "cap", 300.0, Some(1.0))]);
        assert_eq!(
            m,
            "gpu-0 cap: a time window of 1 s cannot be set: this limit has no averaging window"
        );
    }

    #[test]
    fn a_short_term_limit_below_the_long_term_one_is_refused_asked_or_in_force() {
        let m = refused(&[req(0, "long_term", 100.0, None), req(0, "short_term", 90.0, None)]);
        assert_eq!(
            m,
            "package-0: short_term limit 90 W (asked) is below the long_term limit 100 W (asked); a short-term limit must be at least the long-term one: raise the short-term limit or lower the long-term one"
        );
        // Against the short-term limit in force (180 W) and the long-term one (150 W).
        let mut c = catalog();
        c[0].limits[1].limit_watts = Some(120.0);
        let e = plan(&c, &[req(0, "long_term", 130.0, None)]).unwrap_err().to_string();
        assert!(e.contains("short_term limit 120 W (in force)"), "{e}");
        let m = refused(&[req(0, "short_term", 140.0, None)]);
        assert!(m.contains("below the long_term limit 150 W (in force)"), "{m}");
        assert!(plan(&catalog(), &[req(0, "short_term", 150.0, None)]).is_ok());
        // A disabled short-term limit in force does not count.
        c[0].limits[1].enabled = Some(false);
        assert!(plan(&c, &[req(0, "long_term", 130.0, None)]).is_ok());
    }
}
