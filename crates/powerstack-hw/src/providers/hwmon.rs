//! Linux hwmon (`/sys/class/hwmon`): ACPI power meters, GPU drivers and AMD socket energy drivers.
//!
//! Chips are identified by their `name` attribute and their device, never by their `hwmonN` number
//! (unstable across boots). A chip's attributes are in `hwmonN/` or, for some old drivers, in
//! `hwmonN/device/`; both are looked at, `hwmonN/` first.
//!
//! Channels: `powerK_average` (else `powerK_input`) in µW, and `energyK_input`, a cumulative 64-bit
//! counter in µJ. Channels whose `powerK_enable` / `energyK_enable` reads 0 are skipped.
//!
//! | chip `name` | domain | channel |
//! |---|---|---|
//! | `power_meter` (ACPI power meter) | node | lowest power channel, else lowest energy channel |
//! | `amdgpu` | gpu-N | `power1` (average, else input), else the lowest channel |
//! | `i915`, `xe` | gpu-N | `energy1_input`, else the lowest energy, else power channel |
//! | `amd_energy`, `zenergy` | package-N | each `energyK_input` labelled `Esocket<N>` |
//!
//! GPUs are numbered in PCI address order across all GPU chips that have a usable channel, and
//! attached to the socket of their NUMA node. Other chips with power or energy channels are
//! reported as not mapped; chips without (coretemp, nvme) are ignored.
//!
//! Limits, all reported as the `cap` limit, in µW (0 means uncapped), locked when the file has no
//! write permission bit:
//!
//! - `powerK_cap` of the measured channel, with `_cap_min`, `_cap_max` and `_cap_default` (the
//!   factory default);
//! - on `i915` and `xe`, `powerK_max` (their PL1, 0 = disabled) with `powerK_max_interval` (ms) as
//!   the time window and `powerK_rated_max` (the card's rated TDP) as the maximum and default.
//!
//! [`Provider::write_limit`] writes the `cap` constraint: the value in µW (rounded) with one plain
//! write to `powerK_cap` (`powerK_max` on i915/xe; the window to `powerK_max_interval` first), then
//! reads the limit back, since the driver may clamp or round what it accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, LimitWrite, Measurement, PowerLimit, RawEnergy,
};

use crate::error::{HwError, Warning};
use crate::file::{self, AttrFile, list_dir, read_trimmed};
use crate::provider::{Probe, ProbeContext, Provider, Reading};
use crate::root::Root;
use crate::topology::CpuTopology;

/// The provider's name.
pub const NAME: &str = "hwmon";

/// Where the chips are listed, as a system path.
pub const CLASS_DIR: &str = "/sys/class/hwmon";

/// Microwatts per watt and microjoules per joule.
const MICRO: f64 = 1e6;

/// What a chip is, from its `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChipRole {
    /// A direct node meter.
    Node,
    /// A GPU; `prefer_energy` for drivers whose energy counter is the better measure.
    Gpu { prefer_energy: bool },
    /// Per-socket energy (`Esocket<N>` channels).
    SocketEnergy,
}

fn role_of(name: &str) -> Option<ChipRole> {
    match name {
        "power_meter" => Some(ChipRole::Node),
        "amdgpu" => Some(ChipRole::Gpu { prefer_energy: false }),
        "i915" | "xe" => Some(ChipRole::Gpu { prefer_energy: true }),
        "amd_energy" | "zenergy" => Some(ChipRole::SocketEnergy),
        _ => None,
    }
}

/// Splits an attribute name such as `power1_average` into (`power`, 1, `average`).
fn split_attr(attr: &str) -> Option<(&str, u32, &str)> {
    let (ty, rest) = if let Some(r) = attr.strip_prefix("power") {
        ("power", r)
    } else if let Some(r) = attr.strip_prefix("energy") {
        ("energy", r)
    } else {
        return None;
    };
    let (num, prop) = rest.split_once('_')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ty, num.parse().ok()?, prop))
}

