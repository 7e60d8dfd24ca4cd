//! Finding the RAPL domains of each package, Intel or AMD, and building the provider.

use std::collections::BTreeMap;

use powerstack_model::cpulist::format_cpulist;
use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement};

use super::registers::{decode_units, dram_fixed_unit};
use super::{
    AMD_CORE_ENERGY_STATUS, AMD_PKG_ENERGY_STATUS, AMD_RAPL_POWER_UNIT, CoreCounter, DevMsr,
    INTEL_DRAM_ENERGY_STATUS, INTEL_PKG_ENERGY_STATUS, INTEL_PLATFORM_ENERGY_STATUS,
    INTEL_PP0_ENERGY_STATUS, INTEL_RAPL_POWER_UNIT, LimitRegs, Msr, MsrIo, NAME, Source, WRAP_32,
    read_limits,
};
use crate::error::Warning;
use crate::provider::Probe;
use crate::providers::ProbeContext;
use crate::topology::{CpuTopology, Vendor};

/// The CPU vendor as far as RAPL MSRs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rapl {
    Intel { model: u32 },
    Amd,
}

/// Probes `/dev/cpu/N/msr_safe` and `/dev/cpu/N/msr`.
pub fn probe(ctx: &ProbeContext<'_>) -> Probe {
    let dev = DevMsr::new(ctx.root);
    if dev.cpus().is_empty() {
        return Probe::absent(format!(
            "no msr device under {}: run `modprobe msr` (and read as root) or install msr-safe with an allowlist for the RAPL registers",
            ctx.root.path("/dev/cpu").display()
        ));
    }
    probe_with(ctx.topology, Box::new(dev))
}

/// Builds the provider over any register access: the real devices ([`probe`]), a simulator's
/// register model, or a test's.
pub fn probe_with(topology: &CpuTopology, mut io: Box<dyn MsrIo>) -> Probe {
    let mut warnings = Vec::new();
    let rapl = match &topology.model {
        Some(m) if m.vendor == Vendor::Intel && m.family == 6 => Rapl::Intel { model: m.model },
        Some(m) if m.vendor == Vendor::Amd && m.family >= 0x17 => Rapl::Amd,
        Some(m) => {
            let vendor = match &m.vendor {
                Vendor::Intel => "Intel",
                Vendor::Amd => "AMD",
                Vendor::Other(v) => v.as_str(),
            };
            return Probe::none(vec![Warning::new(
                NAME,
                format!(
                    "no known RAPL registers on {vendor} family {:#x} model {:#x} ({}); use powercap instead",
                    m.family, m.model, m.name
                ),
            )]);
        }
        None => {
            return Probe::none(vec![Warning::new(
                NAME,
                "CPU model unknown (/proc/cpuinfo unreadable), so the RAPL registers are unknown; use powercap instead",
            )]);
        }
    };
    let packages = topology.packages();
    let file_image = io.is_file_image();
    if file_image && rapl != Rapl::Amd {
        let cpu = packages.first().and_then(|&p| topology.lead_cpu(p)).unwrap_or(0);
        warnings.push(Warning::new(
            NAME,
            format!(
                "cpu{cpu} msr is a regular file (a simulated image): power-info and limit registers overlap in a file and are not read; energy and units are read"
            ),
        ));
    }
    let mut found = Found::default();
    for &pkg in &packages {
        let Some(lead) = topology.lead_cpu(pkg) else {
            warnings.push(Warning::new(
                NAME,
                format!("package {pkg} has no online CPU to read its registers on; skipped"),
            ));
            continue;
        };
        match rapl {
            Rapl::Intel { model } => probe_intel_package(
                io.as_mut(),
                pkg,
                lead,
                model,
                file_image,
                &mut found,
                &mut warnings,
            ),
            Rapl::Amd => probe_amd_package(
                io.as_mut(),
                topology,
                pkg,
                lead,
                file_image,
                &mut found,
                &mut warnings,
            ),
        }
    }
    if found.0.is_empty() {
        if packages.is_empty() {
            warnings.push(Warning::new(
                NAME,
                "no CPU packages found in the topology; nothing to read RAPL registers on",
            ));
        }
        return Probe::none(warnings);
    }
    found.0.sort_by_key(|(info, _, _)| info.id);
    let mut domains = Vec::with_capacity(found.0.len());
    let mut sources = Vec::with_capacity(found.0.len());
    let mut limit_regs = Vec::with_capacity(found.0.len());
    for (info, source, regs) in found.0 {
        domains.push(info);
        sources.push(source);
        limit_regs.push(regs);
    }
    Probe {
        provider: Some(Box::new(Msr { io, domains, sources, limit_regs })),
        warnings,
        absent: None,
    }
}

