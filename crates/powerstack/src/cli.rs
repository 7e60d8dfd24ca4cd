//! Command-line definition (raw arguments; validation happens in the commands). The job
//! commands' arguments (`job ...`, `jobs`) are in [`job`], `bmc ...`'s in [`bmc`], the site's
//! control tasks' and the power bound's in [`site`], `sim ...`'s in [`sim`], those of `measure`,
//! `completions` and `man` in [`measure`].

mod bmc;
mod job;
mod measure;
mod sim;
mod site;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use powerstack_hw::ProviderOptions;
use powerstack_hw::providers::nvml::NvmlOptions;

pub use bmc::*;
pub use job::*;
pub use measure::*;
pub use sim::*;
pub use site::*;

/// `powerstack --version`: the package version and the commit built (see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("POWERSTACK_COMMIT"), ")");

/// Vendor-neutral power and energy for HPC nodes.
#[derive(Parser, Debug)]
#[command(name = "powerstack", version = VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Also say, on stderr, what became of each hardware source (found, absent and why).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Node power per domain over an interval (ΔE/Δt, never a first-call 0 W).
    Power(ReadArgs),
    /// Energy counters per domain, in joules, extended across wraps.
    Energy(ReadArgs),
    /// What can be measured and controlled: domains, units, limits and their ranges.
    Domains(NodeArgs),
    /// Packages, cores, CPUs and GPUs.
    Topology(NodeArgs),
    /// Power limits: set socket, memory, GPU and node caps; show them; put the originals back.
    #[command(subcommand)]
    Cap(CapCommand),
    /// CPU frequency pools: reserved, shared and exclusive pools with profiles.
    #[command(subcommand)]
    Pools(PoolsCommand),
    /// Job power and energy: mark a job's beginning and end (on node agents, and at the site
    /// with --site), query it on every node at once, report it from the site.
    #[command(subcommand)]
    Job(JobCommand),
    /// Jobs recorded at the site with their energy, like `sacct` (needs --site).
    Jobs(JobsArgs),
    /// Run the node agent: sampling into a ring buffer, job power, HTTP API, /metrics.
    Agent(AgentArgs),
    /// Start an agent on this machine (simulated node when nothing is readable) and show live
    /// node power until Ctrl-C.
    Up(UpArgs),
    /// The site service: node telemetry and job records in SQLite or PostgreSQL, job reports.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Simulated hardware roots for testing without hardware.
    #[command(subcommand)]
    Sim(SimCommand),
    /// A BMC out of band, through Redfish: power, limits, capping, power state, transitions.
    Bmc(BmcArgs),
    /// Run a command and report the energy and the mean and peak power of the node and of each
    /// domain while it ran, like `perf stat`.
    Measure(MeasureArgs),
    /// Print the shell completion script of bash, zsh or fish.
    Completions(CompletionsArgs),
    /// Print the man page, or write a page per command into a directory (--dir).
    Man(ManArgs),
}

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Run the site service: agents push to it, scheduler hooks record jobs, users read reports.
    Serve(SiteServeArgs),
    /// Power nodes on, off or restart them through their BMCs (a task at the site; waits and
    /// shows progress unless --no-wait).
    Transition(SiteTransitionArgs),
    /// Power limits of nodes through their BMCs (a task at the site).
    #[command(subcommand)]
    PowerCap(PowerCapCommand),
    /// A control task at the site: show it, abort it.
    #[command(subcommand)]
    Task(TaskCommand),
    /// The site power bound: show it, set it (`site bound 600kW`) or clear it (`site bound clear`).
    Bound(SiteBoundArgs),
    /// The bound's recorded decisions: bound, per-job and per-node caps, why.
    Decisions(SiteDecisionsArgs),
    /// Whether a job of N nodes asking for W watts fits under the bound now (exit 0) or not
    /// (exit 1), and the bound it would get: for a Slurm job_submit or prolog script.
    Admit(SiteAdmitArgs),
}