/// One measurable channel of a chip.
#[derive(Clone, Debug)]
struct Channel {
    /// `K` of `powerK_*` / `energyK_*`.
    k: u32,
    energy: bool,
    /// The attribute read (`power1_average`, `energy1_input`).
    attr: String,
    path: PathBuf,
}

/// A chip found under `/sys/class/hwmon`.
#[derive(Debug)]
struct Chip {
    /// `hwmonN`, for messages only.
    class_name: String,
    name: String,
    /// Attribute name → path, `hwmonN/` taking precedence over `hwmonN/device/`.
    attrs: BTreeMap<String, PathBuf>,
    /// The canonical device directory, when the chip has a `device` link.
    device: Option<PathBuf>,
    /// The canonical chip directory.
    dir: PathBuf,
}

impl Chip {
    /// The device's name (a PCI address, `ACPI000D:00`), else `hwmonN`.
    fn device_name(&self) -> String {
        self.device
            .as_ref()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or(&self.class_name)
            .to_string()
    }

    /// The path chips are ordered by: the device, else the chip's attribute directory.
    fn sort_path(&self) -> PathBuf {
        self.device.clone().unwrap_or_else(|| self.dir.clone())
    }

    fn attr(&self, name: &str) -> Option<&Path> {
        self.attrs.get(name).map(PathBuf::as_path)
    }

    /// Whether the chip has any power or energy channel (enabled or not).
    fn has_power_or_energy(&self) -> bool {
        self.attrs.keys().any(|a| {
            matches!(
                split_attr(a),
                Some(("power", _, "average" | "input")) | Some(("energy", _, "input"))
            )
        })
    }

    fn is_enabled(&self, ty: &str, k: u32) -> bool {
        match self.attr(&format!("{ty}{k}_enable")) {
            Some(p) => !matches!(read_trimmed(p, "hwmon enable").as_deref(), Ok("0")),
            None => true,
        }
    }

    /// The enabled power channels (average preferred over input), then the enabled energy
    /// channels, each sorted by `K`.
    fn channels(&self) -> (Vec<Channel>, Vec<Channel>) {
        let mut power: BTreeMap<u32, Channel> = BTreeMap::new();
        let mut energy = Vec::new();
        for (attr, path) in &self.attrs {
            let ch = |k, energy| Channel { k, energy, attr: attr.clone(), path: path.clone() };
            match split_attr(attr) {
                Some(("power", k, "average")) => {
                    power.insert(k, ch(k, false));
                }
                Some(("power", k, "input")) => {
                    power.entry(k).or_insert_with(|| ch(k, false));
                }
                Some(("energy", k, "input")) => energy.push(ch(k, true)),
                _ => {}
            }
        }
        let power: Vec<Channel> =
            power.into_values().filter(|c| self.is_enabled("power", c.k)).collect();
        energy.retain(|c| self.is_enabled("energy", c.k));
        energy.sort_by_key(|c| c.k);
        (power, energy)
    }

    fn label(&self, ch: &Channel) -> Option<String> {
        let ty = if ch.energy { "energy" } else { "power" };
        let p = self.attr(&format!("{ty}{}_label", ch.k))?;
        read_trimmed(p, "hwmon label").ok().filter(|s| !s.is_empty())
    }

    /// The cap files of channel `k`: `powerK_cap` and its range, or (`i915`, `xe`) `powerK_max`
    /// with its interval and rated maximum.
    fn cap_files(&self, k: u32) -> Option<CapFiles> {
        let get = |suffix: &str| self.attr(&format!("power{k}_{suffix}")).map(Path::to_path_buf);
        if matches!(self.name.as_str(), "i915" | "xe") {
            let rated = get("rated_max");
            return Some(CapFiles {
                style: CapStyle::Max,
                cap: get("max")?,
                min: None,
                max: rated.clone(),
                default: rated,
                interval: get("max_interval"),
            });
        }
        Some(CapFiles {
            style: CapStyle::Cap,
            cap: get("cap")?,
            min: get("cap_min"),
            max: get("cap_max"),
            default: get("cap_default"),
            interval: None,
        })
    }
}

