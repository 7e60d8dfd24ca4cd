//! The pusher's write-ahead spool, under `STATE_DIR/spool/`: one directory per stream
//! (`<stream>/`) holding
//!
//! - `register.json`: the stream's registration ([`StreamRegisterV1`]), written before its first
//!   row;
//! - `open.jsonl`: the open batch, one row `[unix_us, c0, c1, ...]` a line, appended at every take
//!   (an agent killed loses at most the row it was writing: a torn last line is skipped);
//! - `<seq>.json` (the sequence number in 20 digits): sealed batches ([`BatchV1`]), each written
//!   atomically when it is cut, before it is sent, and removed once the site has acknowledged it;
//! - `cut.json`: the last sequence number given and the newest sample sealed, so that a stream
//!   whose sealed batches were all delivered cuts its next one above them.
//!
//! Sealing writes the batch, then `cut.json`, then empties the open batch: a crash between two of
//! these steps loses nothing and seals nothing twice (at recovery, rows not after the newest
//! sealed sample are dropped). Batches the site refused are moved to `rejected/`, where the newest
//! [`MAX_REJECTED_FILES`] are kept for a look.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use powerstack_api::site::{BatchV1, MAX_BATCH_SAMPLES, StreamRegisterV1, is_stream_id};
use powerstack_cap::state::write_atomically;
use serde::{Deserialize, Serialize};

/// A stream's registration.
pub const REGISTER_FILE: &str = "register.json";
/// A stream's open batch.
pub const OPEN_FILE: &str = "open.jsonl";
/// A stream's last cut.
pub const CUT_FILE: &str = "cut.json";
/// Where refused batches go (beside the streams' directories).
pub const REJECTED_DIR: &str = "rejected";
/// How many refused batches are kept in [`REJECTED_DIR`].
pub const MAX_REJECTED_FILES: usize = 16;

/// A spool file that could not be read or written: one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("site spool: {0}")]
pub struct SpoolError(pub String);

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> SpoolError {
    SpoolError(format!("cannot {what} {}: {e}", path.display()))
}

/// A sealed batch waiting for the site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Its sequence number in its stream.
    pub seq: u64,
    /// Its samples.
    pub samples: u64,
    /// Its newest sample's time, µs since the epoch.
    pub last_unix_us: u64,
    /// Its file's size.
    pub bytes: u64,
}

/// Samples dropped by the spool's bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Over the size bound.
    pub bytes_samples: u64,
    /// Over the age bound.
    pub age_samples: u64,
}

/// Where a stream's cutting stands (`cut.json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cut {
    seq: u64,
    last_unix_us: u64,
}

/// A batch as written, from borrowed rows (the same JSON as [`BatchV1`]).
#[derive(Serialize)]
struct BatchRef<'a> {
    seq: u64,
    samples: &'a [Vec<u64>],
}

/// One stream's part of the spool.
#[derive(Debug)]
struct Stream {
    id: String,
    register: StreamRegisterV1,
    dir: PathBuf,
    cut: Cut,
    sealed: VecDeque<Sealed>,
    /// The open batch's rows (the current stream's; a stream recovered at start has none).
    open: Vec<Vec<u64>>,
    open_bytes: u64,
    /// The open batch's file, for the current stream.
    file: Option<File>,
    /// The sizes of `register.json` and `cut.json`.
    register_bytes: u64,
    cut_bytes: u64,
}

fn batch_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

fn make_dir(path: &Path) -> Result<(), SpoolError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| io_error("create", path, e))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<u64, SpoolError> {
    let bytes = serde_json::to_vec(value).map_err(|e| io_error("encode", path, e))?;
    write_atomically(path, &bytes, 0o600).map_err(|e| io_error("write", path, e))?;
    Ok(bytes.len() as u64)
}

fn open_append(path: &Path) -> Result<File, SpoolError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("open", path, e))
}

