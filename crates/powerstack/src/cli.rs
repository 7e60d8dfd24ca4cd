//! Command-line definition (raw arguments; validation happens in the commands).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Vendor-neutral power and energy for HPC nodes.
#[derive(Parser, Debug)]
#[command(name = "powerstack", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
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
    /// Simulated hardware roots for testing without hardware.
    #[command(subcommand)]
    Sim(SimCommand),
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
    /// Also set the short-term limit, watts.
    #[arg(long, allow_hyphen_values = true, value_name = "WATTS")]
    pub short_term: Option<String>,
    /// Averaging window of the long-term limit (`1s`, `28ms`).
    #[arg(long, value_name = "DURATION")]
    pub time_window: Option<String>,
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

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Write a complete simulated hardware root into DIR.
    Create(SimCreateArgs),
    /// Animate a simulated root in real time until stopped (Ctrl-C, SIGTERM or --duration).
    Run(SimRunArgs),
    /// List the simulator profiles.
    Profiles,
}

#[derive(Args, Debug)]
pub struct SimCreateArgs {
    /// Profile: intel-2s, amd-2s, cray-ex, hwmon-node.
    #[arg(long, default_value = "intel-2s")]
    pub profile: String,

    /// Load of every component, from 0 (idle) to 1 (maximum).
    #[arg(long, default_value_t = 0.5)]
    pub load: f64,

    /// Load pattern: steady, sine, steps.
    #[arg(long, default_value = "steady")]
    pub pattern: String,

    /// Number zones and hwmon chips differently from the usual order.
    #[arg(long)]
    pub shuffle_indices: bool,

    /// Add an intel-rapl-mmio duplicate of package-0.
    #[arg(long)]
    pub mmio_duplicate: bool,

    /// Leave out the DRAM zones.
    #[arg(long)]
    pub omit_dram: bool,

    /// The mock NVML library for GPU profiles (default: env POWERSTACK_MOCK_NVML, else
    /// libpowerstack_mock_nvml.so next to this program).
    #[arg(long, value_name = "PATH")]
    pub nvml_mock: Option<PathBuf>,

    /// The directory to create (empty or absent).
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct SimRunArgs {
    /// Update period of the simulated counters.
    #[arg(long, default_value = "5ms", value_name = "DURATION")]
    pub tick: String,

    /// Stop after this long (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Change the load (0 to 1) before running.
    #[arg(long)]
    pub load: Option<f64>,

    /// A root made by `powerstack sim create`.
    pub dir: PathBuf,
}