/// Reads one chip directory (following the class symlink). `None` with a warning when it has no
/// `name`.
fn read_chip(class_name: &str, path: &Path, warnings: &mut Vec<Warning>) -> Option<Chip> {
    let mut attrs = BTreeMap::new();
    let device_dir = path.join("device");
    for dir in [device_dir.as_path(), path] {
        if let Ok(entries) = list_dir(dir) {
            for (name, p) in entries {
                if name == "name" || split_attr(&name).is_some() {
                    attrs.insert(name, p);
                }
            }
        }
    }
    let name = match attrs.get("name").map(|p| read_trimmed(p, "hwmon name")) {
        Some(Ok(n)) if !n.is_empty() => n,
        _ => {
            warnings.push(Warning::new(
                NAME,
                format!("{} has no readable name attribute; skipped (its driver does not follow the hwmon ABI)", path.display()),
            ));
            return None;
        }
    };
    let device = std::fs::canonicalize(&device_dir).ok().filter(|d| d.is_dir());
    let dir = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Some(Chip { class_name: class_name.to_string(), name, attrs, device, dir })
}

/// Which attribute holds a chip's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CapStyle {
    /// `powerK_cap` (ACPI power meter, amdgpu): 0 = uncapped.
    Cap,
    /// `powerK_max` (i915, xe: PL1): 0 = disabled.
    Max,
}

/// The `cap` limit files of one channel.
#[derive(Clone, Debug)]
struct CapFiles {
    style: CapStyle,
    /// `powerK_cap` or `powerK_max`, µW, the file written.
    cap: PathBuf,
    min: Option<PathBuf>,
    /// `powerK_cap_max`, or `powerK_rated_max`.
    max: Option<PathBuf>,
    /// `powerK_cap_default`, or `powerK_rated_max`.
    default: Option<PathBuf>,
    /// `powerK_max_interval`, ms (i915, xe).
    interval: Option<PathBuf>,
}

/// The attribute name of a path, for messages.
fn attr_name(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("attribute").to_string()
}

impl CapFiles {
    fn read(&self) -> Result<PowerLimit, HwError> {
        let hint = "hwmon power cap";
        let watts = |p: &Path| file::read_u64_once(p, hint).map(|uw| uw as f64 / MICRO);
        let opt = |p: &Option<PathBuf>| p.as_deref().map(watts).transpose();
        let limit = watts(&self.cap)?;
        let (max, default) = match self.style {
            CapStyle::Cap => (opt(&self.max)?, opt(&self.default)?),
            // A rated maximum of 0 is unknown.
            CapStyle::Max => {
                let rated = opt(&self.max)?.filter(|w| *w > 0.0);
                (rated, rated)
            }
        };
        let time_window_s = self
            .interval
            .as_deref()
            .map(|p| file::read_u64_once(p, hint).map(|ms| ms as f64 / 1e3))
            .transpose()?;
        Ok(PowerLimit {
            name: "cap".to_string(),
            limit_watts: (limit > 0.0).then_some(limit),
            min_watts: opt(&self.min)?,
            max_watts: max,
            default_watts: default,
            time_window_s,
            time_windows: None,
            enabled: (self.style == CapStyle::Max).then_some(limit > 0.0),
            locked: !file::is_writable(&self.cap),
        })
    }

    /// Writes `value` to `path`, naming the domain and the value in a refusal.
    fn write(path: &Path, what: &str, value: u64, unit: &str) -> Result<(), HwError> {
        file::write_attr(path, &value.to_string(), "hwmon power cap").map_err(|e| match e {
            HwError::Refused { detail, .. } => HwError::Refused {
                what: format!("{what} ({})", path.display()),
                value: format!("{value} {unit}"),
                detail,
            },
            other => other,
        })
    }
}