impl Stream {
    /// Seals `rows` (strictly increasing times, at most [`MAX_BATCH_SAMPLES`]) as the next batch:
    /// the batch file, then `cut.json`.
    fn seal_rows(&mut self, rows: &[Vec<u64>]) -> Result<(), SpoolError> {
        let Some(last_unix_us) = rows.last().and_then(|r| r.first()).copied() else {
            return Ok(());
        };
        let seq = self.cut.seq + 1;
        let path = self.dir.join(batch_name(seq));
        let bytes = write_json(&path, &BatchRef { seq, samples: rows })?;
        let cut = Cut { seq, last_unix_us };
        let cut_bytes = write_json(&self.dir.join(CUT_FILE), &cut)?;
        let sealed = Sealed { seq, samples: rows.len() as u64, last_unix_us, bytes };
        self.cut_bytes = cut_bytes;
        self.cut = cut;
        self.sealed.push_back(sealed);
        Ok(())
    }

    /// Seals the open batch and empties it (its file too).
    fn seal_open(&mut self) -> Result<bool, SpoolError> {
        if self.open.is_empty() {
            return Ok(false);
        }
        let rows = std::mem::take(&mut self.open);
        if let Err(e) = self.seal_rows(&rows) {
            self.open = rows;
            return Err(e);
        }
        self.open_bytes = 0;
        let path = self.dir.join(OPEN_FILE);
        match &self.file {
            Some(f) => f.set_len(0).map_err(|e| io_error("empty", &path, e))?,
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error("remove", &path, e));
                }
                _ => {}
            },
        }
        Ok(true)
    }

    fn bytes(&self) -> u64 {
        self.register_bytes
            + self.cut_bytes
            + self.open_bytes
            + self.sealed.iter().map(|s| s.bytes).sum::<u64>()
    }
}

/// The spool: every stream with something left to send, oldest first; the current stream (the
/// one rows are appended to), if any, last.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    streams: Vec<Stream>,
}

/// The oldest sealed batch waiting, and its stream.
#[derive(Clone, Debug)]
pub struct Front<'a> {
    /// The stream's id.
    pub stream: &'a str,
    /// Its registration.
    pub register: &'a StreamRegisterV1,
    /// The batch.
    pub batch: &'a Sealed,
}

impl Spool {
    /// Opens the spool in `dir` (created, mode 0700, if absent) and recovers what earlier runs
    /// left: each stream's open batch is sealed (it will not grow again). Returns what to tell the
    /// operator.
    pub fn open(dir: &Path) -> Result<(Spool, Vec<String>), SpoolError> {
        make_dir(dir)?;
        let mut spool = Spool { dir: dir.to_path_buf(), streams: Vec::new() };
        let mut notes = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| io_error("read", dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_stream_id(&name) && entry.path().is_dir() {
                match spool.recover(&name) {
                    Ok(Some(s)) => spool.streams.push(s),
                    Ok(None) => {}
                    Err(e) => notes.push(format!("{e}; left it alone")),
                }
            }
        }
        spool.streams.sort_by(|a, b| {
            (a.register.started_unix_us, &a.id).cmp(&(b.register.started_unix_us, &b.id))
        });
        let (batches, samples) = spool.streams.iter().fold((0, 0), |(b, n), s| {
            (b + s.sealed.len(), n + s.sealed.iter().map(|x| x.samples).sum::<u64>())
        });
        if batches > 0 {
            notes.push(format!(
                "site spool: {samples} sample(s) in {batches} batch(es) of {} earlier stream(s) to send first",
                spool.streams.len()
            ));
        }
        Ok((spool, notes))
    }

