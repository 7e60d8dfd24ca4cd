//! Opening the node for a command: the arguments to `powerstack_node::open`'s options, and what
//! it has to say (the `SIMULATED:` line, the sources with `-v`) on stderr.

use powerstack_node::open::{NodeOptions, OpenNode, Simulate};
pub use powerstack_node::open::{SimRoot, hostname, simulated_label};

use crate::cli::NodeArgs;

/// An opened node.
pub type Node = OpenNode;

/// What `--simulate MODE` asks for.
fn simulate(mode: &str) -> anyhow::Result<Simulate> {
    Ok(mode.parse::<Simulate>()?)
}

/// Opens the node described by the arguments.
pub fn open(args: &NodeArgs) -> anyhow::Result<Node> {
    let options = NodeOptions {
        root: args.root.clone(),
        source: args.source.clone(),
        simulate: simulate(&args.simulate)?,
        providers: args.provider_options(),
    };
    let node = powerstack_node::open::open(&options)?;
    if let Some(note) = node.simulated_note() {
        crate::output::note_before_output(note);
    } else if node.partial() {
        crate::output::mark_partial();
    }
    if crate::output::verbose() {
        for s in &node.discovery.sources {
            eprintln!("note: source {s}");
        }
    }
    Ok(node)
}

/// What `--simulate MODE` means for `root`: `None` for real hardware, or a started simulated node
/// (`auto`: only when nothing under `root` is readable), its `SIMULATED:` line said on stderr.
pub fn simulation_for(mode: &str, root: &std::path::Path) -> anyhow::Result<Option<SimRoot>> {
    let sim = powerstack_node::open::simulation_for(simulate(mode)?, root)?;
    if let Some(s) = &sim {
        eprintln!("{}", s.note);
    }
    Ok(sim)
}
