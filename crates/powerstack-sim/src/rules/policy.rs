//! One cpufreq policy's rules: governor, `scaling_{min,max}_freq`, EPP and `scaling_setspeed`,
//! judged in kernel order, and the current frequency they leave.

use std::path::{Path, PathBuf};

use super::attr::{Attr, decide_pair, parse_u64, put, read_num, read_trim};
use crate::cpufreq::{EPP_DEFAULT, is_setpolicy, parse_list, policy_cur_khz};
use crate::error::SimError;

/// The numbers of an EPP string; the first entry is also what a read shows for that number.
fn epp_table(driver: &str) -> &'static [(&'static str, u32)] {
    if driver == "amd-pstate-epp" {
        &[("performance", 0), ("balance_performance", 128), ("balance_power", 191), ("power", 255)]
    } else {
        &[("performance", 0), ("balance_performance", 128), ("balance_power", 192), ("power", 255)]
    }
}

/// One cpufreq policy.
#[derive(Debug)]
pub(super) struct Policy {
    n: u32,
    /// `cpuN` for a one-CPU policy, else `policyN`.
    who: String,
    /// Some of its CPUs are online (`affected_cpus` is not empty).
    active: bool,
    driver: String,
    /// `cpuinfo_min_freq`, `cpuinfo_max_freq`.
    lo: u64,
    hi: u64,
    governors: Vec<String>,
    epp_choices: Vec<String>,
    table: Vec<u64>,
    min: Attr,
    max: Attr,
    governor: Attr,
    epp: Option<Attr>,
    setspeed: Option<Attr>,
    /// `scaling_cur_freq` (and acpi-cpufreq's `cpuinfo_cur_freq`), and what they show.
    cur: Vec<PathBuf>,
    cur_shown: u64,
    /// The EPP to put back when the governor leaves `performance`.
    saved_epp: String,
    /// The `userspace` governor's target, kHz.
    setspeed_khz: Option<u64>,
}

