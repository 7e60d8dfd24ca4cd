//! `job report -j ID --site URL`: a job's record and figures from the site, as a table, CSV or
//! the site's JSON, and with `--plot FILE` its node power over time as SVG or PNG.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use powerstack_api::job::DataPresence;
use powerstack_api::plot::{node_power_png, node_power_svg};
use powerstack_api::site::{SiteJobReportV1, SiteJobV1};
use powerstack_api::site_csv::job_report_csv;
use powerstack_api::site_table::job_report;
use powerstack_client::hostlist;
use powerstack_model::civil::format_utc;
use powerstack_model::duration::parse_duration;

use super::{connect_site, job_segment, parse_timeout};
use crate::cli::{JobReportArgs, SiteFormat};
use crate::output::{self, emit};

/// What `--plot` writes, by the file's extension.
#[derive(Clone, Copy)]
enum Picture {
    Svg,
    Png,
}

fn picture(path: &Path) -> anyhow::Result<Picture> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => Ok(Picture::Svg),
        Some("png") => Ok(Picture::Png),
        _ => bail!("--plot {}: the file must end in .svg or .png", path.display()),
    }
}

/// `job report`.
pub fn run(a: &JobReportArgs) -> anyhow::Result<()> {
    job_segment(&a.job)?;
    let picture = a.plot.as_deref().map(picture).transpose()?;
    if let Some(step) = &a.step {
        let d = parse_duration(step).map_err(|e| anyhow!("--step: {e}"))?;
        if d.as_secs_f64() < 1.0 {
            bail!("--step {step}: must be at least 1s");
        }
    }
    let site = connect_site(&a.site, parse_timeout(&a.timeout)?)?;
    let report = site.job_report(&a.job)?;
    let format = a.format.unwrap_or_else(|| {
        if std::io::stdout().is_terminal() { SiteFormat::Table } else { SiteFormat::Json }
    });
    let text = match format {
        SiteFormat::Table => job_report(&report, hostlist::compress::<String>),
        SiteFormat::Csv => job_report_csv(&report),
        SiteFormat::Json => serde_json::to_string(&report).context("encoding the report")?,
    };
    if let (Some(path), Some(picture)) = (&a.plot, picture) {
        let series = site.job_timeseries(&a.job, a.step.as_deref())?;
        let title = title(&report.job);
        let bytes = match picture {
            Picture::Svg => node_power_svg(&series, &title, report.job.begin_unix_us)?.into_bytes(),
            Picture::Png => node_power_png(&series, &title, report.job.begin_unix_us)?,
        };
        std::fs::write(path, bytes)
            .with_context(|| format!("writing the plot to {}", path.display()))?;
        if output::verbose() {
            eprintln!("note: node power of job {} drawn in {}", a.job, path.display());
        }
    }
    if partial(&report) {
        output::mark_partial();
    }
    emit(&text)
}

/// Whether a figure is missing somewhere: exit status 3, as `job query`.
fn partial(r: &SiteJobReportV1) -> bool {
    r.report.total.data_presence != DataPresence::Complete
}

/// The plot's caption: the job, who ran what, and when it began.
fn title(job: &SiteJobV1) -> String {
    let who: Vec<&str> = [job.user.as_deref(), job.app.as_deref()].into_iter().flatten().collect();
    let who = if who.is_empty() { String::new() } else { format!(" ({})", who.join(", ")) };
    let id: String = job.id.chars().filter(|c| !c.is_control()).collect();
    let who: String = who.chars().filter(|c| !c.is_control()).collect();
    format!("Job {id}{who}: node power from {} UTC", format_utc(job.begin_unix_us))
}
