//! Arguments of `powerstack job ...` and `powerstack jobs`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Mark the beginning of a job on a node agent; with --site, record it at the site and mark
    /// it on every node's agent.
    Begin(JobBeginArgs),
    /// Mark the end of a job on a node agent; with --site, at the site and on every node's
    /// agent.
    End(JobEndArgs),
    /// A job's power and energy on every node (all agents asked at once), with a total.
    Query(JobQueryArgs),
    /// A job's power and energy from the site: its record, one row per node, the total, and a
    /// plot of node power over time.
    Report(JobReportArgs),
}

/// How to reach one node agent.
#[derive(Args, Debug)]
pub struct AgentConnArgs {
    /// The agent: its Unix socket (a path containing '/'), or host:port.
    #[arg(
        long,
        env = "POWERSTACK_AGENT",
        default_value = "/run/powerstack/agent.sock",
        value_name = "ADDR"
    )]
    pub agent: String,
    /// File holding the bearer token (needed for writes over TCP).
    #[arg(long, env = "POWERSTACK_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// How long to wait for the agent's answer (and, with --site, the site's).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: String,
}

/// How to reach the site service.
#[derive(Args, Debug)]
pub struct SiteConnArgs {
    /// The site service: https://HOST:PORT, http://HOST:PORT, HOST:PORT, or its Unix socket (a
    /// path containing '/').
    #[arg(long, env = "POWERSTACK_SITE", value_name = "URL")]
    pub site: Option<String>,
    /// The site CA's certificates (PEM) an https site's certificate is checked against
    /// (default: the system's trust store).
    #[arg(long, env = "POWERSTACK_SITE_CA", value_name = "FILE")]
    pub site_ca: Option<PathBuf>,
    /// File holding the site's bearer token.
    #[arg(long, env = "POWERSTACK_SITE_TOKEN_FILE", value_name = "FILE")]
    pub site_token_file: Option<PathBuf>,
}

/// With --site: the job's nodes, and how to reach their agents.
#[derive(Args, Debug)]
pub struct NodeAgentsArgs {
    /// The job's nodes, as a hostlist (`node[01-04,07]`); their agents at NODE:PORT.
    #[arg(long, value_name = "HOSTLIST")]
    pub nodes: Option<String>,
    /// The agents' TCP port.
    #[arg(long, default_value_t = 9464, value_name = "PORT")]
    pub port: u16,
    /// Record the job at the site only; leave the node agents alone.
    #[arg(long)]
    pub no_agents: bool,
}

#[derive(Args, Debug)]
pub struct JobBeginArgs {
    /// The job id (1 to 128 characters of A-Z a-z 0-9 . _ : -).
    pub id: String,
    /// Who the job belongs to (default: the caller's login name).
    #[arg(long)]
    pub user: Option<String>,
    /// The account the job is charged to (with --site).
    #[arg(long)]
    pub account: Option<String>,
    /// The job's application.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// With --site, what the job holds of nodes it shares with other jobs:
    /// `HOSTLIST[:cpus=N][:gpus=I,J,...]` (e.g. `node[01-02]:cpus=16:gpus=0,1`), repeatable; a
    /// node of --nodes not named is held whole.
    #[arg(long, value_name = "HOSTLIST:cpus=N:gpus=I,J")]
    pub alloc: Vec<String>,
    /// With --site, the power the job asks for, W (above 0), for the site's power bound.
    #[arg(long, value_name = "W")]
    pub power_watts: Option<f64>,
    /// With --site, the job's priority for the site's power bound (higher first; default 0).
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    #[command(flatten)]
    pub conn: AgentConnArgs,
    #[command(flatten)]
    pub site: SiteConnArgs,
    #[command(flatten)]
    pub agents: NodeAgentsArgs,
}

#[derive(Args, Debug)]
pub struct JobEndArgs {
    /// The job id.
    pub id: String,
    #[command(flatten)]
    pub conn: AgentConnArgs,
    #[command(flatten)]
    pub site: SiteConnArgs,
    /// With --site, the node agents marked are the job's nodes as the site answers; --nodes
    /// is used when the site does not answer.
    #[command(flatten)]
    pub agents: NodeAgentsArgs,
}

#[derive(Args, Debug)]
#[command(group(
    clap::ArgGroup::new("targets").required(true).multiple(true).args(["agents", "nodes"])
))]
pub struct JobQueryArgs {
    /// The job id.
    #[arg(short = 'j', long = "job", value_name = "ID")]
    pub job: String,
    /// The agents to ask: host:port or socket paths, comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "ADDR[,ADDR...]")]
    pub agents: Vec<String>,
    /// The nodes to ask, as a hostlist (`node[01-04,07]`); each agent at NODE:PORT.
    #[arg(long, value_name = "HOSTLIST")]
    pub nodes: Option<String>,
    /// The agents' TCP port, with --nodes.
    #[arg(long, default_value_t = 9464, value_name = "PORT")]
    pub port: u16,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<JobFormat>,
    /// How long to wait for each agent.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub timeout: String,
    /// File holding the bearer token (when the agents require one to read job results).
    #[arg(long, env = "POWERSTACK_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The window each node's peak power is taken over (default: the agent's, 1s); never
    /// shorter, in effect, than a node's sampling interval or slowest counter's update period.
    #[arg(long, value_name = "DURATION")]
    pub peak_window: Option<String>,
}

/// Output formats of `job query`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFormat {
    /// Human table.
    Table,
    /// CSV: the Flux Power Monitor's `power_query.py` columns first, then powerstack's.
    Csv,
    /// One JSON document: every node's result and the total.
    Json,
}

/// Output formats of `job report` and `jobs`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteFormat {
    /// Human table.
    Table,
    /// CSV, one row per node (`job report`: `job query`'s columns) or per job.
    Csv,
    /// The site's JSON document as received.
    Json,
}

#[derive(Args, Debug)]
pub struct JobReportArgs {
    /// The job id.
    #[arg(short = 'j', long = "job", value_name = "ID")]
    pub job: String,
    #[command(flatten)]
    pub site: SiteConnArgs,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<SiteFormat>,
    /// Also draw node power over time into FILE, SVG or PNG by its extension (.svg, .png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// The plot's step, a duration (default: the site's, about 600 steps over the job).
    #[arg(long, value_name = "DURATION", requires = "plot")]
    pub step: Option<String>,
    /// How long to wait for each answer of the site.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// Only this user's jobs.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Only jobs running at or after this time: a duration back from now (7d, 12h), a UTC date
    /// (2026-11-21, 2026-11-21T08:30), or @UNIXSECONDS.
    #[arg(long, short = 'S', value_name = "WHEN")]
    pub since: Option<String>,
    /// Only jobs that began at or before this time (same forms as --since).
    #[arg(long, short = 'E', value_name = "WHEN")]
    pub until: Option<String>,
    /// At most N jobs, newest first (default: the site's, 1000).
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub site: SiteConnArgs,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<SiteFormat>,
    /// How long to wait for the site's answer.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
}
