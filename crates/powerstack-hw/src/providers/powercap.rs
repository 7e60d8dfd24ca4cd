//! Linux powercap RAPL zones (`/sys/class/powercap/intel-rapl:*`, `intel-rapl-mmio:*`,
//! `intel-rapl-tpmi:*`).
//!
//! Each entry of `/sys/class/powercap` is a symlink into `/sys/devices/.../powercap/<control type>/`.
//! A zone is identified only by its `name` file, never by its index: the kernel numbers subzones in
//! the order of the domains present, so `intel-rapl:0:0` is `core` on one machine and `dram` on
//! another, and `psys` takes whatever top-level index comes next.
//!
//! - `package-N` → package N; `package-N-die-M` → package N, die M; `psys` → the platform domain;
//! - subzones `core`, `uncore`, `dram` → core, uncore, memory of the parent zone's package (and die).
//!
//! `intel-rapl-mmio` (client processor_thermal) and `intel-rapl-tpmi` zones often mirror an
//! `intel-rapl` zone; such a duplicate is dropped so that nothing is counted twice, and the
//! `intel-rapl` zone is kept.
//!
//! Reading a sample is one `pread` of a kept-open `energy_uj` per zone, with no allocation.

use std::path::{Path, PathBuf};

use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, LimitWrite, Measurement, PowerLimit, RawEnergy,
};

use crate::error::{HwError, Warning};
use crate::file::{self, AttrFile};
use crate::provider::{Probe, Provider, Reading};
use crate::providers::ProbeContext;

/// The provider's name.
pub const NAME: &str = "powercap";

/// The RAPL control types, in order of preference when two of them expose the same domain.
const CONTROL_TYPES: [&str; 3] = ["intel-rapl", "intel-rapl-tpmi", "intel-rapl-mmio"];

/// Where a zone sits in the powercap tree, from its directory name (`intel-rapl:0:1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneAddr {
    /// The control type (`intel-rapl`, `intel-rapl-mmio`, `intel-rapl-tpmi`).
    pub control_type: String,
    /// The top-level zone number (`0` in `intel-rapl:0:1`).
    pub zone: u32,
    /// The subzone number, for subzones (`1` in `intel-rapl:0:1`).
    pub subzone: Option<u32>,
}

impl ZoneAddr {
    /// Parses a powercap zone directory name (`intel-rapl:0`, `intel-rapl-mmio:0:1`). The control
    /// type directory itself (`intel-rapl`) and anything deeper than a subzone are not zones.
    pub fn parse(dir_name: &str) -> Option<ZoneAddr> {
        let mut parts = dir_name.split(':');
        let control_type = parts.next()?.to_string();
        let zone = parts.next()?.parse().ok()?;
        let subzone = match parts.next() {
            Some(s) => Some(s.parse().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(ZoneAddr { control_type, zone, subzone })
    }

    /// The directory name of the parent zone, for a subzone (`intel-rapl:0` for `intel-rapl:0:1`).
    pub fn parent_dir_name(&self) -> Option<String> {
        self.subzone.map(|_| format!("{}:{}", self.control_type, self.zone))
    }
}

/// What a zone's `name` says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneName {
    /// `package-N` or `package-N-die-M`.
    Package {
        /// The package (socket) number.
        package: u32,
        /// The die, on multi-die packages.
        die: Option<u32>,
    },
    /// `psys`: the platform domain.
    Platform,
    /// A subzone (`core`, `uncore`, `dram`) of the given kind; its socket is its parent's.
    Sub(DomainKind),
}

impl ZoneName {
    /// Parses the content of a zone's `name` file; `None` for names this provider does not know.
    pub fn parse(name: &str) -> Option<ZoneName> {
        match name {
            "psys" => return Some(ZoneName::Platform),
            "core" => return Some(ZoneName::Sub(DomainKind::Core)),
            "uncore" => return Some(ZoneName::Sub(DomainKind::Uncore)),
            "dram" => return Some(ZoneName::Sub(DomainKind::Memory)),
            _ => {}
        }
        let rest = name.strip_prefix("package-")?;
        let (package, die) = match rest.split_once("-die-") {
            Some((p, d)) => (p, Some(d.parse().ok()?)),
            None => (rest, None),
        };
        Some(ZoneName::Package { package: package.parse().ok()?, die })
    }
}

/// Maps a zone's name (and, for subzones, its parent zone's name) to a domain. Errors are one line
/// for a warning.
pub fn domain_of(name: &str, parent_name: Option<&str>) -> Result<DomainId, String> {
    let known = "expected package-N, package-N-die-M, psys, core, uncore or dram";
    match ZoneName::parse(name) {
        Some(ZoneName::Package { package, die }) => {
            Ok(DomainId { kind: DomainKind::Package, index: package, die })
        }
        Some(ZoneName::Platform) => Ok(DomainId::new(DomainKind::Platform, 0)),
        Some(ZoneName::Sub(kind)) => {
            let Some(parent) = parent_name else {
                return Err(format!(
                    "a top-level zone is named {name:?}, which names a subzone of a package"
                ));
            };
            match ZoneName::parse(parent) {
                Some(ZoneName::Package { package, die }) => {
                    Ok(DomainId { kind, index: package, die })
                }
                _ => Err(format!(
                    "the {name:?} subzone's parent zone is named {parent:?}, not package-N"
                )),
            }
        }
        None => Err(format!("unknown zone name {name:?} ({known})")),
    }
}

/// One zone kept for sampling.
#[derive(Debug)]
struct Zone {
    dir: PathBuf,
    energy: AttrFile,
    /// `max_energy_range_uj`: the largest value the counter shows; one above it is no reading.
    max_range_uj: u64,
    /// The constraint numbers (`X` of `constraint_X_*`), sorted.
    constraints: Vec<u32>,
}

/// The powercap provider: one kept-open `energy_uj` per zone.
struct Powercap {
    domains: Vec<DomainInfo>,
    zones: Vec<Zone>,
}

impl Provider for Powercap {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }

