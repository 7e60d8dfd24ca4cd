//! From chips to domains: which channel measures what, one meter per domain, GPUs numbered.

use std::path::Path;

use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement};

use super::chip::{Channel, Chip, ChipRole, pci_address, read_chip, role_of};
use super::{CLASS_DIR, Hwmon, NAME, Slot};
use crate::error::Warning;
use crate::file::{AttrFile, list_dir};
use crate::root::Root;
use crate::topology::CpuTopology;

/// A domain being assembled during the probe.
struct Candidate {
    id: DomainId,
    chip_index: usize,
    channel: Channel,
    socket: Option<u32>,
    label: Option<String>,
}

/// The domains found on the chips so far, by kind.
#[derive(Default)]
struct Candidates {
    nodes: Vec<Candidate>,
    packages: Vec<Candidate>,
    gpus: Vec<Candidate>,
}

/// The socket (package) of a device: see [`crate::numa::socket_of_device`].
fn socket_of(root: &Root, topology: &CpuTopology, device: Option<&Path>) -> Option<u32> {
    crate::numa::socket_of_device(root, topology, device?)
}

/// Where a domain's readings come from: chip name, device and attribute (`amdgpu 0000:03:00.0
/// power1_average`).
fn source(chip: &Chip, channel: &Channel) -> String {
    format!("{} {} {}", chip.name, chip.device_name(), channel.attr)
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

        let mut found = Candidates::default();
        for (ci, chip) in chips.iter().enumerate() {
            found.add_chip(ci, chip, root, topology, &mut warnings);
        }
        found.keep_one_per_domain(&chips, &mut warnings);

        let mut domains = Vec::new();
        let mut slots = Vec::new();
        for c in found.nodes.into_iter().chain(found.packages).chain(found.gpus) {
            if let Some((info, slot)) = open_domain(&chips[c.chip_index], c, &mut warnings) {
                domains.push(info);
                slots.push(slot);
            }
        }
        if domains.is_empty() {
            return (None, warnings);
        }
        (Some(Hwmon { domains, slots }), warnings)
    }
}

impl Candidates {
    /// Adds the domains chip `ci` measures, by its role; a chip with power or energy channels but
    /// no role is a warning.
    fn add_chip(
        &mut self,
        ci: usize,
        chip: &Chip,
        root: &Root,
        topology: &CpuTopology,
        warnings: &mut Vec<Warning>,
    ) {
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
            return;
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
                    self.nodes.push(candidate(DomainId::NODE, ch));
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
                    self.gpus.push(c);
                }
            }
            ChipRole::SocketEnergy => {
                for ch in energy {
                    let Some(label) = chip.label(&ch) else { continue };
                    let Some(n) = label.strip_prefix("Esocket").and_then(|n| n.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    let mut c = candidate(DomainId::new(DomainKind::Package, n), ch);
                    c.socket = Some(n);
                    self.packages.push(c);
                }
            }
        }
    }

    /// One node meter (the first by device path), one chip per package, and the GPUs numbered
    /// in PCI address order.
    fn keep_one_per_domain(&mut self, chips: &[Chip], warnings: &mut Vec<Warning>) {
        let nodes = &mut self.nodes;
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
        self.packages.sort_by_key(|c| c.id);
        let mut seen = Vec::new();
        self.packages.retain(|c| {
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
        self.gpus.sort_by(|a, b| {
            let key = |c: &Candidate| {
                let dev = chips[c.chip_index].device.clone();
                let addr = dev.as_deref().and_then(pci_address).map(str::to_string);
                (addr.is_none(), addr, chips[c.chip_index].sort_path())
            };
            key(a).cmp(&key(b))
        });
        for (i, g) in self.gpus.iter_mut().enumerate() {
            g.id = DomainId::new(DomainKind::Gpu, u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
}

/// Opens the file a candidate is read from, and reads its cap: its catalog entry and slot.
/// `None`, with a warning, when the file cannot be opened.
fn open_domain(
    chip: &Chip,
    c: Candidate,
    warnings: &mut Vec<Warning>,
) -> Option<(DomainInfo, Slot)> {
    let file = match AttrFile::open(&c.channel.path, "hwmon power/energy") {
        Ok(f) => f,
        Err(e) => {
            warnings.push(Warning::unreadable(NAME, format!("{} not measured: {e}", c.id)));
            return None;
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
            Err(e) => warnings.push(Warning::new(NAME, format!("{}: cap not reported: {e}", c.id))),
        }
    }
    let info = DomainInfo {
        id: c.id,
        provider: NAME,
        source: source(chip, &c.channel),
        measurement,
        limits,
        socket: c.socket,
        label: c.label,
    };
    Some((info, Slot { file, energy: c.channel.energy, cap }))
}
