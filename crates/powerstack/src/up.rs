//! `powerstack up`: the whole stack on this machine: an agent (on a simulated node when nothing
//! is readable) and an embedded site service it pushes to, with live node power until Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use powerstack_agent::Shared;
use powerstack_agent::config::AgentConfig;
use powerstack_agent::run::{Ready, run};
use powerstack_api::table;
use powerstack_api::v1::{Origin, PowerV1};
use powerstack_model::duration::parse_duration;
use powerstack_model::{PowerReport, Snapshot, Value};
use powerstack_site::SiteConfig;

use crate::agent::{stop_on_signals, where_line};
use crate::cli::UpArgs;
use crate::{node, output};

/// Node power over the last second of the ring, as a table.
fn live_table(shared: &Shared) -> Option<String> {
    let ring = shared.ring.lock().ok()?;
    let (t1, v1) = ring.newest()?;
    let target = t1.saturating_sub(1_000_000);
    let i0 = ring.last_at_or_before(target).unwrap_or(0);
    let (t0, v0) = ring.get(i0)?;
    if t1 <= t0 {
        return None;
    }
    let snap = |t: u64, v: &[u64]| Snapshot {
        mono_ns: t * 1000,
        unix_us: t as i64,
        values: v
            .iter()
            .zip(&shared.domains)
            .map(|(ticks, d)| Value::Energy {
                total_ticks: *ticks,
                joules: *ticks as f64 * d.joules_per_tick,
                hw_time_us: None,
            })
            .collect(),
    };
    let (a, b) = (snap(t0, v0), snap(t1, v1));
    drop(ring);
    let catalog = shared.catalog();
    let report = PowerReport::between(&catalog, &a, &b);
    let origin = Origin { hostname: shared.hostname.clone(), simulated: shared.simulated.clone() };
    Some(table::power(&PowerV1::new(&origin, &catalog, &report, &[])))
}

/// Successive tables as a terminal shows them in place: each after the first moves the cursor
/// back to the start of the one before and clears from there (ANSI CSI `F` and `J`); when the
/// output is not a terminal, each table as it is.
struct Redraw {
    in_place: bool,
    lines: usize,
}

impl Redraw {
    fn new(in_place: bool) -> Self {
        Redraw { in_place, lines: 0 }
    }

    fn frame(&mut self, table: &str) -> String {
        let back = if self.in_place && self.lines > 0 {
            format!("\x1b[{}F\x1b[J", self.lines)
        } else {
            String::new()
        };
        self.lines = table.trim_end_matches('\n').lines().count();
        format!("{back}{table}")
    }
}

/// What `up` says on stderr once the agent is ready: where everything is, and the commands that
/// work against it.
fn say_ready(ready: &Ready, site_url: Option<&str>) {
    for n in &ready.notes {
        eprintln!("note: {n}");
    }
    eprintln!("{}", where_line(ready));
    let mut pages: Vec<String> =
        ready.listen.iter().map(|a| format!("this node http://{a}/")).collect();
    pages.extend(site_url.iter().map(|u| format!("the site {u}/")));
    if !pages.is_empty() {
        eprintln!("dashboard: {} (open in a browser)", pages.join(", "));
    }
    if let Some(s) = &ready.socket {
        eprintln!(
            "jobs and caps: export POWERSTACK_AGENT={sock} (or pass --agent with it); then \
             powerstack job begin ID, powerstack job end ID; a cap through the API: curl \
             --unix-socket {sock} -X POST http://agent/v1/caps -d '{{\"node_watts\": 300}}'",
            sock = s.display()
        );
    }
    if let Some(url) = &site_url {
        let host = node::hostname();
        eprintln!(
            "jobs at the site: powerstack job begin ID --site {url} --nodes {host} --no-agents; \
             powerstack job end ID --site {url}; powerstack job report -j ID --site {url}"
        );
        eprintln!(
            "the site bound, through this node's agent: powerstack site bound WATTS --site {url}; \
             powerstack site decisions --site {url}; powerstack site bound clear --site {url}"
        );
    }
}

