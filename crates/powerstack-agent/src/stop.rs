//! The agent's stop signal: a flag the sampler threads check once per tick, and a wake-up for
//! whatever waits for it (the servers' graceful shutdown, the caller), so that nothing polls.
//!
//! An idle agent then wakes only for its samples: a waiter sleeps in the kernel until
//! [`Stop::stop`] is called, where a poll loop would wake a thread (and a runtime worker) tens of
//! times a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Tells the agent to stop; clones share one signal.
#[derive(Clone, Debug)]
pub struct Stop(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    flag: AtomicBool,
    watch: watch::Sender<bool>,
    lock: Mutex<bool>,
    cv: Condvar,
}

impl Default for Stop {
    fn default() -> Stop {
        Stop::new()
    }
}

impl Stop {
    /// A signal not yet given.
    pub fn new() -> Stop {
        Stop(Arc::new(Inner {
            flag: AtomicBool::new(false),
            watch: watch::Sender::new(false),
            lock: Mutex::new(false),
            cv: Condvar::new(),
        }))
    }

    /// Gives the signal and wakes every waiter. It takes locks, so a signal handler must not call
    /// it: take signals on a thread (`sigwaitinfo`) and call it from there.
    pub fn stop(&self) {
        self.0.flag.store(true, Ordering::Release);
        self.0.watch.send_replace(true);
        let mut stopped = self.0.lock.lock().unwrap_or_else(|p| p.into_inner());
        *stopped = true;
        self.0.cv.notify_all();
    }

    /// Whether the signal was given (one atomic load: cheap enough for every sample).
    pub fn is_stopped(&self) -> bool {
        self.0.flag.load(Ordering::Acquire)
    }

    /// Completes once the signal is given, without polling.
    pub async fn stopped(&self) {
        let mut rx = self.0.watch.subscribe();
        // The sender lives in `self`, so waiting fails only if it is dropped, which it is not.
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Blocks until the signal is given or `timeout` has passed; returns whether it was given.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut stopped = self.0.lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            stopped = self.0.cv.wait_timeout(stopped, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_when_stopped_and_not_before() {
        let stop = Stop::new();
        assert!(!stop.is_stopped());
        assert!(!stop.wait_timeout(Duration::from_millis(1)));
        let (s, w) = (stop.clone(), stop.clone());
        let blocking = std::thread::spawn(move || w.wait_timeout(Duration::from_secs(3600)));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let waiting = std::thread::spawn(move || runtime.block_on(s.stopped()));
        stop.stop();
        assert!(blocking.join().unwrap());
        waiting.join().unwrap();
        assert!(stop.is_stopped());
        // Once given, it stays given.
        assert!(stop.wait_timeout(Duration::ZERO));
    }
}