    fn reopen_replaced(&mut self) -> Vec<usize> {
        file::reopen_replaced(self.zones.iter_mut().map(|z| &mut z.energy))
    }

    fn read(&mut self, out: &mut [Reading]) {
        for (slot, zone) in out.iter_mut().zip(&self.zones) {
            *slot = match zone.energy.read_u64() {
                Ok(uj) if uj <= zone.max_range_uj => Reading::Energy(RawEnergy::new(uj)),
                Ok(uj) => Reading::Failed(beyond_range(zone, uj)),
                Err(e) => Reading::Failed(e),
            };
        }
    }

    fn write_limit(&mut self, index: usize, write: &LimitWrite) -> Result<(), HwError> {
        let (Some(info), Some(zone)) = (self.domains.get(index), self.zones.get(index)) else {
            return Err(HwError::Unsupported { provider: NAME, what: format!("domain #{index}") });
        };
        let what = format!("{} {}", info.id, write.constraint);
        let Some(&number) = zone.constraints.iter().find(|&&c| {
            file::read_trimmed(
                &zone.dir.join(format!("constraint_{c}_name")),
                "powercap constraint",
            )
            .is_ok_and(|name| name == write.constraint)
        }) else {
            return Err(HwError::Unsupported { provider: NAME, what });
        };
        let attr = |a: &str| zone.dir.join(format!("constraint_{number}_{a}"));
        let limit_path = attr("power_limit_uw");
        if !file::is_writable(&limit_path) {
            return Err(HwError::Locked {
                what,
                why: format!("{} is read-only", limit_path.display()),
            });
        }
        if !(write.limit_watts.is_finite() && write.limit_watts >= 0.0) {
            return Err(HwError::Refused {
                what,
                value: write.limit_watts.to_string(),
                detail: "not a power".into(),
            });
        }
        // The window first, so the new limit never applies over a stale window; the enable last.
        if let Some(window_s) = write.time_window_s {
            let us = (window_s * 1e6).round() as u64;
            file::write_attr(&attr("time_window_us"), &us.to_string(), "powercap constraint")?;
        }
        let uw = (write.limit_watts * 1e6).round() as u64;
        file::write_attr(&limit_path, &uw.to_string(), "powercap constraint")?;
        if let (Some(enabled), 0) = (write.enabled, number) {
            file::write_attr(
                &zone.dir.join("enabled"),
                if enabled { "1" } else { "0" },
                "powercap zone",
            )?;
        }
        let limits = read_limits(&zone.dir, &zone.constraints)?;
        self.domains[index].limits = limits;
        Ok(())
    }

