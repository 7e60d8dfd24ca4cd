//! What real nodes do that a tidy simulation would not: the faults of the HPE Cray pm_counters
//! controller ([`PmFaults`], written into the tree by the simulator), and reads that come late
//! ([`DelayedReads`], which no file can express: it wraps a provider of the product).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use powerstack_hw::{HwError, Provider, Reading, Refresh, Warning};
use powerstack_model::duration::parse_duration;
use powerstack_model::{DomainInfo, LimitWrite};

use crate::error::SimError;

/// Faults of the HPE Cray pm_counters controller (cray-ex, amd-mi250x), each off by default.
/// They are deterministic: under [`crate::SimNode::advance`] the same steps give the same files.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PmFaults {
    /// Each file is rewritten non-atomically: truncated to empty, then its line written in two
    /// parts (split at a pseudo-random point), so a reader can see an empty file or a prefix
    /// such as `12345 J 78102`. In [`crate::SimNode::run_realtime`] each of the two
    /// intermediate states lasts 250 µs; under `advance` they are seen through
    /// [`crate::SimNode::observe_pm_writes`].
    pub torn: bool,
    /// `freshness` is bumped in the middle of an update, after about half the value files are
    /// written, instead of after all of them: a reader that checks it before and after sees it
    /// move while other files still hold the previous update.
    pub freshness_mid_update: bool,
    /// Each 100 ms update is published up to this long after its boundary (uniform in
    /// `0..=late`, pseudo-random per update), still holding the boundary's values and stamp.
    /// Updates are published in order: one overtaken by the next is never seen. Zero: on time.
    pub late: Duration,
    /// The controller's clock runs at `1 + drift_ppm × 1e-6` times the node's: its stamps,
    /// `startup` and its 100 ms update boundaries are on its own clock, and the energy published
    /// for a boundary is the exact energy at the node time when the controller's clock reads it.
    /// The clocks agree at create (and at open). Negative: slower. Zero: none.
    pub drift_ppm: f64,
}

/// The longest [`PmFaults::late`].
const LATE_MAX: Duration = Duration::from_secs(10);

/// The largest [`PmFaults::drift_ppm`], either way (10 %).
const DRIFT_MAX_PPM: f64 = 100_000.0;

impl PmFaults {
    /// Whether every fault is off.
    pub fn is_none(&self) -> bool {
        *self == PmFaults::default()
    }

    /// These faults and `fault`.
    pub fn with(mut self, fault: PmFault) -> PmFaults {
        match fault {
            PmFault::Torn => self.torn = true,
            PmFault::FreshnessMidUpdate => self.freshness_mid_update = true,
            PmFault::Late(d) => self.late = d,
            PmFault::Drift(ppm) => self.drift_ppm = ppm,
        }
        self
    }

    /// The faults that are on, one by one.
    pub fn list(&self) -> Vec<PmFault> {
        let mut v = Vec::new();
        if self.torn {
            v.push(PmFault::Torn);
        }
        if self.freshness_mid_update {
            v.push(PmFault::FreshnessMidUpdate);
        }
        if !self.late.is_zero() {
            v.push(PmFault::Late(self.late));
        }
        if self.drift_ppm != 0.0 {
            v.push(PmFault::Drift(self.drift_ppm));
        }
        v
    }

    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if self.late > LATE_MAX {
            return Err(SimError::InvalidPmFault(format!(
                "late={:?}: at most {LATE_MAX:?}",
                self.late
            )));
        }
        if !self.drift_ppm.is_finite() || self.drift_ppm.abs() > DRIFT_MAX_PPM {
            return Err(SimError::InvalidPmFault(format!(
                "drift={}ppm: at most {DRIFT_MAX_PPM}ppm either way",
                self.drift_ppm
            )));
        }
        Ok(())
    }
}

/// One pm_counters fault, as `powerstack sim create --pm-fault` takes it: `torn`,
/// `freshness-mid-update`, `late=DURATION` (`late=150ms`), `drift=Nppm` (`drift=500ppm`,
/// `drift=-20ppm`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PmFault {
    /// [`PmFaults::torn`].
    Torn,
    /// [`PmFaults::freshness_mid_update`].
    FreshnessMidUpdate,
    /// [`PmFaults::late`].
    Late(Duration),
    /// [`PmFaults::drift_ppm`].
    Drift(f64),
}

impl FromStr for PmFault {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| SimError::InvalidPmFault(format!("{:?}: {why}", s.trim()));
        let fault = match s.trim().split_once('=') {
            None if s.trim() == "torn" => PmFault::Torn,
            None if s.trim() == "freshness-mid-update" => PmFault::FreshnessMidUpdate,
            Some(("late", d)) => PmFault::Late(parse_duration(d).map_err(|e| bad(&e.to_string()))?),
            Some(("drift", x)) => {
                let ppm = x.trim().strip_suffix("ppm").ok_or_else(|| bad("expected drift=Nppm"))?;
                PmFault::Drift(ppm.trim().parse().map_err(|_| bad("expected drift=Nppm"))?)
            }
            _ => {
                return Err(bad(
                    "expected torn, freshness-mid-update, late=DURATION or drift=Nppm",
                ));
            }
        };
        PmFaults::default().with(fault).validate()?;
        Ok(fault)
    }
}

