//! `powerstack sim cluster`: the arguments to a study of `powerstack-simcluster`, its figures as a
//! table or JSON, and with `--plot` each policy's site power against the bound.

use anyhow::{Context, anyhow, bail};
use powerstack_api::plot::lines::{Lines, lines_png, lines_svg};
use powerstack_bound::POLICY_NAMES;
use powerstack_simcluster::{BoundSpec, Config, Study, StudyConfig, Trace, study};

use crate::cli::{ClusterFormat, NodeSplit, SimClusterArgs};
use crate::output::emit;

/// `AT_S:VALUE,...`, sorted by time.
fn schedule(text: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item.split_once(':').and_then(|(at, v)| {
            Some((at.trim().parse::<f64>().ok()?, v.trim().parse::<f64>().ok()?))
        });
        match parsed {
            Some((at, v)) if at.is_finite() && at >= 0.0 && v.is_finite() && v >= 0.0 => {
                out.push((at, v));
            }
            _ => bail!("--bound-schedule {item}: write AT_S:VALUE, e.g. 600:0.6"),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

fn config(a: &SimClusterArgs) -> anyhow::Result<StudyConfig> {
    let policies: Vec<String> = match a.policy.as_str() {
        "all" => POLICY_NAMES.iter().map(|p| p.to_string()).collect(),
        p if POLICY_NAMES.contains(&p) => vec![p.to_string()],
        p => bail!("--policy {p}: use one of uniform, slurm, priority, dynamic, all"),
    };
    let bound = match (a.bound_watts, a.bound_fraction) {
        (Some(w), _) if w.is_finite() && w > 0.0 => BoundSpec::Watts(w),
        (Some(w), _) => bail!("--bound-watts {w}: give a positive number of watts"),
        (None, Some(f)) if f.is_finite() && f > 0.0 => BoundSpec::Fraction(f),
        (None, Some(f)) => bail!("--bound-fraction {f}: give a share above 0, e.g. 0.7"),
        (None, None) => BoundSpec::Fraction(0.7),
    };
    if !(a.reserve_watts.is_finite() && a.reserve_watts >= 0.0) {
        bail!("--reserve-watts {}: give 0 or more watts", a.reserve_watts);
    }
    let run = Config {
        period_s: a.period_s,
        tick_s: a.tick_s,
        lag_s: a.lag_s,
        reserve_watts: a.reserve_watts,
        standing_split: a.node_split == NodeSplit::Standing,
        ..Config::new(a.nodes, a.duration_s)
    };
    let schedule = a.bound_schedule.as_deref().map(schedule).transpose()?.unwrap_or_default();
    Ok(StudyConfig { run, bound, schedule, policies })
}

/// The largest trace read.
const TRACE_MAX_BYTES: u64 = 256 << 20;

/// `sim cluster`.
pub fn run(a: &SimClusterArgs) -> anyhow::Result<()> {
    let config = config(a)?;
    let name = a.trace.display().to_string();
    let text = powerstack_file::read_to_string(&a.trace, "trace", TRACE_MAX_BYTES)?;
    let trace = Trace::parse(&name, &text)?;
    let figures = study(&trace, &config).map_err(|e| anyhow!("sim cluster: {e}"))?;
    if let Some(path) = &a.plot {
        let lines = plot_lines(&figures, &name);
        let bytes = match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => lines_svg(&lines)?.into_bytes(),
            Some("png") => lines_png(&lines)?,
            _ => bail!("--plot {}: the file must end in .svg or .png", path.display()),
        };
        std::fs::write(path, bytes)
            .with_context(|| format!("writing the plot to {}", path.display()))?;
    }
    let out = match a.format {
        ClusterFormat::Json => serde_json::to_string_pretty(&figures)?,
        ClusterFormat::Table => table(&figures, &name, &trace.description),
    };
    emit(&out)
}

/// Seconds per point of the plot: whole seconds, at most about 1,200 points a line.
fn plot_step_s(seconds: usize) -> usize {
    seconds.div_ceil(1200).max(1)
}

/// Means over `step` values at a time.
fn coarse(values: &[f64], step: usize) -> Vec<Option<f64>> {
    values.chunks(step).map(|c| Some(c.iter().sum::<f64>() / c.len() as f64)).collect()
}

fn plot_lines(s: &Study, trace: &str) -> Lines {
    let step = plot_step_s(s.bound_1s_watts.len());
    let mut series = vec![("bound".to_string(), coarse(&s.bound_1s_watts, step))];
    for p in &s.policies {
        series.push((p.policy.clone(), coarse(&p.power_1s_watts, step)));
    }
    let file = std::path::Path::new(trace).file_name().map(|f| f.to_string_lossy().into_owned());
    Lines {
        title: format!("{} nodes, {}: site power", s.nodes, file.unwrap_or_default()),
        y_desc: "site power (W)".into(),
        since: "the start",
        step_s: step as f64,
        series,
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn table(s: &Study, trace: &str, description: &str) -> String {
    let bound = match s.bound_spec {
        BoundSpec::Fraction(f) => format!(
            "{:.0} W ({:.0}% of the uncapped run's highest {} s mean, {:.0} W)",
            s.bound_watts[0].1,
            100.0 * f,
            s.period_s,
            s.uncapped.peak_period_watts
        ),
        BoundSpec::Watts(w) => format!("{w:.0} W"),
    };
    let mut out = format!(
        "{} nodes, trace {trace} ({description}), {} s, period {} s, tick {} s, lag {} s\n\
         bound {bound}, reserve {:.0} W{}\n\
         uncapped: work {:.0} s, {} jobs finished, mean {:.0} W\n\n",
        s.nodes,
        s.duration_s,
        s.period_s,
        s.tick_s,
        s.lag_s,
        s.reserve_watts,
        if s.bound_watts.len() > 1 { ", then changed (see --format json)" } else { "" },
        s.uncapped.work_done_s,
        s.uncapped.jobs_finished,
        s.uncapped.mean_watts,
    );
    out.push_str(&format!(
        "{:<9} {:>11} {:>8} {:>7} {:>5} {:>11} {:>10} {:>16} {:>10} {:>7} {:>10} {:>6}\n",
        "policy",
        "work (s)",
        "vs unif",
        "of unc",
        "jobs",
        "slowdown",
        "mean W",
        "max excess W (%)",
        "excess Ws",
        ">1% s",
        "cap viol.",
        "short"
    ));
    for p in &s.policies {
        out.push_str(&format!(
            "{:<9} {:>11.0} {:>7}% {:>6.1}% {:>5} {:>5}/{:<5} {:>10.0} {:>9.0} ({:>4.2}) {:>10.0} {:>7.1} {:>4}/{:<5} {:>6}\n",
            p.policy,
            p.work_done_s,
            opt(p.work_vs_uniform_percent.map(|v| if v.abs() < 0.05 { 0.0 } else { v }), 1),
            p.work_of_uncapped_percent,
            p.jobs_finished,
            opt(p.slowdown_mean, 2),
            opt(p.slowdown_max, 2),
            p.mean_watts,
            p.max_excess_watts,
            p.max_excess_percent,
            p.excess_watt_seconds,
            p.longest_above_1pct_s,
            p.cap_violations,
            p.cap_checks,
            p.shortfall_periods,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{coarse, plot_step_s, schedule};

    #[test]
    fn a_long_run_is_drawn_in_coarser_steps() {
        assert_eq!(plot_step_s(600), 1);
        assert_eq!(plot_step_s(3600), 3);
        assert_eq!(coarse(&[1.0, 3.0, 5.0], 2), vec![Some(2.0), Some(5.0)]);
    }

    #[test]
    fn a_schedule_reads_in_time_order_and_refuses_a_bad_item() {
        assert_eq!(schedule("600:0.6, 300:0.8").unwrap(), vec![(300.0, 0.8), (600.0, 0.6)]);
        assert!(schedule("600=0.6").is_err());
        assert!(schedule("600:-1").is_err());
    }
}