    fn refresh_limits(&mut self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for (info, zone) in self.domains.iter_mut().zip(&self.zones) {
            match read_limits(&zone.dir, &zone.constraints) {
                Ok(limits) => info.limits = limits,
                Err(e) => warnings.push(Warning::new(
                    NAME,
                    format!(
                        "{}: limits not refreshed, keeping the last known values: {e}",
                        info.id
                    ),
                )),
            }
        }
        warnings
    }
}

/// The error of a zone whose counter shows more than its range: not a value it can hold.
#[cold]
fn beyond_range(zone: &Zone, uj: u64) -> HwError {
    HwError::malformed(
        zone.energy.path(),
        format!(
            "{uj} is above the counter's range ({} in max_energy_range_uj): not a reading (a driver or firmware fault)",
            zone.max_range_uj
        ),
    )
}

/// A zone found in the class directory, before duplicates are resolved.
struct Candidate {
    /// Position of the control type in [`CONTROL_TYPES`].
    rank: usize,
    dir_name: String,
    info: DomainInfo,
    zone: Zone,
}

/// Probes `/sys/class/powercap` under the root.
pub fn probe(ctx: &ProbeContext<'_>) -> Probe {
    let class = ctx.root.path("/sys/class/powercap");
    let mut warnings = Vec::new();
    let entries = match file::list_dir(&class) {
        Ok(e) => e,
        Err(e) => {
            return Probe::none(vec![Warning::new(
                NAME,
                format!("cannot list powercap zones: {e}"),
            )]);
        }
    };
    let rapl_zones: Vec<_> = entries
        .iter()
        .filter_map(|(dir_name, path)| {
            let addr = ZoneAddr::parse(dir_name)?;
            let rank = CONTROL_TYPES.iter().position(|c| *c == addr.control_type)?;
            Some((dir_name, path, addr, rank))
        })
        .collect();
    if rapl_zones.is_empty() {
        return Probe::absent(format!(
            "no RAPL zone under {}: the intel_rapl_msr driver (Intel and AMD) is not loaded, or the node (a VM) has none",
            class.display()
        ));
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    for (dir_name, path, addr, rank) in rapl_zones {
        match probe_zone(&class, dir_name, path, &addr) {
            Ok((info, zone, limit_warning)) => {
                warnings.extend(limit_warning);
                candidates.push(Candidate { rank, dir_name: dir_name.clone(), info, zone })
            }
            Err(w) => warnings.push(w),
        }
    }
    // Preferred control type first, then zone directory order, so the kept zone is deterministic.
    candidates.sort_by(|a, b| (a.rank, &a.dir_name).cmp(&(b.rank, &b.dir_name)));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if let Some(k) = kept.iter().find(|k| k.info.id == c.info.id) {
            // An mmio/tpmi mirror of an intel-rapl zone is expected and dropped quietly; two zones
            // of one control type with one name are not.
            if k.rank == c.rank {
                warnings.push(Warning::new(
                    NAME,
                    format!(
                        "zones {} and {} are both {}; using {} only",
                        k.dir_name, c.dir_name, c.info.id, k.dir_name
                    ),
                ));
            }
            continue;
        }
        kept.push(c);
    }
    kept.sort_by_key(|c| c.info.id);
    if kept.is_empty() {
        return Probe::none(warnings);
    }
    let (domains, zones) = kept.into_iter().map(|c| (c.info, c.zone)).unzip();
    Probe { provider: Some(Box::new(Powercap { domains, zones })), warnings, absent: None }
}

/// Reads a zone's `name` file.
fn zone_name(dir: &Path) -> Result<String, HwError> {
    file::read_trimmed(&dir.join("name"), "powercap zone name")
}

