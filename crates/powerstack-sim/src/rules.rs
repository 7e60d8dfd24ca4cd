//! What the kernel refuses: the rules of the writable cpufreq, cpuidle and uncore attributes.
//!
//! sysfs refuses some writes (EINVAL, EBUSY), rounds others and changes related attributes on its
//! own; the files of a simulated tree take anything. [`Rules`] keeps the last accepted value of
//! every writable attribute and, at each [`Rules::enforce`], checks the ones whose file changed:
//! an accepted value becomes the last accepted value (the file rewritten when the kernel would
//! show it differently), a refused one is restored in place and described in one line. Product
//! code that does not read back what it wrote is caught.
//!
//! Files are only read when something changed: an inotify watch on the attributes' directories
//! says whether anything was written since the last call (without inotify, every call reads every
//! attribute). An empty file is taken for a write in progress (opened with `O_TRUNC`, not yet written) and
//! looked at again at the next call. Writes found in one call are taken in kernel order per
//! policy: governor, then `scaling_max_freq`/`scaling_min_freq` (both at once when the new pair
//! is ordered, else max first), then EPP, then `scaling_setspeed`; uncore package-level entries
//! before fabric clusters.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::build::{EPP_DEFAULT, UNCORE};
use crate::error::SimError;
use crate::fsutil::open_rw;
use crate::watch::Watch;

const CPU: &str = "sys/devices/system/cpu";

/// The uncore drivers work in 100 MHz ratios.
const UNCORE_STEP_KHZ: u64 = 100_000;

/// The frequency a policy runs at, kHz: the maximum under `performance`, the minimum under
/// `powersave` with a driver that has governors (intel_pstate's and amd-pstate-epp's `powersave`
/// is dynamic), the set speed under `userspace`, else the midpoint; snapped to the table when the
/// driver has one (the lowest entry at or above the target).
pub(crate) fn policy_cur_khz(
    driver: &str,
    governor: &str,
    min: u64,
    max: u64,
    table: &[u64],
    setspeed: Option<u64>,
) -> u64 {
    let max = max.max(min);
    let target = match governor {
        "performance" => max,
        "powersave" if !is_setpolicy(driver) => min,
        "userspace" => setspeed.unwrap_or(max).clamp(min, max),
        _ => min + (max - min) / 2,
    };
    let mut fit: Vec<u64> = table.iter().copied().filter(|f| (min..=max).contains(f)).collect();
    fit.sort_unstable();
    fit.iter().copied().find(|&f| f >= target).or(fit.last().copied()).unwrap_or(target)
}

/// An uncore domain's `current_freq_khz`: the midpoint of its range, in 100 MHz steps.
pub(crate) fn uncore_cur_khz(min: u64, max: u64) -> u64 {
    (min + max.max(min)) / 2 / UNCORE_STEP_KHZ * UNCORE_STEP_KHZ
}

/// Drivers that implement the `performance`/`powersave` policies themselves (no governors).
fn is_setpolicy(driver: &str) -> bool {
    matches!(driver, "intel_pstate" | "amd-pstate-epp")
}

/// The numbers of an EPP string; the first entry is also what a read shows for that number.
fn epp_table(driver: &str) -> &'static [(&'static str, u32)] {
    if driver == "amd-pstate-epp" {
        &[("performance", 0), ("balance_performance", 128), ("balance_power", 191), ("power", 255)]
    } else {
        &[("performance", 0), ("balance_performance", 128), ("balance_power", 192), ("power", 255)]
    }
}