impl Policy {
    pub(super) fn load(n: u32, dir: &Path) -> Option<Policy> {
        let attr = |f: &str| Attr::load(dir.join(f));
        let related = read_trim(&dir.join("related_cpus")).unwrap_or_default();
        let who = match related.parse::<u32>() {
            Ok(c) => format!("cpu{c}"),
            Err(_) => format!("policy{n}"),
        };
        let words = |f: &str| -> Vec<String> {
            read_trim(&dir.join(f))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let governor = attr("scaling_governor")?;
        let epp = attr("energy_performance_preference");
        let setspeed = attr("scaling_setspeed");
        let saved_epp = match &epp {
            Some(e) if governor.last != "performance" => e.last.clone(),
            _ => EPP_DEFAULT.to_string(),
        };
        let setspeed_khz = match (&setspeed, governor.last.as_str()) {
            (Some(s), "userspace") => s.last.parse().ok(),
            _ => None,
        };
        let mut cur = vec![dir.join("scaling_cur_freq")];
        if dir.join("cpuinfo_cur_freq").exists() {
            cur.push(dir.join("cpuinfo_cur_freq"));
        }
        Some(Policy {
            n,
            who,
            active: !read_trim(&dir.join("affected_cpus")).unwrap_or_default().is_empty(),
            driver: read_trim(&dir.join("scaling_driver")).unwrap_or_default(),
            lo: read_num(&dir.join("cpuinfo_min_freq"))?,
            hi: read_num(&dir.join("cpuinfo_max_freq"))?,
            governors: words("scaling_available_governors"),
            epp_choices: words("energy_performance_available_preferences"),
            table: parse_list(
                &read_trim(&dir.join("scaling_available_frequencies")).unwrap_or_default(),
            ),
            min: attr("scaling_min_freq")?,
            max: attr("scaling_max_freq")?,
            cur_shown: read_num(&cur[0]).unwrap_or(0),
            cur,
            governor,
            epp,
            setspeed,
            saved_epp,
            setspeed_khz,
        })
    }

    fn cur_khz(&self) -> u64 {
        policy_cur_khz(
            &self.driver,
            &self.governor.last,
            self.min.num(),
            self.max.num(),
            &self.table,
            self.setspeed_khz,
        )
    }

    /// What `scaling_setspeed` shows: the frequency under `userspace`, else `<unsupported>`.
    fn setspeed_shown(&self) -> String {
        if self.governor.last == "userspace" {
            self.cur_khz().to_string()
        } else {
            "<unsupported>".to_string()
        }
    }

    /// Every attribute with rules.
    pub(super) fn attrs(&self) -> impl Iterator<Item = &Attr> {
        [
            Some(&self.min),
            Some(&self.max),
            Some(&self.governor),
            self.epp.as_ref(),
            self.setspeed.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// Judges what was written to the policy's attributes, in kernel order: governor, frequency
    /// limits, EPP, `scaling_setspeed`; then shows the frequency the CPUs run at.
    pub(super) fn enforce(&mut self, out: &mut Vec<String>) -> Result<(), SimError> {
        let w = Written {
            governor: self.governor.written(),
            min: self.min.written(),
            max: self.max.written(),
            epp: self.epp.as_ref().and_then(Attr::written),
            setspeed: self.setspeed.as_ref().and_then(Attr::written),
        };
        if !self.active {
            return self.refuse_inactive(out, &w);
        }
        self.enforce_governor(out, &w.governor)?;
        self.enforce_limits(out, &w.min, &w.max)?;
        self.enforce_epp(out, &w.epp)?;
        self.enforce_setspeed(out, &w.setspeed)?;
        self.show_cur()
    }

    /// An inactive policy (all its CPUs offline) takes nothing.
    fn refuse_inactive(&self, out: &mut Vec<String>, w: &Written) -> Result<(), SimError> {
        let why = format!("refused: policy{} is inactive (its CPUs are offline)", self.n);
        for (a, w) in [
            (Some(&self.governor), &w.governor),
            (Some(&self.min), &w.min),
            (Some(&self.max), &w.max),
            (self.epp.as_ref(), &w.epp),
            (self.setspeed.as_ref(), &w.setspeed),
        ] {
            if let (Some(a), Some(w)) = (a, w) {
                a.refuse(out, &self.who, w, &why)?;
            }
        }
        Ok(())
    }

    /// The governor (switching to or from `performance` pins or puts back the EPP).
    fn enforce_governor(
        &mut self,
        out: &mut Vec<String>,
        w_gov: &Option<String>,
    ) -> Result<(), SimError> {
        let who = &self.who;
        if let Some(g) = w_gov {
            if self.governors.iter().any(|x| x == g) {
                let old = std::mem::replace(&mut self.governor.last, g.clone());
                self.governor.accept(g.clone())?;
                if is_setpolicy(&self.driver)
                    && let Some(epp) = &mut self.epp
                {
                    if g == "performance" && old != "performance" {
                        self.saved_epp = epp.last.clone();
                        epp.force("performance")?;
                    } else if old == "performance" && g != "performance" {
                        epp.force(&self.saved_epp)?;
                    }
                }
                if g == "userspace" && old != "userspace" {
                    self.setspeed_khz = Some(self.cur_shown);
                }
            } else {
                let why = format!("not in [{}]", self.governors.join(" "));
                self.governor.refuse(out, who, g, &why)?;
            }
        }
        Ok(())
    }

    /// The frequency limits, `scaling_min_freq` and `scaling_max_freq`.
    fn enforce_limits(
        &mut self,
        out: &mut Vec<String>,
        w_min: &Option<String>,
        w_max: &Option<String>,
    ) -> Result<(), SimError> {
        let who = &self.who;
        let (lo, hi) = (self.lo, self.hi);
        let mut range = |a: &Attr, w: &Option<String>| -> Result<Option<u64>, SimError> {
            let Some(w) = w else { return Ok(None) };
            match parse_u64(w) {
                Some(k) if (lo..=hi).contains(&k) => Ok(Some(k)),
                Some(_) => a.refuse(out, who, w, &format!("outside {lo}..{hi}")).map(|_| None),
                None => a.refuse(out, who, w, "is not a decimal kHz").map(|_| None),
            }
        };
        let n_min = range(&self.min, w_min)?;
        let n_max = range(&self.max, w_max)?;
        let (v_min, v_max) = decide_pair(
            (n_min, n_max),
            self.min.num(),
            self.max.num(),
            ("scaling_min_freq", "scaling_max_freq"),
        );
        for (a, w, v) in [(&mut self.max, w_max, v_max), (&mut self.min, w_min, v_min)] {
            match (w, v) {
                (Some(_), Some(Ok(k))) => a.accept(k.to_string())?,
                (Some(w), Some(Err(why))) => a.refuse(out, who, w, &why)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The energy performance preference: a choice, or (intel_pstate) a raw number; refused
    /// (EBUSY) under `performance` unless it is `performance`'s own.
    fn enforce_epp(
        &mut self,
        out: &mut Vec<String>,
        w_epp: &Option<String>,
    ) -> Result<(), SimError> {
        let who = &self.who;
        if let (Some(epp), Some(w)) = (&mut self.epp, w_epp) {
            let table = epp_table(&self.driver);
            let choice = self.epp_choices.iter().any(|c| c == w);
            let raw = if w == "default" && choice {
                table.iter().find(|(s, _)| *s == EPP_DEFAULT).map(|(_, r)| *r)
            } else if choice {
                table.iter().find(|(s, _)| s == w).map(|(_, r)| *r)
            } else if self.driver == "intel_pstate" {
                parse_u64(w).filter(|&r| r <= 255).map(|r| r as u32)
            } else {
                None
            };
            match raw {
                None => {
                    let numbers = if self.driver == "intel_pstate" { " or 0..255" } else { "" };
                    let why = format!("not in [{}]{numbers}", self.epp_choices.join(" "));
                    epp.refuse(out, who, w, &why)?;
                }
                Some(r) if r != 0 && self.governor.last == "performance" => {
                    epp.refuse(
                        out,
                        who,
                        w,
                        "refused while scaling_governor is performance (EBUSY)",
                    )?;
                }
                Some(r) => {
                    let shown = table
                        .iter()
                        .find(|(_, x)| *x == r)
                        .map_or_else(|| r.to_string(), |(s, _)| (*s).to_string());
                    epp.accept(shown)?;
                }
            }
        }
        Ok(())
    }

    /// `scaling_setspeed`: only the userspace governor takes it; it always shows what the
    /// governor in force shows.
    fn enforce_setspeed(
        &mut self,
        out: &mut Vec<String>,
        w_set: &Option<String>,
    ) -> Result<(), SimError> {
        let who = &self.who;
        if let Some(w) = w_set {
            let decimal = parse_u64(w);
            if self.governor.last != "userspace" {
                let why = format!(
                    "refused: the {} governor has no setspeed (EINVAL)",
                    self.governor.last
                );
                if let Some(a) = &self.setspeed {
                    a.refuse(out, who, w, &why)?;
                }
            } else if let Some(k) = decimal {
                self.setspeed_khz = Some(k);
                let shown = self.setspeed_shown();
                if let Some(a) = &mut self.setspeed {
                    a.accept(shown)?;
                }
            } else if let Some(a) = &self.setspeed {
                a.refuse(out, who, w, "is not a decimal kHz")?;
            }
        }
        let shown = self.setspeed_shown();
        if let Some(a) = &mut self.setspeed
            && a.last != shown
        {
            a.force(&shown)?;
        }
        Ok(())
    }

    /// What the CPU runs at: `scaling_cur_freq` (and `cpuinfo_cur_freq`) rewritten when it moves.
    fn show_cur(&mut self) -> Result<(), SimError> {
        let cur = self.cur_khz();
        if cur != self.cur_shown {
            for p in &self.cur {
                put(p, &cur.to_string())?;
            }
            self.cur_shown = cur;
        }
        Ok(())
    }
}

/// What was found written to a policy's attributes in one call (`None`: nothing new).
struct Written {
    governor: Option<String>,
    min: Option<String>,
    max: Option<String>,
    epp: Option<String>,
    setspeed: Option<String>,
}
