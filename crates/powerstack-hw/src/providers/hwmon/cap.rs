//! The `cap` limit files of a channel: reading the limit, writing a value.

use std::path::{Path, PathBuf};

use powerstack_model::PowerLimit;

use super::MICRO;
use crate::error::HwError;
use crate::file;

/// Which attribute holds a chip's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CapStyle {
    /// `powerK_cap` (ACPI power meter, amdgpu): 0 = uncapped.
    Cap,
    /// `powerK_max` (i915, xe: PL1): 0 = disabled.
    Max,
}

/// The `cap` limit files of one channel.
#[derive(Clone, Debug)]
pub(super) struct CapFiles {
    pub(super) style: CapStyle,
    /// `powerK_cap` or `powerK_max`, µW, the file written.
    pub(super) cap: PathBuf,
    pub(super) min: Option<PathBuf>,
    /// `powerK_cap_max`, or `powerK_rated_max`.
    pub(super) max: Option<PathBuf>,
    /// `powerK_cap_default`, or `powerK_rated_max`.
    pub(super) default: Option<PathBuf>,
    /// `powerK_max_interval`, ms (i915, xe).
    pub(super) interval: Option<PathBuf>,
}

/// The attribute name of a path, for messages.
pub(super) fn attr_name(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("attribute").to_string()
}

impl CapFiles {
    pub(super) fn read(&self) -> Result<PowerLimit, HwError> {
        let hint = "hwmon power cap";
        let watts = |p: &Path| file::read_u64_once(p, hint).map(|uw| uw as f64 / MICRO);
        let opt = |p: &Option<PathBuf>| p.as_deref().map(watts).transpose();
        let limit = watts(&self.cap)?;
        let (max, default) = match self.style {
            CapStyle::Cap => (opt(&self.max)?, opt(&self.default)?),
            // A rated maximum of 0 is unknown.
            CapStyle::Max => {
                let rated = opt(&self.max)?.filter(|w| *w > 0.0);
                (rated, rated)
            }
        };
        let time_window_s = self
            .interval
            .as_deref()
            .map(|p| file::read_u64_once(p, hint).map(|ms| ms as f64 / 1e3))
            .transpose()?;
        Ok(PowerLimit {
            name: "cap".to_string(),
            limit_watts: (limit > 0.0).then_some(limit),
            min_watts: opt(&self.min)?,
            max_watts: max,
            default_watts: default,
            time_window_s,
            time_windows: None,
            enabled: (self.style == CapStyle::Max).then_some(limit > 0.0),
            locked: !file::is_writable(&self.cap),
        })
    }

    /// Writes `value` to `path`, naming the domain and the value in a refusal.
    pub(super) fn write(path: &Path, what: &str, value: u64, unit: &str) -> Result<(), HwError> {
        file::write_attr(path, &value.to_string(), "hwmon power cap").map_err(|e| match e {
            HwError::Refused { detail, .. } => HwError::Refused {
                what: format!("{what} ({})", path.display()),
                value: format!("{value} {unit}"),
                detail,
            },
            other => other,
        })
    }
}
