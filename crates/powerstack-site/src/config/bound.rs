//! The `[bound]` section of the site's configuration: the bound, its reserve and policy, a
//! schedule of bounds by time of day, and how the control loop reaches the agents. Which bound is
//! in force: the one set by `powerstack site bound` (until cleared), else the first schedule
//! window that holds the time now (UTC), else `watts`, else none.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// `[bound]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoundConfig {
    /// The site bound, W; none: no bound unless set or scheduled.
    pub watts: Option<f64>,
    /// What cannot be capped (switches, storage, nodes without a control), W.
    pub reserve_watts: f64,
    /// `uniform`, `slurm`, `priority` or `dynamic`.
    pub policy: String,
    /// The control period, s.
    pub period_s: f64,
    /// Bounds by time of day (`[[bound.schedule]]`), the first that holds wins.
    pub schedule: Vec<BoundWindow>,
    /// How long decisions are kept, days.
    pub decision_retention_days: u64,
    /// A file holding the token the site presents to agents (a role that may cap).
    pub agent_token_file: Option<PathBuf>,
    /// The CA certificates (PEM) agents' certificates are checked against, for `https://`.
    pub agent_ca_file: Option<PathBuf>,
    /// How long one call to an agent or a BMC may take, ms.
    pub call_timeout_ms: u64,
    /// How many cap writes run at once.
    pub concurrency: usize,
    /// How often each node's cap range is read again, s.
    pub range_refresh_s: u64,
    /// How far a cap read back may be from its target and count as it, W (hardware rounds its
    /// limits); the bound given the policy is less this for every node, so the caps in force
    /// still fit.
    pub tolerance_watts: f64,
}

/// One window of `[[bound.schedule]]`: from `from` to `until` (UTC, `HH:MM`; `until` before
/// `from` runs past midnight), on `days` (`mon`..`sun`; every day when empty).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundWindow {
    /// The window's start, `HH:MM` UTC.
    pub from: String,
    /// The window's end, `HH:MM` UTC (excluded).
    pub until: String,
    /// The bound in the window, W.
    pub watts: f64,
    /// The days it applies on (`mon`, `tue`, ...); every day when empty.
    #[serde(default)]
    pub days: Vec<String>,
}

impl Default for BoundConfig {
    fn default() -> Self {
        BoundConfig {
            watts: None,
            reserve_watts: 0.0,
            policy: "dynamic".into(),
            period_s: 5.0,
            schedule: Vec::new(),
            decision_retention_days: 30,
            agent_token_file: None,
            agent_ca_file: None,
            call_timeout_ms: 2000,
            concurrency: 256,
            range_refresh_s: 60,
            tolerance_watts: 0.5,
        }
    }
}

const DAYS: [&str; 7] = ["thu", "fri", "sat", "sun", "mon", "tue", "wed"];

fn minutes(text: &str) -> Option<u64> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}

fn watts_ok(w: f64) -> bool {
    w.is_finite() && w > 0.0 && w <= 1e12
}

