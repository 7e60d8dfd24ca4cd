//! Opening the node: the hardware root, or a simulated node when asked or when nothing is readable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use powerstack_cap::{NodeId, StateDir};
use powerstack_hw::{DiscoverOptions, Discovery, Root, Selection, discover_with};
use powerstack_sim::{Profile, SimNode, SimOptions};

use crate::cli::NodeArgs;

/// An opened node: discovered providers, and the simulator when the node is simulated.
pub struct Node {
    /// The hardware root (the simulated one when simulated).
    pub root: Root,
    pub discovery: Discovery,
    pub origin: powerstack_api::Origin,
    /// Discovery warnings as lines.
    pub warnings: Vec<String>,
    _sim: Option<SimRoot>,
}

/// A simulated root animated by a background thread, removed when dropped.
struct Animator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Animator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Simulate {
    Off,
    Auto,
    Profile(Profile),
}

fn parse_simulate(s: &str) -> anyhow::Result<Simulate> {
    Ok(match s {
        "off" | "no" | "never" => Simulate::Off,
        "auto" => Simulate::Auto,
        other => Simulate::Profile(
            other
                .parse::<Profile>()
                .map_err(|e| anyhow::anyhow!("--simulate: {e} (or off, auto)"))?,
        ),
    })
}

/// The hostname of the machine running the command.
pub fn hostname() -> String {
    powerstack_cap::state::hostname()
}

impl Node {
    /// The node's state directory: `given` (`--state-dir`), except that a simulated node never
    /// uses the real node's `/var/lib/powerstack` (see [`powerstack_cap::state_dir_for`]).
    pub fn state(&self, given: &std::path::Path) -> StateDir {
        let simulated = self.origin.simulated.as_deref();
        let dir = powerstack_cap::state_dir_for(given, &self.root, simulated.is_some());
        StateDir::new(dir, NodeId::new(&self.root, simulated))
    }
}

/// Opens the node described by the arguments.
pub fn open(args: &NodeArgs) -> anyhow::Result<Node> {
    let selection: Selection =
        args.source.parse().map_err(|e: String| anyhow::anyhow!("--source: {e}"))?;
    let simulate = parse_simulate(&args.simulate)?;
    let options = DiscoverOptions::from(args.provider_options());
    let root_dir = args.root.clone();
    if !root_dir.is_dir() {
        bail!("--root {}: not a directory", root_dir.display());
    }
    match simulate {
        Simulate::Profile(p) => {
            simulated(p, &selection, &options, format!("asked for with --simulate {}", p.as_str()))
        }
        Simulate::Off | Simulate::Auto => {
            let root = Root::new(&root_dir);
            let discovery = discover_with(&root, &selection, &options);
            if discovery.platform.is_empty() {
                let reasons = summarize(&discovery);
                if matches!(simulate, Simulate::Auto) {
                    return simulated(
                        Profile::Intel2s,
                        &selection,
                        &options,
                        format!(
                            "no readable power source under {} ({reasons})",
                            root_dir.display()
                        ),
                    );
                }
                bail!(
                    "no readable power source under {}: {reasons}; run as root, check --root, or pass --simulate auto to use a simulated node",
                    root_dir.display()
                );
            }
            let simulated = simulated_label(None, &root_dir);
            if discovery.warnings.iter().any(|w| w.unreadable) {
                crate::output::mark_partial();
            }
            let warnings = discovery_lines(&discovery);
            Ok(Node {
                root,
                discovery,
                origin: powerstack_api::Origin { hostname: hostname(), simulated },
                warnings,
                _sim: None,
            })
        }
    }
}

/// The discovery warnings as lines; with `-v`, first says on stderr what became of each source.
fn discovery_lines(d: &Discovery) -> Vec<String> {
    if crate::output::verbose() {
        for s in &d.sources {
            eprintln!("note: source {s}");
        }
    }
    d.warnings.iter().map(ToString::to_string).collect()
}

