//! The power model: which components a profile simulates and what each draws.

use std::collections::BTreeMap;

use powerstack_model::{DomainId, DomainKind};

use crate::options::SimOptions;
use crate::profile::Profile;

/// What a component stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// A domain a provider can measure.
    Domain(DomainId),
    /// An accelerator module (amd-mi250x: pm_counters `accelK`, the sum of GCDs 2K and 2K+1).
    Module(u32),
}

impl Key {
    /// The domain, for a domain component.
    pub fn domain(self) -> Option<DomainId> {
        match self {
            Key::Domain(id) => Some(id),
            Key::Module(_) => None,
        }
    }
}

/// One simulated component: a domain (or an accelerator module) with its power and exact energy.
#[derive(Clone, Debug)]
pub(crate) struct Comp {
    pub key: Key,
    /// Modelled but not exposed by any interface (e.g. hwmon-node's CPU, omitted DRAM).
    pub hidden: bool,
    /// Its device was removed: no longer measurable.
    pub removed: bool,
    /// Power over the last step, W.
    pub power: f64,
    /// Energy since create (or open), J.
    pub energy: f64,
}

/// The limits in force, in watts, gathered from limit files and registers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caps {
    /// Package caps (RAPL PL1/PL2 of the zone, MMIO duplicate), per socket.
    pub package: BTreeMap<u32, f64>,
    /// DRAM caps, per socket (only when the dram zone is enabled).
    pub memory: BTreeMap<u32, f64>,
    /// The psys cap.
    pub platform: Option<f64>,
    /// A node cap (pm_counters `power_cap`, power meter `power1_cap`).
    pub node: Option<f64>,
    /// A per-accelerator cap (pm_counters `accel_power_cap`; on amd-mi250x per module).
    pub accel: Option<f64>,
    /// The GPU cap (hwmon-node's amdgpu `power1_cap`).
    pub gpu: Option<f64>,
    /// Per-GPU caps by GPU number (PCI order): NVML `power_limit_mw`, amd-mi250x `power1_cap`.
    pub gpus: BTreeMap<u32, f64>,
}

impl Caps {
    pub fn cap_package(&mut self, socket: u32, w: f64) {
        let e = self.package.entry(socket).or_insert(w);
        *e = e.min(w);
    }
}

fn id(kind: DomainKind, index: u32) -> Key {
    Key::Domain(DomainId::new(kind, index))
}

fn lin(idle: f64, max: f64, load: f64) -> f64 {
    idle + (max - idle) * load
}

/// Number of accelerators of the cray-ex profile (and of MI250X modules of amd-mi250x).
pub(crate) const CRAY_ACCELS: u32 = 4;

/// Number of GCDs (amdgpu devices) of the amd-mi250x profile: two per module.
pub(crate) const MI250X_GCDS: u32 = 8;

/// The components of a profile, in a fixed order.
pub(crate) fn components(profile: Profile, opts: &SimOptions) -> Vec<Comp> {
    let c = |kind, index, hidden| Comp {
        key: id(kind, index),
        hidden,
        removed: false,
        power: 0.0,
        energy: 0.0,
    };
    let intel = || {
        let mut v = vec![
            c(DomainKind::Package, 0, false),
            c(DomainKind::Package, 1, false),
            c(DomainKind::Memory, 0, opts.omit_dram),
            c(DomainKind::Memory, 1, opts.omit_dram),
            c(DomainKind::Platform, 0, false),
        ];
        if opts.shuffle_indices {
            v.push(c(DomainKind::Core, 0, false));
            v.push(c(DomainKind::Core, 1, false));
        }
        v
    };
    match profile {
        Profile::Intel2s => intel(),
        Profile::IntelOffline => vec![
            c(DomainKind::Package, 0, false),
            c(DomainKind::Package, 1, false),
            c(DomainKind::Memory, 0, false),
            c(DomainKind::Memory, 1, false),
            c(DomainKind::Platform, 0, false),
        ],
        Profile::IntelHybrid => vec![
            c(DomainKind::Package, 0, false),
            c(DomainKind::Core, 0, false),
            c(DomainKind::Uncore, 0, false),
            c(DomainKind::Platform, 0, false),
        ],
        Profile::Nvidia4gpu | Profile::Nvidia8gpu => {
            let mut v = intel();
            let gpus = profile.nvidia().map_or(0, |nv| nv.count());
            v.extend((0..gpus).map(|n| c(DomainKind::Gpu, n, false)));
            v
        }
        Profile::AmdMi250x => {
            let mut v = vec![
                c(DomainKind::Node, 0, false),
                c(DomainKind::Package, 0, false),
                c(DomainKind::Memory, 0, false),
            ];
            v.extend((0..MI250X_GCDS).map(|n| c(DomainKind::Gpu, n, false)));
            v.extend((0..CRAY_ACCELS).map(|k| Comp {
                key: Key::Module(k),
                hidden: false,
                removed: false,
                power: 0.0,
                energy: 0.0,
            }));
            v
        }
        Profile::Amd2s => vec![
            c(DomainKind::Package, 0, false),
            c(DomainKind::Package, 1, false),
            c(DomainKind::Core, 0, false),
            c(DomainKind::Core, 1, false),
        ],
        Profile::CrayEx => {
            let mut v = vec![
                c(DomainKind::Node, 0, false),
                c(DomainKind::Package, 0, false),
                c(DomainKind::Memory, 0, false),
            ];
            v.extend((0..CRAY_ACCELS).map(|k| c(DomainKind::Gpu, k, false)));
            v
        }
        Profile::HwmonNode => {
            vec![
                c(DomainKind::Node, 0, false),
                c(DomainKind::Gpu, 0, false),
                c(DomainKind::Package, 0, true),
            ]
        }
    }
}