/// Domains found so far, with how to read them and their limit registers.
#[derive(Default)]
struct Found(Vec<(DomainInfo, Source, Option<LimitRegs>)>);

impl Found {
    fn push(&mut self, info: DomainInfo, source: Source, limits: Option<LimitRegs>) {
        self.0.push((info, source, limits));
    }
}

fn energy_domain(id: DomainId, socket: u32, source: String, spec: CounterSpec) -> DomainInfo {
    DomainInfo {
        id,
        provider: NAME,
        source,
        measurement: Measurement::Energy(spec),
        limits: Vec::new(),
        socket: (!id.kind.is_node_level()).then_some(socket),
        label: None,
    }
}

fn wrapping_32(joules_per_tick: f64) -> CounterSpec {
    CounterSpec { joules_per_tick, wrap_ticks: Some(WRAP_32) }
}

fn probe_intel_package(
    io: &mut dyn MsrIo,
    pkg: u32,
    cpu: u32,
    model: u32,
    file_image: bool,
    found: &mut Found,
    warnings: &mut Vec<Warning>,
) {
    let units = match io.read(cpu, INTEL_RAPL_POWER_UNIT) {
        Ok(raw) => decode_units(raw),
        Err(e) => {
            warnings.push(Warning::new(
                NAME,
                format!("package {pkg} skipped: units register 0x606: {e}"),
            ));
            return;
        }
    };
    let src = |addr: u32| format!("cpu{cpu} msr {addr:#x}");
    let with_limits = |regs: LimitRegs,
                       io: &mut dyn MsrIo,
                       info: &mut DomainInfo,
                       warnings: &mut Vec<Warning>| {
        if file_image {
            return None;
        }
        match read_limits(io, regs) {
            Ok(limits) => {
                info.limits = limits;
                Some(regs)
            }
            Err(e) => {
                warnings.push(Warning::new(NAME, format!("{}: limits not reported: {e}", info.id)));
                None
            }
        }
    };

    // Package.
    match io.read(cpu, INTEL_PKG_ENERGY_STATUS) {
        Ok(_) => {
            let id = DomainId::new(DomainKind::Package, pkg);
            let mut info = energy_domain(
                id,
                pkg,
                src(INTEL_PKG_ENERGY_STATUS),
                wrapping_32(units.joules_per_tick),
            );
            let regs = with_limits(LimitRegs::Package { cpu, units }, io, &mut info, warnings);
            found.push(info, Source::Register { cpu, addr: INTEL_PKG_ENERGY_STATUS }, regs);
        }
        Err(e) => warnings
            .push(Warning::unreadable(NAME, format!("package {pkg} energy (0x611) not read: {e}"))),
    }

    // DRAM: on servers. Where there is none the register faults (EIO) or stays at 0; a counter
    // that has run since reset is never exactly 0.
    if matches!(io.read(cpu, INTEL_DRAM_ENERGY_STATUS), Ok(v) if v & (WRAP_32 - 1) != 0) {
        let unit = dram_fixed_unit(model).unwrap_or(units.joules_per_tick);
        let id = DomainId::new(DomainKind::Memory, pkg);
        let mut info = energy_domain(id, pkg, src(INTEL_DRAM_ENERGY_STATUS), wrapping_32(unit));
        let regs = with_limits(LimitRegs::Dram { cpu, units }, io, &mut info, warnings);
        found.push(info, Source::Register { cpu, addr: INTEL_DRAM_ENERGY_STATUS }, regs);
    }

    // PP0 (cores) and, on package 0, the platform: only when counting.
    let mut optional = vec![(DomainKind::Core, INTEL_PP0_ENERGY_STATUS)];
    if pkg == 0 {
        optional.push((DomainKind::Platform, INTEL_PLATFORM_ENERGY_STATUS));
    }
    for (kind, addr) in optional {
        if matches!(io.read(cpu, addr), Ok(v) if v & (WRAP_32 - 1) != 0) {
            let index = if kind.is_node_level() { 0 } else { pkg };
            let info = energy_domain(
                DomainId::new(kind, index),
                pkg,
                src(addr),
                wrapping_32(units.joules_per_tick),
            );
            found.push(info, Source::Register { cpu, addr }, None);
        }
    }
}