    /// Reads stream `id`'s directory: `None` when it holds nothing to send (it is removed).
    fn recover(&self, id: &str) -> Result<Option<Stream>, SpoolError> {
        let dir = self.dir.join(id);
        let register_path = dir.join(REGISTER_FILE);
        let text = match std::fs::read(&register_path) {
            Ok(t) => t,
            // Written before the first row: without it there is nothing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::remove_dir_all(&dir).map_err(|e| io_error("remove", &dir, e))?;
                return Ok(None);
            }
            Err(e) => return Err(io_error("read", &register_path, e)),
        };
        let register: StreamRegisterV1 =
            serde_json::from_slice(&text).map_err(|e| io_error("parse", &register_path, e))?;
        let cut_path = dir.join(CUT_FILE);
        let cut_text = std::fs::read(&cut_path).ok();
        let cut: Cut =
            cut_text.as_deref().and_then(|t| serde_json::from_slice(t).ok()).unwrap_or_default();
        let mut stream = Stream {
            id: id.to_string(),
            register,
            dir,
            cut,
            sealed: VecDeque::new(),
            open: Vec::new(),
            open_bytes: 0,
            file: None,
            register_bytes: text.len() as u64,
            cut_bytes: cut_text.map_or(0, |t| t.len() as u64),
        };
        self.recover_sealed(&mut stream)?;
        // A crash between a batch's file and `cut.json`: the batch says where the cut is.
        if let Some(newest) = stream.sealed.back()
            && newest.seq > stream.cut.seq
        {
            stream.cut = Cut { seq: newest.seq, last_unix_us: newest.last_unix_us };
        }
        let width = stream.register.domains.len() + 1;
        let rows = read_open(&stream.dir.join(OPEN_FILE), width, stream.cut.last_unix_us);
        for chunk in rows.chunks(MAX_BATCH_SAMPLES) {
            stream.seal_rows(chunk)?;
        }
        let open = stream.dir.join(OPEN_FILE);
        match std::fs::remove_file(&open) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error("remove", &open, e));
            }
            _ => {}
        }
        if stream.sealed.is_empty() {
            std::fs::remove_dir_all(&stream.dir).map_err(|e| io_error("remove", &stream.dir, e))?;
            return Ok(None);
        }
        Ok(Some(stream))
    }

    /// The sealed batches of a recovered stream, in order; an unreadable one is set aside.
    fn recover_sealed(&self, stream: &mut Stream) -> Result<(), SpoolError> {
        let entries =
            std::fs::read_dir(&stream.dir).map_err(|e| io_error("read", &stream.dir, e))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // An atomic write that did not finish.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(seq) = name.strip_suffix(".json").and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let path = entry.path();
            let batch = std::fs::read(&path)
                .ok()
                .and_then(|t| Some((t.len() as u64, serde_json::from_slice::<BatchV1>(&t).ok()?)));
            match batch {
                Some((bytes, b)) if b.seq == seq && !b.samples.is_empty() => {
                    let last_unix_us =
                        b.samples.last().and_then(|r| r.first()).copied().unwrap_or(0);
                    let samples = b.samples.len() as u64;
                    found.push(Sealed { seq, samples, last_unix_us, bytes });
                }
                _ => self.move_aside(&path, &stream.id, seq)?,
            }
        }
        found.sort_by_key(|s| s.seq);
        stream.sealed = found.into();
        Ok(())
    }

    /// Starts stream `id`: its directory and registration, written before any row. The current
    /// stream before it, if any, is sealed and stays to be sent.
    pub fn begin(&mut self, id: &str, register: StreamRegisterV1) -> Result<(), SpoolError> {
        self.end_current()?;
        let dir = self.dir.join(id);
        make_dir(&dir)?;
        let register_bytes = write_json(&dir.join(REGISTER_FILE), &register)?;
        let file = open_append(&dir.join(OPEN_FILE))?;
        self.streams.push(Stream {
            id: id.to_string(),
            register,
            dir,
            cut: Cut::default(),
            sealed: VecDeque::new(),
            open: Vec::new(),
            open_bytes: 0,
            file: Some(file),
            register_bytes,
            cut_bytes: 0,
        });
        Ok(())
    }

    /// Seals the current stream and makes it an earlier one (sent, then removed).
    pub fn end_current(&mut self) -> Result<(), SpoolError> {
        if let Some(s) = self.streams.last_mut().filter(|s| s.file.is_some()) {
            s.seal_open()?;
            s.file = None;
            let path = s.dir.join(OPEN_FILE);
            let _ = std::fs::remove_file(path);
        }
        self.prune();
        Ok(())
    }

    fn current(&mut self) -> Option<&mut Stream> {
        self.streams.last_mut().filter(|s| s.file.is_some())
    }

    /// The current stream's id.
    pub fn current_id(&self) -> Option<&str> {
        self.streams.last().filter(|s| s.file.is_some()).map(|s| s.id.as_str())
    }

    /// Appends a row (`[unix_us, c0, c1, ...]`, its time after the previous row's) to the current
    /// stream's open batch, and seals it once it holds [`MAX_BATCH_SAMPLES`].
    pub fn append(&mut self, row: Vec<u64>) -> Result<(), SpoolError> {
        let Some(s) = self.current() else {
            return Err(SpoolError("no stream to append to".into()));
        };
        let mut line = serde_json::to_vec(&row).map_err(|e| SpoolError(e.to_string()))?;
        line.push(b'\n');
        if let Some(f) = &mut s.file {
            f.write_all(&line).map_err(|e| io_error("append to", &s.dir.join(OPEN_FILE), e))?;
        }
        s.open_bytes += line.len() as u64;
        s.open.push(row);
        if s.open.len() >= MAX_BATCH_SAMPLES {
            s.seal_open()?;
        }
        Ok(())
    }

    /// Seals the current stream's open batch, if it holds anything; returns whether it did.
    pub fn seal_current(&mut self) -> Result<bool, SpoolError> {
        match self.current() {
            Some(s) => s.seal_open(),
            None => Ok(false),
        }
    }

    /// The oldest sealed batch waiting: the first of the oldest stream that has one.
    pub fn front(&self) -> Option<Front<'_>> {
        self.streams.iter().find_map(|s| {
            let batch = s.sealed.front()?;
            Some(Front { stream: &s.id, register: &s.register, batch })
        })
    }

    fn stream_mut(&mut self, id: &str) -> Result<&mut Stream, SpoolError> {
        self.streams
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| SpoolError(format!("no stream {id}")))
    }

    /// Reads batch `seq` of stream `id`, as sealed.
    pub fn read(&self, id: &str, seq: u64) -> Result<BatchV1, SpoolError> {
        let path = self.dir.join(id).join(batch_name(seq));
        let text = std::fs::read(&path).map_err(|e| io_error("read", &path, e))?;
        serde_json::from_slice(&text).map_err(|e| io_error("parse", &path, e))
    }

    /// Stream `id`'s first sealed batch was acknowledged: it is removed. Returns its samples.
    pub fn delivered(&mut self, id: &str) -> Result<u64, SpoolError> {
        let s = self.stream_mut(id)?;
        let Some(b) = s.sealed.pop_front() else { return Ok(0) };
        let path = s.dir.join(batch_name(b.seq));
        let removed = std::fs::remove_file(&path).map_err(|e| io_error("remove", &path, e));
        self.prune();
        removed.map(|()| b.samples)
    }

    /// Stream `id`'s first sealed batch was refused: it is moved to [`REJECTED_DIR`]. Returns
    /// its samples.
    pub fn set_aside(&mut self, id: &str) -> Result<u64, SpoolError> {
        let s = self.stream_mut(id)?;
        let Some(b) = s.sealed.pop_front() else { return Ok(0) };
        let path = s.dir.join(batch_name(b.seq));
        let moved = self.move_aside(&path, id, b.seq);
        self.prune();
        moved.map(|()| b.samples)
    }

    /// Every sealed batch of stream `id` is set aside (its registration was refused). Returns
    /// their samples.
    pub fn set_aside_stream(&mut self, id: &str) -> Result<u64, SpoolError> {
        let mut samples = 0;
        while self.streams.iter().any(|s| s.id == id && !s.sealed.is_empty()) {
            samples += self.set_aside(id)?;
        }
        Ok(samples)
    }

    fn move_aside(&self, path: &Path, id: &str, seq: u64) -> Result<(), SpoolError> {
        let dir = self.dir.join(REJECTED_DIR);
        make_dir(&dir)?;
        let to = dir.join(format!("{id}-{}", batch_name(seq)));
        std::fs::rename(path, &to).map_err(|e| io_error("move aside", path, e))?;
        // Keep the newest few only.
        let mut kept: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(|e| io_error("read", &dir, e))?
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        kept.sort();
        let excess = kept.len().saturating_sub(MAX_REJECTED_FILES);
        for (_, p) in kept.into_iter().take(excess) {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }

    /// Renames stream `from` to `to` (the site knows `from` with other columns): its batches go
    /// to the new stream as they are.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), SpoolError> {
        let new_dir = self.dir.join(to);
        let s = self.stream_mut(from)?;
        std::fs::rename(&s.dir, &new_dir).map_err(|e| io_error("rename", &s.dir, e))?;
        s.id = to.to_string();
        s.dir = new_dir;
        if s.file.is_some() {
            s.file = Some(open_append(&s.dir.join(OPEN_FILE))?);
        }
        Ok(())
    }

    /// Drops the oldest sealed batches while the spool holds more than `max_bytes`, and every
    /// sealed batch whose newest sample is more than `max_age_us` before `now_us`. Returns what
    /// was dropped, and the first file that could not be removed.
    pub fn enforce(
        &mut self,
        now_us: u64,
        max_bytes: u64,
        max_age_us: u64,
    ) -> (Dropped, Result<(), SpoolError>) {
        let mut dropped = Dropped::default();
        let mut first_error = None;
        let mut drop_front = |s: &mut Stream| -> u64 {
            let Some(b) = s.sealed.pop_front() else { return 0 };
            let path = s.dir.join(batch_name(b.seq));
            if let Err(e) = std::fs::remove_file(&path) {
                first_error.get_or_insert(io_error("remove", &path, e));
            }
            b.samples
        };
        for s in &mut self.streams {
            while s
                .sealed
                .front()
                .is_some_and(|b| b.last_unix_us.saturating_add(max_age_us) < now_us)
            {
                dropped.age_samples += drop_front(s);
            }
        }
        let mut total = self.bytes();
        for s in &mut self.streams {
            while total > max_bytes && !s.sealed.is_empty() {
                let before = s.bytes();
                dropped.bytes_samples += drop_front(s);
                total -= before - s.bytes();
            }
        }
        self.prune();
        (dropped, first_error.map_or(Ok(()), Err))
    }

    /// Removes the earlier streams that have nothing left to send.
    fn prune(&mut self) {
        self.streams.retain(|s| {
            let keep = s.file.is_some() || !s.sealed.is_empty();
            if !keep {
                let _ = std::fs::remove_dir_all(&s.dir);
            }
            keep
        });
    }

    /// Bytes the spool holds (what the rejected batches take aside).
    pub fn bytes(&self) -> u64 {
        self.streams.iter().map(Stream::bytes).sum()
    }

    /// Sealed batches waiting.
    pub fn batches(&self) -> u64 {
        self.streams.iter().map(|s| s.sealed.len() as u64).sum()
    }

    /// Samples waiting: the sealed batches' and the open batch's.
    pub fn samples(&self) -> u64 {
        let sealed: u64 = self.streams.iter().flat_map(|s| &s.sealed).map(|b| b.samples).sum();
        sealed + self.open_rows() as u64
    }

    /// Rows in the current stream's open batch.
    pub fn open_rows(&self) -> usize {
        self.streams.last().filter(|s| s.file.is_some()).map_or(0, |s| s.open.len())
    }

    /// The streams in the spool, oldest first.
    pub fn stream_ids(&self) -> Vec<String> {
        self.streams.iter().map(|s| s.id.clone()).collect()
    }
}

/// The rows of an open batch's file that can be used: `width` values each, times strictly
/// increasing and after `after_us`. A torn line (the agent killed while writing it) is skipped.
fn read_open(path: &Path, width: usize, after_us: u64) -> Vec<Vec<u64>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mut last = after_us;
    let mut rows = Vec::new();
    for line in text.lines() {
        let Ok(row) = serde_json::from_str::<Vec<u64>>(line) else { continue };
        if row.len() == width && row[0] > last {
            last = row[0];
            rows.push(row);
        }
    }
    rows
}

#[cfg(test)]
mod tests;