/// Options of `powerstack site serve` (flags override the config file; see docs/site.md).
#[derive(Args, Debug)]
pub struct SiteServeArgs {
    /// Configuration file (TOML; see docs/site.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TCP listen address (default 127.0.0.1:9465).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// `sqlite:PATH` (default: site.db in the state directory) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "POWERSTACK_DATABASE", value_name = "URL")]
    pub database: Option<String>,
    /// The state directory (default /var/lib/powerstack).
    #[arg(long, env = "POWERSTACK_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The tokens file (roles: agent, scheduler, user, admin; mode 600). Without one, every
    /// caller is an administrator and only loopback may be listened on.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// The server's certificate chain (PEM, leaf first): serve https (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1; mode 600).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (a site behind a TLS-terminating proxy).
    #[arg(long)]
    pub insecure_plain_http: bool,
}

#[derive(Subcommand, Debug)]
pub enum PoolsCommand {
    /// Validate a pools file, then apply it (safe order, read back, rollback on failure).
    Apply(PoolsApplyArgs),
    /// Pools, their CPUs and profiles, the values in sysfs, and drift.
    Show(ControlArgs),
    /// Put back the boot-time settings recorded before powerstack first wrote.
    Reset(ControlArgs),
    /// What the node supports: drivers, EPP, C-states, uncore, hybrid cores.
    Capabilities(ControlArgs),
    /// Create an exclusive pool.
    Create(PoolsCreateArgs),
    /// Delete an exclusive pool; its CPUs return to the shared pool.
    Delete(PoolsNameArgs),
    /// Move CPUs to a pool (reserved <-> shared <-> exclusive).
    Move(PoolsMoveArgs),
    /// Give a pool a profile: a named one from the configuration, or one built from options.
    SetProfile(PoolsSetProfileArgs),
}

#[derive(Args, Debug)]
pub struct PoolsApplyArgs {
    /// The pools file (TOML; see docs/pools.md).
    pub file: PathBuf,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Args, Debug)]
pub struct PoolsCreateArgs {
    /// Pool name.
    pub name: String,
    /// Its CPUs (moved from the shared pool).
    #[arg(long, default_value = "", value_name = "LIST")]
    pub cpus: String,
    /// Its profile (defined in the configuration in force).
    #[arg(long)]
    pub profile: Option<String>,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Args, Debug)]
pub struct PoolsNameArgs {
    /// Pool name.
    pub name: String,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Args, Debug)]
pub struct PoolsMoveArgs {
    /// The CPUs, as a CPU list (`3`, `4-7,12`).
    pub cpus: String,
    /// The pool: `reserved`, `shared`, or an exclusive pool's name.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Args, Debug)]
pub struct PoolsSetProfileArgs {
    /// The pool: `shared` or an exclusive pool's name.
    pub pool: String,
    /// A profile defined in the configuration in force (or build one with the options below).
    pub profile: Option<String>,
    /// Minimum frequency, kHz.
    #[arg(long)]
    pub min_khz: Option<u64>,
    /// Maximum frequency, kHz.
    #[arg(long)]
    pub max_khz: Option<u64>,
    /// Governor.
    #[arg(long)]
    pub governor: Option<String>,
    /// Energy-performance preference.
    #[arg(long)]
    pub epp: Option<String>,
    /// A C-state on or off, like `C6=off` (repeatable).
    #[arg(long, value_name = "NAME=on|off")]
    pub cstate: Vec<String>,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Subcommand, Debug)]
pub enum CapCommand {
    /// Long-term (and optionally short-term) package power limit of one or every socket.
    Socket(CapSocketArgs),
    /// DRAM power limit of one or every socket.
    Mem(CapMemArgs),
    /// Power cap of one or every GPU.
    Gpu(CapGpuArgs),
    /// A best-effort node cap split over every cappable domain, GPUs included.
    Node(CapNodeArgs),
    /// Every power limit, its range, and who set it.
    Show(ControlArgs),
    /// Put back every limit powerstack changed, as it was before powerstack first wrote it.
    Reset(ControlArgs),
}

/// Options of every command that changes controls (`cap`, `pools`).
#[derive(Args, Debug, Clone)]
pub struct ControlArgs {
    #[command(flatten)]
    pub node: NodeArgs,

    /// Where the restore journal (and the pools configuration in force) is kept.
    #[arg(
        long,
        env = "POWERSTACK_STATE_DIR",
        default_value = "/var/lib/powerstack",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,

