//! What the CLI says about itself, generated from its definition: shell completions
//! (`powerstack completions SHELL`) and man pages (`powerstack man [--dir DIR]`).

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::output::emit;

/// `powerstack completions SHELL`: the completion script on stdout.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "powerstack", &mut script);
    emit(&String::from_utf8_lossy(&script))
}

/// `powerstack man`: powerstack(1) on stdout, every command in it; with `--dir DIR`, a page per
/// command in DIR.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let cmd = Cli::command();
    let pages = pages(&cmd);
    let Some(dir) = &args.dir else {
        return emit(&whole_tree(cmd).context("rendering the man page")?);
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the man page directory {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("writing the man pages into {}", dir.display()))?;
    emit(&format!("wrote {pages} man pages into {}", dir.display()))
}

/// How many pages `clap_mangen::generate_to` writes: one per command, subcommands included.
fn pages(cmd: &clap::Command) -> usize {
    1 + cmd.get_subcommands().filter(|s| !s.is_hide_set()).map(pages).sum::<usize>()
}

/// One command's page, as clap_mangen renders it.
fn page(cmd: &clap::Command) -> std::io::Result<String> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Every command below `cmd`, depth first, as `clap_mangen::generate_to` writes them.
fn descendants(cmd: &clap::Command) -> Vec<&clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .flat_map(|s| std::iter::once(s).chain(descendants(s)))
        .collect()
}

/// powerstack(1) with the whole tree in it: the top command's page, then a section per command
/// (`POWERSTACK-CAP-SOCKET`) holding its page's sections as subsections, less their title and
/// their VERSION (the page's own says it).
fn whole_tree(cmd: clap::Command) -> std::io::Result<String> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = page(&cmd)?;
    for sub in descendants(&cmd) {
        // `\-`: a minus sign, which copies as the `-` of the command's name.
        let name =
            sub.get_display_name().unwrap_or(sub.get_name()).to_uppercase().replace('-', "\\-");
        out.push_str(&format!(".SH \"{name}\"\n"));
        let mut skipping = false;
        for line in page(sub)?.lines().skip_while(|l| !l.starts_with(".TH")).skip(1) {
            if let Some(section) = line.strip_prefix(".SH ") {
                skipping = section == "VERSION";
                if !skipping {
                    out.push_str(&format!(".SS {section}\n"));
                }
            } else if !skipping {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}