/// A domain being assembled during the probe.
struct Candidate {
    id: DomainId,
    chip_index: usize,
    channel: Channel,
    socket: Option<u32>,
    label: Option<String>,
}

/// One measured domain: the kept-open file it is read from.
#[derive(Debug)]
struct Slot {
    file: AttrFile,
    energy: bool,
    cap: Option<CapFiles>,
}

/// The hwmon provider.
#[derive(Debug)]
pub struct Hwmon {
    domains: Vec<DomainInfo>,
    slots: Vec<Slot>,
}

/// The socket (package) of a device: see [`crate::numa::socket_of_device`].
fn socket_of(root: &Root, topology: &CpuTopology, device: Option<&Path>) -> Option<u32> {
    crate::numa::socket_of_device(root, topology, device?)
}

/// Whether a device directory's name is a PCI address (`0000:03:00.0`).
fn pci_address(device: &Path) -> Option<&str> {
    let name = device.file_name()?.to_str()?;
    let b = name.as_bytes();
    let ok = b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && name.chars().enumerate().all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit());
    ok.then_some(name)
}

impl Hwmon {
    /// Probes the hwmon chips under `root`. `None` when no chip maps to a domain; the warnings say
    /// what could not be used.
    pub fn open(root: &Root, topology: &CpuTopology) -> (Option<Hwmon>, Vec<Warning>) {
        let mut warnings = Vec::new();
        let class = root.path(CLASS_DIR);
        let entries = match list_dir(&class) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(Warning::new(NAME, e.to_string()));
                return (None, warnings);
            }
        };
        let mut chips: Vec<Chip> = entries
            .iter()
            .filter_map(|(class_name, path)| read_chip(class_name, path, &mut warnings))
            .collect();
        chips.sort_by_key(Chip::sort_path);

        let mut nodes: Vec<Candidate> = Vec::new();
        let mut packages: Vec<Candidate> = Vec::new();
        let mut gpus: Vec<Candidate> = Vec::new();
        for (ci, chip) in chips.iter().enumerate() {
            let Some(role) = role_of(&chip.name) else {
                if chip.has_power_or_energy() {
                    warnings.push(Warning::new(
                        NAME,
                        format!(
                            "chip {} ({}) has power or energy channels but is not mapped to a domain; ignored",
                            chip.name,
                            chip.device_name()
                        ),
                    ));
                }
                continue;
            };
            let (power, energy) = chip.channels();
            let candidate = |id, channel: Channel| Candidate {
                id,
                chip_index: ci,
                label: chip.label(&channel),
                channel,
                socket: None,
            };
            match role {
                ChipRole::Node => {
                    let pick = power.into_iter().next().or_else(|| energy.into_iter().next());
                    if let Some(ch) = pick {
                        nodes.push(candidate(DomainId::NODE, ch));
                    }
                }
                ChipRole::Gpu { prefer_energy } => {
                    let pick = if prefer_energy {
                        energy.into_iter().next().or_else(|| power.into_iter().next())
                    } else {
                        power.into_iter().next().or_else(|| energy.into_iter().next())
                    };
                    if let Some(ch) = pick {
                        let mut c = candidate(DomainId::new(DomainKind::Gpu, 0), ch);
                        c.socket = socket_of(root, topology, chip.device.as_deref());
                        gpus.push(c);
                    }
                }
                ChipRole::SocketEnergy => {
                    for ch in energy {
                        let Some(label) = chip.label(&ch) else { continue };
                        let Some(n) =
                            label.strip_prefix("Esocket").and_then(|n| n.parse::<u32>().ok())
                        else {
                            continue;
                        };
                        let mut c = candidate(DomainId::new(DomainKind::Package, n), ch);
                        c.socket = Some(n);
                        packages.push(c);
                    }
                }
            }
        }

        // One node meter: the first by device path.
        if nodes.len() > 1 {
            let kept = source(&chips[nodes[0].chip_index], &nodes[0].channel);
            for other in nodes.drain(1..) {
                warnings.push(Warning::new(
                    NAME,
                    format!(
                        "a second node power meter {} is ignored; using {kept}",
                        source(&chips[other.chip_index], &other.channel)
                    ),
                ));
            }
        }
        // Packages: one per socket.
        packages.sort_by_key(|c| c.id);
        let mut seen = Vec::new();
        packages.retain(|c| {
            if seen.contains(&c.id) {
                warnings.push(Warning::new(
                    NAME,
                    format!(
                        "{} is reported by two chips; ignoring {}",
                        c.id,
                        source(&chips[c.chip_index], &c.channel)
                    ),
                ));
                false
            } else {
                seen.push(c.id);
                true
            }
        });
        // GPUs in PCI address order.
        gpus.sort_by(|a, b| {
            let key = |c: &Candidate| {
                let dev = chips[c.chip_index].device.clone();
                let addr = dev.as_deref().and_then(pci_address).map(str::to_string);
                (addr.is_none(), addr, chips[c.chip_index].sort_path())
            };
            key(a).cmp(&key(b))
        });
        for (i, g) in gpus.iter_mut().enumerate() {
            g.id = DomainId::new(DomainKind::Gpu, u32::try_from(i).unwrap_or(u32::MAX));
        }

        let mut domains = Vec::new();
        let mut slots = Vec::new();
        for c in nodes.into_iter().chain(packages).chain(gpus) {
            let chip = &chips[c.chip_index];
            let file = match AttrFile::open(&c.channel.path, "hwmon power/energy") {
                Ok(f) => f,
                Err(e) => {
                    warnings.push(Warning::unreadable(NAME, format!("{} not measured: {e}", c.id)));
                    continue;
                }
            };
            let measurement = if c.channel.energy {
                Measurement::Energy(CounterSpec::non_wrapping(1e-6))
            } else {
                Measurement::Power
            };
            let cap = match c.id.kind {
                DomainKind::Node | DomainKind::Gpu => chip.cap_files(c.channel.k),
                _ => None,
            };
            let mut limits = Vec::new();
            if let Some(cap) = &cap {
                match cap.read() {
                    Ok(l) => limits.push(l),
                    Err(e) => warnings
                        .push(Warning::new(NAME, format!("{}: cap not reported: {e}", c.id))),
                }
            }
            domains.push(DomainInfo {
                id: c.id,
                provider: NAME,
                source: source(chip, &c.channel),
                measurement,
                limits,
                socket: c.socket,
                label: c.label,
            });
            slots.push(Slot { file, energy: c.channel.energy, cap });
        }
        if domains.is_empty() {
            return (None, warnings);
        }
        (Some(Hwmon { domains, slots }), warnings)
    }
}

