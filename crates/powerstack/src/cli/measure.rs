//! Arguments of `measure`, `completions` and `man`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::NodeArgs;

/// Options of `powerstack measure [OPTIONS] -- COMMAND [ARGS]`.
#[derive(Args, Debug)]
#[command(override_usage = "powerstack measure [OPTIONS] -- COMMAND [ARGS]...")]
pub struct MeasureArgs {
    /// Directory standing for `/`, as for `power`.
    #[arg(long, env = "POWERSTACK_ROOT", default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Hardware sources, as for `power`.
    #[arg(long, default_value = "auto", value_name = "LIST")]
    pub source: String,
    /// The NVML library to load, as for `power`.
    #[arg(long, env = "POWERSTACK_NVML_LIB", value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,
    /// Simulated hardware (`off`, `auto` or a profile), as for `power`.
    #[arg(long, env = "POWERSTACK_SIMULATE", default_value = "off", value_name = "MODE")]
    pub simulate: String,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<MeasureFormat>,
    /// How often power is sampled for the peaks (`100ms`, `1s`; 10 ms to 1 h).
    #[arg(long, default_value = "100ms", value_name = "DURATION")]
    pub interval: String,
    /// Write the reading to this file instead of standard output (which the command writes to).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The command to run and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl MeasureArgs {
    /// The node these arguments describe, as the reading commands take it.
    pub fn node(&self) -> NodeArgs {
        NodeArgs {
            root: self.root.clone(),
            source: self.source.clone(),
            nvml_lib: self.nvml_lib.clone(),
            simulate: self.simulate.clone(),
            format: None,
        }
    }
}

/// Output formats of `measure`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureFormat {
    /// Human table.
    Table,
    /// Native versioned JSON (`powerstack.measure.v1`).
    Json,
    /// A row per domain and one for the node.
    Csv,
    /// Prometheus text exposition (for a textfile collector).
    Prometheus,
    /// Variorum 0.8 nested power JSON of the mean power.
    Variorum,
}

/// Options of `powerstack completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `powerstack man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write a page per command (powerstack.1, powerstack-power.1, powerstack-cap-socket.1, ...)
    /// into this directory instead of printing powerstack(1).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
