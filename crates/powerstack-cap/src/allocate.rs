//! Splitting a node power cap over the node's cappable domains (pure arithmetic).

use powerstack_model::DomainId;

/// How a node cap is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Each domain's share is proportional to its maximum, within its minimum and maximum; power
    /// that cannot be capped is charged first.
    Proportional,
    /// Equal shares, within each domain's minimum and maximum; uncappable power charged first.
    Uniform,
    /// Variorum's `variorum_cap_best_effort_node_power_limit`: the cap (rounded down to a multiple
    /// of the socket count, in whole watts) split evenly over the CPU packages' long-term limits;
    /// memory, GPUs and uncappable power are ignored.
    Variorum,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 3] = [Policy::Proportional, Policy::Uniform, Policy::Variorum];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Proportional => "proportional",
            Policy::Uniform => "uniform",
            Policy::Variorum => "variorum",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            format!("unknown policy {s:?}: expected proportional, uniform or variorum")
        })
    }
}

/// A domain a node cap can be spread over.
#[derive(Clone, Debug, PartialEq)]
pub struct Cappable {
    /// The domain.
    pub id: DomainId,
    /// The smallest limit it may be given, watts.
    pub min_watts: f64,
    /// The largest limit it may be given, watts.
    pub max_watts: f64,
}

/// The result of splitting a node cap.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// The limit given to each cappable domain, in the order given (Variorum: packages only).
    pub shares: Vec<(DomainId, f64)>,
    /// The power charged for what cannot be capped, watts.
    pub uncappable_watts: f64,
    /// What was left for the cappable domains, watts.
    pub budget_watts: f64,
    /// Whether the cap was below what the node can reach and the minimum was applied instead.
    pub clamped: bool,
}

/// Why a node cap cannot be split.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AllocError {
    /// Nothing on the node can be capped.
    #[error(
        "nothing on this node can be capped: no CPU package, memory or GPU has a writable power limit (`powerstack cap show` lists the limits)"
    )]
    NothingToCap,
    /// The cap is below the lowest the node can reach.
    #[error(
        "{requested_watts} W is below the lowest this node can reach, {minimum_watts:.1} W ({uncappable_watts:.1} W that cannot be capped + {floor_watts:.1} W of minimum limits); use --clamp to apply that minimum"
    )]
    BelowMinimum {
        /// The cap asked for.
        requested_watts: f64,
        /// The lowest reachable node power.
        minimum_watts: f64,
        /// Power that cannot be capped.
        uncappable_watts: f64,
        /// The sum of the domains' minimum limits.
        floor_watts: f64,
    },
}

