//! Pushing the node's counters to the site service, from a plain thread of its own.
//!
//! Every push interval the thread takes the ring's newest **settled** row (rows after
//! [`Shared::settled_us`] may still be redrawn, and are never taken) if it is newer than the last
//! one taken, and appends it to the open batch of its **stream** (one run of the agent: see
//! `powerstack_api::site`). A column never read is sent as 0 and registered `read: false`; should
//! it be read later, the columns have changed and a new stream begins.
//!
//! Everything goes through the write-ahead [`spool`] under `STATE_DIR/spool/` before it is sent
//! ([`deliver`]): the stream's registration first, then sealed batches in sequence order, oldest
//! stream first, each removed once the site acknowledges it. While the site fails, rows pile up
//! in the open batch, cut at `MAX_BATCH_SAMPLES`, so a backlog goes in a few large batches. At
//! start the streams earlier runs left are sent first; at stop the open batch is sealed and one
//! last push is tried with a short deadline, and what is left stays for the next start.
//!
//! The thread locks the ring only to copy one row, and waits on the stop signal between ticks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use powerstack_client::site::Site;

use crate::state::Shared;
use crate::stop::Stop;

pub mod deliver;
pub mod register;
pub mod spool;

use deliver::Sender;
use spool::{Spool, SpoolError};

/// Lowest push interval, ms.
pub const MIN_PUSH_INTERVAL_MS: u64 = 100;
/// Highest push interval, ms.
pub const MAX_PUSH_INTERVAL_MS: u64 = 60_000;
/// Default push interval, ms.
pub const DEFAULT_PUSH_INTERVAL_MS: u64 = 1000;
/// Default bound on the spool's size, bytes.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 << 20;
/// Default bound on the age of a spooled sample, s (7 days).
pub const DEFAULT_SPOOL_MAX_AGE_S: u64 = 7 * 86_400;
/// How long one call to the site may take while the agent runs.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take in the last push at stop.
pub const FINAL_CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the last push at stop may go on starting calls.
pub const FINAL_PUSH_DEADLINE: Duration = Duration::from_secs(2);

/// The pusher could not start: one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PushError(pub String);

/// What the pusher needs.
#[derive(Clone, Debug)]
pub struct PushSettings {
    /// The site's address (`https://HOST:PORT`, `http://HOST:PORT`, `HOST:PORT`, or a Unix
    /// socket path).
    pub site: String,
    /// This node's name at the site.
    pub node: String,
    /// The bearer token sent to the site.
    pub token: Option<String>,
    /// The site CA's certificates (PEM) for an `https://` site; `None`: the system's trust
    /// store.
    pub site_ca_file: Option<PathBuf>,
    /// How often a row is taken and the spool sent.
    pub interval: Duration,
    /// The spool's directory (`STATE_DIR/spool`).
    pub spool_dir: PathBuf,
    /// Beyond this size the oldest sealed batches are dropped, bytes.
    pub spool_max_bytes: u64,
    /// Sealed batches whose newest sample is older than this are dropped.
    pub spool_max_age: Duration,
    /// The node's topology document, sent with each registration.
    pub topology: Option<serde_json::Value>,
    /// Where the site reaches this agent's HTTP API, sent with each registration.
    pub control_url: Option<String>,
    /// How long one call to the site may take.
    pub call_timeout: Duration,
}

/// The pusher's thread.
#[derive(Debug)]
pub struct Pusher {
    thread: JoinHandle<()>,
}

