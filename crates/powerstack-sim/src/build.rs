//! Writing (or, on reopen, attaching to) the simulated tree of each profile: the CPUs every
//! profile has (`cpus`), then the profile's power hardware: Intel RAPL (`intel`, over the zones
//! and MSR images of `powercap`), AMD RAPL (`amd`), HPE Cray `pm_counters` (`cray`), hwmon chips
//! (`hwmon`), and the NVIDIA GPUs (`crate::nvidia`).

mod amd;
mod cpus;
mod cray;
mod hwmon;
mod intel;
mod powercap;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::SimError;
use crate::io::Io;
use crate::model::{self, Caps};
use crate::msr::Shared;
use crate::nvidia;
use crate::options::SimOptions;
use crate::profile::Profile;
use crate::tree::B;
use intel::{RAPL_2S, RAPL_OFFLINE, ServerLayout};

// What `nvidia` names through this module; they live in `crate::tree`, which `nvidia` could
// name itself (this module uses `nvidia`).

/// The simulated wall clock at creation, µs since the Unix epoch.
pub(crate) const UNIX_START_US: i64 = 1_795_000_000_000_000;

/// Builds the model and its files. With `fresh`, writes the whole tree; otherwise attaches to an
/// existing one (counters keep their default offsets: the caller recovers them from the files).
pub(crate) fn build(
    root: &Path,
    profile: Profile,
    opts: &SimOptions,
    fresh: bool,
) -> Result<(Shared, Io), SimError> {
    let b = B::new(root, fresh);
    let mut s = Shared {
        root: root.to_path_buf(),
        profile,
        comps: model::components(profile, opts),
        counters: Vec::new(),
        regs: BTreeMap::new(),
        dirty: BTreeSet::new(),
    };
    let p0 = model::powers(profile, opts, opts.pattern.load_at(opts.load, 0.0), &Caps::default());
    for c in &mut s.comps {
        c.power = p0.get(&c.key).copied().unwrap_or(0.0);
    }
    let mut io = Io::default();
    let spec = profile.cpu();
    cpus::build(&b, profile)?;
    match profile {
        Profile::Intel2s => {
            intel::build_server(&b, spec, &RAPL_2S, &ServerLayout::of(opts), &mut s, &mut io)?
        }
        Profile::IntelOffline => {
            let lay = ServerLayout::offline();
            intel::build_server(&b, spec, &RAPL_OFFLINE, &lay, &mut s, &mut io)?
        }
        Profile::IntelHybrid => intel::build_client(&b, &mut s, &mut io)?,
        Profile::Amd2s => amd::build(&b, opts, &mut s, &mut io)?,
        Profile::CrayEx => cray::build(&b, profile, opts, &s, &mut io)?,
        Profile::HwmonNode => hwmon::build(&b, opts, &s, &mut io)?,
        Profile::Nvidia4gpu | Profile::Nvidia8gpu => {
            intel::build_server(&b, spec, &RAPL_2S, &ServerLayout::of(opts), &mut s, &mut io)?;
            nvidia::build(&b, profile, opts, &s, &mut io)?;
        }
        Profile::AmdMi250x => {
            cray::build(&b, profile, opts, &s, &mut io)?;
            hwmon::build_mi250x(&b, &s, &mut io)?;
        }
    }
    if fresh {
        for img in &mut io.images {
            img.update(&s)?;
        }
    }
    Ok((s, io))
}