fn probe_amd_package(
    io: &mut dyn MsrIo,
    topology: &CpuTopology,
    pkg: u32,
    lead: u32,
    file_image: bool,
    found: &mut Found,
    warnings: &mut Vec<Warning>,
) {
    let units = match io.read(lead, AMD_RAPL_POWER_UNIT) {
        Ok(raw) => decode_units(raw),
        Err(e) => {
            warnings.push(Warning::new(
                NAME,
                format!("package {pkg} skipped: units register 0xc0010299: {e}"),
            ));
            return;
        }
    };
    match io.read(lead, AMD_PKG_ENERGY_STATUS) {
        Ok(_) => {
            let info = energy_domain(
                DomainId::new(DomainKind::Package, pkg),
                pkg,
                format!("cpu{lead} msr {AMD_PKG_ENERGY_STATUS:#x}"),
                wrapping_32(units.joules_per_tick),
            );
            found.push(info, Source::Register { cpu: lead, addr: AMD_PKG_ENERGY_STATUS }, None);
        }
        Err(e) => warnings.push(Warning::new(
            NAME,
            format!("package {pkg} energy ({AMD_PKG_ENERGY_STATUS:#x}) not read: {e}"),
        )),
    }

    if file_image {
        // 0xC0010299, 0xC001029A and 0xC001029B are one byte apart: in a file image the core
        // register overlaps the other two and holds no meaningful value.
        warnings.push(Warning::new(
            NAME,
            format!(
                "cpu{lead} msr is a regular file (a simulated image): the core energy register {AMD_CORE_ENERGY_STATUS:#x} overlaps its neighbours in a file and is not read; package energy is read"
            ),
        ));
        return;
    }

    // One online CPU per physical core: the lowest-numbered one.
    let mut per_core: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    for c in topology.online_of(pkg) {
        per_core.entry(c.core_key()).and_modify(|cpu| *cpu = (*cpu).min(c.id)).or_insert(c.id);
    }
    let mut cores = Vec::new();
    let mut failed = Vec::new();
    for &cpu in per_core.values() {
        match io.read(cpu, AMD_CORE_ENERGY_STATUS) {
            Ok(raw) => cores.push(CoreCounter {
                cpu,
                last_raw: raw as u32,
                total_ticks: u64::from(raw as u32),
            }),
            Err(e) => failed.push((cpu, e)),
        }
    }
    if let Some((cpu, e)) = failed.first() {
        warnings.push(Warning::new(
            NAME,
            format!(
                "core-{pkg}: core energy unreadable on {} of {} cores (first: cpu{cpu}: {e}); not reported",
                failed.len(),
                per_core.len()
            ),
        ));
        return;
    }
    if cores.is_empty() {
        return;
    }
    let cpus: Vec<u32> = cores.iter().map(|c| c.cpu).collect();
    let info = energy_domain(
        DomainId::new(DomainKind::Core, pkg),
        pkg,
        format!(
            "cpus {} msr {AMD_CORE_ENERGY_STATUS:#x} (sum over {} cores)",
            format_cpulist(&cpus),
            cpus.len()
        ),
        CounterSpec::non_wrapping(units.joules_per_tick),
    );
    found.push(info, Source::CoreSum(cores), None);
}
