//! `powerstack measure [OPTIONS] -- COMMAND [ARGS]`: runs the command and prints the energy and
//! the mean and peak power of the node and of each domain while it ran; the measuring is
//! [`powerstack_node::measure`]'s. The command's exit status is passed on (128 + N when signal N
//! ended it), and so are SIGINT and SIGTERM sent to powerstack alone (a terminal's Ctrl-C reaches
//! the command by itself).

use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};

use anyhow::{Context, bail};
use powerstack_api::{measure as text, variorum};
use powerstack_model::duration::parse_duration;
use powerstack_node::measure::{Ended, Meter, SAMPLE_INTERVAL, document};

use crate::cli::{MeasureArgs, MeasureFormat};
use crate::node;
use crate::output::{ExitStatus, emit};
use crate::signals;

/// The command's process id while it runs (0 before and after), for passing signals on.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Passes the stop signal on to the command, once, unless the terminal sent it to the command
/// too.
fn forward() {
    let pid = CHILD.swap(0, Ordering::SeqCst);
    if pid > 0
        && !signals::from_terminal()
        && let Some(sig) = signals::received()
    {
        // SAFETY: kill has no memory-safety preconditions; `pid` is our child's, not yet reaped.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Starts the command, its standard streams ours; a command that cannot be started exits as a
/// shell would: 127 when it is not found, 126 when it cannot be run.
fn spawn(command: &[String]) -> anyhow::Result<Child> {
    let Some((program, args)) = command.split_first() else {
        bail!("no command given: powerstack measure [OPTIONS] -- COMMAND [ARGS]");
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    signals::unblock_in_child(&mut cmd);
    cmd.spawn().map_err(|e| {
        let (code, why) = match e.kind() {
            std::io::ErrorKind::NotFound => (127, "command not found; check its name and PATH"),
            std::io::ErrorKind::PermissionDenied => (126, "permission denied; is it executable?"),
            _ => (126, "it could not be started"),
        };
        let message = format!("cannot run `{program}`: {why} ({e})");
        anyhow::Error::new(ExitStatus { code, message: Some(message) })
    })
}

/// How the command ended, and the status powerstack exits with for it.
fn ended(status: std::process::ExitStatus) -> (Ended, u8) {
    match (status.code(), status.signal()) {
        (Some(c), _) => (Ended::Exited(c), u8::try_from(c).unwrap_or(1)),
        (None, Some(s)) => (Ended::Signaled(s), u8::try_from(128 + s).unwrap_or(1)),
        (None, None) => (Ended::Exited(1), 1),
    }
}

/// `powerstack measure`.
pub fn run(args: &MeasureArgs) -> anyhow::Result<()> {
    let interval =
        parse_duration(&args.interval).map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    if !SAMPLE_INTERVAL.contains(&interval) {
        bail!("--interval {}: must be between 10ms and 1h", args.interval);
    }
    let format =
        args.format.unwrap_or(if args.output.is_none() && std::io::stdout().is_terminal() {
            MeasureFormat::Table
        } else {
            MeasureFormat::Json
        });
    // Before the node opens: a simulated node runs on a thread, which must inherit the mask.
    // The command starts with no signal blocked (the standard library clears the mask).
    signals::catch(None, forward)?;
    let mut node = node::open(&args.node())?;
    let meter = Meter::start(&mut node, interval);
    signals::check("the command was not started")?;
    let mut child = spawn(&args.command)?;
    CHILD.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
    if signals::stopped() {
        // A signal between `catch` and now found no command to pass it on to.
        forward();
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (measured, status) = meter.until(&mut node, |left| match rx.recv_timeout(left) {
        Ok(status) => Some(status),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => {
            Some(Err(std::io::Error::other("the thread waiting for it ended")))
        }
    });
    // Reaped: its process id may be another process's from now on.
    CHILD.store(0, Ordering::SeqCst);
    let status = status.with_context(|| format!("waiting for `{}`", args.command[0]))?;
    let (how, code) = ended(status);
    let doc = document(&node, &measured, &args.command, Some(how));
    let out = match format {
        MeasureFormat::Table => powerstack_api::table::measure(&doc),
        MeasureFormat::Json => serde_json::to_string(&doc).context("encoding JSON")?,
        MeasureFormat::Csv => text::csv(&doc),
        MeasureFormat::Prometheus => text::prometheus(&doc),
        MeasureFormat::Variorum => {
            let catalog = node.discovery.platform.catalog();
            variorum::to_pretty(&variorum::power(&node.origin.hostname, catalog, &measured.mean))
        }
    };
    if !matches!(format, MeasureFormat::Table | MeasureFormat::Json) {
        for w in &doc.warnings {
            eprintln!("warning: {w}");
        }
    }
    match &args.output {
        Some(path) => std::fs::write(path, format!("{}\n", out.trim_end()))
            .with_context(|| format!("writing the reading to {}", path.display()))?,
        None => emit(&out)?,
    }
    Err(ExitStatus { code, message: None }.into())
}
