//! Opening the node: the hardware root, or a simulated node when asked or when nothing is
//! readable. The one way the CLI, the C library and the Python package find the hardware: the
//! same root (`--root`, `POWERSTACK_ROOT`), sources and `--simulate` modes
//! (`POWERSTACK_SIMULATE`) mean the same everywhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use powerstack_cap::{NodeId, StateDir};
use powerstack_hw::providers::ProviderOptions;
use powerstack_hw::{DiscoverOptions, Discovery, Root, Selection, SourceState, discover_with};
use powerstack_sim::{Profile, SimNode, SimOptions};

/// Why the node could not be opened: one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// An option that cannot be used (`--source`, `--simulate`, `--root`).
    #[error("{0}")]
    Invalid(String),
    /// Nothing under the root can be read, and simulation is off.
    #[error(
        "no readable power source under {root}: {reasons}; run as root, check --root, or pass --simulate auto to use a simulated node"
    )]
    NothingReadable {
        /// The root.
        root: String,
        /// Each provider's first reason.
        reasons: String,
    },
    /// The simulated node could not be made or offers none of the selected sources.
    #[error("{0}")]
    Simulator(String),
}

/// What `--simulate` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simulate {
    /// Real hardware only.
    Off,
    /// Real hardware when some source is readable, else the simulated `intel-2s` node.
    Auto,
    /// Always the simulated node of this profile.
    Profile(Profile),
}

impl std::str::FromStr for Simulate {
    type Err = OpenError;

    fn from_str(s: &str) -> Result<Simulate, OpenError> {
        Ok(match s {
            "off" | "no" | "never" => Simulate::Off,
            "auto" => Simulate::Auto,
            other => Simulate::Profile(
                other
                    .parse::<Profile>()
                    .map_err(|e| OpenError::Invalid(format!("--simulate: {e} (or off, auto)")))?,
            ),
        })
    }
}

/// Where and how to open the node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The directory standing for `/`.
    pub root: PathBuf,
    /// The sources: `auto` or a comma-separated list (`powercap,nvml`).
    pub source: String,
    /// Simulation.
    pub simulate: Simulate,
    /// The providers' options (`--nvml-lib`).
    pub providers: ProviderOptions,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            root: PathBuf::from("/"),
            source: "auto".into(),
            simulate: Simulate::Off,
            providers: ProviderOptions::default(),
        }
    }
}

impl NodeOptions {
    /// The options a front end without flags opens the node with (the C library, Python): each
    /// argument when given, else the environment (`POWERSTACK_ROOT`, `POWERSTACK_SOURCE`,
    /// `POWERSTACK_SIMULATE`, `POWERSTACK_NVML_LIB`, an empty variable counting as unset), else
    /// the CLI's defaults (`/`, `auto`, `off`).
    pub fn from_env(
        root: Option<String>,
        source: Option<String>,
        simulate: Option<String>,
    ) -> Result<NodeOptions, OpenError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let root = root.or_else(|| env("POWERSTACK_ROOT")).unwrap_or_else(|| "/".into());
        let source = source.or_else(|| env("POWERSTACK_SOURCE")).unwrap_or_else(|| "auto".into());
        let simulate =
            simulate.or_else(|| env("POWERSTACK_SIMULATE")).unwrap_or_else(|| "off".into());
        let mut options = NodeOptions {
            root: PathBuf::from(root),
            source,
            simulate: simulate.parse()?,
            providers: ProviderOptions::default(),
        };
        options.providers.nvml.library = env("POWERSTACK_NVML_LIB").map(PathBuf::from);
        Ok(options)
    }
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

/// A simulated root in a temporary directory, animated in real time by a background thread;
/// stopped and removed when dropped.
pub struct SimRoot {
    /// The root directory.
    pub root: PathBuf,
    /// The profile.
    pub profile: Profile,
    /// Why the node is simulated, as the `SIMULATED:` line a caller shows.
    pub note: String,
    _animator: Animator,
}

impl std::fmt::Debug for SimRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRoot").field("root", &self.root).field("profile", &self.profile).finish()
    }
}

