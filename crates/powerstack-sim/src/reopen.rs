//! Reopening a simulated root: the model continues every counter from what its file shows.

use crate::error::SimError;
use crate::fsutil::read_small;
use crate::io::Io;
use crate::model::Key;
use crate::msr::Shared;
use crate::rapl::uj_to_raw;

/// Continues counters from the files of a reopened root; returns the newest pm_counters
/// timestamp (µs), or 0.
pub(crate) fn recover(s: &mut Shared, io: &mut Io) -> Result<i64, SimError> {
    // Devices whose files are gone stay removed.
    for dev in &mut io.devices {
        if dev.truncate.iter().all(|p| std::fs::symlink_metadata(p).is_err()) {
            dev.removed = true;
            for c in &mut s.comps {
                if dev.ids.first().is_some_and(|id| c.key == Key::Domain(*id)) {
                    c.removed = true;
                }
            }
        }
    }
    // Powercap counters from energy_uj, else from the MSR image.
    for i in 0..s.counters.len() {
        let mut raw = None;
        for z in io.zones.iter().filter(|z| z.counter == i && !z.file.is_gone()) {
            let Some(text) = z.file.read() else { continue };
            // The first line: a concurrent in-place update may leave a stale tail.
            let line = text.lines().next().unwrap_or("").trim();
            let uj: u64 = line.parse().map_err(|_| {
                SimError::malformed(z.file.path(), format!("expected energy in µJ, found {line:?}"))
            })?;
            raw = Some(uj_to_raw(uj, z.esu).ok_or_else(|| {
                SimError::malformed(
                    z.file.path(),
                    format!("{uj} µJ is not a whole number of counter ticks"),
                )
            })?);
            break;
        }
        if raw.is_none() {
            raw = io.images.iter().find_map(|img| {
                let k = img.regs.iter().position(|r| r.counter == Some(i))?;
                img.read_counter(k)
            });
        }
        if let Some(raw) = raw {
            s.counters[i].set_raw(0.0, raw);
        }
    }
    // Mock NVML energy counters.
    for g in &mut io.nvml {
        if g.energy.is_gone() {
            continue;
        }
        let text = g.energy.read().unwrap_or_default();
        let line = text.lines().next().unwrap_or("").trim();
        g.offset_mj = line.parse().map_err(|_| {
            SimError::malformed(g.energy.path(), format!("expected energy in mJ, found {line:?}"))
        })?;
    }
    // pm_counters.
    let mut newest = 0i64;
    if let Some(pm) = &mut io.pm {
        for pc in &mut pm.comps {
            if pc.energy.is_gone() {
                continue;
            }
            let path = pc.energy.path().to_path_buf();
            let text = pc.energy.read().unwrap_or_default();
            let mut it = text.split_whitespace();
            let (j, unit, ts) = (it.next(), it.next(), it.next());
            let bad = || {
                SimError::malformed(
                    &path,
                    format!("expected \"<J> J <µs> us\", found {:?}", text.trim()),
                )
            };
            let j: u64 = j.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let ts: i64 = ts.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            if unit != Some("J") {
                return Err(bad());
            }
            pc.offset_j = j;
            pc.since = 0.0;
            newest = newest.max(ts);
        }
        let num = |f: &crate::fsutil::OutFile| -> Result<i64, SimError> {
            let text = read_small(f.path()).unwrap_or_default();
            let line = text.lines().next().unwrap_or("").trim();
            line.parse().map_err(|_| {
                SimError::malformed(f.path(), format!("expected an integer, found {line:?}"))
            })
        };
        pm.fresh = num(&pm.freshness)?.max(0) as u64;
        pm.generation_n = num(&pm.generation)?.max(0) as u64;
        pm.startup_us = num(&pm.startup)?;
        newest = newest.max(pm.startup_us);
    }
    Ok(newest)
}
