//! The uncore frequency domains' rules (`package_XX_die_YY`, and TPMI `uncoreNN` fabric
//! clusters): limits in 100 MHz steps, ELC attributes, and package-level writes passed on to the
//! package's clusters.

use std::path::{Path, PathBuf};

use super::attr::{Attr, decide_pair, parse_u64, put, read_num};
use crate::cpufreq::{UNCORE, UNCORE_STEP_KHZ, uncore_cur_khz};
use crate::error::SimError;

/// One uncore frequency domain (`package_XX_die_YY` or TPMI `uncoreNN`).
#[derive(Debug)]
pub(super) struct Uncore {
    name: String,
    package: Option<u32>,
    /// A package-level entry with TPMI fabric clusters beside it: its writes go to all of them.
    root: bool,
    /// `initial_min_freq_khz`, `initial_max_freq_khz`.
    lo: u64,
    hi: u64,
    min: Attr,
    max: Attr,
    elc: Vec<Attr>,
    /// `current_freq_khz` and what it shows.
    cur: Option<(PathBuf, u64)>,
}

impl Uncore {
    fn load(name: &str, dir: &Path, tpmi: bool) -> Option<Uncore> {
        let package = if name.starts_with("uncore") {
            read_num(&dir.join("package_id")).map(|p| p as u32)
        } else {
            name.strip_prefix("package_")?.get(..2)?.parse().ok()
        };
        let elc = [
            "elc_floor_freq_khz",
            "elc_low_threshold_percent",
            "elc_high_threshold_percent",
            "elc_high_threshold_enable",
        ]
        .into_iter()
        .filter_map(|f| Attr::load(dir.join(f)))
        .collect();
        let cur_path = dir.join("current_freq_khz");
        Some(Uncore {
            name: name.to_string(),
            package,
            root: tpmi && name.starts_with("package_"),
            lo: read_num(&dir.join("initial_min_freq_khz"))?,
            hi: read_num(&dir.join("initial_max_freq_khz"))?,
            min: Attr::load(dir.join("min_freq_khz"))?,
            max: Attr::load(dir.join("max_freq_khz"))?,
            elc,
            cur: read_num(&cur_path).map(|v| (cur_path, v)),
        })
    }

    /// Every attribute with rules.
    pub(super) fn attrs(&self) -> impl Iterator<Item = &Attr> {
        [&self.min, &self.max].into_iter().chain(&self.elc)
    }

    /// Checks an ELC write: `Ok(shown)` or `Err(why)`.
    fn check_elc(&self, name: &str, w: &str) -> Result<String, String> {
        let Some(v) = parse_u64(w) else { return Err("is not a decimal number".into()) };
        match name {
            "elc_floor_freq_khz" if v <= self.hi => {
                Ok((v / UNCORE_STEP_KHZ * UNCORE_STEP_KHZ).to_string())
            }
            "elc_floor_freq_khz" => Err(format!("above initial_max_freq_khz {}", self.hi)),
            "elc_high_threshold_enable" if v <= 1 => Ok(v.to_string()),
            "elc_high_threshold_enable" => Err("is not 0 or 1".into()),
            _ if v <= 100 => Ok(v.to_string()),
            _ => Err("outside 0..100 (percent)".into()),
        }
    }
}

/// A written value of an uncore attribute, taken before any propagation.
type Pending = (Option<String>, Option<String>, Vec<Option<String>>);