impl BoundConfig {
    /// Checks every value; the first wrong one in one line.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Config(format!("[bound] {m}")));
        if let Some(w) = self.watts.filter(|w| !watts_ok(*w)) {
            return bad(format!("watts = {w}: give a positive number of watts"));
        }
        if !(self.reserve_watts.is_finite() && self.reserve_watts >= 0.0) {
            return bad(format!("reserve_watts = {}: give 0 or more watts", self.reserve_watts));
        }
        if let Err(e) = powerstack_bound::policy_by_name(&self.policy) {
            return bad(e.to_string());
        }
        if !(self.period_s.is_finite() && (0.1..=3600.0).contains(&self.period_s)) {
            return bad(format!("period_s = {}: give 0.1 to 3600 seconds", self.period_s));
        }
        if !(self.tolerance_watts.is_finite() && (0.0..=100.0).contains(&self.tolerance_watts)) {
            return bad(format!("tolerance_watts = {}: give 0 to 100 watts", self.tolerance_watts));
        }
        if self.concurrency == 0 || self.call_timeout_ms == 0 || self.range_refresh_s == 0 {
            return bad("concurrency, call_timeout_ms and range_refresh_s must be above 0".into());
        }
        for (i, w) in self.schedule.iter().enumerate() {
            let at = format!("schedule #{}", i + 1);
            if minutes(&w.from).is_none() || minutes(&w.until).is_none() {
                return bad(format!("{at}: from and until are HH:MM (UTC), e.g. \"08:00\""));
            }
            if !watts_ok(w.watts) {
                return bad(format!("{at}: watts = {}: give a positive number of watts", w.watts));
            }
            if let Some(d) = w.days.iter().find(|d| !DAYS.contains(&d.as_str())) {
                return bad(format!("{at}: day {d:?}: use mon, tue, wed, thu, fri, sat or sun"));
            }
        }
        Ok(())
    }

    /// The scheduled bound at `unix_us`, W: the first window that holds it.
    pub fn scheduled_watts(&self, unix_us: u64) -> Option<f64> {
        let unix_min = unix_us / 60_000_000;
        let day = DAYS[((unix_min / 1440) % 7) as usize];
        let now = unix_min % 1440;
        let yesterday = DAYS[((unix_min / 1440 + 6) % 7) as usize];
        self.schedule.iter().find_map(|w| {
            let (from, until) = (minutes(&w.from)?, minutes(&w.until)?);
            let on = |d: &str| w.days.is_empty() || w.days.iter().any(|x| x == d);
            let holds = if from <= until {
                on(day) && (from..until).contains(&now)
            } else {
                // Past midnight: the evening part today, the morning part from yesterday's start.
                (on(day) && now >= from) || (on(yesterday) && now < until)
            };
            holds.then_some(w.watts)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{BoundConfig, BoundWindow};

    fn window(from: &str, until: &str, watts: f64, days: &[&str]) -> BoundWindow {
        BoundWindow {
            from: from.into(),
            until: until.into(),
            watts,
            days: days.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn a_schedule_holds_by_time_of_day_and_day_past_midnight_too() {
        let c = BoundConfig {
            schedule: vec![
                window("08:00", "20:00", 500.0, &["mon"]),
                window("22:00", "06:00", 900.0, &[]),
            ],
            ..BoundConfig::default()
        };
        // 2026-12-07 is a Monday.
        let at = |h: u64, m: u64, day_offset: u64| {
            (1_796_601_600 + day_offset * 86_400 + h * 3600 + m * 60) * 1_000_000
        };
        assert_eq!(c.scheduled_watts(at(8, 0, 0)), Some(500.0));
        assert_eq!(c.scheduled_watts(at(19, 59, 0)), Some(500.0));
        assert_eq!(c.scheduled_watts(at(20, 0, 0)), None);
        assert_eq!(c.scheduled_watts(at(9, 0, 1)), None, "tuesday");
        assert_eq!(c.scheduled_watts(at(23, 0, 1)), Some(900.0));
        assert_eq!(c.scheduled_watts(at(5, 59, 2)), Some(900.0));
    }

    #[test]
    fn bad_values_are_named() {
        let err = |c: BoundConfig| c.validate().unwrap_err().to_string();
        assert!(
            err(BoundConfig { watts: Some(-1.0), ..BoundConfig::default() }).contains("watts = -1")
        );
        assert!(
            err(BoundConfig { policy: "even".into(), ..BoundConfig::default() })
                .contains("unknown policy")
        );
        let c = BoundConfig {
            schedule: vec![window("8:00", "20:00", 1.0, &[])],
            ..BoundConfig::default()
        };
        assert!(err(c).contains("schedule #1: from and until are HH:MM"));
        let c = BoundConfig {
            schedule: vec![window("08:00", "20:00", 1.0, &["monday"])],
            ..BoundConfig::default()
        };
        assert!(err(c).contains("day \"monday\""));
        assert!(BoundConfig::default().validate().is_ok());
    }
}
