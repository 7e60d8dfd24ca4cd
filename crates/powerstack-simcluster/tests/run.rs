//! Runs of the shipped mixed trace on a small cluster: every policy keeps the caps in force plus
//! the reserve within a bound that changes mid-run, and the figures hang together.

use powerstack_bound::POLICY_NAMES;
use powerstack_simcluster::{BoundSpec, Config, StudyConfig, Trace, run, study};

fn mixed() -> Trace {
    let text = include_str!("../../../docs/traces/mixed.toml");
    Trace::parse("docs/traces/mixed.toml", text).unwrap()
}

fn small() -> Config {
    Config { reserve_watts: 200.0, ..Config::new(16, 600.0) }
}

#[test]
fn every_policy_keeps_the_caps_within_a_bound_that_changes_mid_run() {
    let config = StudyConfig {
        run: small(),
        bound: BoundSpec::Fraction(0.7),
        // Lowered between two control periods, then raised.
        schedule: vec![(202.3, 0.6), (401.0, 0.85)],
        policies: POLICY_NAMES.iter().map(|p| p.to_string()).collect(),
    };
    let s = study(&mixed(), &config).unwrap();
    assert_eq!(s.bound_watts.len(), 3);
    assert!(s.bound_watts[1].1 < s.bound_watts[0].1);
    for p in &s.policies {
        assert_eq!(p.cap_checks, 6000, "{}: a feasible bound throughout", p.policy);
        assert_eq!(p.shortfall_periods, 0);
        assert_eq!(p.cap_violations, 0, "{}: {p:?}", p.policy);
        assert!(p.work_done_s > 0.0 && p.work_done_s <= s.uncapped.work_done_s + 1e-6);
        // A lowered bound holds once the lag has passed: never more than 1% above for 1 s.
        assert!(p.longest_above_1pct_s <= 1.0, "{}: {}", p.policy, p.longest_above_1pct_s);
    }
}

#[test]
fn an_uncapped_run_draws_more_than_a_capped_one_and_is_never_slower() {
    let trace = mixed();
    let uncapped = run(&trace, &small(), None).unwrap();
    assert_eq!(uncapped.cap_checks, 0);
    let bound = 0.6 * uncapped.peak_period_watts;
    let capped = Config { bound: vec![(0.0, bound)], ..small() };
    let out = run(&trace, &capped, Some("uniform")).unwrap();
    assert!(out.work_done_s < uncapped.work_done_s);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&out.power_watts) < mean(&uncapped.power_watts));
    for (id, t) in &out.runtimes_s {
        if let Some(u) = uncapped.runtimes_s.get(id) {
            assert!(t + 1e-9 >= *u, "{id}: {t} < {u}");
        }
    }
}

#[test]
fn an_unknown_policy_and_a_bad_setting_are_refused() {
    let trace = mixed();
    let bounded = Config { bound: vec![(0.0, 1e5)], ..small() };
    assert!(run(&trace, &bounded, Some("even")).is_err());
    let no_period = Config { period_s: 0.0, ..bounded };
    assert!(run(&trace, &no_period, Some("uniform")).is_err());
}
