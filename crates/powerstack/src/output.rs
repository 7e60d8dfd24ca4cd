//! Writing results: format choice, broken pipes, verbosity, partial results.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::Format;

/// The chosen format: the flag, else a table on a terminal and JSON otherwise.
pub fn format(flag: Option<Format>) -> Format {
    flag.unwrap_or_else(
        || if std::io::stdout().is_terminal() { Format::Table } else { Format::Json },
    )
}

/// Raised when the reader of our output went away (`powerstack power --watch | head`).
#[derive(Debug)]
pub struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("output closed")
    }
}

impl std::error::Error for ClosedPipe {}

/// A note for stderr kept until the command's first output (see [`note_before_output`]).
static NOTE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Says `note` on stderr just before the command's first output on stdout: a command refused
/// after it opened the node says only its error (one line), not the note.
pub fn note_before_output(note: String) {
    if let Ok(mut n) = NOTE.lock() {
        *n = Some(note);
    }
}

/// Writes text to stdout and flushes; a closed pipe becomes [`ClosedPipe`] (exit 0, no message).
pub fn emit(text: &str) -> anyhow::Result<()> {
    if let Some(note) = NOTE.lock().ok().and_then(|mut n| n.take()) {
        eprintln!("{note}");
    }
    let mut out = std::io::stdout().lock();
    let r = out.write_all(text.as_bytes()).and_then(|_| {
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    });
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Records `-v`: commands then say more on stderr.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether `-v` was given.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

static PARTIAL: AtomicBool = AtomicBool::new(false);

/// Records that some domain could not be read: the command still prints what it read, and exits
/// with status 3.
pub fn mark_partial() {
    PARTIAL.store(true, Ordering::Relaxed);
}

/// Whether [`mark_partial`] was called.
pub fn partial() -> bool {
    PARTIAL.load(Ordering::Relaxed)
}

/// Ends the command with this exit status (`measure` passes on its command's), after saying
/// `error: MESSAGE` on stderr when there is one.
#[derive(Debug)]
pub struct ExitStatus {
    /// The status.
    pub code: u8,
    /// What went wrong, when something did.
    pub message: Option<String>,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for ExitStatus {}

/// An error as one line: the error and its causes, each said once (a cause an error's own
/// message already quotes, as many do with their `io::Error`, is not said again).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}
