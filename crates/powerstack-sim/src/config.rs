//! `powerstack-sim.toml`: the profile and options of a simulated root, so that `open` (and
//! `powerstack sim run`) animate it as `create` was asked to.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::faults::PmFaults;
use crate::fsutil::write_file;
use crate::nvidia_data::{CallLatency, NvmlLatency};
use crate::options::{NVML_UPDATE_MS, SimOptions};
use crate::profile::{LoadPattern, Profile};

/// The file, at the top of a simulated root, that describes it.
pub const CONFIG_FILE: &str = "powerstack-sim.toml";

/// The file's contents. Keys added after the first release have defaults, so older roots open.
#[derive(Serialize, Deserialize)]
pub(crate) struct Config {
    format: u32,
    profile: String,
    load: f64,
    pattern: String,
    shuffle_indices: bool,
    mmio_duplicate: bool,
    omit_dram: bool,
    #[serde(default = "nvml_update_ms")]
    nvml_update_ms: u32,
    /// Tables last: TOML writes plain values before tables.
    #[serde(default)]
    nvml_latency: LatencyToml,
    #[serde(default)]
    pm_faults: FaultsToml,
}

/// [`PmFaults`] with `late` in µs.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct FaultsToml {
    torn: bool,
    freshness_mid_update: bool,
    late_us: u64,
    drift_ppm: f64,
}

impl From<&PmFaults> for FaultsToml {
    fn from(f: &PmFaults) -> Self {
        FaultsToml {
            torn: f.torn,
            freshness_mid_update: f.freshness_mid_update,
            late_us: u64::try_from(f.late.as_micros()).unwrap_or(u64::MAX),
            drift_ppm: f.drift_ppm,
        }
    }
}

impl From<&FaultsToml> for PmFaults {
    fn from(t: &FaultsToml) -> Self {
        PmFaults {
            torn: t.torn,
            freshness_mid_update: t.freshness_mid_update,
            late: Duration::from_micros(t.late_us),
            drift_ppm: t.drift_ppm,
        }
    }
}

fn nvml_update_ms() -> u32 {
    NVML_UPDATE_MS
}

/// [`NvmlLatency`] as `[median, tail]` µs per call.
#[derive(Serialize, Deserialize)]
struct LatencyToml {
    energy_us: [u32; 2],
    limit_us: [u32; 2],
    power_us: [u32; 2],
}

impl Default for LatencyToml {
    fn default() -> Self {
        LatencyToml::from(&NvmlLatency::default())
    }
}

impl From<&NvmlLatency> for LatencyToml {
    fn from(l: &NvmlLatency) -> Self {
        let pair = |c: CallLatency| [c.median_us, c.tail_us];
        LatencyToml { energy_us: pair(l.energy), limit_us: pair(l.limit), power_us: pair(l.power) }
    }
}

impl From<&LatencyToml> for NvmlLatency {
    fn from(t: &LatencyToml) -> Self {
        let call = |[median_us, tail_us]: [u32; 2]| CallLatency { median_us, tail_us };
        NvmlLatency { energy: call(t.energy_us), limit: call(t.limit_us), power: call(t.power_us) }
    }
}

impl Config {
    /// Reads and checks the file.
    pub fn parse(path: &Path) -> Result<(Profile, SimOptions), SimError> {
        let bad = |detail: String| SimError::BadConfig { path: path.to_path_buf(), detail };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(
                    "it does not exist: this directory is not a simulated root (create one first)"
                        .into(),
                ));
            }
            Err(e) => return Err(SimError::io(path, e)),
        };
        let c: Config = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|s| format!(" (at byte {})", s.start)).unwrap_or_default();
            bad(format!("{}{at}", e.message().trim().replace('\n', " ")))
        })?;
        if c.format != 1 {
            return Err(bad(format!(
                "unsupported format {} (this simulator writes format 1)",
                c.format
            )));
        }
        let profile = c.profile.parse::<Profile>().map_err(|e| bad(e.to_string()))?;
        let pattern = c.pattern.parse::<LoadPattern>().map_err(|e| bad(e.to_string()))?;
        let opts = SimOptions {
            load: c.load,
            pattern,
            shuffle_indices: c.shuffle_indices,
            mmio_duplicate: c.mmio_duplicate,
            omit_dram: c.omit_dram,
            nvml_library: None,
            nvml_latency: NvmlLatency::from(&c.nvml_latency),
            nvml_update_ms: c.nvml_update_ms,
            pm_faults: PmFaults::from(&c.pm_faults),
        };
        opts.validate().map_err(|e| bad(e.to_string()))?;
        Ok((profile, opts))
    }

    /// Writes the file for `profile` and `opts`.
    pub fn write(path: &Path, profile: Profile, opts: &SimOptions) -> Result<(), SimError> {
        let c = Config {
            format: 1,
            profile: profile.as_str().to_string(),
            load: opts.load,
            pattern: opts.pattern.as_str().to_string(),
            shuffle_indices: opts.shuffle_indices,
            mmio_duplicate: opts.mmio_duplicate,
            omit_dram: opts.omit_dram,
            nvml_update_ms: opts.nvml_update_ms,
            nvml_latency: LatencyToml::from(&opts.nvml_latency),
            pm_faults: FaultsToml::from(&opts.pm_faults),
        };
        let body = toml::to_string(&c)
            .map_err(|e| SimError::BadConfig { path: path.to_path_buf(), detail: e.to_string() })?;
        let text = format!(
            "# A simulated hardware root written by powerstack-sim ({}).\n{body}",
            profile.description()
        );
        write_file(path, &text, 0o644).map(|_| ())
    }
}