/// A value for a message: as it is when it is one printable word, else quoted.
fn show(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic()) {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// `kstrtobool`: `1`/`y`/`Y`/`on` and `0`/`n`/`N`/`off` (only the first characters count).
fn kstrtobool(v: &str) -> Option<bool> {
    let b = v.as_bytes();
    match (b.first()?, b.get(1)) {
        (b'1' | b'y' | b'Y', _) => Some(true),
        (b'0' | b'n' | b'N', _) => Some(false),
        (b'o' | b'O', Some(b'n' | b'N')) => Some(true),
        (b'o' | b'O', Some(b'f' | b'F')) => Some(false),
        _ => None,
    }
}

fn parse_u64(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Space-separated numbers (`scaling_available_frequencies`).
pub(crate) fn parse_list(text: &str) -> Vec<u64> {
    text.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

/// The bytes of a small file (one `open`, `read`s into a stack buffer, `close`: no `stat`).
fn slurp(path: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The first line of a file, trimmed: what an attribute shows (a writer that shortens a file in
/// place leaves the stale tail of the longer value after the newline for a moment).
fn read_trim(path: &Path) -> Option<String> {
    let bytes = slurp(path)?;
    Some(first_line(&bytes))
}

fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(bytes);
    String::from_utf8_lossy(line).trim().to_string()
}

/// An inotify watch on directories: says whether anything in them was written, created, moved
/// or removed since the last look. `None` when inotify is unavailable or a directory cannot be
/// watched (out of instances or watches): the caller then reads everything every time.
fn watch_dirs(dirs: &BTreeSet<PathBuf>) -> Option<Watch> {
    let w = Watch::new()?;
    for d in dirs {
        w.add(d, crate::watch::CHANGES).ok()?;
    }
    Some(w)
}

fn read_num(path: &Path) -> Option<u64> {
    read_trim(path)?.parse().ok()
}

/// Writes `v` and a newline in place (`pwrite` at 0, then `set_len`); a file gone is left alone.
fn put(path: &Path, v: &str) -> Result<(), SimError> {
    let content = format!("{v}\n");
    let f = match open_rw(path) {
        Ok(f) => f,
        Err(SimError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    f.write_all_at(content.as_bytes(), 0).map_err(|e| SimError::io(path, e))?;
    f.set_len(content.len() as u64).map_err(|e| SimError::io(path, e))
}

/// Sorted `(N, path)` of the entries of `dir` named `{prefix}N`.
fn numbered(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// One writable attribute and its last accepted value.
#[derive(Debug)]
struct Attr {
    path: PathBuf,
    /// The last accepted value, as the kernel shows it (without the newline).
    last: String,
    /// What the simulator last found in the file or put there (trimmed): the only content it
    /// writes over, so that a write by someone else since is never lost (it is judged next call).
    seen: RefCell<String>,
}

impl Attr {
    fn load(path: PathBuf) -> Option<Attr> {
        let last = read_trim(&path)?;
        Some(Attr { path, seen: RefCell::new(last.clone()), last })
    }

    fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// What the file holds now, when it is not the last accepted value (an empty file is a write
    /// in progress: `None`).
    fn written(&self) -> Option<String> {
        let bytes = slurp(&self.path)?;
        let v = first_line(&bytes);
        self.seen.replace(v.clone());
        if bytes.is_empty() {
            return None;
        }
        (v != self.last).then_some(v)
    }

    /// Writes `v` in place if the file, re-read just before, still holds what the simulator last
    /// found or put there; otherwise someone wrote it since, and that write stays for the next
    /// call to judge.
    fn put_over_seen(&self, v: &str) -> Result<(), SimError> {
        if read_trim(&self.path).as_deref() != Some(self.seen.borrow().as_str()) {
            return Ok(());
        }
        put(&self.path, v)?;
        self.seen.replace(v.to_string());
        Ok(())
    }

    /// Accepts the write just judged, which the kernel shows as `shown` (the file is rewritten
    /// when it shows something else: another form, or a value the kernel set meanwhile).
    fn accept(&mut self, shown: String) -> Result<(), SimError> {
        if *self.seen.borrow() != shown {
            self.put_over_seen(&shown)?;
        }
        self.last = shown;
        Ok(())
    }

    /// A value the kernel sets itself.
    fn force(&mut self, v: &str) -> Result<(), SimError> {
        if self.last != v || *self.seen.borrow() != v {
            self.put_over_seen(v)?;
        }
        self.last = v.to_string();
        Ok(())
    }

    /// Refuses `written`: the file is restored and the refusal described.
    fn refuse(
        &self,
        out: &mut Vec<String>,
        who: &str,
        written: &str,
        why: &str,
    ) -> Result<(), SimError> {
        self.put_over_seen(&self.last)?;
        out.push(format!("{who} {} {} {why}: restored {}", self.name(), show(written), self.last));
        Ok(())
    }

    fn num(&self) -> u64 {
        self.last.parse().unwrap_or(0)
    }
}

/// What becomes of a write: none, accepted (the value to show) or refused (why).
type Verdict = Option<Result<u64, String>>;

/// Decides writes to a (min, max) pair, each already parsed and within range: both at once when
/// the new pair is ordered; otherwise the max first, then the min against the max then in force.
/// `floor` is what a max alone must not go below, `ceiling` what a min alone must not exceed.
fn decide_pair(
    new: (Option<u64>, Option<u64>),
    floor: u64,
    ceiling: u64,
    names: (&str, &str),
) -> (Verdict, Verdict) {
    match new {
        (Some(a), Some(b)) if a <= b => (Some(Ok(a)), Some(Ok(b))),
        (nmin, nmax) => {
            let vmax = nmax.map(|b| {
                if b >= floor { Ok(b) } else { Err(format!("below {} {floor}", names.0)) }
            });
            let ceiling = match vmax {
                Some(Ok(b)) => b,
                _ => ceiling,
            };
            let vmin = nmin.map(|a| {
                if a <= ceiling { Ok(a) } else { Err(format!("above {} {ceiling}", names.1)) }
            });
            (vmin, vmax)
        }
    }
}

/// One cpufreq policy.
#[derive(Debug)]
struct Policy {
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
    fn load(n: u32, dir: &Path) -> Option<Policy> {
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

    fn enforce(&mut self, out: &mut Vec<String>) -> Result<(), SimError> {
        let who = self.who.clone();
        let w_gov = self.governor.written();
        let w_min = self.min.written();
        let w_max = self.max.written();
        let w_epp = self.epp.as_ref().and_then(Attr::written);
        let w_set = self.setspeed.as_ref().and_then(Attr::written);
        if !self.active {
            let why = format!("refused: policy{} is inactive (its CPUs are offline)", self.n);
            for (a, w) in [
                (Some(&self.governor), &w_gov),
                (Some(&self.min), &w_min),
                (Some(&self.max), &w_max),
                (self.epp.as_ref(), &w_epp),
                (self.setspeed.as_ref(), &w_set),
            ] {
                if let (Some(a), Some(w)) = (a, w) {
                    a.refuse(out, &who, w, &why)?;
                }
            }
            return Ok(());
        }

        // Governor (switching to or from `performance` pins or puts back the EPP).
        if let Some(g) = &w_gov {
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
                self.governor.refuse(out, &who, g, &why)?;
            }
        }

        // Frequency limits.
        let (lo, hi) = (self.lo, self.hi);
        let mut range = |a: &Attr, w: &Option<String>| -> Result<Option<u64>, SimError> {
            let Some(w) = w else { return Ok(None) };
            match parse_u64(w) {
                Some(k) if (lo..=hi).contains(&k) => Ok(Some(k)),
                Some(_) => a.refuse(out, &who, w, &format!("outside {lo}..{hi}")).map(|_| None),
                None => a.refuse(out, &who, w, "is not a decimal kHz").map(|_| None),
            }
        };
        let n_min = range(&self.min, &w_min)?;
        let n_max = range(&self.max, &w_max)?;
        let (v_min, v_max) = decide_pair(
            (n_min, n_max),
            self.min.num(),
            self.max.num(),
            ("scaling_min_freq", "scaling_max_freq"),
        );
        for (a, w, v) in [(&mut self.max, &w_max, v_max), (&mut self.min, &w_min, v_min)] {
            match (w, v) {
                (Some(_), Some(Ok(k))) => a.accept(k.to_string())?,
                (Some(w), Some(Err(why))) => a.refuse(out, &who, w, &why)?,
                _ => {}
            }
        }

        // EPP.
        if let (Some(epp), Some(w)) = (&mut self.epp, &w_epp) {
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
                    epp.refuse(out, &who, w, &why)?;
                }
                Some(r) if r != 0 && self.governor.last == "performance" => {
                    epp.refuse(
                        out,
                        &who,
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

        // scaling_setspeed: only the userspace governor takes it.
        if let Some(w) = &w_set {
            let decimal = parse_u64(w);
            if self.governor.last != "userspace" {
                let why = format!(
                    "refused: the {} governor has no setspeed (EINVAL)",
                    self.governor.last
                );
                if let Some(a) = &self.setspeed {
                    a.refuse(out, &who, w, &why)?;
                }
            } else if let Some(k) = decimal {
                self.setspeed_khz = Some(k);
                let shown = self.setspeed_shown();
                if let Some(a) = &mut self.setspeed {
                    a.accept(shown)?;
                }
            } else if let Some(a) = &self.setspeed {
                a.refuse(out, &who, w, "is not a decimal kHz")?;
            }
        }
        let shown = self.setspeed_shown();
        if let Some(a) = &mut self.setspeed
            && a.last != shown
        {
            a.force(&shown)?;
        }

        // What the CPU runs at.
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

/// One `cpuN/cpuidle/stateK/disable`.
#[derive(Debug)]
struct IdleDisable {
    /// `cpuN stateK (NAME)`.
    who: String,
    attr: Attr,
}

/// One uncore frequency domain (`package_XX_die_YY` or TPMI `uncoreNN`).
#[derive(Debug)]
struct Uncore {
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

/// The global attributes with rules.
#[derive(Debug, Default)]
struct Globals {
    /// `cpufreq/boost`, `intel_pstate/hwp_dynamic_boost`: 0 or 1 (who, attribute).
    switches: Vec<(&'static str, Attr)>,
    /// `intel_pstate/no_turbo`: a decimal, shown as 0 or 1.
    no_turbo: Option<Attr>,
    /// `intel_pstate/{max,min}_perf_pct` and the lowest min (the hardware's).
    perf_pct: Option<(Attr, Attr, u64)>,
    /// `cpuidle/current_governor`, its choices and `current_governor_ro`.
    idle_governor: Option<(Attr, Vec<String>, PathBuf)>,
    /// What the simulator cannot do (CPU hotplug `cpuN/online`, `intel_pstate/status` and
    /// `amd_pstate/status` mode switches): every change is refused, so nobody believes it done.
    frozen: Vec<(String, Attr)>,
}

/// The rules of every writable cpufreq, cpuidle and uncore attribute of a root.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    policies: Vec<Policy>,
    idle: Vec<IdleDisable>,
    uncore: Vec<Uncore>,
    globals: Globals,
    /// What tells that nothing was written (else every call reads every attribute).
    watch: Option<Watch>,
    /// The next call reads everything whatever the watch says (the first one does, to bring
    /// the derived files in line).
    scan: bool,
}

impl Rules {
    /// Takes the attributes under `root` and their values now as the last accepted ones.
    pub fn load(root: &Path) -> Rules {
        let cpu = root.join(CPU);
        let policies = numbered(&cpu.join("cpufreq"), "policy")
            .into_iter()
            .filter_map(|(n, dir)| Policy::load(n, &dir))
            .collect();
        let mut idle = Vec::new();
        for (c, dir) in numbered(&cpu, "cpu") {
            for (k, st) in numbered(&dir.join("cpuidle"), "state") {
                let name = read_trim(&st.join("name")).unwrap_or_default();
                if let Some(attr) = Attr::load(st.join("disable")) {
                    idle.push(IdleDisable { who: format!("cpu{c} state{k} ({name})"), attr });
                }
            }
        }
        let udir = root.join(UNCORE);
        let mut names: Vec<String> = std::fs::read_dir(&udir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        let tpmi = names.iter().any(|n| n.starts_with("uncore"));
        let uncore = names.iter().filter_map(|n| Uncore::load(n, &udir.join(n), tpmi)).collect();
        let perf_floor = {
            let p0 = cpu.join("cpufreq/policy0");
            match (read_num(&p0.join("cpuinfo_min_freq")), read_num(&p0.join("cpuinfo_max_freq"))) {
                (Some(lo), Some(hi)) if hi > 0 => lo * 100 / hi,
                _ => 0,
            }
        };
        let pstate = cpu.join("intel_pstate");
        let globals = Globals {
            switches: [
                ("cpufreq", "cpufreq/boost"),
                ("intel_pstate", "intel_pstate/hwp_dynamic_boost"),
            ]
            .into_iter()
            .filter_map(|(who, f)| Some((who, Attr::load(cpu.join(f))?)))
            .collect(),
            no_turbo: Attr::load(pstate.join("no_turbo")),
            perf_pct: Attr::load(pstate.join("max_perf_pct"))
                .zip(Attr::load(pstate.join("min_perf_pct")))
                .map(|(max, min)| (max, min, perf_floor)),
            idle_governor: Attr::load(cpu.join("cpuidle/current_governor")).map(|a| {
                let choices = read_trim(&cpu.join("cpuidle/available_governors"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                (a, choices, cpu.join("cpuidle/current_governor_ro"))
            }),
            frozen: numbered(&cpu, "cpu")
                .into_iter()
                .map(|(c, d)| (format!("cpu{c}"), d.join("online")))
                .chain(
                    ["intel_pstate", "amd_pstate"]
                        .map(|d| (d.to_string(), cpu.join(d).join("status"))),
                )
                .filter_map(|(who, path)| Some((who, Attr::load(path)?)))
                .collect(),
        };
        let mut rules = Rules { policies, idle, uncore, globals, watch: None, scan: true };
        let dirs: BTreeSet<PathBuf> =
            rules.attrs().filter_map(|a| a.path.parent().map(Path::to_path_buf)).collect();
        rules.watch = watch_dirs(&dirs);
        rules
    }

    /// Every attribute with rules.
    fn attrs(&self) -> impl Iterator<Item = &Attr> {
        let p = self.policies.iter().flat_map(|p| {
            [Some(&p.min), Some(&p.max), Some(&p.governor), p.epp.as_ref(), p.setspeed.as_ref()]
                .into_iter()
                .flatten()
        });
        let i = self.idle.iter().map(|d| &d.attr);
        let u = self.uncore.iter().flat_map(|u| [&u.min, &u.max].into_iter().chain(&u.elc));
        let g = &self.globals;
        let g = g
            .switches
            .iter()
            .map(|(_, a)| a)
            .chain(&g.no_turbo)
            .chain(g.perf_pct.iter().flat_map(|(a, b, _)| [a, b]))
            .chain(g.idle_governor.iter().map(|(a, _, _)| a))
            .chain(g.frozen.iter().map(|(_, a)| a));
        p.chain(i).chain(u).chain(g)
    }

    /// Checks every attribute whose file changed since the last call; returns one line per
    /// refused write (each restored in place).
    pub fn enforce(&mut self) -> Result<Vec<String>, SimError> {
        let mut out = Vec::new();
        // Drain the watch first: a write landing during the scan shows at the next call.
        let changed = self.watch.as_ref().is_none_or(Watch::changed);
        if !std::mem::take(&mut self.scan) && !changed {
            return Ok(out);
        }
        for p in &mut self.policies {
            p.enforce(&mut out)?;
        }
        for d in &mut self.idle {
            if let Some(w) = d.attr.written() {
                match kstrtobool(&w) {
                    Some(b) => d.attr.accept(u8::from(b).to_string())?,
                    None => d.attr.refuse(&mut out, &d.who, &w, "is not 0 or 1 (EINVAL)")?,
                }
            }
        }
        self.enforce_uncore(&mut out)?;
        self.enforce_globals(&mut out)?;
        Ok(out)
    }

    fn enforce_uncore(&mut self, out: &mut Vec<String>) -> Result<(), SimError> {
        // What was written, before package-level writes propagate to the clusters.
        let pending: Vec<Pending> = self
            .uncore
            .iter()
            .map(|u| (u.min.written(), u.max.written(), u.elc.iter().map(Attr::written).collect()))
            .collect();
        let order: Vec<usize> = (0..self.uncore.len())
            .filter(|&i| self.uncore[i].root)
            .chain((0..self.uncore.len()).filter(|&i| !self.uncore[i].root))
            .collect();
        for i in order {
            let (w_min, w_max, w_elc) = &pending[i];
            let u = &self.uncore[i];
            let who = u.name.clone();
            let (lo, hi) = (u.lo, u.hi);
            // The clusters a package-level entry passes its writes on to.
            let members: Vec<usize> = if u.root {
                (0..self.uncore.len())
                    .filter(|&j| {
                        let m = &self.uncore[j];
                        !m.root && m.name.starts_with("uncore") && m.package == u.package
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let range = |a: &Attr, w: &Option<String>, out: &mut Vec<String>| {
                let Some(w) = w else { return Ok(None) };
                match parse_u64(w) {
                    Some(k) if (lo..=hi).contains(&k) => {
                        Ok(Some(k / UNCORE_STEP_KHZ * UNCORE_STEP_KHZ))
                    }
                    Some(_) => a.refuse(out, &who, w, &format!("outside {lo}..{hi}")).map(|_| None),
                    None => a.refuse(out, &who, w, "is not a decimal kHz").map(|_| None),
                }
            };
            let n_min = range(&u.min, w_min, out)?;
            let n_max = range(&u.max, w_max, out)?;
            let floor =
                members.iter().map(|&j| self.uncore[j].min.num()).fold(u.min.num(), u64::max);
            let ceiling =
                members.iter().map(|&j| self.uncore[j].max.num()).fold(u.max.num(), u64::min);
            let (v_min, v_max) =
                decide_pair((n_min, n_max), floor, ceiling, ("min_freq_khz", "max_freq_khz"));
            for (is_max, w, v) in [(true, w_max, v_max), (false, w_min, v_min)] {
                let (Some(w), Some(v)) = (w, v) else { continue };
                let u = &mut self.uncore[i];
                let a = if is_max { &mut u.max } else { &mut u.min };
                match v {
                    Ok(k) => {
                        a.accept(k.to_string())?;
                        for &j in &members {
                            let m = &mut self.uncore[j];
                            let a = if is_max { &mut m.max } else { &mut m.min };
                            a.force(&k.to_string())?;
                        }
                    }
                    Err(why) => a.refuse(out, &who, w, &why)?,
                }
            }
            for (k, w) in w_elc.iter().enumerate() {
                let Some(w) = w else { continue };
                let u = &self.uncore[i];
                let name = u.elc[k].name();
                match u.check_elc(&name, w) {
                    Ok(shown) => {
                        self.uncore[i].elc[k].accept(shown.clone())?;
                        for &j in &members {
                            if let Some(a) =
                                self.uncore[j].elc.iter_mut().find(|a| a.name() == name)
                            {
                                a.force(&shown)?;
                            }
                        }
                    }
                    Err(why) => u.elc[k].refuse(out, &who, w, &why)?,
                }
            }
        }
        for u in &mut self.uncore {
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

    fn enforce_globals(&mut self, out: &mut Vec<String>) -> Result<(), SimError> {
        let g = &mut self.globals;
        for (who, a) in &mut g.switches {
            if let Some(w) = a.written() {
                match parse_u64(&w) {
                    Some(v @ (0 | 1)) => a.accept(v.to_string())?,
                    _ => a.refuse(out, who, &w, "is not 0 or 1 (EINVAL)")?,
                }
            }
        }
        for (who, a) in &g.frozen {
            if let Some(w) = a.written() {
                a.refuse(out, who, &w, "refused: the simulator does not do this")?;
            }
        }
        if let Some(a) = &mut g.no_turbo
            && let Some(w) = a.written()
        {
            match parse_u64(&w) {
                Some(v) => a.accept(u8::from(v != 0).to_string())?,
                None => a.refuse(out, "intel_pstate", &w, "is not a decimal number (EINVAL)")?,
            }
        }
        if let Some((max, min, floor)) = &mut g.perf_pct {
            // The kernel clamps: max into [min_perf_pct, 100], min into [floor, max_perf_pct].
            if let Some(w) = max.written() {
                match parse_u64(&w) {
                    Some(v) => {
                        let shown = v.clamp(min.num(), 100).to_string();
                        max.accept(shown)?;
                    }
                    None => {
                        max.refuse(out, "intel_pstate", &w, "is not a decimal number (EINVAL)")?
                    }
                }
            }
            if let Some(w) = min.written() {
                match parse_u64(&w) {
                    Some(v) => {
                        let shown = v.clamp((*floor).min(max.num()), max.num()).to_string();
                        min.accept(shown)?;
                    }
                    None => {
                        min.refuse(out, "intel_pstate", &w, "is not a decimal number (EINVAL)")?
                    }
                }
            }
        }
        if let Some((a, choices, ro)) = &mut g.idle_governor
            && let Some(w) = a.written()
        {
            if choices.contains(&w) {
                a.accept(w.clone())?;
                put(ro, &w)?;
            } else {
                let why = format!("not in [{}] (EINVAL)", choices.join(" "));
                a.refuse(out, "cpuidle", &w, &why)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortening_write_caught_half_way_is_judged_by_its_first_line() {
        // "performance" written in place over "balance_performance": until the writer trims the
        // file, the stale tail of the longer value follows the newline.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("energy_performance_preference");
        std::fs::write(&path, "balance_performance\n").unwrap();
        let a = Attr::load(path.clone()).unwrap();
        std::fs::write(&path, "performance\nrformance\n").unwrap();
        assert_eq!(a.written().as_deref(), Some("performance"));
    }

    #[test]
    fn a_write_landing_after_the_judgement_is_never_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("max_freq_khz");
        std::fs::write(&path, "2400000\n").unwrap();
        let mut a = Attr::load(path.clone()).unwrap();
        let read = || std::fs::read_to_string(&path).unwrap();
        // Judged (to be rounded down to 100 MHz), then written again before the rewrite.
        std::fs::write(&path, "2050000\n").unwrap();
        assert_eq!(a.written().as_deref(), Some("2050000"));
        std::fs::write(&path, "1900000\n").unwrap();
        a.accept("2000000".into()).unwrap();
        assert_eq!(read(), "1900000\n");
        // The same for a refusal, and for a value the kernel sets itself.
        std::fs::write(&path, "9000000\n").unwrap();
        let w = a.written().unwrap();
        std::fs::write(&path, "1800000\n").unwrap();
        a.refuse(&mut Vec::new(), "package_00_die_00", &w, "outside").unwrap();
        assert_eq!(read(), "1800000\n");
        a.force("1700000").unwrap();
        assert_eq!(read(), "1800000\n");
        // Untouched since judged: rewritten.
        let w = a.written().unwrap();
        assert_eq!(w, "1800000");
        a.accept("1800000".into()).unwrap();
        a.force("1700000").unwrap();
        assert_eq!(read(), "1700000\n");
    }

    #[test]
    fn current_frequencies_follow_the_governor() {
        assert_eq!(policy_cur_khz("intel_pstate", "performance", 1000, 3000, &[], None), 3000);
        assert_eq!(policy_cur_khz("intel_pstate", "powersave", 1000, 3000, &[], None), 2000);
        assert_eq!(policy_cur_khz("acpi-cpufreq", "powersave", 1000, 3000, &[], None), 1000);
        let table = [3_000_000, 2_200_000, 1_500_000];
        assert_eq!(
            policy_cur_khz("acpi-cpufreq", "schedutil", 1_500_000, 3_000_000, &table, None),
            3_000_000
        );
        assert_eq!(
            policy_cur_khz(
                "acpi-cpufreq",
                "userspace",
                1_500_000,
                3_000_000,
                &table,
                Some(1_600_000)
            ),
            2_200_000
        );
        assert_eq!(uncore_cur_khz(800_000, 2_500_000), 1_600_000);
    }

    #[test]
    fn pairs_are_decided_like_the_kernel_would_in_order() {
        let names = ("min", "max");
        // Both at once when ordered, even if max first would not be.
        assert_eq!(
            decide_pair((Some(3000), Some(3500)), 1000, 2000, names),
            (Some(Ok(3000)), Some(Ok(3500)))
        );
        // Max first, then min against the new max.
        assert_eq!(
            decide_pair((Some(2500), Some(2000)), 1000, 3000, names),
            (Some(Err("above max 2000".into())), Some(Ok(2000)))
        );
        assert_eq!(
            decide_pair((None, Some(500)), 1000, 3000, names),
            (None, Some(Err("below min 1000".into())))
        );
    }

    #[test]
    fn without_inotify_every_call_reads_everything() {
        let dir = tempfile::tempdir().unwrap();
        let pol = dir.path().join(CPU).join("cpufreq/policy0");
        std::fs::create_dir_all(&pol).unwrap();
        for (f, v) in [
            ("related_cpus", "0"),
            ("affected_cpus", "0"),
            ("scaling_driver", "intel_pstate"),
            ("cpuinfo_min_freq", "1000000"),
            ("cpuinfo_max_freq", "3000000"),
            ("scaling_available_governors", "performance powersave"),
            ("scaling_min_freq", "1000000"),
            ("scaling_max_freq", "3000000"),
            ("scaling_governor", "powersave"),
            ("scaling_cur_freq", "2000000"),
        ] {
            std::fs::write(pol.join(f), format!("{v}\n")).unwrap();
        }
        let mut rules = Rules::load(dir.path());
        assert!(rules.watch.is_some(), "inotify works here");
        assert!(rules.enforce().unwrap().is_empty());
        rules.watch = None;
        std::fs::write(pol.join("scaling_max_freq"), "4000000").unwrap();
        let e = rules.enforce().unwrap();
        assert_eq!(e, ["cpu0 scaling_max_freq 4000000 outside 1000000..3000000: restored 3000000"]);
        assert_eq!(std::fs::read_to_string(pol.join("scaling_max_freq")).unwrap(), "3000000\n");
    }

    #[test]
    fn booleans_follow_kstrtobool() {
        for (v, b) in [("1", true), ("y", true), ("on", true), ("0", false), ("N", false)] {
            assert_eq!(kstrtobool(v), Some(b), "{v}");
        }
        for v in ["2", "", "o", "true", "-1"] {
            assert_eq!(kstrtobool(v), None, "{v}");
        }
    }
}
