//! A study: the trace run uncapped (for the bound's basis and each job's uncapped run time), then
//! under the bound with each policy, and the figures that compare them.

use serde::Serialize;

use crate::run::{Config, Outcome, RunError, run};
use crate::trace::Trace;

/// How the bound is given.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundSpec {
    /// In watts.
    Watts(f64),
    /// A share of the uncapped run's highest site power over a control period.
    Fraction(f64),
}

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyConfig {
    /// Nodes, horizon, period, tick, lag and reserve (its bound is set from `bound`).
    pub run: Config,
    /// The bound from the start.
    pub bound: BoundSpec,
    /// Later bounds: `(from_s, value)`, the value read as `bound` is (watts or a share).
    pub schedule: Vec<(f64, f64)>,
    /// The policies to compare.
    pub policies: Vec<String>,
}

/// The uncapped run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Uncapped {
    /// Work completed in the horizon, in seconds at full speed.
    pub work_done_s: f64,
    /// Jobs finished.
    pub jobs_finished: usize,
    /// Mean site power, in watts.
    pub mean_watts: f64,
    /// The highest mean site power over a control period, in watts: the basis of a share.
    pub peak_period_watts: f64,
}

/// One policy under the bound.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyFigures {
    /// The policy.
    pub policy: String,
    /// Work completed in the horizon, in seconds at full speed.
    pub work_done_s: f64,
    /// Work against `uniform`'s, in percent more (negative: less); absent without `uniform`.
    pub work_vs_uniform_percent: Option<f64>,
    /// Work against the uncapped run's, in percent.
    pub work_of_uncapped_percent: f64,
    /// Jobs finished.
    pub jobs_finished: usize,
    /// Mean over the jobs finished here and uncapped of run time / uncapped run time.
    pub slowdown_mean: Option<f64>,
    /// The largest of those.
    pub slowdown_max: Option<f64>,
    /// Mean site power, in watts.
    pub mean_watts: f64,
    /// The highest excess of site power over the bound (0 when never above), in watts.
    pub max_excess_watts: f64,
    /// The same, in percent of the bound then.
    pub max_excess_percent: f64,
    /// Energy above the bound, in watt-seconds.
    pub excess_watt_seconds: f64,
    /// The longest time spent more than 1% above the bound, in seconds.
    pub longest_above_1pct_s: f64,
    /// Ticks at which the caps in force plus the reserve were checked against the bound.
    pub cap_checks: u64,
    /// Ticks at which they exceeded it (the invariant: 0).
    pub cap_violations: u64,
    /// Control periods in which the bound could not be met even at every node's minimum.
    pub shortfall_periods: u64,
    /// Site power, the mean of each second, in watts (for the plot; not in the JSON).
    #[serde(skip)]
    pub power_1s_watts: Vec<f64>,
}

/// A study's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Study {
    /// Simulated nodes.
    pub nodes: usize,
    /// The horizon, in seconds.
    pub duration_s: f64,
    /// The control period, in seconds.
    pub period_s: f64,
    /// The physics step, in seconds.
    pub tick_s: f64,
    /// The enforcement lag of a written limit, in seconds.
    pub lag_s: f64,
    /// The reserve, in watts.
    pub reserve_watts: f64,
    /// How the bound was given.
    pub bound_spec: BoundSpec,
    /// The bound over time, in watts: `(from_s, watts)`.
    pub bound_watts: Vec<(f64, f64)>,
    /// The uncapped run.
    pub uncapped: Uncapped,
    /// Each policy.
    pub policies: Vec<PolicyFigures>,
    /// The bound, the mean of each second, in watts (for the plot; not in the JSON).
    #[serde(skip)]
    pub bound_1s_watts: Vec<f64>,
}