    /// Print the writes without making them.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct CapSocketArgs {
    /// Long-term limit in watts.
    #[arg(allow_hyphen_values = true, value_name = "WATTS")]
    pub watts: String,
    /// Only this socket (default: every socket).
    #[arg(long, value_name = "N")]
    pub socket: Option<u32>,
    /// Only this die of a multi-die package (default: every die).
    #[arg(long, value_name = "N")]
    pub die: Option<u32>,
    /// Also set the short-term limit, watts.
    #[arg(long, allow_hyphen_values = true, value_name = "WATTS")]
    pub short_term: Option<String>,
    /// Averaging window of the long-term limit (`1s`, `28ms`); one the hardware can hold (RAPL:
    /// 2^Y × (1 + Z/4) time units, rounded down by at most 5%).
    #[arg(long, value_name = "DURATION")]
    pub time_window: Option<String>,
    /// When the limit is below the lowest the domain may be given, apply that minimum instead of
    /// refusing.
    #[arg(long)]
    pub clamp: bool,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Args, Debug)]
pub struct CapMemArgs {
    /// Limit in watts.
    #[arg(allow_hyphen_values = true, value_name = "WATTS")]
    pub watts: String,
    /// Only this socket (default: every socket).
    #[arg(long, value_name = "N")]
    pub socket: Option<u32>,
    /// Only this die of a multi-die package (default: every die).
    #[arg(long, value_name = "N")]
    pub die: Option<u32>,
    /// When the limit is below the lowest the domain may be given, apply that minimum instead of
    /// refusing.
    #[arg(long)]
    pub clamp: bool,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Args, Debug)]
pub struct CapGpuArgs {
    /// Cap in watts.
    #[arg(allow_hyphen_values = true, value_name = "WATTS")]
    pub watts: String,
    /// Only this GPU, numbered in PCI bus order (default: every GPU).
    #[arg(long, value_name = "N")]
    pub gpu: Option<u32>,
    /// When the limit is below the lowest the domain may be given, apply that minimum instead of
    /// refusing.
    #[arg(long)]
    pub clamp: bool,
    #[command(flatten)]
    pub common: ControlArgs,
}

#[derive(Args, Debug)]
pub struct CapNodeArgs {
    /// Node cap in watts.
    #[arg(allow_hyphen_values = true, value_name = "WATTS")]
    pub watts: String,
    /// How the cap is split: proportional (to each domain's maximum), uniform, or variorum (even
    /// over sockets, as Variorum does).
    #[arg(long, default_value = "proportional")]
    pub policy: String,
    /// When the cap is below what the node can reach, apply that minimum instead of refusing.
    #[arg(long)]
    pub clamp: bool,
    /// How long to measure what cannot be capped before splitting the cap.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    pub interval: String,
    #[command(flatten)]
    pub common: ControlArgs,
}

/// Where the hardware is and how to show results.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Directory standing for `/`: every hardware path is resolved under it.
    #[arg(long, env = "POWERSTACK_ROOT", default_value = "/", value_name = "DIR")]
    pub root: PathBuf,

    /// Hardware sources: `auto`, or a comma-separated list of powercap, msr, nvml, pm_counters,
    /// hwmon.
    #[arg(long, default_value = "auto", value_name = "LIST")]
    pub source: String,

    /// The NVML library to load (default: the system's libnvidia-ml.so.1 on `/`, or one under
    /// the root's usr/lib).
    #[arg(long, env = "POWERSTACK_NVML_LIB", value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,

    /// Simulated hardware: `off` (real hardware only), `auto` (real hardware when some source is
    /// readable, else the simulated intel-2s node), or a profile name to always simulate.
    #[arg(long, env = "POWERSTACK_SIMULATE", default_value = "off", value_name = "MODE")]
    pub simulate: String,

    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

impl NodeArgs {
    /// The providers' options these arguments give (`--nvml-lib`).
    pub fn provider_options(&self) -> ProviderOptions {
        ProviderOptions { nvml: NvmlOptions { library: self.nvml_lib.clone() } }
    }
}

/// Options of commands that read counters.
#[derive(Args, Debug, Clone)]
pub struct ReadArgs {
    #[command(flatten)]
    pub node: NodeArgs,

