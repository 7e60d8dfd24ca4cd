//! The arguments of `powerstack sim create|run|cluster`: simulated roots, and the simulated
//! cluster under a site bound.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Write a complete simulated hardware root into DIR.
    Create(SimCreateArgs),
    /// Animate a simulated root in real time until stopped (Ctrl-C, SIGTERM or --duration).
    Run(SimRunArgs),
    /// List the simulator profiles.
    Profiles,
    /// Run a trace of jobs on a simulated cluster under a site power bound, through the site's
    /// policies, in virtual time, and compare them (docs/budget.md).
    Cluster(SimClusterArgs),
}

/// How a simulated node holds its cap.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSplit {
    /// Split again whenever the uncappable draw moves.
    Standing,
    /// Split once per write.
    Once,
}

/// How `sim cluster` prints its figures.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterFormat {
    /// A table per policy.
    Table,
    /// One JSON document.
    Json,
}

#[derive(Args, Debug)]
pub struct SimClusterArgs {
    /// Simulated nodes (the trace's jobs are scaled to them).
    #[arg(long, default_value_t = 64)]
    pub nodes: usize,

    /// The trace (TOML; docs/traces/ ships mixed, compute-heavy, memory-heavy, gpu).
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,

    /// The policy: uniform, slurm, priority, dynamic, or all to compare them.
    #[arg(long, default_value = "all")]
    pub policy: String,

    /// The bound as a share of the uncapped run's highest site power over a control period
    /// (default 0.7 when --bound-watts is not given).
    #[arg(long, value_name = "F", conflicts_with = "bound_watts")]
    pub bound_fraction: Option<f64>,

    /// The bound in watts.
    #[arg(long, value_name = "W")]
    pub bound_watts: Option<f64>,

    /// Later bounds, `AT_S:VALUE,...`, each value read as the first bound is (share or watts).
    #[arg(long, value_name = "AT_S:VALUE,...")]
    pub bound_schedule: Option<String>,

    /// What cannot be capped, kept out of the bound and counted as drawn, in watts.
    #[arg(long, default_value_t = 0.0, value_name = "W")]
    pub reserve_watts: f64,

    /// The simulated horizon, in seconds of virtual time.
    #[arg(long, default_value_t = 3600.0, value_name = "S")]
    pub duration_s: f64,

    /// The control period, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub period_s: f64,

    /// How long a written limit takes to be enforced, in seconds.
    #[arg(long, default_value_t = 0.3, value_name = "S")]
    pub lag_s: f64,

    /// The physics and measurement step, in seconds.
    #[arg(long, default_value_t = 0.1, value_name = "S")]
    pub tick_s: f64,

    /// How a node holds its cap: standing (split again over its domains when its uncappable
    /// draw moves) or once (split once per write, as the agent's `POST /v1/caps` does today).
    #[arg(long, value_enum, default_value = "standing")]
    pub node_split: NodeSplit,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ClusterFormat,

    /// Also draw site power against the bound over time, one line per policy (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SimCreateArgs {
    /// Profile: intel-2s, amd-2s, cray-ex, hwmon-node, nvidia-4gpu, nvidia-8gpu, amd-mi250x,
    /// intel-hybrid, intel-offline (see `powerstack sim profiles`).
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

    /// How long the mock NVML library's calls take: h200 (as measured on an H200: energy counter
    /// 2.85 ms, 15 ms tail) or off.
    #[arg(long, default_value = "h200", value_name = "LATENCY")]
    pub nvml_latency: String,

    /// Period of the GPUs' NVML energy counters, ms (an H200's moves every 100 ms); 0 updates
    /// them at every tick.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub nvml_update_ms: u32,

    /// A fault of the pm_counters controller (cray-ex, amd-mi250x); repeat for several: torn
    /// (files rewritten non-atomically), freshness-mid-update, late=DURATION (updates published up
    /// to that late), drift=Nppm (the controller's clock runs fast, or slow when negative).
    #[arg(long = "pm-fault", value_name = "FAULT")]
    pub pm_faults: Vec<String>,

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