/// Scales the parts `k` of `parts` so that `fixed + Σparts ≤ cap` (never up, never below zero).
fn fit(cap: Option<f64>, fixed: f64, parts: &mut [f64]) {
    let Some(cap) = cap else { return };
    let sum: f64 = parts.iter().sum();
    if fixed + sum > cap && sum > 0.0 {
        let k = ((cap - fixed) / sum).clamp(0.0, 1.0);
        parts.iter_mut().for_each(|p| *p *= k);
    }
}

fn capped(w: f64, cap: Option<f64>) -> f64 {
    cap.map_or(w, |c| w.min(c.max(0.0)))
}

/// A two-socket Intel server's model: per package and per DRAM (idle, max) W, and the rest of the
/// platform under psys.
struct IntelServer {
    package: (f64, f64),
    dram: (f64, f64),
    rest: f64,
}

const INTEL_2S: IntelServer = IntelServer { package: (60.0, 150.0), dram: (8.0, 24.0), rest: 45.0 };
const INTEL_OFFLINE: IntelServer =
    IntelServer { package: (90.0, 350.0), dram: (15.0, 45.0), rest: 60.0 };

/// intel-hybrid: the package (idle, max) W, the core and uncore shares of it, and the rest of the
/// platform under psys.
const HYBRID_PACKAGE: (f64, f64) = (15.0, 253.0);
const HYBRID_CORE_SHARE: f64 = 0.7;
const HYBRID_UNCORE_SHARE: f64 = 0.1;
const HYBRID_REST: f64 = 25.0;

/// intel-2s and intel-offline: packages, DRAM and psys (with `core` subzones at 70 % of the
/// package when `core` is set: intel-2s' `shuffle_indices`).
fn intel_powers(m: &IntelServer, core: bool, load: f64, caps: &Caps, out: &mut BTreeMap<Key, f64>) {
    let mut pkg: Vec<f64> = (0..2)
        .map(|s| capped(lin(m.package.0, m.package.1, load), caps.package.get(&s).copied()))
        .collect();
    let dram: Vec<f64> = (0..2)
        .map(|s| capped(lin(m.dram.0, m.dram.1, load), caps.memory.get(&s).copied()))
        .collect();
    let fixed = dram.iter().sum::<f64>() + m.rest;
    fit(caps.platform, fixed, &mut pkg);
    for s in 0..2 {
        out.insert(id(DomainKind::Package, s as u32), pkg[s]);
        out.insert(id(DomainKind::Memory, s as u32), dram[s]);
        if core {
            out.insert(id(DomainKind::Core, s as u32), 0.7 * pkg[s]);
        }
    }
    out.insert(id(DomainKind::Platform, 0), pkg.iter().sum::<f64>() + fixed);
}