/// Means over whole seconds of a per-tick series.
fn per_second(values: &[f64], tick_s: f64) -> Vec<f64> {
    let per = ((1.0 / tick_s).round() as usize).max(1);
    values.chunks(per).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect()
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// The overshoot figures of a run: highest excess (W, %), watt-seconds above, longest > 1%.
fn overshoot(out: &Outcome, tick_s: f64) -> (f64, f64, f64, f64) {
    let (mut max_w, mut max_pct, mut ws, mut longest, mut run) = (0.0f64, 0.0f64, 0.0, 0.0f64, 0.0);
    for (p, b) in out.power_watts.iter().zip(&out.bound_watts) {
        let excess = p - b;
        if excess > 0.0 {
            max_w = max_w.max(excess);
            max_pct = max_pct.max(100.0 * excess / b);
            ws += excess * tick_s;
        }
        if *p > b * 1.01 {
            run += tick_s;
            longest = longest.max(run);
        } else {
            run = 0.0;
        }
    }
    (max_w, max_pct, ws, longest)
}

fn figures(policy: &str, out: &Outcome, uncapped: &Outcome, config: &Config) -> PolicyFigures {
    let slowdowns: Vec<f64> = out
        .runtimes_s
        .iter()
        .filter_map(|(id, t)| uncapped.runtimes_s.get(id).map(|u| t / u))
        .collect();
    let (max_excess_watts, max_excess_percent, excess_watt_seconds, longest_above_1pct_s) =
        overshoot(out, config.tick_s);
    PolicyFigures {
        policy: policy.to_string(),
        work_done_s: out.work_done_s,
        work_vs_uniform_percent: None,
        work_of_uncapped_percent: 100.0 * out.work_done_s / uncapped.work_done_s.max(1e-9),
        jobs_finished: out.runtimes_s.len(),
        slowdown_mean: (!slowdowns.is_empty()).then(|| mean(&slowdowns)),
        slowdown_max: slowdowns.iter().copied().reduce(f64::max),
        mean_watts: mean(&out.power_watts),
        max_excess_watts,
        max_excess_percent,
        excess_watt_seconds,
        longest_above_1pct_s,
        cap_checks: out.cap_checks,
        cap_violations: out.cap_violations,
        shortfall_periods: out.shortfalls,
        power_1s_watts: per_second(&out.power_watts, config.tick_s),
    }
}

/// Runs the study: uncapped first, then every policy (each on a thread of its own).
pub fn study(trace: &Trace, config: &StudyConfig) -> Result<Study, RunError> {
    let uncapped = run(trace, &config.run, None)?;
    let basis = uncapped.peak_period_watts;
    let watts = |v: f64| match config.bound {
        BoundSpec::Watts(_) => v,
        BoundSpec::Fraction(_) => v * basis,
    };
    let first = match config.bound {
        BoundSpec::Watts(w) | BoundSpec::Fraction(w) => w,
    };
    let mut bound = vec![(0.0, watts(first))];
    bound.extend(config.schedule.iter().map(|&(at, v)| (at, watts(v))));
    if bound.iter().any(|b| !(b.1.is_finite() && b.1 >= 0.0 && b.0.is_finite())) {
        return Err(RunError::Config(
            "the bound must be a finite number of watts, 0 or more".into(),
        ));
    }
    let capped = Config { bound: bound.clone(), ..config.run.clone() };
    let outcomes: Vec<Result<Outcome, RunError>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            config.policies.iter().map(|p| s.spawn(|| run(trace, &capped, Some(p)))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(RunError::Config("a run panicked".into()))))
            .collect()
    });
    let mut policies = Vec::new();
    for (p, out) in config.policies.iter().zip(outcomes) {
        policies.push(figures(p, &out?, &uncapped, &capped));
    }
    let uniform = policies.iter().find(|p| p.policy == "uniform").map(|p| p.work_done_s);
    for p in &mut policies {
        p.work_vs_uniform_percent = uniform.map(|u| 100.0 * (p.work_done_s / u - 1.0));
    }
    let bound_ticks: Vec<f64> = (0..uncapped.power_watts.len())
        .map(|k| capped.bound_at(k as f64 * capped.tick_s).unwrap_or(0.0))
        .collect();
    Ok(Study {
        nodes: config.run.nodes,
        duration_s: config.run.duration_s,
        period_s: config.run.period_s,
        tick_s: config.run.tick_s,
        lag_s: config.run.lag_s,
        reserve_watts: config.run.reserve_watts,
        bound_spec: config.bound,
        bound_watts: bound,
        uncapped: Uncapped {
            work_done_s: uncapped.work_done_s,
            jobs_finished: uncapped.runtimes_s.len(),
            mean_watts: mean(&uncapped.power_watts),
            peak_period_watts: basis,
        },
        policies,
        bound_1s_watts: per_second(&bound_ticks, capped.tick_s),
    })
}
