//! The power model: which components a profile simulates and what each draws.

use std::collections::BTreeMap;

use powerstack_model::{DomainId, DomainKind};

use crate::profile::{Profile, SimOptions};

/// One simulated component: a domain with its power and exact energy.
#[derive(Clone, Debug)]
pub(crate) struct Comp {
    pub id: DomainId,
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
    /// A per-accelerator cap (pm_counters `accel_power_cap`).
    pub accel: Option<f64>,
    /// The GPU cap (amdgpu `power1_cap`).
    pub gpu: Option<f64>,
}

impl Caps {
    pub fn cap_package(&mut self, socket: u32, w: f64) {
        let e = self.package.entry(socket).or_insert(w);
        *e = e.min(w);
    }
}

fn id(kind: DomainKind, index: u32) -> DomainId {
    DomainId::new(kind, index)
}

fn lin(idle: f64, max: f64, load: f64) -> f64 {
    idle + (max - idle) * load
}

/// Number of accelerators of the cray-ex profile.
pub(crate) const CRAY_ACCELS: u32 = 4;

/// The components of a profile, in a fixed order.
pub(crate) fn components(profile: Profile, opts: &SimOptions) -> Vec<Comp> {
    let c = |kind, index, hidden| Comp {
        id: id(kind, index),
        hidden,
        removed: false,
        power: 0.0,
        energy: 0.0,
    };
    match profile {
        Profile::Intel2s => {
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

/// What every component draws at `load` under `caps`.
pub(crate) fn powers(
    profile: Profile,
    opts: &SimOptions,
    load: f64,
    caps: &Caps,
) -> BTreeMap<DomainId, f64> {
    let mut out = BTreeMap::new();
    let capped = |w: f64, cap: Option<f64>| cap.map_or(w, |c| w.min(c.max(0.0)));
    match profile {
        Profile::Intel2s => {
            let mut pkg: Vec<f64> = (0..2)
                .map(|s| capped(lin(60.0, 150.0, load), caps.package.get(&s).copied()))
                .collect();
            let dram: Vec<f64> = (0..2)
                .map(|s| capped(lin(8.0, 24.0, load), caps.memory.get(&s).copied()))
                .collect();
            let fixed = dram.iter().sum::<f64>() + 45.0;
            fit(caps.platform, fixed, &mut pkg);
            for s in 0..2 {
                out.insert(id(DomainKind::Package, s as u32), pkg[s]);
                out.insert(id(DomainKind::Memory, s as u32), dram[s]);
                if opts.shuffle_indices {
                    out.insert(id(DomainKind::Core, s as u32), 0.7 * pkg[s]);
                }
            }
            out.insert(id(DomainKind::Platform, 0), pkg.iter().sum::<f64>() + fixed);
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
            out.insert(DomainId::NODE, parts.iter().sum::<f64>() + fixed);
        }
        Profile::HwmonNode => {
            let mut parts = [lin(70.0, 200.0, load), capped(lin(40.0, 300.0, load), caps.gpu)];
            fit(caps.node, 80.0, &mut parts);
            out.insert(id(DomainKind::Package, 0), parts[0]);
            out.insert(id(DomainKind::Gpu, 0), parts[1]);
            out.insert(DomainId::NODE, parts[0] + parts[1] + 80.0);
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
    fn cray_node_cap_scales_cpu_and_accels() {
        let o = SimOptions::default();
        let caps = Caps { node: Some(1000.0), ..Caps::default() };
        let p = powers(Profile::CrayEx, &o, 1.0, &caps);
        assert!((p[&DomainId::NODE] - 1000.0).abs() < 1e-9);
        assert_eq!(p[&id(DomainKind::Memory, 0)], 60.0);
    }
}