/// What every component draws at `load` under `caps`.
pub(crate) fn powers(
    profile: Profile,
    opts: &SimOptions,
    load: f64,
    caps: &Caps,
) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    match profile {
        Profile::Intel2s => intel_powers(&INTEL_2S, opts.shuffle_indices, load, caps, &mut out),
        Profile::IntelOffline => intel_powers(&INTEL_OFFLINE, false, load, caps, &mut out),
        Profile::IntelHybrid => {
            let (idle, max) = HYBRID_PACKAGE;
            let mut pkg = [capped(lin(idle, max, load), caps.package.get(&0).copied())];
            fit(caps.platform, HYBRID_REST, &mut pkg);
            out.insert(id(DomainKind::Package, 0), pkg[0]);
            out.insert(id(DomainKind::Core, 0), HYBRID_CORE_SHARE * pkg[0]);
            out.insert(id(DomainKind::Uncore, 0), HYBRID_UNCORE_SHARE * pkg[0]);
            out.insert(id(DomainKind::Platform, 0), pkg[0] + HYBRID_REST);
        }
        Profile::Nvidia4gpu | Profile::Nvidia8gpu => {
            intel_powers(&INTEL_2S, opts.shuffle_indices, load, caps, &mut out);
            if let Some(nv) = profile.nvidia() {
                let (idle, max) = nv.watts;
                for n in 0..nv.count() {
                    let w = capped(lin(idle, max, load), caps.gpus.get(&n).copied());
                    out.insert(id(DomainKind::Gpu, n), w);
                }
            }
        }
        Profile::AmdMi250x => {
            let mem = lin(20.0, 60.0, load);
            let mut gcd: Vec<f64> = (0..MI250X_GCDS)
                .map(|n| capped(lin(45.0, 280.0, load), caps.gpus.get(&n).copied()))
                .collect();
            for module in gcd.chunks_mut(2) {
                fit(caps.accel, 0.0, module);
            }
            let mut parts = vec![lin(90.0, 280.0, load)];
            parts.extend(gcd);
            let fixed = mem + 150.0;
            fit(caps.node, fixed, &mut parts);
            out.insert(id(DomainKind::Package, 0), parts[0]);
            out.insert(id(DomainKind::Memory, 0), mem);
            for n in 0..MI250X_GCDS {
                out.insert(id(DomainKind::Gpu, n), parts[n as usize + 1]);
            }
            for k in 0..CRAY_ACCELS {
                let i = 2 * k as usize + 1;
                out.insert(Key::Module(k), parts[i] + parts[i + 1]);
            }
            out.insert(Key::Domain(DomainId::NODE), parts.iter().sum::<f64>() + fixed);
        }
        Profile::Amd2s => {
            for s in 0..2 {
                let p = lin(90.0, 280.0, load);
                out.insert(id(DomainKind::Package, s), p);
                out.insert(id(DomainKind::Core, s), 0.6 * p);
            }
        }
        Profile::CrayEx => {
            let mem = lin(20.0, 60.0, load);
            let mut parts = vec![lin(90.0, 280.0, load)];
            parts.extend((0..CRAY_ACCELS).map(|_| capped(lin(90.0, 560.0, load), caps.accel)));
            let fixed = mem + 150.0;
            fit(caps.node, fixed, &mut parts);
            out.insert(id(DomainKind::Package, 0), parts[0]);
            out.insert(id(DomainKind::Memory, 0), mem);
            for k in 0..CRAY_ACCELS {
                out.insert(id(DomainKind::Gpu, k), parts[k as usize + 1]);
            }
            out.insert(Key::Domain(DomainId::NODE), parts.iter().sum::<f64>() + fixed);
        }
        Profile::HwmonNode => {
            let mut parts = [lin(70.0, 200.0, load), capped(lin(40.0, 300.0, load), caps.gpu)];
            fit(caps.node, 80.0, &mut parts);
            out.insert(id(DomainKind::Package, 0), parts[0]);
            out.insert(id(DomainKind::Gpu, 0), parts[1]);
            out.insert(Key::Domain(DomainId::NODE), parts[0] + parts[1] + 80.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_half_load_and_limits() {
        let o = SimOptions::default();
        let p = powers(Profile::Intel2s, &o, 0.5, &Caps::default());
        assert_eq!(p[&id(DomainKind::Package, 0)], 105.0);
        assert_eq!(p[&id(DomainKind::Memory, 1)], 16.0);
        assert_eq!(p[&id(DomainKind::Platform, 0)], 105.0 * 2.0 + 32.0 + 45.0);
        let mut caps = Caps::default();
        caps.cap_package(0, 80.0);
        caps.platform = Some(250.0);
        let p = powers(Profile::Intel2s, &o, 0.5, &caps);
        assert!((p[&id(DomainKind::Platform, 0)] - 250.0).abs() < 1e-9);
        assert!(p[&id(DomainKind::Package, 0)] < 80.0);
    }

    #[test]
    fn hybrid_and_offline_models() {
        let o = SimOptions::default();
        let p = powers(Profile::IntelHybrid, &o, 0.25, &Caps::default());
        let pkg = p[&id(DomainKind::Package, 0)];
        assert_eq!(pkg, 15.0 + 238.0 * 0.25);
        assert!((p[&id(DomainKind::Core, 0)] - 0.7 * pkg).abs() < 1e-9);
        assert!((p[&id(DomainKind::Uncore, 0)] - 0.1 * pkg).abs() < 1e-9);
        assert_eq!(p[&id(DomainKind::Platform, 0)], pkg + 25.0);
        let mut caps = Caps::default();
        caps.cap_package(0, 125.0);
        let p = powers(Profile::IntelHybrid, &o, 1.0, &caps);
        assert_eq!(p[&id(DomainKind::Package, 0)], 125.0);
        let p = powers(Profile::IntelOffline, &o, 0.5, &Caps::default());
        assert_eq!(p[&id(DomainKind::Package, 1)], 220.0);
        assert_eq!(p[&id(DomainKind::Memory, 0)], 30.0);
        assert_eq!(p[&id(DomainKind::Platform, 0)], 440.0 + 60.0 + 60.0);
        assert_eq!(components(Profile::IntelOffline, &o).len(), p.len());
    }

    #[test]
    fn cray_node_cap_scales_cpu_and_accels() {
        let o = SimOptions::default();
        let caps = Caps { node: Some(1000.0), ..Caps::default() };
        let p = powers(Profile::CrayEx, &o, 1.0, &caps);
        assert!((p[&Key::Domain(DomainId::NODE)] - 1000.0).abs() < 1e-9);
        assert_eq!(p[&id(DomainKind::Memory, 0)], 60.0);
    }

    #[test]
    fn nvidia_gpus_follow_their_own_limits() {
        let o = SimOptions::default();
        let mut caps = Caps::default();
        caps.gpus.insert(2, 200.0);
        let p = powers(Profile::Nvidia4gpu, &o, 0.5, &caps);
        assert_eq!(p[&id(DomainKind::Gpu, 0)], 385.0);
        assert_eq!(p[&id(DomainKind::Gpu, 2)], 200.0);
        assert_eq!(p[&id(DomainKind::Package, 0)], 105.0, "the CPUs are intel-2s'");
        let p = powers(Profile::Nvidia8gpu, &o, 0.5, &caps);
        assert_eq!(p[&id(DomainKind::Gpu, 7)], 387.5);
        assert_eq!(p[&id(DomainKind::Gpu, 2)], 200.0);
        assert_eq!(components(Profile::Nvidia8gpu, &o).len(), 5 + 8);
    }

    #[test]
    fn mi250x_modules_are_the_sum_of_their_gcds_and_the_node_of_everything() {
        let o = SimOptions::default();
        let mut caps = Caps::default();
        caps.gpus.insert(3, 100.0);
        let p = powers(Profile::AmdMi250x, &o, 0.5, &caps);
        let gcd = |n| p[&id(DomainKind::Gpu, n)];
        assert_eq!(gcd(0), 162.5);
        assert_eq!(gcd(3), 100.0);
        for k in 0..CRAY_ACCELS {
            assert_eq!(p[&Key::Module(k)], gcd(2 * k) + gcd(2 * k + 1));
        }
        let accels: f64 = (0..CRAY_ACCELS).map(|k| p[&Key::Module(k)]).sum();
        let node = p[&id(DomainKind::Package, 0)] + p[&id(DomainKind::Memory, 0)] + accels + 150.0;
        assert!((p[&Key::Domain(DomainId::NODE)] - node).abs() < 1e-9);
        // A module cap is shared by its two GCDs.
        let caps = Caps { accel: Some(200.0), ..Caps::default() };
        let p = powers(Profile::AmdMi250x, &o, 1.0, &caps);
        assert!((p[&Key::Module(1)] - 200.0).abs() < 1e-9);
    }
}