impl Pusher {
    /// Opens the spool (recovering what earlier runs left) and starts the thread, which runs
    /// until `stop` is given. Returns what to tell the operator too.
    pub fn start(
        settings: PushSettings,
        shared: Arc<Shared>,
        stop: Stop,
    ) -> Result<(Pusher, Vec<String>), PushError> {
        let site = Site::new(&settings.site, settings.token.clone(), settings.call_timeout)
            .and_then(|s| s.with_ca_file(settings.site_ca_file.as_deref()))
            .map_err(|e| PushError(e.to_string()))?;
        let sender = Sender::new(site, settings.node.clone());
        let (spool, mut notes) =
            Spool::open(&settings.spool_dir).map_err(|e| PushError(e.to_string()))?;
        notes.insert(
            0,
            format!(
                "site: pushing to {} as node {} every {} ms, through the spool {}",
                settings.site,
                settings.node,
                settings.interval.as_millis(),
                settings.spool_dir.display()
            ),
        );
        let mut worker = Worker::new(shared, settings, spool, sender);
        let thread = std::thread::Builder::new()
            .name("powerstack-push".into())
            .spawn(move || worker.run(&stop))
            .map_err(|e| PushError(format!("starting the site pusher: {e}")))?;
        Ok((Pusher { thread }, notes))
    }

    /// Waits for the thread to end (after the stop signal).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// The thread's state.
struct Worker {
    shared: Arc<Shared>,
    settings: PushSettings,
    spool: Spool,
    sender: Sender,
    /// The current stream's columns: whether each has held a reading.
    read: Option<Vec<bool>>,
    /// The newest row taken, µs since the epoch.
    last_taken_us: u64,
    streams_begun: u64,
    /// The last spool failure said (said once until the spool works again).
    warned: Option<String>,
}

impl Worker {
    /// A pusher that has taken nothing yet.
    fn new(shared: Arc<Shared>, settings: PushSettings, spool: Spool, sender: Sender) -> Worker {
        Worker {
            shared,
            settings,
            spool,
            sender,
            read: None,
            last_taken_us: 0,
            streams_begun: 0,
            warned: None,
        }
    }

    fn run(&mut self, stop: &Stop) {
        let mut next = Instant::now();
        loop {
            next += self.settings.interval;
            let now = Instant::now();
            // Behind (a slow site): the next tick is one interval from now.
            if next < now {
                next = now + self.settings.interval;
            }
            if stop.wait_timeout(next.saturating_duration_since(now)) {
                break;
            }
            self.tick(next + self.settings.interval, stop);
        }
        self.finish();
    }

    /// One tick: take a row, send (until `until`, the next tick, or the stop) if the site is not
    /// in backoff, keep the spool in its bounds.
    fn tick(&mut self, until: Instant, stop: &Stop) {
        let took = self.take();
        let stats = self.shared.site.as_ref();
        let sent = match self.sender.ready(Instant::now()) {
            true => self.sender.deliver(&mut self.spool, stats, until, Some(stop)),
            false => Ok(()),
        };
        let bounded = self.bound();
        self.said(took.and(sent).and(bounded));
        self.publish();
    }

    /// At stop: the newest row, the open batch sealed, and one last push with a short deadline.
    fn finish(&mut self) {
        let took = self.take();
        let sealed = self.spool.seal_current().map(|_| ());
        self.sender.set_timeout(FINAL_CALL_TIMEOUT);
        let deadline = Instant::now() + FINAL_PUSH_DEADLINE;
        let sent = self.sender.deliver(&mut self.spool, self.shared.site.as_ref(), deadline, None);
        self.said(took.and(sealed).and(sent));
        self.publish();
    }

    /// Says a spool failure once, until the spool works again.
    fn said(&mut self, r: Result<(), SpoolError>) {
        match r {
            Ok(()) => self.warned = None,
            Err(e) => {
                let line = e.to_string();
                if self.warned.as_ref() != Some(&line) {
                    eprintln!("powerstack agent: warning: {line}");
                    self.warned = Some(line);
                }
            }
        }
    }

