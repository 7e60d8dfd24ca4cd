//! Sending the spool to the site: registration first, sealed batches in order (oldest stream
//! first), removed once acknowledged; transient failures back off, refusals are set aside.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use powerstack_client::site::{Site, SiteError};

use super::register::new_stream_id;
use super::spool::{Spool, SpoolError};
use crate::state::SiteStats;
use crate::stop::Stop;

/// The wait after the first failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries: the wait doubles after each failure up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether the batches are kept after `e`: no answer, an answer to try again later, or one that
/// is the agent's (its token, the site's knowledge of the stream), not the batch's, fault.
/// A TLS failure (the site's certificate, the CA given) is the agent's settings' fault too.
fn keeps(e: &SiteError) -> bool {
    e.is_transient()
        || matches!(e, SiteError::Tls { .. })
        || matches!(e.status(), Some(401 | 403 | 404))
}

fn count<T>(stats: Option<&SiteStats>, f: impl FnOnce(&SiteStats) -> T) {
    if let Some(s) = stats {
        let _ = f(s);
    }
}

/// The site's side of the pusher: the client, which streams it has registered in this run, and
/// the backoff.
#[derive(Debug)]
pub struct Sender {
    site: Site,
    node: String,
    registered: HashSet<String>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Whether the site is failing (said once until it answers again).
    down: bool,
    /// Streams whose registration the site refused (said once each).
    refused: HashSet<String>,
}

impl Sender {
    /// A sender to `site` as node `node`.
    pub fn new(site: Site, node: String) -> Sender {
        Sender {
            site,
            node,
            registered: HashSet::new(),
            backoff: INITIAL_BACKOFF,
            retry_at: None,
            down: false,
            refused: HashSet::new(),
        }
    }

    /// Each call from now on takes at most `timeout`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.site = self.site.clone().with_timeout(timeout);
    }

    /// Whether the backoff after a failure has passed.
    pub fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| now >= t)
    }

    fn succeeded(&mut self, stats: Option<&SiteStats>) {
        if self.down {
            eprintln!("powerstack agent: site {} answers again", self.site.url());
        }
        self.down = false;
        self.backoff = INITIAL_BACKOFF;
        self.retry_at = None;
        count(stats, |s| s.up.store(true, Ordering::Relaxed));
    }

    fn failed(&mut self, stats: Option<&SiteStats>) {
        count(stats, |s| {
            s.up.store(false, Ordering::Relaxed);
            s.push_errors.fetch_add(1, Ordering::Relaxed);
        });
    }

    fn back_off(&mut self, e: &SiteError) {
        if !self.down {
            eprintln!(
                "powerstack agent: warning: {e}; keeping the samples in the spool, trying again in {} s, then at most every {} s",
                self.backoff.as_secs(),
                MAX_BACKOFF.as_secs()
            );
            self.down = true;
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Sends what the spool holds, oldest first, until it is empty (the open batch is sealed and
    /// sent once nothing sealed waits), a failure to try again later (backoff), `deadline` (no
    /// call is started after it), or `stop` (when given).
    pub fn deliver(
        &mut self,
        spool: &mut Spool,
        stats: Option<&SiteStats>,
        deadline: Instant,
        stop: Option<&Stop>,
    ) -> Result<(), SpoolError> {
        // A batch answered 404 right after its stream was registered again is not retried at once.
        let mut reregistered: Option<(String, u64)> = None;
        loop {
            if Instant::now() >= deadline || stop.is_some_and(Stop::is_stopped) {
                return Ok(());
            }
            let Some(front) = spool.front() else {
                // Nothing sealed waits: cut the open batch and send it too.
                if spool.seal_current()? {
                    continue;
                }
                return Ok(());
            };
            let (id, seq, samples) =
                (front.stream.to_string(), front.batch.seq, front.batch.samples);
            if !self.registered.contains(&id) {
                let register = front.register.clone();
                match self.site.register(&self.node, &id, &register) {
                    Ok(_) => {
                        self.registered.insert(id.clone());
                        self.succeeded(stats);
                    }
                    Err(e) => {
                        self.failed(stats);
                        if !self.refused_registration(spool, stats, &id, &e)? {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            let batch = match spool.read(&id, seq) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("powerstack agent: warning: {e}; setting it aside");
                    let n = spool.set_aside(&id)?;
                    count(stats, |s| s.dropped_rejected_samples.fetch_add(n, Ordering::Relaxed));
                    continue;
                }
            };
            match self.site.push(&self.node, &id, &batch) {
                Ok(_) => {
                    let n = spool.delivered(&id)?;
                    count(stats, |s| s.pushed_samples.fetch_add(n, Ordering::Relaxed));
                    self.succeeded(stats);
                }
                Err(e) => {
                    self.failed(stats);
                    let again = Some((id.clone(), seq));
                    if e.status() == Some(404) && reregistered != again {
                        // The site does not know the stream (it lost it): register it again.
                        self.registered.remove(&id);
                        reregistered = again;
                        continue;
                    }
                    if keeps(&e) {
                        self.back_off(&e);
                        return Ok(());
                    }
                    eprintln!(
                        "powerstack agent: warning: {e}; batch {seq} of stream {id} ({samples} sample(s)) set aside in the spool's {}/",
                        super::spool::REJECTED_DIR
                    );
                    let n = spool.set_aside(&id)?;
                    count(stats, |s| s.dropped_rejected_samples.fetch_add(n, Ordering::Relaxed));
                }
            }
        }
    }

    /// Handles a registration the site did not accept: returns whether to go on sending (the
    /// stream was renamed, or set aside), or to wait (backoff).
    fn refused_registration(
        &mut self,
        spool: &mut Spool,
        stats: Option<&SiteStats>,
        id: &str,
        e: &SiteError,
    ) -> Result<bool, SpoolError> {
        if e.status() == Some(409) {
            // The site has this stream with other columns: the batches go on as a new stream.
            let new = new_stream_id();
            eprintln!(
                "powerstack agent: warning: {e}; sending stream {id}'s batches as stream {new}"
            );
            spool.rename(id, &new)?;
            return Ok(true);
        }
        if keeps(e) {
            self.back_off(e);
            return Ok(false);
        }
        let n = spool.set_aside_stream(id)?;
        if self.refused.insert(id.to_string()) {
            eprintln!(
                "powerstack agent: warning: {e}; the site refused stream {id}'s registration: its batches are set aside"
            );
        }
        count(stats, |s| s.dropped_rejected_samples.fetch_add(n, Ordering::Relaxed));
        Ok(true)
    }
}
