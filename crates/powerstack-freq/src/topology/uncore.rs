//! Uncore frequency domains: legacy `package_XX_die_YY` and TPMI `uncoreNN`.

use std::path::{Path, PathBuf};

use powerstack_hw::topology::sysfs::{Sysfs, numbered};

/// Which sysfs layout an uncore domain comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UncoreLayout {
    /// `intel_uncore_frequency/package_XX_die_YY`.
    Legacy,
    /// `intel_uncore_frequency/uncoreNN` (TPMI), per fabric cluster.
    Tpmi,
}

/// One uncore frequency domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UncoreDomain {
    /// Directory name (`package_00_die_00`, `uncore03`).
    pub name: String,
    /// Its directory (under the root).
    pub dir: PathBuf,
    /// Layout.
    pub layout: UncoreLayout,
    /// Package.
    pub package: u32,
    /// Die (legacy), or the TPMI `die_id` when present.
    pub die: Option<u32>,
    /// TPMI `domain_id`.
    pub domain: Option<u32>,
    /// TPMI `fabric_cluster_id`.
    pub cluster: Option<u32>,
    /// `initial_min_freq_khz`: the hardware minimum.
    pub initial_min_khz: u64,
    /// `initial_max_freq_khz`: the hardware maximum.
    pub initial_max_khz: u64,
}
/// `package_XX_die_YY` → (package, die).
fn legacy_uncore_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("package_")?;
    let (p, d) = rest.split_once("_die_")?;
    Some((numbered(p, "")?, numbered(d, "")?))
}

pub(super) fn discover_uncore(ctx: &mut Sysfs<'_>, base: &Path) -> Vec<UncoreDomain> {
    let dir = base.join("intel_uncore_frequency");
    let mut out = Vec::new();
    for (name, path) in ctx.list(&dir) {
        if !path.is_dir() {
            continue;
        }
        let (layout, package, die, domain, cluster) =
            if let Some((p, d)) = legacy_uncore_name(&name) {
                (UncoreLayout::Legacy, p, Some(d), None, None)
            } else if numbered(&name, "uncore").is_some() {
                let Some(p) = ctx.req_num::<u32>(&path.join("package_id")) else {
                    ctx.warn(&path, "skipped: its package is unknown");
                    continue;
                };
                let domain = ctx.opt_num::<u32>(&path.join("domain_id"));
                let cluster = ctx.opt_num::<u32>(&path.join("fabric_cluster_id"));
                let die = ctx.opt_num::<u32>(&path.join("die_id"));
                (UncoreLayout::Tpmi, p, die, domain, cluster)
            } else {
                continue;
            };
        let min = ctx.req_num::<u64>(&path.join("initial_min_freq_khz"));
        let max = ctx.req_num::<u64>(&path.join("initial_max_freq_khz"));
        let (Some(initial_min_khz), Some(initial_max_khz)) = (min, max) else {
            ctx.warn(&path, "skipped: its hardware frequency range is unknown");
            continue;
        };
        out.push(UncoreDomain {
            name,
            dir: path,
            layout,
            package,
            die,
            domain,
            cluster,
            initial_min_khz,
            initial_max_khz,
        });
    }
    let rank = |l: UncoreLayout| match l {
        UncoreLayout::Legacy => 0,
        UncoreLayout::Tpmi => 1,
    };
    out.sort_by(|a, b| {
        (rank(a.layout), a.package, a.die, a.domain, a.cluster, &a.name).cmp(&(
            rank(b.layout),
            b.package,
            b.die,
            b.domain,
            b.cluster,
            &b.name,
        ))
    });
    out
}
