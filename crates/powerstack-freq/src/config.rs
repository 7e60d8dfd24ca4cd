//! The pools file: reserved, shared and exclusive pools, their profiles, and uncore limits.
//!
//! ```toml
//! [reserved]
//! cpus = "0,8"                  # system CPUs: never tuned
//!
//! [shared]                      # every CPU in no other pool
//! profile = "low-power"
//!
//! [[exclusive]]
//! name = "fast"
//! cpus = "1-3,9-11"
//! profile = "performance"
//!
//! [profiles.low-power]
//! min_khz = 1000000
//! max_khz = 2000000
//! governor = "powersave"
//! epp = "power"
//!
//! [profiles.performance]
//! min_khz = 2400000
//! max_khz = 3700000
//! governor = "performance"
//! epp = "performance"
//! cstates = { C6 = false, C1E = false }
//!
//! [[uncore]]
//! package = 0
//! min_khz = 1200000
//! max_khz = 2000000
//! ```
//!
//! Unknown keys are errors. Frequencies are in kHz everywhere. A profile field that is absent
//! keeps the CPU's boot-time value; a C-state not named keeps its boot-time setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FreqError;

/// A whole pools file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsFile {
    /// The reserved pool: system CPUs, never tuned.
    #[serde(default)]
    pub reserved: ReservedPool,
    /// The shared pool: every online CPU in no other pool.
    #[serde(default)]
    pub shared: SharedPool,
    /// Exclusive pools.
    #[serde(default)]
    pub exclusive: Vec<ExclusivePool>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSpec>,
    /// Uncore limits per package (and die).
    #[serde(default)]
    pub uncore: Vec<UncoreSpec>,
}

/// The reserved pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedPool {
    /// Its CPUs, as a CPU list (`0,8` or `0-1`).
    #[serde(default)]
    pub cpus: String,
}

/// The shared pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPool {
    /// Its profile; none keeps boot-time settings.
    pub profile: Option<String>,
}

/// An exclusive pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusivePool {
    /// Its name (unique; not `reserved` or `shared`).
    pub name: String,
    /// Its CPUs, as a CPU list.
    #[serde(default)]
    pub cpus: String,
    /// Its profile; none keeps boot-time settings.
    pub profile: Option<String>,
}

/// A frequency range, kHz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KhzRange {
    /// Minimum, kHz.
    pub min_khz: Option<u64>,
    /// Maximum, kHz.
    pub max_khz: Option<u64>,
}

/// A power profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Minimum scaling frequency, kHz.
    pub min_khz: Option<u64>,
    /// Maximum scaling frequency, kHz.
    pub max_khz: Option<u64>,
    /// cpufreq governor.
    pub governor: Option<String>,
    /// Energy-performance preference (a name the CPU lists).
    pub epp: Option<String>,
    /// Ranges per core type on hybrid parts (`p_core`, `e_core`), overriding `min_khz`/`max_khz`.
    #[serde(default)]
    pub core_types: BTreeMap<String, KhzRange>,
    /// C-states by name: `true` enabled, `false` disabled.
    #[serde(default)]
    pub cstates: BTreeMap<String, bool>,
}

/// Uncore limits of a package, or of one of its dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UncoreSpec {
    /// Package.
    pub package: u32,
    /// Die (every die of the package when absent).
    pub die: Option<u32>,
    /// Minimum uncore frequency, kHz.
    pub min_khz: Option<u64>,
    /// Maximum uncore frequency, kHz.
    pub max_khz: Option<u64>,
}

impl PoolsFile {
    /// Parses a pools file. The error names the line and field.
    pub fn parse(text: &str) -> Result<PoolsFile, FreqError> {
        toml::from_str(text).map_err(|e| FreqError::Config(one_line(&e.to_string())))
    }

    /// The file as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The exclusive pool named `name`.
    pub fn exclusive(&self, name: &str) -> Option<&ExclusivePool> {
        self.exclusive.iter().find(|p| p.name == name)
    }
}

/// TOML errors span several lines (position, a caret diagram, the reason): keep the position,
/// the offending source line and the reason, on one line.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> =
        text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    let head = lines.first().copied().unwrap_or("malformed TOML");
    // Diagram lines look like `  |`, `2 | min_khz = "fast"`, `  |    ^^^^`.
    let source = lines.iter().skip(1).find_map(|l| {
        let (n, rest) = l.split_once('|')?;
        (!n.trim().is_empty()).then(|| rest.trim().to_string())
    });
    let reason = lines.iter().skip(1).rev().find(|l| !l.contains('|')).map(|l| l.trim());
    match (source, reason) {
        (Some(src), Some(why)) => format!("{head}: `{src}`: {why}"),
        (None, Some(why)) => format!("{head}: {why}"),
        (Some(src), None) => format!("{head}: `{src}`"),
        (None, None) => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../../docs/examples/pools.toml");
        let f = PoolsFile::parse(text).unwrap();
        assert_eq!(f.reserved.cpus, "0,8");
        assert_eq!(f.exclusive.len(), 2);
        assert!(!f.profiles["performance"].cstates["C6"]);
        assert_eq!(f.uncore[0].package, 0);
        // Round trip through the stored form.
        assert_eq!(PoolsFile::parse(&f.to_toml()).unwrap(), f);
    }

    #[test]
    fn unknown_keys_and_bad_types_are_one_line_errors_naming_the_field() {
        for (text, needle) in [
            ("[shared]\nprofil = \"x\"\n", "profil"),
            ("[profiles.a]\nmin_khz = \"fast\"\n", "min_khz"),
            ("[[exclusive]]\ncpus = \"1\"\n", "name"),
            ("[reserved\n", "TOML"),
        ] {
            let e = PoolsFile::parse(text).unwrap_err().to_string();
            assert!(
                e.contains(needle) || e.to_lowercase().contains(&needle.to_lowercase()),
                "{text:?}: {e}"
            );
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
