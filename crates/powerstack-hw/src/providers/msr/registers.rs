//! The RAPL register layouts, decoded and encoded: pure functions, no I/O.

use powerstack_model::{PowerLimit, TimeWindows};

/// The RAPL units of one package (`MSR_RAPL_POWER_UNIT`, same layout on AMD).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaplUnits {
    /// Watts per power-field unit: 1/2^(bits 3:0).
    pub watts_per_unit: f64,
    /// Joules per energy-counter tick: 1/2^(bits 12:8).
    pub joules_per_tick: f64,
    /// Seconds per time unit: 1/2^(bits 19:16).
    pub seconds_per_unit: f64,
}

/// Decodes a RAPL power-unit register.
pub fn decode_units(raw: u64) -> RaplUnits {
    let inv_pow2 = |bits: u64| 1.0 / (1u64 << bits) as f64;
    RaplUnits {
        watts_per_unit: inv_pow2(raw & 0xF),
        joules_per_tick: inv_pow2((raw >> 8) & 0x1F),
        seconds_per_unit: inv_pow2((raw >> 16) & 0xF),
    }
}

/// Intel server models whose DRAM energy counter uses a fixed 2^-16 J unit instead of the unit in
/// 0x606 (Haswell-X, Broadwell-X, Broadwell-DE, Skylake-X, Ice Lake-X/D, Xeon Phi, Sapphire...).
pub const DRAM_FIXED_UNIT_MODELS: [u32; 8] = [0x3F, 0x4F, 0x56, 0x55, 0x6A, 0x6C, 0x57, 0x85];

/// The DRAM energy unit in joules per tick on Intel `model`, when it is fixed rather than the
/// package's energy unit.
pub fn dram_fixed_unit(model: u32) -> Option<f64> {
    DRAM_FIXED_UNIT_MODELS.contains(&model).then_some(1.0 / 65536.0)
}

/// Decodes a 7-bit RAPL time-window field (Y = bits 4:0, Z = bits 6:5) into seconds:
/// 2^Y × (1 + Z/4) × time unit.
pub fn decode_time_window(field: u64, seconds_per_unit: f64) -> f64 {
    let y = (field & 0x1F) as i32;
    let z = ((field >> 5) & 0x3) as f64;
    2f64.powi(y) * (1.0 + z / 4.0) * seconds_per_unit
}

/// Encodes a time window in seconds into the 7-bit RAPL field, rounding down to the nearest
/// representable window as the kernel does (Y = ⌊log2 v⌋, Z = ⌊4 (v / 2^Y − 1)⌋, v in time units).
/// Windows below one time unit give the smallest field (0); windows beyond the largest give the
/// largest (Y = 31, Z = 3).
pub fn encode_time_window(seconds: f64, seconds_per_unit: f64) -> u64 {
    if !(seconds.is_finite() && seconds_per_unit > 0.0) {
        return 0;
    }
    let units = seconds / seconds_per_unit;
    if units < 1.0 {
        return 0;
    }
    if units >= 2f64.powi(31) * 1.75 {
        return 31 | (3 << 5);
    }
    let y = units.log2().floor() as i32;
    // Guard log2 rounding on exact powers of two.
    let y = if 2f64.powi(y) > units { y - 1 } else { y };
    let y = y.clamp(0, 31);
    let z = ((4.0 * (units / 2f64.powi(y) - 1.0)).floor() as i64).clamp(0, 3) as u64;
    y as u64 | (z << 5)
}

/// One power limit of a RAPL limit register (PL1: bits 31:0; PL2: bits 63:32), decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaplLimit {
    /// The limit, in watts (bits 14:0 × power unit).
    pub limit_watts: f64,
    /// The enable bit (15).
    pub enabled: bool,
    /// The clamp bit (16): the limit may take the package below the requested P-state.
    pub clamp: bool,
    /// The averaging window, in seconds (bits 23:17).
    pub time_window_s: f64,
}

/// Decodes one 32-bit half of a RAPL power-limit register.
pub fn decode_limit_half(half: u32, units: &RaplUnits) -> RaplLimit {
    let half = u64::from(half);
    RaplLimit {
        limit_watts: (half & 0x7FFF) as f64 * units.watts_per_unit,
        enabled: half & (1 << 15) != 0,
        clamp: half & (1 << 16) != 0,
        time_window_s: decode_time_window((half >> 17) & 0x7F, units.seconds_per_unit),
    }
}