/// The uncore domains under `root`, package-level entries and clusters by name.
pub(super) fn load_all(root: &Path) -> Vec<Uncore> {
    let udir = root.join(UNCORE);
    let mut names: Vec<String> = std::fs::read_dir(&udir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    let tpmi = names.iter().any(|n| n.starts_with("uncore"));
    names.iter().filter_map(|n| Uncore::load(n, &udir.join(n), tpmi)).collect()
}

/// Judges what was written to every uncore domain (package-level entries first, their writes
/// passed on to their clusters), then shows each domain's current frequency.
pub(super) fn enforce_all(uncore: &mut [Uncore], out: &mut Vec<String>) -> Result<(), SimError> {
    // What was written, before package-level writes propagate to the clusters.
    let pending: Vec<Pending> = uncore
        .iter()
        .map(|u| (u.min.written(), u.max.written(), u.elc.iter().map(Attr::written).collect()))
        .collect();
    let order: Vec<usize> = (0..uncore.len())
        .filter(|&i| uncore[i].root)
        .chain((0..uncore.len()).filter(|&i| !uncore[i].root))
        .collect();
    for i in order {
        let (w_min, w_max, w_elc) = &pending[i];
        let members = members(uncore, i);
        enforce_limits(uncore, i, &members, (w_min, w_max), out)?;
        enforce_elc(uncore, i, &members, w_elc, out)?;
    }
    for u in uncore.iter_mut() {
        let want = uncore_cur_khz(u.min.num(), u.max.num());
        if let Some((path, shown)) = &mut u.cur
            && *shown != want
        {
            put(path, &want.to_string())?;
            *shown = want;
        }
    }
    Ok(())
}

/// The clusters a package-level entry passes its writes on to (none for any other entry).
fn members(uncore: &[Uncore], i: usize) -> Vec<usize> {
    let u = &uncore[i];
    if u.root {
        (0..uncore.len())
            .filter(|&j| {
                let m = &uncore[j];
                !m.root && m.name.starts_with("uncore") && m.package == u.package
            })
            .collect()
    } else {
        Vec::new()
    }
}

/// `min_freq_khz` and `max_freq_khz` of domain `i`: within the initial range, rounded down to
/// 100 MHz, ordered against its own and its members' limits; accepted values are forced on the
/// members.
fn enforce_limits(
    uncore: &mut [Uncore],
    i: usize,
    members: &[usize],
    (w_min, w_max): (&Option<String>, &Option<String>),
    out: &mut Vec<String>,
) -> Result<(), SimError> {
    let u = &uncore[i];
    let who = u.name.clone();
    let (lo, hi) = (u.lo, u.hi);
    let range = |a: &Attr, w: &Option<String>, out: &mut Vec<String>| {
        let Some(w) = w else { return Ok(None) };
        match parse_u64(w) {
            Some(k) if (lo..=hi).contains(&k) => Ok(Some(k / UNCORE_STEP_KHZ * UNCORE_STEP_KHZ)),
            Some(_) => a.refuse(out, &who, w, &format!("outside {lo}..{hi}")).map(|_| None),
            None => a.refuse(out, &who, w, "is not a decimal kHz").map(|_| None),
        }
    };
    let n_min = range(&u.min, w_min, out)?;
    let n_max = range(&u.max, w_max, out)?;
    let floor = members.iter().map(|&j| uncore[j].min.num()).fold(u.min.num(), u64::max);
    let ceiling = members.iter().map(|&j| uncore[j].max.num()).fold(u.max.num(), u64::min);
    let (v_min, v_max) =
        decide_pair((n_min, n_max), floor, ceiling, ("min_freq_khz", "max_freq_khz"));
    for (is_max, w, v) in [(true, w_max, v_max), (false, w_min, v_min)] {
        let (Some(w), Some(v)) = (w, v) else { continue };
        let u = &mut uncore[i];
        let a = if is_max { &mut u.max } else { &mut u.min };
        match v {
            Ok(k) => {
                a.accept(k.to_string())?;
                for &j in members {
                    let m = &mut uncore[j];
                    let a = if is_max { &mut m.max } else { &mut m.min };
                    a.force(&k.to_string())?;
                }
            }
            Err(why) => a.refuse(out, &who, w, &why)?,
        }
    }
    Ok(())
}

/// The ELC attributes of domain `i`; accepted values are forced on the members.
fn enforce_elc(
    uncore: &mut [Uncore],
    i: usize,
    members: &[usize],
    w_elc: &[Option<String>],
    out: &mut Vec<String>,
) -> Result<(), SimError> {
    let who = uncore[i].name.clone();
    for (k, w) in w_elc.iter().enumerate() {
        let Some(w) = w else { continue };
        let u = &uncore[i];
        let name = u.elc[k].name();
        match u.check_elc(&name, w) {
            Ok(shown) => {
                uncore[i].elc[k].accept(shown.clone())?;
                for &j in members {
                    if let Some(a) = uncore[j].elc.iter_mut().find(|a| a.name() == name) {
                        a.force(&shown)?;
                    }
                }
            }
            Err(why) => u.elc[k].refuse(out, &who, w, &why)?,
        }
    }
    Ok(())
}