/// `powerstack up`.
pub fn up(a: &UpArgs) -> anyhow::Result<()> {
    let duration = a
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
    // First: no other thread may exist yet (a simulated node runs on one).
    let stop = stop_on_signals(duration)?;
    let sim = node::simulation_for(&a.simulate, &a.root)?;
    let root = sim.as_ref().map(|s| s.root.clone()).unwrap_or_else(|| a.root.clone());
    let simulated = node::simulated_label(sim.as_ref(), &root);
    // A private directory (mode 0700, the caller's) for the socket and, unless this is a real
    // node run as root, the journal and the job windows, so nothing of it is left behind.
    let state = tempfile::Builder::new()
        .prefix("powerstack-up-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("creating a state directory")?;
    let state_dir = if simulated.is_none() && powerstack_cap::trust::effective_uid() == 0 {
        "/var/lib/powerstack".into()
    } else {
        state.path().to_path_buf()
    };
    let socket = a.socket.clone().unwrap_or_else(|| state.path().join("agent.sock"));
    // The embedded site caps this node through its agent (the site bound): a token only the two
    // share, in the private directory, and the agent's TCP address advertised.
    let listen = concrete_listen(&a.listen)?;
    let control =
        (!a.no_site && !listen.is_empty()).then(|| control_token(state.path())).transpose()?;
    let site = start_site(a, control.as_deref())?;
    let site_url = site.as_ref().map(|s| s.ready().url());
    let config = AgentConfig {
        token_file: control.clone(),
        advertise_url: control.as_ref().map(|_| format!("http://{listen}")),
        rate_hz: a.rate_hz,
        buffer_samples: 36_000,
        socket: socket.to_string_lossy().into_owned(),
        listen,
        // The caller may write through the socket (root always may).
        allow_users: vec![caller_uid().to_string()],
        state_dir,
        root,
        site: site_url.clone(),
        ..AgentConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
    let agent_stop = stop.clone();
    let handle = std::thread::spawn(move || {
        run(&config, node::hostname(), simulated, agent_stop, |ready: &Ready| {
            say_ready(ready, site_url.as_deref());
            eprintln!("Ctrl-C to stop");
            let _ = tx.send(ready.shared.clone());
        })
    });
    let shared = match rx.recv() {
        Ok(s) => s,
        Err(_) => {
            // The agent ended before it was ready: its error says why.
            return match handle.join() {
                Ok(Err(e)) => Err(e.into()),
                _ => bail!("the agent stopped before it was ready"),
            };
        }
    };
    // On a terminal the table is redrawn in place, as `top` does; piped, each is printed below
    // the last.
    let mut redraw = Redraw::new(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    while !stop.wait_timeout(Duration::from_secs(1)) {
        if let Some(t) = live_table(&shared)
            && let Err(e) = output::emit(&redraw.frame(&t))
        {
            // The reader went away: stop the agent (which restores its limits) first.
            stop.stop();
            let _ = handle.join();
            return Err(e);
        }
    }
    let agent = match handle.join() {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(anyhow::anyhow!("the agent thread panicked")),
    };
    // The agent first (its last push), then the site.
    if let Some(s) = site {
        s.stop().context("stopping the site service")?;
    }
    agent
}

/// The embedded site service of `up` (none with `--no-site`): its database persistent (`--database`,
/// default `site.db` under the user's state directory, `/var/lib/powerstack` for root), on
/// `--site-listen`.
fn start_site(
    a: &UpArgs,
    agent_token_file: Option<&Path>,
) -> anyhow::Result<Option<powerstack_site::Running>> {
    if a.no_site {
        return Ok(None);
    }
    let state_dir = default_site_dir();
    let mut config = SiteConfig {
        listen: a.site_listen.clone(),
        database: a.database.clone().unwrap_or_default(),
        state_dir,
        ..SiteConfig::default()
    };
    config.bound.agent_token_file = agent_token_file.map(Path::to_path_buf);
    let running = powerstack_site::start(&config).with_context(|| {
        format!("starting the embedded site service on {} (another port: --site-listen; none: --no-site)", a.site_listen)
    })?;
    for w in &running.ready().warnings {
        eprintln!("warning: {w}");
    }
    eprintln!("{}", crate::site::where_line(running.ready()));
    Ok(Some(running))
}

/// `--listen`, its port chosen now when it names port 0: the embedded site is given the agent's
/// address before the agent binds it, so the address must name the real port. (Should another
/// process take that port first, the agent cannot listen and says so.) A host name is kept as
/// given.
fn concrete_listen(listen: &str) -> anyhow::Result<String> {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.port() == 0 => {
            let probe = std::net::TcpListener::bind(addr)
                .with_context(|| format!("--listen {listen}: cannot listen there"))?;
            Ok(probe.local_addr().context("--listen: the port chosen")?.to_string())
        }
        _ => Ok(listen.to_string()),
    }
}

/// A fresh random token in `dir/control.token` (mode 600): what the embedded site presents to
/// the agent to cap the node.
fn control_token(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the site's token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("control.token");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{token}\n").as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Where `up` keeps its site database: `/var/lib/powerstack` for root, else
/// `$XDG_STATE_HOME/powerstack` or `~/.local/state/powerstack`.
fn default_site_dir() -> PathBuf {
    if caller_uid() == 0 {
        return PathBuf::from("/var/lib/powerstack");
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    state.unwrap_or_else(std::env::temp_dir).join("powerstack")
}

fn caller_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::Redraw;

    #[test]
    fn on_a_terminal_each_table_replaces_the_last_and_piped_each_follows() {
        let mut tty = Redraw::new(true);
        assert_eq!(tty.frame("a\nb\nc\n"), "a\nb\nc\n");
        assert_eq!(tty.frame("d\ne"), "\x1b[3F\x1b[Jd\ne");
        assert_eq!(tty.frame("f"), "\x1b[2F\x1b[Jf");
        let mut pipe = Redraw::new(false);
        assert_eq!(pipe.frame("a\nb"), "a\nb");
        assert_eq!(pipe.frame("c"), "c");
    }
}
