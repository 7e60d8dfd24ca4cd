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

mod attr;
mod globals;
mod policy;
#[cfg(test)]
mod tests;
mod uncore;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cpufreq::CPU;
use crate::error::SimError;
use crate::watch::Watch;
use attr::{Attr, kstrtobool, numbered, read_trim};
use globals::Globals;
use policy::Policy;
use uncore::Uncore;

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

/// One `cpuN/cpuidle/stateK/disable`.
#[derive(Debug)]
struct IdleDisable {
    /// `cpuN stateK (NAME)`.
    who: String,
    attr: Attr,
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
        let uncore = uncore::load_all(root);
        let globals = Globals::load(&cpu);
        let mut rules = Rules { policies, idle, uncore, globals, watch: None, scan: true };
        let dirs: BTreeSet<PathBuf> =
            rules.attrs().filter_map(|a| a.path.parent().map(Path::to_path_buf)).collect();
        rules.watch = watch_dirs(&dirs);
        rules
    }

    /// Every attribute with rules.
    fn attrs(&self) -> impl Iterator<Item = &Attr> {
        let p = self.policies.iter().flat_map(Policy::attrs);
        let i = self.idle.iter().map(|d| &d.attr);
        let u = self.uncore.iter().flat_map(Uncore::attrs);
        p.chain(i).chain(u).chain(self.globals.attrs())
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
        uncore::enforce_all(&mut self.uncore, &mut out)?;
        self.globals.enforce(&mut out)?;
        Ok(out)
    }
}