/// Where a domain's readings come from: chip name, device and attribute (`amdgpu 0000:03:00.0
/// power1_average`).
fn source(chip: &Chip, channel: &Channel) -> String {
    format!("{} {} {}", chip.name, chip.device_name(), channel.attr)
}

impl Provider for Hwmon {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &[DomainInfo] {
        &self.domains
    }

    fn reopen_replaced(&mut self) -> Vec<usize> {
        file::reopen_replaced(self.slots.iter_mut().map(|s| &mut s.file))
    }

    fn read(&mut self, out: &mut [Reading]) {
        for (slot, reading) in self.slots.iter().zip(out.iter_mut()) {
            *reading = match slot.file.read_u64() {
                Ok(uj) if slot.energy => Reading::Energy(RawEnergy::new(uj)),
                Ok(uw) => Reading::Power(uw as f64 / MICRO),
                Err(e) => Reading::Failed(e),
            };
        }
    }

    fn write_limit(&mut self, index: usize, write: &LimitWrite) -> Result<(), HwError> {
        let Some(info) = self.domains.get(index) else {
            return Err(HwError::Unsupported { provider: NAME, what: format!("domain #{index}") });
        };
        let what = format!("{} {}", info.id, write.constraint);
        let Some(cap) = self.slots.get(index).and_then(|s| s.cap.clone()) else {
            return Err(HwError::Unsupported {
                provider: NAME,
                what: format!("{what} (its chip has no power cap attribute)"),
            });
        };
        if write.constraint != "cap" {
            return Err(HwError::Unsupported { provider: NAME, what });
        }
        std::fs::metadata(&cap.cap)
            .map_err(|e| HwError::from_io(&cap.cap, e, "hwmon power cap"))?;
        if !file::is_writable(&cap.cap) {
            return Err(HwError::Locked {
                what,
                why: format!("{} is read-only", cap.cap.display()),
            });
        }
        if !(write.limit_watts.is_finite() && write.limit_watts >= 0.0) {
            return Err(HwError::Refused {
                what,
                value: format!("{} W", write.limit_watts),
                detail: "not a power".into(),
            });
        }
        if write.enabled == Some(false) {
            return Err(HwError::Unsupported {
                provider: NAME,
                what: format!(
                    "disabling {what} ({} has no enable; a limit of 0 W is uncapped)",
                    attr_name(&cap.cap)
                ),
            });
        }
        let window_ms = match (write.time_window_s, &cap.interval) {
            (None, _) => None,
            (Some(s), Some(path)) if s.is_finite() && s >= 0.0 => {
                Some((path, (s * 1e3).round() as u64))
            }
            (Some(s), Some(_)) => {
                return Err(HwError::Refused {
                    what,
                    value: format!("{s} s"),
                    detail: "not a time window".into(),
                });
            }
            (Some(_), None) => {
                return Err(HwError::Unsupported {
                    provider: NAME,
                    what: format!(
                        "the time window of {what} ({} has no averaging window)",
                        attr_name(&cap.cap)
                    ),
                });
            }
        };
        // The window first, so the new limit never applies over a stale window.
        if let Some((path, ms)) = window_ms {
            CapFiles::write(path, &what, ms, "ms")?;
        }
        let uw = (write.limit_watts * MICRO).round() as u64;
        CapFiles::write(&cap.cap, &what, uw, "µW")?;
        // Read back: the driver may have clamped or rounded the value.
        let l = cap.read()?;
        let limits = &mut self.domains[index].limits;
        match limits.iter_mut().find(|x| x.name == "cap") {
            Some(x) => *x = l,
            None => limits.push(l),
        }
        Ok(())
    }

