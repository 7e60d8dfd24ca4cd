//! A chip under `/sys/class/hwmon`: its name, attributes, channels and device.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::NAME;
use super::cap::{CapFiles, CapStyle};
use crate::error::Warning;
use crate::file::{list_dir, read_trimmed};

/// What a chip is, from its `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChipRole {
    /// A direct node meter.
    Node,
    /// A GPU; `prefer_energy` for drivers whose energy counter is the better measure.
    Gpu { prefer_energy: bool },
    /// Per-socket energy (`Esocket<N>` channels).
    SocketEnergy,
}

pub(super) fn role_of(name: &str) -> Option<ChipRole> {
    match name {
        "power_meter" => Some(ChipRole::Node),
        "amdgpu" => Some(ChipRole::Gpu { prefer_energy: false }),
        "i915" | "xe" => Some(ChipRole::Gpu { prefer_energy: true }),
        "amd_energy" | "zenergy" => Some(ChipRole::SocketEnergy),
        _ => None,
    }
}

/// Splits an attribute name such as `power1_average` into (`power`, 1, `average`).
pub(super) fn split_attr(attr: &str) -> Option<(&str, u32, &str)> {
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
pub(super) struct Channel {
    /// `K` of `powerK_*` / `energyK_*`.
    pub(super) k: u32,
    pub(super) energy: bool,
    /// The attribute read (`power1_average`, `energy1_input`).
    pub(super) attr: String,
    pub(super) path: PathBuf,
}

/// A chip found under `/sys/class/hwmon`.
#[derive(Debug)]
pub(super) struct Chip {
    /// `hwmonN`, for messages only.
    pub(super) class_name: String,
    pub(super) name: String,
    /// Attribute name → path, `hwmonN/` taking precedence over `hwmonN/device/`.
    pub(super) attrs: BTreeMap<String, PathBuf>,
    /// The canonical device directory, when the chip has a `device` link.
    pub(super) device: Option<PathBuf>,
    /// The canonical chip directory.
    pub(super) dir: PathBuf,
}

impl Chip {
    /// The device's name (a PCI address, `ACPI000D:00`), else `hwmonN`.
    pub(super) fn device_name(&self) -> String {
        self.device
            .as_ref()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or(&self.class_name)
            .to_string()
    }

    /// The path chips are ordered by: the device, else the chip's attribute directory.
    pub(super) fn sort_path(&self) -> PathBuf {
        self.device.clone().unwrap_or_else(|| self.dir.clone())
    }

    pub(super) fn attr(&self, name: &str) -> Option<&Path> {
        self.attrs.get(name).map(PathBuf::as_path)
    }

    /// Whether the chip has any power or energy channel (enabled or not).
    pub(super) fn has_power_or_energy(&self) -> bool {
        self.attrs.keys().any(|a| {
            matches!(
                split_attr(a),
                Some(("power", _, "average" | "input")) | Some(("energy", _, "input"))
            )
        })
    }

    pub(super) fn is_enabled(&self, ty: &str, k: u32) -> bool {
        match self.attr(&format!("{ty}{k}_enable")) {
            Some(p) => !matches!(read_trimmed(p, "hwmon enable").as_deref(), Ok("0")),
            None => true,
        }
    }

    /// The enabled power channels (average preferred over input), then the enabled energy
    /// channels, each sorted by `K`.
    pub(super) fn channels(&self) -> (Vec<Channel>, Vec<Channel>) {
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

    pub(super) fn label(&self, ch: &Channel) -> Option<String> {
        let ty = if ch.energy { "energy" } else { "power" };
        let p = self.attr(&format!("{ty}{}_label", ch.k))?;
        read_trimmed(p, "hwmon label").ok().filter(|s| !s.is_empty())
    }

    /// The cap files of channel `k`: `powerK_cap` and its range, or (`i915`, `xe`) `powerK_max`
    /// with its interval and rated maximum.
    pub(super) fn cap_files(&self, k: u32) -> Option<CapFiles> {
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
pub(super) fn read_chip(
    class_name: &str,
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Option<Chip> {
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

/// Whether a device directory's name is a PCI address (`0000:03:00.0`).
pub(super) fn pci_address(device: &Path) -> Option<&str> {
    let name = device.file_name()?.to_str()?;
    let b = name.as_bytes();
    let ok = b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && name.chars().enumerate().all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit());
    ok.then_some(name)
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