/// Sets the limit, and optionally the enable bit and time window, in one 32-bit half of a RAPL
/// power-limit register (the PL1 layout), keeping every other bit. The watts are rounded to the
/// power unit; `None` when they do not fit the 15-bit field.
pub fn encode_limit_half(
    half: u32,
    limit_watts: f64,
    time_window_s: Option<f64>,
    enabled: Option<bool>,
    units: &RaplUnits,
) -> Option<u32> {
    if !(limit_watts.is_finite() && limit_watts >= 0.0 && units.watts_per_unit > 0.0) {
        return None;
    }
    let field = (limit_watts / units.watts_per_unit).round();
    if field > 0x7FFF as f64 {
        return None;
    }
    let mut h = (u64::from(half) & !0x7FFF) | field as u64;
    if let Some(on) = enabled {
        // Enable (15) and clamp (16) together, as the kernel does for a limit it enables.
        h = if on { h | (1 << 15) | (1 << 16) } else { h & !(1 << 15) };
    }
    if let Some(window) = time_window_s {
        h = (h & !(0x7F << 17)) | (encode_time_window(window, units.seconds_per_unit) << 17);
    }
    Some(h as u32)
}

/// `MSR_PKG_POWER_LIMIT` (0x610), decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PkgPowerLimit {
    /// PL1, the long-term limit (bits 23:0).
    pub pl1: RaplLimit,
    /// PL2, the short-term limit (bits 55:32).
    pub pl2: RaplLimit,
    /// The lock bit (63): the register cannot be written until reset.
    pub locked: bool,
}

/// Decodes `MSR_PKG_POWER_LIMIT`.
pub fn decode_pkg_power_limit(raw: u64, units: &RaplUnits) -> PkgPowerLimit {
    PkgPowerLimit {
        pl1: decode_limit_half(raw as u32, units),
        pl2: decode_limit_half((raw >> 32) as u32, units),
        locked: raw & (1 << 63) != 0,
    }
}

/// `MSR_DRAM_POWER_LIMIT` (0x618), decoded: the PL1 layout, lock bit 31.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DramPowerLimit {
    /// The limit.
    pub limit: RaplLimit,
    /// The lock bit (31).
    pub locked: bool,
}

/// Decodes `MSR_DRAM_POWER_LIMIT`.
pub fn decode_dram_power_limit(raw: u64, units: &RaplUnits) -> DramPowerLimit {
    DramPowerLimit { limit: decode_limit_half(raw as u32, units), locked: raw & (1 << 31) != 0 }
}

/// A power-info register (`MSR_PKG_POWER_INFO` 0x614, `MSR_DRAM_POWER_INFO` 0x61C), decoded. Zero
/// fields mean unknown.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PowerInfo {
    /// Thermal design power (bits 14:0), in watts.
    pub tdp_watts: Option<f64>,
    /// The smallest settable limit (bits 30:16), in watts.
    pub min_watts: Option<f64>,
    /// The largest settable limit (bits 46:32), in watts.
    pub max_watts: Option<f64>,
    /// The largest time window (bits 53:48: Y in 52:48, Z in bit 53, as the kernel reads it), in
    /// seconds.
    pub max_time_window_s: Option<f64>,
}

/// Decodes a power-info register.
pub fn decode_power_info(raw: u64, units: &RaplUnits) -> PowerInfo {
    let field = |shift: u32| {
        let v = (raw >> shift) & 0x7FFF;
        (v != 0).then_some(v as f64 * units.watts_per_unit)
    };
    let window = (raw >> 48) & 0x3F;
    PowerInfo {
        tdp_watts: field(0),
        min_watts: field(16),
        max_watts: field(32),
        max_time_window_s: (window != 0)
            .then(|| decode_time_window(window, units.seconds_per_unit)),
    }
}

/// Builds the catalog limit for one decoded RAPL limit and its info register.
pub(super) fn power_limit(
    name: &str,
    limit: &RaplLimit,
    info: &PowerInfo,
    units: &RaplUnits,
    locked: bool,
) -> PowerLimit {
    PowerLimit {
        name: name.to_string(),
        limit_watts: Some(limit.limit_watts),
        min_watts: info.min_watts,
        max_watts: info.max_watts.or(info.tdp_watts),
        default_watts: None,
        time_window_s: Some(limit.time_window_s),
        time_windows: Some(TimeWindows::rapl(units.seconds_per_unit, info.max_time_window_s)),
        enabled: Some(limit.enabled),
        locked,
    }
}

#[cfg(test)]
mod tests;