    fn refresh_limits(&mut self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for (slot, info) in self.slots.iter().zip(self.domains.iter_mut()) {
            let Some(cap) = &slot.cap else { continue };
            match cap.read() {
                Ok(l) => match info.limits.iter_mut().find(|x| x.name == "cap") {
                    Some(x) => *x = l,
                    None => info.limits.push(l),
                },
                Err(e) => warnings.push(Warning::new(
                    NAME,
                    format!("{}: {e}; keeping the last known cap", info.id),
                )),
            }
        }
        warnings
    }
}

/// Probes `/sys/class/hwmon`.
pub fn probe(ctx: &ProbeContext<'_>) -> Probe {
    Probe::opened(Hwmon::open(ctx.root, ctx.topology), || {
        format!(
            "no hwmon chip with a power or energy channel under {}",
            ctx.root.path(CLASS_DIR).display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_channel_attribute_names() {
        assert_eq!(split_attr("power1_average"), Some(("power", 1, "average")));
        assert_eq!(split_attr("energy12_input"), Some(("energy", 12, "input")));
        assert_eq!(split_attr("power1_cap_max"), Some(("power", 1, "cap_max")));
        assert_eq!(split_attr("power"), None);
        assert_eq!(split_attr("power_state"), None);
        assert_eq!(split_attr("powerx_input"), None);
    }

    #[test]
    fn recognises_pci_addresses() {
        assert_eq!(
            pci_address(Path::new("/sys/devices/pci0000:00/0000:03:00.0")),
            Some("0000:03:00.0")
        );
        assert_eq!(pci_address(Path::new("/sys/devices/LNXSYSTM:00/ACPI000D:00")), None);
    }
}
