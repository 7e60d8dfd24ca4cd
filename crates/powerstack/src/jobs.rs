//! `powerstack jobs`: the jobs recorded at the site, with their energy, like `sacct`.

use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use powerstack_api::site::SiteJobsQueryV1;
use powerstack_api::site_csv::jobs_csv;
use powerstack_api::site_table::jobs;
use powerstack_client::hostlist;

use crate::cli::{JobsArgs, SiteFormat};
use crate::job::{connect_site, parse_timeout};
use crate::output::emit;

fn now_unix_us() -> anyhow::Result<u64> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| anyhow!("the system clock is before 1970: set the clock"))?;
    Ok(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
}

/// The query of `--user`, `--since`, `--until` and `--limit`, times read against `now_unix_us`.
fn query(a: &JobsArgs, now_unix_us: u64) -> anyhow::Result<SiteJobsQueryV1> {
    let (since, until) = (a.since.as_deref(), a.until.as_deref());
    let names = ["--since", "--until", "--limit"];
    SiteJobsQueryV1::from_text(a.user.as_deref(), since, until, a.limit, now_unix_us, names)
        .map_err(anyhow::Error::msg)
}

/// `jobs`.
pub fn run(a: &JobsArgs) -> anyhow::Result<()> {
    let now = now_unix_us()?;
    let q = query(a, now)?;
    let site = connect_site(&a.site, parse_timeout(&a.timeout)?)?;
    let doc = site.jobs(&q)?;
    let format = a.format.unwrap_or_else(|| {
        if std::io::stdout().is_terminal() { SiteFormat::Table } else { SiteFormat::Json }
    });
    let text = match format {
        SiteFormat::Table => jobs(&doc, now, hostlist::compress::<String>),
        SiteFormat::Csv => {
            if doc.truncated {
                eprintln!("note: more jobs matched than --limit; raise it to see them all");
            }
            jobs_csv(&doc, now, hostlist::compress::<String>)
        }
        SiteFormat::Json => serde_json::to_string(&doc).context("encoding the jobs")?,
    };
    emit(&text)
}