    /// Measurement interval (`200ms`, `1s`, `1.5s`).
    #[arg(long, default_value = "200ms", value_name = "DURATION")]
    pub interval: String,

    /// Keep printing a reading every interval until Ctrl-C.
    #[arg(long)]
    pub watch: bool,

    /// Stop after N readings (implies --watch).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human table.
    Table,
    /// Native versioned JSON (one object per line).
    Json,
    /// Variorum 0.8 nested JSON.
    Variorum,
    /// Variorum's older flat JSON.
    VariorumFlat,
    /// Prometheus text exposition.
    Prometheus,
}

/// The name one types after `--format` (`variorum-flat`, not `VariorumFlat`).
impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.to_possible_value().ok_or(std::fmt::Error)?;
        f.write_str(value.get_name())
    }
}

/// Options of `powerstack agent` (flags override the config file).
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Configuration file (TOML; see docs/agent.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Sampling rate, Hz (0.1 to 1000).
    #[arg(long)]
    pub rate_hz: Option<f64>,
    /// Ring size, samples.
    #[arg(long)]
    pub buffer_samples: Option<usize>,
    /// Unix socket path (`""` disables it).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<String>,
    /// TCP listen address, loopback by default (`""` disables it).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Bearer token file for writes over TCP (mode 600).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A user allowed to change controls over the socket (repeatable).
    #[arg(long, value_name = "USER")]
    pub allow_user: Vec<String>,
    /// A group allowed to change controls over the socket (repeatable).
    #[arg(long, value_name = "GROUP")]
    pub allow_group: Vec<String>,
    /// The journal directory.
    #[arg(long, env = "POWERSTACK_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Hardware root.
    #[arg(long, env = "POWERSTACK_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Hardware sources.
    #[arg(long, value_name = "LIST")]
    pub source: Option<String>,
    /// Simulated hardware: off, auto, or a profile.
    #[arg(long, env = "POWERSTACK_SIMULATE", default_value = "off", value_name = "MODE")]
    pub simulate: String,
    /// The NVML library to load.
    #[arg(long, env = "POWERSTACK_NVML_LIB", value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,
    /// The site service to push the counters to (`https://HOST:PORT`, `http://HOST:PORT`;
    /// default: none, no pushing).
    #[arg(long, env = "POWERSTACK_SITE", value_name = "URL")]
    pub site: Option<String>,
    /// The site CA's certificates (PEM) an https site's certificate is checked against
    /// (default: the system's trust store).
    #[arg(long, env = "POWERSTACK_SITE_CA", value_name = "FILE")]
    pub site_ca: Option<PathBuf>,
    /// This node's name at the site (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Bearer token file sent to the site (mode 600).
    #[arg(long, value_name = "FILE")]
    pub site_token_file: Option<PathBuf>,
    /// The URL at which the site reaches this agent's HTTP API (its --listen address) to cap
    /// the node, sent with each registration (default: none, the site does not cap it).
    #[arg(long, value_name = "URL")]
    pub advertise_url: Option<String>,
    /// How often a sample is pushed to the site, 100ms to 60s (default 1s).
    #[arg(long, value_name = "DURATION")]
    pub push_interval: Option<String>,
}

/// Options of `powerstack up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// TCP address for the API and /metrics.
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub listen: String,
    /// Sampling rate, Hz.
    #[arg(long, default_value_t = 10.0)]
    pub rate_hz: f64,
    /// Hardware root.
    #[arg(long, env = "POWERSTACK_ROOT", default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Simulated hardware: auto (default), off, or a profile.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub simulate: String,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// The agent's Unix socket, through which the caller (and root) may mark jobs and set caps
    /// (default: agent.sock in a new private temporary directory; the path is printed).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// TCP address of the embedded site service.
    #[arg(long, default_value = "127.0.0.1:9465", value_name = "ADDR")]
    pub site_listen: String,
    /// The site's database (default: site.db in ~/.local/state/powerstack, or
    /// /var/lib/powerstack for root; `postgres://...` for PostgreSQL).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Run no site service (the agent alone).
    #[arg(long)]
    pub no_site: bool,
}