impl fmt::Display for PmFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PmFault::Torn => f.write_str("torn"),
            PmFault::FreshnessMidUpdate => f.write_str("freshness-mid-update"),
            PmFault::Late(d) => match d.as_micros() {
                us if us % 1_000_000 == 0 => write!(f, "late={}s", us / 1_000_000),
                us if us % 1000 == 0 => write!(f, "late={}ms", us / 1000),
                us => write!(f, "late={us}us"),
            },
            PmFault::Drift(ppm) => write!(f, "drift={ppm}ppm"),
        }
    }
}

/// A [`Provider`] whose readings come late: before each [`Provider::read`] it sleeps a
/// pseudo-random duration, uniform in `0..=max` and drawn from `seed` and the read's number (so
/// the same seed gives the same delays), as a sysfs read on a busy node can take up to hundreds
/// of milliseconds. Everything else is forwarded to the wrapped provider.
///
/// For in-process tests of the product against a simulated root:
///
/// ```
/// use std::time::Duration;
/// use powerstack_hw::{Platform, Root, Selection, discover};
/// use powerstack_sim::faults::DelayedReads;
/// use powerstack_sim::{Profile, SimNode, SimOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let _node = SimNode::create(dir.path(), Profile::CrayEx, SimOptions::default()).unwrap();
/// let found = discover(&Root::new(dir.path()), &Selection::Auto);
/// let slow = DelayedReads::wrap_all(found.platform.into_providers(), Duration::from_millis(5), 7);
/// let (mut platform, _warnings) = Platform::new(slow);
/// platform.sample();
/// ```
pub struct DelayedReads {
    inner: Box<dyn Provider>,
    max_ns: u64,
    seed: u64,
    reads: u64,
    last: Duration,
}

impl DelayedReads {
    /// Wraps `inner`, delaying each read by up to `max`.
    pub fn new(inner: Box<dyn Provider>, max: Duration, seed: u64) -> DelayedReads {
        let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX - 1);
        DelayedReads { inner, max_ns, seed, reads: 0, last: Duration::ZERO }
    }

    /// Wraps each of `providers`, the `i`-th with seed `seed + i`.
    pub fn wrap_all(
        providers: Vec<Box<dyn Provider>>,
        max: Duration,
        seed: u64,
    ) -> Vec<Box<dyn Provider>> {
        (0u64..)
            .zip(providers)
            .map(|(i, p)| {
                Box::new(DelayedReads::new(p, max, seed.wrapping_add(i))) as Box<dyn Provider>
            })
            .collect()
    }

    /// How long the last read was delayed (zero before the first).
    pub fn last_delay(&self) -> Duration {
        self.last
    }

    /// The wrapped provider.
    pub fn into_inner(self) -> Box<dyn Provider> {
        self.inner
    }

    /// The delay of the next read.
    fn draw(&mut self) -> Duration {
        self.reads += 1;
        let r = mix64(mix64(self.seed) ^ self.reads);
        Duration::from_nanos(r % (self.max_ns + 1))
    }
}

impl fmt::Debug for DelayedReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedReads")
            .field("inner", &self.inner.name())
            .field("max_ns", &self.max_ns)
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

impl Provider for DelayedReads {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn domains(&self) -> &[DomainInfo] {
        self.inner.domains()
    }

    fn read(&mut self, out: &mut [Reading]) {
        self.last = self.draw();
        if !self.last.is_zero() {
            std::thread::sleep(self.last);
        }
        self.inner.read(out);
    }

    fn refresh(&self) -> Refresh {
        self.inner.refresh()
    }

    /// The wrapped provider's parts, each delayed the same way (seeds `seed + 1`, `seed + 2`...).
    fn split(&mut self) -> Vec<Box<dyn Provider>> {
        let max = Duration::from_nanos(self.max_ns);
        let seed = self.seed.wrapping_add(1);
        DelayedReads::wrap_all(self.inner.split(), max, seed)
    }

    fn refresh_limits(&mut self) -> Vec<Warning> {
        self.inner.refresh_limits()
    }

    fn write_limit(&mut self, index: usize, write: &LimitWrite) -> Result<(), HwError> {
        self.inner.write_limit(index, write)
    }
}

/// A well-mixed 64-bit hash (splitmix64's finaliser): the pseudo-random draws of the faults, a
/// function of a seed and a counter so that they do not depend on how time was stepped.
pub(crate) fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print_back() {
        for (text, fault) in [
            ("torn", PmFault::Torn),
            ("freshness-mid-update", PmFault::FreshnessMidUpdate),
            ("late=150ms", PmFault::Late(Duration::from_millis(150))),
            ("drift=500ppm", PmFault::Drift(500.0)),
            ("drift=-20ppm", PmFault::Drift(-20.0)),
        ] {
            let parsed: PmFault = text.parse().unwrap();
            assert_eq!(parsed, fault, "{text}");
            assert_eq!(parsed.to_string().parse::<PmFault>().unwrap(), fault);
        }
        for bad in
            ["", "tron", "late", "late=5", "late=11s", "drift=5", "drift=xppm", "drift=1e6ppm"]
        {
            let e = bad.parse::<PmFault>().unwrap_err().to_string();
            assert!(e.contains("pm_counters fault"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn faults_combine() {
        let all = PmFaults::default()
            .with(PmFault::Torn)
            .with(PmFault::Late(Duration::from_millis(150)))
            .with(PmFault::Drift(-3.5))
            .with(PmFault::FreshnessMidUpdate);
        assert!(!all.is_none() && PmFaults::default().is_none());
        assert_eq!(all.list().len(), 4);
        assert_eq!(PmFaults::default().list(), vec![]);
        assert_eq!(all.list().into_iter().fold(PmFaults::default(), PmFaults::with), all);
    }
}