/// Why nothing could be read, in one line: the first reason given by each provider (an absent
/// source's reason is one of them: nothing measures the node).
fn summarize(d: &Discovery) -> String {
    let mut providers: Vec<&str> = Vec::new();
    for w in &d.warnings {
        if !providers.contains(&w.provider) {
            providers.push(w.provider);
        }
    }
    let mut reasons = Vec::new();
    for p in providers {
        let mine: Vec<_> = d.warnings.iter().filter(|w| w.provider == p).collect();
        let mut why = mine[0].to_string();
        if mine.len() > 1 {
            why.push_str(&format!(" (and {} more {p} warnings)", mine.len() - 1));
        }
        reasons.push(why);
    }
    if reasons.is_empty() {
        return "no source found anything to measure".into();
    }
    reasons.join("; ")
}

/// A simulated root in a temporary directory, animated in real time by a background thread;
/// stopped and removed when dropped.
pub struct SimRoot {
    /// The root directory.
    pub root: std::path::PathBuf,
    /// The profile.
    pub profile: Profile,
    _animator: Animator,
}

/// Creates and animates a simulated node of `profile`, saying why on stderr.
pub fn start_sim(profile: Profile, why: &str) -> anyhow::Result<SimRoot> {
    let dir = tempfile::Builder::new()
        .prefix("powerstack-sim-")
        .tempdir()
        .context("creating a simulated root")?;
    let mut sim = SimNode::create(dir.path(), profile, SimOptions::default())
        .with_context(|| format!("creating the simulated {} node", profile.as_str()))?;
    eprintln!(
        "SIMULATED: {why}; using the simulated {} node ({})",
        profile.as_str(),
        profile.description()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("powerstack-sim".into())
        .spawn(move || {
            if let Err(e) = sim.run_realtime(Duration::from_millis(5), &flag) {
                eprintln!("warning: simulator stopped: {e}");
            }
        })
        .context("starting the simulator thread")?;
    Ok(SimRoot {
        root: dir.path().to_path_buf(),
        profile,
        _animator: Animator { stop, thread: Some(thread), _dir: dir },
    })
}

/// The simulator profile when the hardware is simulated: a simulated node started here, or a
/// root made by `powerstack sim create`; `None` for real hardware.
pub fn simulated_label(sim: Option<&SimRoot>, root: &std::path::Path) -> Option<String> {
    sim.map(|s| s.profile)
        .or_else(|| powerstack_sim::profile_of(root))
        .map(|p| p.as_str().to_string())
}

/// What `--simulate MODE` means for `root`: `None` for real hardware, or a started simulated node
/// (`auto`: only when nothing under `root` is readable).
pub fn simulation_for(mode: &str, root: &std::path::Path) -> anyhow::Result<Option<SimRoot>> {
    match parse_simulate(mode)? {
        Simulate::Off => Ok(None),
        Simulate::Profile(p) => {
            Ok(Some(start_sim(p, &format!("asked for with --simulate {}", p.as_str()))?))
        }
        Simulate::Auto => {
            let d = discover_with(&Root::new(root), &Selection::Auto, &DiscoverOptions::default());
            if d.platform.is_empty() {
                let why = format!(
                    "no readable power source under {} ({})",
                    root.display(),
                    summarize(&d)
                );
                Ok(Some(start_sim(Profile::Intel2s, &why)?))
            } else {
                Ok(None)
            }
        }
    }
}

fn simulated(
    profile: Profile,
    selection: &Selection,
    options: &DiscoverOptions,
    why: String,
) -> anyhow::Result<Node> {
    let sim = start_sim(profile, &why)?;
    let root = Root::new(&sim.root);
    let discovery = discover_with(&root, selection, options);
    if discovery.platform.is_empty() {
        bail!(
            "the simulated {} node offers none of the selected sources ({})",
            profile.as_str(),
            summarize(&discovery)
        );
    }
    let warnings = discovery_lines(&discovery);
    Ok(Node {
        root,
        discovery,
        origin: powerstack_api::Origin {
            hostname: hostname(),
            simulated: Some(profile.as_str().to_string()),
        },
        warnings,
        _sim: Some(sim),
    })
}