/// Splits `node_watts` over `domains`. `uncappable_watts` is the measured power of what cannot be
/// capped (charged first, except by [`Policy::Variorum`]).
pub fn allocate(
    policy: Policy,
    node_watts: f64,
    domains: &[Cappable],
    uncappable_watts: f64,
    clamp: bool,
) -> Result<Allocation, AllocError> {
    let domains: Vec<&Cappable> = match policy {
        Policy::Variorum => {
            domains.iter().filter(|d| d.id.kind == powerstack_model::DomainKind::Package).collect()
        }
        _ => domains.iter().collect(),
    };
    if domains.is_empty() {
        return Err(AllocError::NothingToCap);
    }
    let uncappable = if policy == Policy::Variorum { 0.0 } else { uncappable_watts.max(0.0) };
    let floor: f64 = domains.iter().map(|d| d.min_watts).sum();
    let ceiling: f64 = domains.iter().map(|d| d.max_watts).sum();
    let budget = match policy {
        Policy::Variorum => {
            // Variorum: whole watts, rounded down to a multiple of the socket count.
            let n = domains.len() as f64;
            let whole = node_watts.floor();
            whole - whole % n
        }
        _ => node_watts - uncappable,
    };
    if budget < floor - 1e-9 {
        if !clamp {
            return Err(AllocError::BelowMinimum {
                requested_watts: node_watts,
                minimum_watts: floor + uncappable,
                uncappable_watts: uncappable,
                floor_watts: floor,
            });
        }
        let shares = domains.iter().map(|d| (d.id, d.min_watts)).collect();
        return Ok(Allocation {
            shares,
            uncappable_watts: uncappable,
            budget_watts: floor,
            clamped: true,
        });
    }
    let weight = |d: &Cappable| match policy {
        Policy::Proportional => d.max_watts.max(0.0),
        Policy::Uniform | Policy::Variorum => 1.0,
    };
    let shares: Vec<f64> = if budget >= ceiling {
        domains.iter().map(|d| d.max_watts).collect()
    } else {
        // Find λ with Σ clamp(λ·w, min, max) = budget; the sum is monotone in λ.
        let total = |lambda: f64| -> f64 {
            domains.iter().map(|d| (lambda * weight(d)).clamp(d.min_watts, d.max_watts)).sum()
        };
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        while total(hi) < budget && hi < 1e12 {
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if total(mid) < budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        domains.iter().map(|d| (hi * weight(d)).clamp(d.min_watts, d.max_watts)).collect()
    };
    Ok(Allocation {
        shares: domains.iter().zip(shares).map(|(d, s)| (d.id, s)).collect(),
        uncappable_watts: uncappable,
        budget_watts: budget.min(ceiling),
        clamped: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use powerstack_model::DomainKind;
    use proptest::prelude::*;

    fn d(kind: DomainKind, index: u32, min: f64, max: f64) -> Cappable {
        Cappable { id: DomainId::new(kind, index), min_watts: min, max_watts: max }
    }

    fn node() -> Vec<Cappable> {
        vec![
            d(DomainKind::Package, 0, 50.0, 150.0),
            d(DomainKind::Package, 1, 50.0, 150.0),
            d(DomainKind::Gpu, 0, 200.0, 700.0),
            d(DomainKind::Gpu, 1, 200.0, 700.0),
        ]
    }

    #[test]
    fn proportional_splits_by_maximum_after_charging_uncappable_power() {
        let a = allocate(Policy::Proportional, 1100.0, &node(), 100.0, false).unwrap();
        // Budget 1000 W over maxima 150:150:700:700 (sum 1700).
        let w: Vec<f64> = a.shares.iter().map(|s| s.1).collect();
        assert!((w[0] - 1000.0 * 150.0 / 1700.0).abs() < 1e-6, "{w:?}");
        assert!((w[2] - 1000.0 * 700.0 / 1700.0).abs() < 1e-6, "{w:?}");
        assert!((w.iter().sum::<f64>() - 1000.0).abs() < 1e-6);
        assert_eq!(a.uncappable_watts, 100.0);
    }

    #[test]
    fn shares_respect_minima_and_the_rest_is_redistributed() {
        // Budget 560: proportional would give packages 49.4 W (< 50): they get 50, GPUs the rest.
        let a = allocate(Policy::Proportional, 560.0, &node(), 0.0, false).unwrap();
        let w: Vec<f64> = a.shares.iter().map(|s| s.1).collect();
        assert!((w[0] - 50.0).abs() < 1e-6 && (w[1] - 50.0).abs() < 1e-6, "{w:?}");
        assert!((w[2] - 230.0).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn uniform_gives_equal_shares_within_bounds() {
        let a = allocate(Policy::Uniform, 1000.0, &node(), 0.0, false).unwrap();
        let w: Vec<f64> = a.shares.iter().map(|s| s.1).collect();
        // 250 each would exceed the packages' 150: packages 150, GPUs 350.
        assert_eq!(
            w.iter().map(|x| x.round()).collect::<Vec<_>>(),
            vec![150.0, 150.0, 350.0, 350.0]
        );
    }

    #[test]
    fn variorum_splits_evenly_over_sockets_and_ignores_gpus() {
        let a = allocate(Policy::Variorum, 301.0, &node(), 500.0, false).unwrap();
        assert_eq!(
            a.shares,
            vec![
                (DomainId::new(DomainKind::Package, 0), 150.0),
                (DomainId::new(DomainKind::Package, 1), 150.0)
            ]
        );
        assert_eq!(a.uncappable_watts, 0.0);
    }

    #[test]
    fn below_the_reachable_minimum_is_refused_with_the_minimum_or_clamped() {
        let e = allocate(Policy::Proportional, 400.0, &node(), 100.0, false).unwrap_err();
        assert_eq!(
            e,
            AllocError::BelowMinimum {
                requested_watts: 400.0,
                minimum_watts: 600.0,
                uncappable_watts: 100.0,
                floor_watts: 500.0
            }
        );
        assert!(e.to_string().contains("600.0 W"), "{e}");
        let a = allocate(Policy::Proportional, 400.0, &node(), 100.0, true).unwrap();
        assert!(a.clamped);
        assert_eq!(a.shares.iter().map(|s| s.1).sum::<f64>(), 500.0);
    }

    #[test]
    fn a_cap_above_everything_gives_every_domain_its_maximum() {
        let a = allocate(Policy::Proportional, 1e6, &node(), 0.0, false).unwrap();
        assert_eq!(
            a.shares.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![150.0, 150.0, 700.0, 700.0]
        );
    }

    #[test]
    fn nothing_to_cap_is_an_error() {
        assert_eq!(
            allocate(Policy::Uniform, 100.0, &[], 0.0, false),
            Err(AllocError::NothingToCap)
        );
        let gpus_only = vec![d(DomainKind::Gpu, 0, 100.0, 300.0)];
        assert_eq!(
            allocate(Policy::Variorum, 100.0, &gpus_only, 0.0, false),
            Err(AllocError::NothingToCap)
        );
    }

    proptest! {
        /// Shares stay within bounds and add up to the budget whenever it is reachable.
        #[test]
        fn shares_are_bounded_and_add_up(
            bounds in proptest::collection::vec((1.0f64..300.0, 0.0f64..500.0), 1..8),
            node_watts in 0.0f64..5000.0,
            uncappable in 0.0f64..500.0,
            uniform in any::<bool>(),
        ) {
            let domains: Vec<Cappable> = bounds.iter().enumerate()
                .map(|(i, &(min, extra))| d(DomainKind::Gpu, i as u32, min, min + extra)).collect();
            let policy = if uniform { Policy::Uniform } else { Policy::Proportional };
            let floor: f64 = domains.iter().map(|x| x.min_watts).sum();
            let ceiling: f64 = domains.iter().map(|x| x.max_watts).sum();
            match allocate(policy, node_watts, &domains, uncappable, false) {
                Ok(a) => {
                    let sum: f64 = a.shares.iter().map(|s| s.1).sum();
                    for (s, dom) in a.shares.iter().zip(&domains) {
                        prop_assert!(s.1 >= dom.min_watts - 1e-6 && s.1 <= dom.max_watts + 1e-6);
                    }
                    let budget = (node_watts - uncappable).min(ceiling);
                    prop_assert!((sum - budget).abs() < 1e-6 * budget.max(1.0), "sum {} budget {}", sum, budget);
                }
                Err(AllocError::BelowMinimum { .. }) => prop_assert!(node_watts - uncappable < floor),
                Err(e) => prop_assert!(false, "{}", e),
            }
        }
    }
}