/// The name of a subzone's parent zone: through the class directory entry of the parent id, else
/// the parent directory of the resolved subzone directory.
fn parent_zone_name(class: &Path, path: &Path, addr: &ZoneAddr) -> Result<String, HwError> {
    let by_id = addr.parent_dir_name().map(|p| class.join(p));
    if let Some(dir) = &by_id
        && let Ok(name) = zone_name(dir)
    {
        return Ok(name);
    }
    let resolved =
        std::fs::canonicalize(path).map_err(|e| HwError::from_io(path, e, "powercap zone"))?;
    match resolved.parent() {
        Some(parent) => zone_name(parent),
        None => Err(HwError::Vanished { path: by_id.unwrap_or_else(|| path.to_path_buf()) }),
    }
}

/// Opens one zone. A zone that cannot be used is a one-line warning; a zone whose limits cannot be
/// read is kept, with a warning saying so.
fn probe_zone(
    class: &Path,
    dir_name: &str,
    path: &Path,
    addr: &ZoneAddr,
) -> Result<(DomainInfo, Zone, Option<Warning>), Warning> {
    let skip = |why: String| Warning::new(NAME, format!("zone {dir_name} skipped: {why}"));
    let unreadable =
        |why: String| Warning::unreadable(NAME, format!("zone {dir_name} skipped: {why}"));
    let name = zone_name(path).map_err(|e| skip(e.to_string()))?;
    let parent = match addr.subzone {
        Some(_) => Some(
            parent_zone_name(class, path, addr).map_err(|e| skip(format!("parent zone: {e}")))?,
        ),
        None => None,
    };
    let id = domain_of(&name, parent.as_deref()).map_err(skip)?;

    let energy = AttrFile::open(path.join("energy_uj"), "energy_uj")
        .map_err(|e| unreadable(e.to_string()))?;
    energy.read_u64().map_err(|e| unreadable(e.to_string()))?;
    let range_path = path.join("max_energy_range_uj");
    let max_range_uj = file::read_u64_once(&range_path, "max_energy_range_uj").map_err(|e| {
        unreadable(format!("{e} (the counter's wrap point is needed to extend it)"))
    })?;
    if max_range_uj == 0 {
        return Err(unreadable(format!(
            "{} is 0, so the counter's wrap point is unknown",
            range_path.display()
        )));
    }

    let constraints = list_constraints(path);
    let (limits, limit_warning) = match read_limits(path, &constraints) {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(Warning::new(NAME, format!("{id}: limits not reported: {e}")))),
    };
    let socket = match id.kind {
        DomainKind::Package | DomainKind::Core | DomainKind::Uncore | DomainKind::Memory => {
            Some(id.index)
        }
        DomainKind::Node | DomainKind::Platform | DomainKind::Gpu => None,
    };
    let info = DomainInfo {
        id,
        provider: NAME,
        source: dir_name.to_string(),
        measurement: Measurement::Energy(CounterSpec::microjoules_wrapping_at(max_range_uj)),
        limits,
        socket,
        label: Some(name),
    };
    Ok((info, Zone { dir: path.to_path_buf(), energy, max_range_uj, constraints }, limit_warning))
}

