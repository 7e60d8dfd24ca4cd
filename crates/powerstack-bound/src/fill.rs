//! Water filling: share a budget over nodes each between a floor and a ceiling, every node at the
//! same level clamped to its own range, so that the shares never add up to more than the budget.

/// The caps at one level `L`, each `clamp(L, floor, ceiling)`, whose sum is the budget (or just
/// under it); all floors when the budget is below their sum, all ceilings when above theirs.
/// A ceiling under its floor counts as the floor.
pub fn fill(budget_watts: f64, ranges: &[(f64, f64)]) -> Vec<f64> {
    let ranges: Vec<(f64, f64)> = ranges.iter().map(|&(lo, hi)| (lo, hi.max(lo))).collect();
    let at =
        |level: f64| -> Vec<f64> { ranges.iter().map(|&(lo, hi)| level.clamp(lo, hi)).collect() };
    let sum_at = |level: f64| -> f64 { ranges.iter().map(|&(lo, hi)| level.clamp(lo, hi)).sum() };
    let floors: f64 = ranges.iter().map(|r| r.0).sum();
    let ceilings: f64 = ranges.iter().map(|r| r.1).sum();
    if budget_watts.is_nan() || budget_watts <= floors {
        return ranges.iter().map(|r| r.0).collect();
    }
    if budget_watts >= ceilings {
        return ranges.iter().map(|r| r.1).collect();
    }
    let mut low = ranges.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let mut high = ranges.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
    // The sum is monotone in the level: bisect, keeping `low` on the side within the budget.
    for _ in 0..200 {
        let mid = low + (high - low) / 2.0;
        if mid <= low || mid >= high {
            break;
        }
        if sum_at(mid) <= budget_watts {
            low = mid;
        } else {
            high = mid;
        }
    }
    at(low)
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn an_even_split_when_no_range_binds() {
        let caps = fill(600.0, &[(100.0, 400.0), (100.0, 400.0), (100.0, 400.0)]);
        for cap in caps {
            assert!((cap - 200.0).abs() < 1e-6, "{cap}");
        }
    }

    #[test]
    fn what_a_ceiling_leaves_goes_to_the_others() {
        let caps = fill(700.0, &[(100.0, 150.0), (100.0, 400.0), (100.0, 400.0)]);
        assert!((caps[0] - 150.0).abs() < 1e-6);
        assert!((caps[1] - 275.0).abs() < 1e-6);
        assert!(caps.iter().sum::<f64>() <= 700.0);
    }

    #[test]
    fn floors_when_the_budget_is_short_and_ceilings_when_it_is_large() {
        assert_eq!(fill(50.0, &[(100.0, 400.0), (80.0, 300.0)]), vec![100.0, 80.0]);
        assert_eq!(fill(f64::NAN, &[(100.0, 400.0)]), vec![100.0]);
        assert_eq!(fill(1e6, &[(100.0, 400.0), (80.0, 300.0)]), vec![400.0, 300.0]);
        assert!(fill(100.0, &[]).is_empty());
    }
}
