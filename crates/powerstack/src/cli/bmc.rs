//! Arguments of `powerstack bmc ...`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// `powerstack bmc`: one BMC, out of band, through Redfish.
#[derive(Args, Debug)]
pub struct BmcArgs {
    /// The BMC: http://HOST[:PORT] or https://HOST[:PORT].
    #[arg(long, env = "POWERSTACK_BMC_URL", value_name = "URL")]
    pub url: String,
    /// User (with a password from --password-file or POWERSTACK_BMC_PASSWORD).
    #[arg(long, env = "POWERSTACK_BMC_USER", value_name = "USER")]
    pub user: Option<String>,
    /// File holding the password (its first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Log in once and use a Redfish session (X-Auth-Token) instead of basic auth on every
    /// request; the session is ended when the command ends.
    #[arg(long)]
    pub session: bool,
    /// For https: the CA certificates (PEM) the BMC's certificate is checked against.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// For https: accept any certificate (no verification).
    #[arg(long)]
    pub insecure: bool,
    /// Timeout of each request.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
    /// Output format (default: table on a terminal, JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<BmcFormat>,
    #[command(subcommand)]
    pub command: BmcCommand,
}

/// Output of `powerstack bmc`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BmcFormat {
    /// Human table.
    Table,
    /// One JSON document.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum BmcCommand {
    /// Each chassis's power, energy and power/energy sensors, with where each number came from.
    Power,
    /// Each chassis's energy over a window: the BMC's energy counter when it has one, else its
    /// power readings integrated (and labelled so); mean power.
    Energy(BmcEnergyArgs),
    /// Each chassis's power limits: set point, mode, range, dialect, deviations.
    Limits,
    /// Set a power limit (WATTS) or turn capping off (`off`), and read it back.
    Cap(BmcCapArgs),
    /// Each system's power state and the resets the BMC allows.
    State,
    /// A power transition (On, ForceOff, GracefulShutdown, GracefulRestart, ForceRestart,
    /// PowerCycle), followed until the BMC confirms it or the deadline passes.
    Transition(BmcTransitionArgs),
}

#[derive(Args, Debug)]
pub struct BmcEnergyArgs {
    /// How long to measure.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub duration: String,
    /// How often to read the BMC.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct BmcCapArgs {
    /// Watts, or `off`.
    #[arg(value_name = "WATTS|off")]
    pub watts: String,
    /// The chassis (default: the first with a node/chassis power limit).
    #[arg(long, value_name = "ID")]
    pub chassis: Option<String>,
    /// The control's Id or name (default: the chassis's node/chassis power limit).
    #[arg(long, value_name = "NAME")]
    pub control: Option<String>,
}

#[derive(Args, Debug)]
pub struct BmcTransitionArgs {
    /// On, ForceOff, GracefulShutdown, GracefulRestart, ForceRestart or PowerCycle.
    #[arg(value_name = "TYPE")]
    pub transition: String,
    /// The system (default: the BMC's first).
    #[arg(long, value_name = "ID")]
    pub system: Option<String>,
    /// How long to wait for the BMC to confirm it (each step, when escalating).
    #[arg(long, default_value = "120s", value_name = "DURATION")]
    pub deadline: String,
    /// How often the power state is read.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub poll: String,
    /// A graceful transition not confirmed by the deadline is followed by the forced one.
    #[arg(long)]
    pub escalate: bool,
}
