//! Putting journaled originals back: after a crash (`recover`), at `cap reset`, and at the
//! agent's start and stop. A restore is a write like any other: checked against the domain's
//! range first and read back after; one that fails leaves its entry in the journal.

use powerstack_hw::Platform;
use powerstack_model::{LimitWrite, PowerLimit};

use crate::journal::{Entry, Journal, Setting};
use crate::{CapError, Restored, put_back, read_back, validate};

/// Recovers from a run that died while writing: if the journal is marked in progress, every
/// journaled power limit (through `platform`) and every journaled sysfs attribute (under `root`)
/// is put back to its original. `None` when there was nothing to recover.
pub fn recover(
    journal: &mut Journal,
    platform: &mut Platform,
    root: &powerstack_hw::Root,
) -> Result<Option<Restored>, CapError> {
    if journal.in_progress().is_none() {
        return Ok(None);
    }
    // Files first: restoring the limits ends the session, and the mark must stay until everything
    // has been tried, so that a crash part way through is recovered again at the next start.
    let (files_restored, files_failed) = journal.restore_files(root)?;
    let mut out = restore_limits(journal, platform, |_| true, &mut || false)?;
    out.files_restored = files_restored;
    out.files_failed = files_failed;
    Ok(Some(out))
}

/// Restores the journaled power limits selected by `which` and forgets the ones restored; the
/// others stay in the journal, with the reason in [`Restored::failed`]. When `stop` says so before
/// a write, the limits already restored are put back as they were and nothing is forgotten.
pub(crate) fn restore_limits(
    journal: &mut Journal,
    platform: &mut Platform,
    which: impl Fn(&Entry) -> bool,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Restored, CapError> {
    let mut out = Restored::default();
    let mut undo: Vec<(usize, String, LimitWrite)> = Vec::new();
    let entries: Vec<Entry> = journal.entries().iter().filter(|e| which(e)).cloned().collect();
    for e in entries {
        if stop() {
            let what = "this reset had put back; the journal keeps them all";
            return Err(CapError::Stopped { rollback: put_back(platform, &undo, what) });
        }
        let index = platform
            .catalog()
            .iter()
            .position(|d| e.key.matches(d) && d.limit(&e.key.constraint).is_some());
        let Some(index) = index else {
            out.failed.push((e.key.clone(), "the domain is not on this node (any more)".into()));
            continue;
        };
        let before = platform.catalog()[index].limit(&e.key.constraint).map(setting);
        match restore_one(platform, index, &e) {
            Ok(()) => {
                out.restored.push(e.key.clone());
                if let Some(b) = before {
                    undo.push((index, e.key.to_string(), restore_write(&e.key.constraint, &b)));
                }
            }
            Err(why) => out.failed.push((e.key.clone(), why)),
        }
    }
    journal.forget(&out.restored)?;
    Ok(out)
}

/// Puts one entry's original back on catalog entry `index`: validated, written, read back; else
/// why not.
fn restore_one(platform: &mut Platform, index: usize, e: &Entry) -> Result<(), String> {
    let write = restore_write(&e.key.constraint, &e.original);
    let what = format!("{} {}", e.key.domain, e.key.constraint);
    // An absent original is "uncapped" (written as 0), which no range describes.
    if e.original.limit_watts.is_some()
        && let Some(info) = platform.catalog().get(index)
    {
        validate(info, &write)
            .map_err(|cause| format!("the original is not valid here: {cause}"))?;
    }
    platform.write_limit(index, &write).map_err(|e| format!("{what}: {e}"))?;
    read_back(platform, index, &write, e.original.limit_watts)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A limit's setting, as far as restoring it goes.
pub(crate) fn setting(limit: &PowerLimit) -> Setting {
    Setting {
        limit_watts: limit.limit_watts,
        time_window_s: limit.time_window_s,
        enabled: limit.enabled,
    }
}

/// The write that puts a setting back. An absent limit was "uncapped" (0 in hwmon and
/// pm_counters), so it is written as 0.
pub(crate) fn restore_write(constraint: &str, s: &Setting) -> LimitWrite {
    LimitWrite {
        constraint: constraint.to_string(),
        limit_watts: s.limit_watts.unwrap_or(0.0),
        time_window_s: s.time_window_s,
        enabled: s.enabled,
    }
}
