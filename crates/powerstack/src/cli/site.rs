//! The arguments of the site's control tasks: `site transition`, `site power-cap`, `site task`.

use clap::{Args, Subcommand};

use super::SiteConnArgs;

/// How a control-task command reaches the site, waits and prints.
#[derive(Args, Debug)]
pub struct TaskOutputArgs {
    #[command(flatten)]
    pub site: SiteConnArgs,
    /// Print the task's id and return at once, without waiting for its nodes.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the task as JSON (powerstack.site-task.v1) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for each of the site's answers.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
}

/// `site transition`.
#[derive(Args, Debug)]
pub struct SiteTransitionArgs {
    /// on, off (graceful), force-off, restart (graceful), force-restart or power-cycle.
    #[arg(value_name = "OPERATION")]
    pub operation: String,
    /// The nodes, as a hostlist (`node[01-04,07]`); each needs a BMC in the site's configuration.
    #[arg(long, value_name = "HOSTLIST")]
    pub nodes: String,
    /// How long each node may take to reach its new power state (default: the site's, 120s).
    #[arg(long, value_name = "DURATION")]
    pub deadline: Option<String>,
    /// Force a graceful off or restart not done by the deadline (once).
    #[arg(long)]
    pub escalate: bool,
    #[command(flatten)]
    pub out: TaskOutputArgs,
}

#[derive(Subcommand, Debug)]
pub enum PowerCapCommand {
    /// Set each node's own power limit through its BMC, or turn capping off.
    Set(PowerCapSetArgs),
    /// Read each node's power limits and their ranges through its BMC.
    Snapshot(PowerCapSnapshotArgs),
}

/// `site power-cap set`.
#[derive(Args, Debug)]
pub struct PowerCapSetArgs {
    /// The limit in watts (`500`, `500W`), or `off`.
    #[arg(value_name = "WATTS|off")]
    pub watts: String,
    /// The nodes, as a hostlist; each needs a BMC in the site's configuration.
    #[arg(long, value_name = "HOSTLIST")]
    pub nodes: String,
    #[command(flatten)]
    pub out: TaskOutputArgs,
}

/// `site power-cap snapshot`.
#[derive(Args, Debug)]
pub struct PowerCapSnapshotArgs {
    /// The nodes, as a hostlist; each needs a BMC in the site's configuration.
    #[arg(long, value_name = "HOSTLIST")]
    pub nodes: String,
    #[command(flatten)]
    pub out: TaskOutputArgs,
}

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// A control task and each node's state (waits for it unless --no-wait).
    Show(TaskIdArgs),
    /// Abort a control task: its pending nodes are aborted; those in flight finish.
    Abort(TaskIdArgs),
}

/// `site task show|abort ID`.
#[derive(Args, Debug)]
pub struct TaskIdArgs {
    /// The task's id (as `site transition` or `site power-cap` printed it).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub out: TaskOutputArgs,
}

/// How a bound command reaches the site and prints.
#[derive(Args, Debug)]
pub struct SiteCallArgs {
    /// Print the site's answer as JSON (its `powerstack.*.v1` document) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub site: SiteConnArgs,
    /// How long to wait for the site's answer.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
}

/// `site bound`.
#[derive(Args, Debug)]
pub struct SiteBoundArgs {
    /// The new bound (`600000`, `600kW`, `0.6MW`), or `clear` to go back to the configuration's;
    /// none: show the bound in force.
    #[arg(value_name = "WATTS|clear")]
    pub watts: Option<String>,
    /// What cannot be capped (switches, storage, nodes without a control), with the new bound.
    #[arg(long, value_name = "WATTS", requires = "watts")]
    pub reserve_watts: Option<String>,
    /// The policy, with the new bound: uniform, slurm, priority or dynamic.
    #[arg(long, value_name = "POLICY", requires = "watts")]
    pub policy: Option<String>,
    #[command(flatten)]
    pub call: SiteCallArgs,
}

/// `site decisions`.
#[derive(Args, Debug)]
pub struct SiteDecisionsArgs {
    /// How many decisions, newest first.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: u64,
    #[command(flatten)]
    pub call: SiteCallArgs,
}

/// `site admit`.
#[derive(Args, Debug)]
pub struct SiteAdmitArgs {
    /// How many nodes the job needs.
    #[arg(long, value_name = "N")]
    pub nodes: u64,
    /// The power the job asks for, all its nodes together (`4000`, `4kW`).
    #[arg(long, value_name = "WATTS")]
    pub power_watts: Option<String>,
    /// The job's priority (higher first; default 0).
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    #[command(flatten)]
    pub call: SiteCallArgs,
}