/// The constraint numbers of a zone (`constraint_X_name` files), sorted.
fn list_constraints(dir: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = file::list_dir(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|(name, _)| {
            name.strip_prefix("constraint_")?.strip_suffix("_name")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Reads an informational constraint attribute: absent, unreadable (RAPL answers EIO/ENODATA for
/// some, e.g. `max_power_uw` on `psys`) or 0 all mean unknown.
fn optional_u64(path: &Path, hint: &'static str) -> Option<u64> {
    file::read_u64_opt(path, hint).ok().flatten().filter(|&v| v != 0)
}

/// The kernel's RAPL time unit, µs: `1000000 / 2^10` in integer arithmetic (the unit in
/// `MSR_RAPL_POWER_UNIT`, 2^-10 s on every Intel and AMD part so far; powercap does not show it).
const KERNEL_TIME_UNIT_US: f64 = 976.0;

/// The windows a RAPL constraint can hold through powercap: the kernel rounds `time_window_us`
/// down to `2^Y × (1 + Z/4)` time units, and reads a window back correctly only up to `Y = 30`
/// (it shifts a 32-bit int); `constraint_N_max_time_window_us`, where a driver provides it, bounds
/// it further.
fn kernel_rapl_windows(attr: &dyn Fn(&str) -> PathBuf) -> powerstack_model::TimeWindows {
    let unit_s = KERNEL_TIME_UNIT_US / 1e6;
    let kernel_max_s = 2f64.powi(30) * 1.75 * unit_s;
    let reported_s =
        optional_u64(&attr("max_time_window_us"), "powercap constraint").map(|us| us as f64 / 1e6);
    let max_s = reported_s.map_or(kernel_max_s, |r| r.min(kernel_max_s));
    powerstack_model::TimeWindows::rapl(unit_s, Some(max_s))
}

/// Reads every constraint of a zone. The limit itself must be readable; the rest is optional.
fn read_limits(dir: &Path, constraints: &[u32]) -> Result<Vec<PowerLimit>, HwError> {
    let mut limits = Vec::with_capacity(constraints.len());
    for &index in constraints {
        let attr = |what: &str| dir.join(format!("constraint_{index}_{what}"));
        let name = file::read_trimmed(&attr("name"), "powercap constraint")?;
        let limit_path = attr("power_limit_uw");
        let limit_uw = file::read_u64_once(&limit_path, "powercap constraint")?;
        let enabled = if index == 0 {
            file::read_u64_opt(&dir.join("enabled"), "powercap zone").ok().flatten().map(|v| v == 1)
        } else {
            None
        };
        let time_window_s =
            optional_u64(&attr("time_window_us"), "powercap constraint").map(|us| us as f64 / 1e6);
        limits.push(PowerLimit {
            name,
            limit_watts: Some(limit_uw as f64 / 1e6),
            min_watts: optional_u64(&attr("min_power_uw"), "powercap constraint")
                .map(|uw| uw as f64 / 1e6),
            max_watts: optional_u64(&attr("max_power_uw"), "powercap constraint")
                .map(|uw| uw as f64 / 1e6),
            default_watts: None,
            time_window_s,
            time_windows: time_window_s.map(|_| kernel_rapl_windows(&attr)),
            enabled,
            locked: !file::is_writable(&limit_path),
        });
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_directory_names_parse_and_name_their_parent() {
        let a = ZoneAddr::parse("intel-rapl:0:1").unwrap();
        assert_eq!(a, ZoneAddr { control_type: "intel-rapl".into(), zone: 0, subzone: Some(1) });
        assert_eq!(a.parent_dir_name().as_deref(), Some("intel-rapl:0"));
        let m = ZoneAddr::parse("intel-rapl-mmio:0").unwrap();
        assert_eq!((m.control_type.as_str(), m.zone, m.subzone), ("intel-rapl-mmio", 0, None));
        assert_eq!(m.parent_dir_name(), None);
        for bad in
            ["intel-rapl", "intel-rapl:", "intel-rapl:x", "intel-rapl:0:1:2", "intel-rapl:0:"]
        {
            assert_eq!(ZoneAddr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn zone_names_map_to_domains() {
        let pkg = |i| DomainId::new(DomainKind::Package, i);
        assert_eq!(domain_of("package-1", None), Ok(pkg(1)));
        assert_eq!(
            domain_of("package-0-die-1", None),
            Ok(DomainId { kind: DomainKind::Package, index: 0, die: Some(1) })
        );
        assert_eq!(domain_of("psys", None), Ok(DomainId::new(DomainKind::Platform, 0)));
        assert_eq!(domain_of("dram", Some("package-1")), Ok(DomainId::new(DomainKind::Memory, 1)));
        assert_eq!(domain_of("core", Some("package-0")), Ok(DomainId::new(DomainKind::Core, 0)));
        assert_eq!(
            domain_of("uncore", Some("package-0")),
            Ok(DomainId::new(DomainKind::Uncore, 0))
        );
        assert_eq!(
            domain_of("dram", Some("package-1-die-0")),
            Ok(DomainId { kind: DomainKind::Memory, index: 1, die: Some(0) })
        );
    }

    #[test]
    fn unknown_or_misplaced_names_are_errors_that_say_why() {
        assert!(domain_of("gpu", None).unwrap_err().contains("unknown zone name"));
        assert!(domain_of("package-x", None).is_err());
        assert!(domain_of("package-1-die-", None).is_err());
        assert!(domain_of("dram", None).unwrap_err().contains("top-level"));
        assert!(domain_of("dram", Some("psys")).unwrap_err().contains("parent"));
    }
}