    /// Appends the newest settled row, if it is newer than the last one taken; a tick that came
    /// late (a call to the site that hung until its timeout) first takes the rows it missed, one
    /// a push interval apart, so the site's samples keep their spacing through a dead network.
    fn take(&mut self) -> Result<(), SpoolError> {
        let settled = self.shared.settled_us.load(Ordering::Relaxed);
        if settled <= self.last_taken_us {
            return Ok(());
        }
        let interval_us = u64::try_from(self.settings.interval.as_micros()).unwrap_or(u64::MAX);
        let (rows, read) = {
            let ring = self.shared.ring.lock().unwrap_or_else(|p| p.into_inner());
            let Some((newest, _)) = ring.last_at_or_before(settled).and_then(|i| ring.get(i))
            else {
                return Ok(());
            };
            let mut times = Vec::new();
            let mut next = self.last_taken_us.saturating_add(interval_us);
            while self.last_taken_us > 0
                && let Some(t) = ring.first_at_or_after(next).and_then(|i| ring.time(i))
                && t < newest
            {
                times.push(t);
                next = t.saturating_add(interval_us);
            }
            times.push(newest);
            let rows: Vec<Vec<u64>> = times
                .into_iter()
                .filter(|t| *t > self.last_taken_us)
                .filter_map(|t| ring.last_at_or_before(t).and_then(|i| ring.get(i)))
                .map(|(t, ticks)| std::iter::once(t).chain(ticks.iter().copied()).collect())
                .collect();
            let width = rows.first().map_or(0, |r: &Vec<u64>| r.len() - 1);
            (rows, (0..width).map(|c| ring.was_read(c)).collect::<Vec<bool>>())
        };
        let Some(first) = rows.first().map(|r| r[0]) else { return Ok(()) };
        // A column read for the first time changes the columns: a new stream begins.
        if self.spool.current_id().is_none() || self.read.as_ref() != Some(&read) {
            self.begin(&read, first)?;
        }
        for mut row in rows {
            for (c, _) in read.iter().enumerate().filter(|(_, r)| !**r) {
                row[c + 1] = 0;
            }
            let t = row[0];
            self.spool.append(row)?;
            self.last_taken_us = t;
        }
        Ok(())
    }

    /// Begins a stream of the columns `read` says, its first row at `first_unix_us`.
    fn begin(&mut self, read: &[bool], first_unix_us: u64) -> Result<(), SpoolError> {
        // The first stream began with the agent; a later one with its first row.
        let started_unix_us = match self.streams_begun {
            0 => self.shared.clock.anchor_unix_us.min(first_unix_us),
            _ => first_unix_us,
        };
        let topology = self.settings.topology.clone();
        let mut register = register::registration(&self.shared, read, started_unix_us, topology);
        register.control_url = self.settings.control_url.clone();
        self.spool.begin(&register::new_stream_id(), register)?;
        self.read = Some(read.to_vec());
        self.streams_begun += 1;
        Ok(())
    }

    /// Keeps the spool in its bounds, counting what is dropped.
    fn bound(&mut self) -> Result<(), SpoolError> {
        let now_us = self.shared.clock.now_unix_us();
        let max_age_us = u64::try_from(self.settings.spool_max_age.as_micros()).unwrap_or(u64::MAX);
        let (d, removed) = self.spool.enforce(now_us, self.settings.spool_max_bytes, max_age_us);
        if d.bytes_samples + d.age_samples > 0 {
            eprintln!(
                "powerstack agent: warning: site spool: dropped the {} oldest sample(s) (over spool_max_bytes: {}, older than spool_max_age_s: {})",
                d.bytes_samples + d.age_samples,
                d.bytes_samples,
                d.age_samples
            );
        }
        if let Some(s) = &self.shared.site {
            s.dropped_bytes_samples.fetch_add(d.bytes_samples, Ordering::Relaxed);
            s.dropped_age_samples.fetch_add(d.age_samples, Ordering::Relaxed);
        }
        removed
    }

    fn publish(&self) {
        if let Some(s) = &self.shared.site {
            s.spool_bytes.store(self.spool.bytes(), Ordering::Relaxed);
            s.spool_batches.store(self.spool.batches(), Ordering::Relaxed);
            s.spool_samples.store(self.spool.samples(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
