//! The `powerstack` command: argument parsing and glue; the work is done by the library crates.

mod agent;
mod bmc;
mod cap;
mod cli;
mod commands;
mod job;
mod jobs;
mod measure;
mod node;
mod output;
mod pools;
mod selfdoc;
mod signals;
mod sim_cluster;
mod site;
mod site_bound;
mod site_tasks;
mod up;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Power(a) => commands::power(a),
        Command::Energy(a) => commands::energy(a),
        Command::Domains(a) => commands::domains(a),
        Command::Topology(a) => commands::topology(a),
        Command::Cap(c) => cap::run(c),
        Command::Pools(c) => pools::run(c),
        Command::Job(c) => job::run(c),
        Command::Jobs(a) => jobs::run(a),
        Command::Agent(a) => agent::agent(a),
        Command::Up(a) => up::up(a),
        Command::Site(c) => site::run(c),
        Command::Sim(c) => commands::sim(c),
        Command::Bmc(a) => bmc::run(a),
        Command::Measure(a) => measure::run(a),
        Command::Completions(a) => selfdoc::completions(a),
        Command::Man(a) => selfdoc::man(a),
    }
}

/// The status an [`output::ExitStatus`] asks for, its message said first.
fn exit_with(e: &anyhow::Error) -> ExitCode {
    match e.downcast_ref::<output::ExitStatus>() {
        Some(s) => {
            if let Some(m) = &s.message {
                eprintln!("error: {m}");
            }
            ExitCode::from(s.code)
        }
        None => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_verbose(cli.verbose);
    match run(cli) {
        Ok(()) if output::partial() => ExitCode::from(3),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<output::ClosedPipe>() => ExitCode::SUCCESS,
        Err(e) if e.is::<output::ExitStatus>() => exit_with(&e),
        Err(e) => {
            eprintln!("error: {}", output::one_line(&e));
            // Stopped by SIGINT or SIGTERM: 128 + the signal, as a shell reports a process it
            // killed.
            signals::exit_status().map_or(ExitCode::FAILURE, ExitCode::from)
        }
    }
}