/// Creates and animates a simulated node of `profile`; `why` goes into its note.
pub fn start_sim(profile: Profile, why: &str) -> Result<SimRoot, OpenError> {
    let dir = tempfile::Builder::new()
        .prefix("powerstack-sim-")
        .tempdir()
        .map_err(|e| OpenError::Simulator(format!("creating a simulated root: {e}")))?;
    let mut sim = SimNode::create(dir.path(), profile, SimOptions::default()).map_err(|e| {
        OpenError::Simulator(format!("creating the simulated {} node: {e}", profile.as_str()))
    })?;
    let note = format!(
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
        .map_err(|e| OpenError::Simulator(format!("starting the simulator thread: {e}")))?;
    Ok(SimRoot {
        root: dir.path().to_path_buf(),
        profile,
        note,
        _animator: Animator { stop, thread: Some(thread), _dir: dir },
    })
}

/// The hostname of the machine.
pub fn hostname() -> String {
    powerstack_cap::state::hostname()
}

/// The simulator profile when the hardware is simulated: a simulated node started here, or a
/// root made by `powerstack sim create`; `None` for real hardware.
pub fn simulated_label(sim: Option<&SimRoot>, root: &Path) -> Option<String> {
    sim.map(|s| s.profile)
        .or_else(|| powerstack_sim::profile_of(root))
        .map(|p| p.as_str().to_string())
}

/// Why nothing could be read, in one line: the first reason given by each provider.
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

/// What `mode` means for `root`: `None` for real hardware, or a started simulated node (`Auto`:
/// only when nothing under `root` is readable).
pub fn simulation_for(mode: Simulate, root: &Path) -> Result<Option<SimRoot>, OpenError> {
    match mode {
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

/// An opened node: discovered providers, and the simulator when the node is simulated.
pub struct OpenNode {
    /// The hardware root (the simulated one when simulated).
    pub root: Root,
    /// What was found.
    pub discovery: Discovery,
    /// The hostname and the simulated profile, for documents.
    pub origin: powerstack_api::Origin,
    /// Discovery warnings as lines.
    pub warnings: Vec<String>,
    sim: Option<SimRoot>,
}

impl OpenNode {
    /// The node's state directory: `given`, except that a simulated node never uses the real
    /// node's `/var/lib/powerstack` (see [`powerstack_cap::state_dir_for`]).
    pub fn state(&self, given: &Path) -> StateDir {
        let simulated = self.origin.simulated.as_deref();
        let dir = powerstack_cap::state_dir_for(given, &self.root, simulated.is_some());
        StateDir::new(dir, NodeId::new(&self.root, simulated))
    }

    /// The `SIMULATED:` line when the node is simulated: one this call started, or a simulated
    /// root given as the root (`sim create`).
    pub fn simulated_note(&self) -> Option<String> {
        if let Some(s) = &self.sim {
            return Some(s.note.clone());
        }
        self.origin.simulated.as_ref().map(|profile| {
            format!(
                "SIMULATED: {} is a simulated {profile} node (made by `powerstack sim create`)",
                self.root.base().display()
            )
        })
    }

    /// Whether some source could not be read in full (a partial reading).
    pub fn partial(&self) -> bool {
        self.discovery.warnings.iter().any(|w| w.unreadable)
    }

    /// The domains document (`powerstack.domains.v1`): the limits read again first; what could
    /// not be read is in its warnings.
    pub fn domains(&mut self) -> powerstack_api::v1::DomainsV1 {
        let mut warnings = self.warnings.clone();
        let refreshed = self.discovery.platform.refresh_limits();
        warnings.extend(refreshed.into_iter().map(|w| w.to_string()));
        let now = powerstack_hw::clock::unix_us();
        let sources = self.source_docs();
        let catalog = self.discovery.platform.catalog();
        powerstack_api::v1::DomainsV1::new(&self.origin, catalog, now, &sources, &warnings)
    }

    /// What became of each source, for the domains document.
    fn source_docs(&self) -> Vec<powerstack_api::v1::SourceV1> {
        self.discovery
            .sources
            .iter()
            .map(|s| {
                let (domains, detail) = match &s.state {
                    SourceState::Found { domains } => (*domains, None),
                    other => (0, Some(other.detail())),
                };
                powerstack_api::v1::SourceV1 {
                    source: s.source.as_str().to_string(),
                    status: s.state.as_str().to_string(),
                    domains,
                    detail,
                }
            })
            .collect()
    }
}

/// Opens the node `options` describe.
pub fn open(options: &NodeOptions) -> Result<OpenNode, OpenError> {
    let selection: Selection =
        options.source.parse().map_err(|e: String| OpenError::Invalid(format!("--source: {e}")))?;
    let discover = DiscoverOptions::from(options.providers.clone());
    if !options.root.is_dir() {
        return Err(OpenError::Invalid(format!(
            "--root {}: not a directory",
            options.root.display()
        )));
    }
    let why = match options.simulate {
        Simulate::Profile(p) => Some((p, format!("asked for with --simulate {}", p.as_str()))),
        Simulate::Off | Simulate::Auto => None,
    };
    if let Some((profile, why)) = why {
        return simulated(profile, &selection, &discover, &why);
    }
    let root = Root::new(&options.root);
    let discovery = discover_with(&root, &selection, &discover);
    if discovery.platform.is_empty() {
        let reasons = summarize(&discovery);
        if options.simulate == Simulate::Auto {
            let why =
                format!("no readable power source under {} ({reasons})", options.root.display());
            return simulated(Profile::Intel2s, &selection, &discover, &why);
        }
        return Err(OpenError::NothingReadable {
            root: options.root.display().to_string(),
            reasons,
        });
    }
    let simulated = simulated_label(None, &options.root);
    let warnings = discovery.warnings.iter().map(ToString::to_string).collect();
    Ok(OpenNode {
        root,
        discovery,
        origin: powerstack_api::Origin { hostname: hostname(), simulated },
        warnings,
        sim: None,
    })
}

fn simulated(
    profile: Profile,
    selection: &Selection,
    options: &DiscoverOptions,
    why: &str,
) -> Result<OpenNode, OpenError> {
    let sim = start_sim(profile, why)?;
    let root = Root::new(&sim.root);
    let discovery = discover_with(&root, selection, options);
    if discovery.platform.is_empty() {
        return Err(OpenError::Simulator(format!(
            "the simulated {} node offers none of the selected sources ({})",
            profile.as_str(),
            summarize(&discovery)
        )));
    }
    let warnings = discovery.warnings.iter().map(ToString::to_string).collect();
    Ok(OpenNode {
        root,
        discovery,
        origin: powerstack_api::Origin {
            hostname: hostname(),
            simulated: Some(profile.as_str().to_string()),
        },
        warnings,
        sim: Some(sim),
    })
}
