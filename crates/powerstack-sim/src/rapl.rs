//! RAPL arithmetic: energy counters in raw ticks, µJ conversion, and the power-limit register
//! layout with the kernel's time-window encoding.

/// `MSR_RAPL_POWER_UNIT` on intel-2s: power 1/8 W, energy 2^-14 J, time 2^-10 s.
pub(crate) const INTEL_UNITS: u64 = 0x000A_0E03;
/// `MSR_AMD_RAPL_POWER_UNIT` on amd-2s: power 1/8 W, energy 2^-16 J, time 2^-10 s.
pub(crate) const AMD_UNITS: u64 = 0x000A_1003;
/// Package and psys energy unit exponent on intel-2s (2^-14 J).
pub(crate) const ESU_PKG: u32 = 14;
/// The fixed server DRAM energy unit exponent (2^-16 J), and AMD's.
pub(crate) const ESU_16: u32 = 16;
/// One power unit in µW (1/8 W).
pub(crate) const POWER_UNIT_UW: u64 = 125_000;
/// One time unit in µs, as the kernel computes it (`1000000 / 2^10`, integer).
pub(crate) const TIME_UNIT_US: u64 = 976;

/// `energy_uj` for a raw counter value: `floor(raw × 2^-esu J)` in µJ, computed exactly
/// (`1e6 = 15625 · 2^6`).
pub(crate) fn raw_to_uj(raw: u32, esu: u32) -> u64 {
    (u64::from(raw) * 15_625) >> (esu - 6)
}

/// `max_energy_range_uj` of a 32-bit counter with unit 2^-esu J.
pub(crate) fn max_range_uj(esu: u32) -> u64 {
    raw_to_uj(u32::MAX, esu)
}

/// The raw value whose `energy_uj` is `uj` (exact: one tick is more than 1 µJ).
pub(crate) fn uj_to_raw(uj: u64, esu: u32) -> Option<u32> {
    let raw = (uj.checked_shl(esu - 6)?).div_ceil(15_625);
    let raw = u32::try_from(raw).ok()?;
    (raw_to_uj(raw, esu) == uj).then_some(raw)
}

/// One 32-bit RAPL energy counter following a fraction of a component's energy.
#[derive(Clone, Debug)]
pub(crate) struct RaplCounter {
    /// The component whose energy it counts.
    pub comp: usize,
    /// Energy unit exponent: a tick is 2^-esu J.
    pub esu: u32,
    /// The fraction of the component's energy counted (1, or 1/cores for an AMD per-core share).
    pub scale: f64,
    /// The raw value when the component's energy (since create/open) is zero.
    pub offset: u32,
}

impl RaplCounter {
    /// Whole ticks in `energy` joules of the component.
    pub fn ticks(&self, energy: f64) -> u64 {
        let t = (energy * self.scale * f64::from(1u32 << self.esu)).floor();
        if t.is_finite() && t > 0.0 { t as u64 } else { 0 }
    }

    /// The raw register value for the component's energy.
    pub fn raw(&self, energy: f64) -> u32 {
        u64::from(self.offset).wrapping_add(self.ticks(energy)) as u32
    }

    /// Sets the offset so that the counter reads `raw` at `energy`.
    pub fn set_raw(&mut self, energy: f64, raw: u32) {
        self.offset = (u64::from(raw).wrapping_sub(self.ticks(energy))) as u32;
    }

    /// Ticks per second at `watts` of the component.
    pub fn ticks_per_s(&self, watts: f64) -> f64 {
        watts * self.scale * f64::from(1u32 << self.esu)
    }
}

/// The kernel's `time_window_us` for a 7-bit window field (`Y` in bits 4:0, `Z` in bits 6:5):
/// `2^Y · (4 + Z) · time_unit / 4`.
pub(crate) fn window_field_to_us(field: u64) -> u64 {
    let y = field & 0x1f;
    let z = (field >> 5) & 0x3;
    (1u64 << y) * (4 + z) * TIME_UNIT_US / 4
}

/// The window field the kernel writes for `us` (`rapl_compute_time_window_core`).
pub(crate) fn us_to_window_field(us: u64) -> u64 {
    let v = us / TIME_UNIT_US;
    if v == 0 {
        return 0;
    }
    let y = u64::from(63 - v.leading_zeros());
    if y > 0x1f {
        return 0x7f;
    }
    let z = 4 * (v - (1u64 << y)) / (1u64 << y);
    (y & 0x1f) | ((z & 0x3) << 5)
}

/// One power-limit constraint as powercap shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Constraint {
    pub limit_uw: u64,
    pub window_us: u64,
}

/// The limits of one RAPL zone as powercap shows them: `enabled` (PL1 enable) and one or two
/// constraints. `pl2_enabled` comes from the register only (powercap has no file for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZoneLimits {
    pub enabled: bool,
    pub c: [Constraint; 2],
    pub n: usize,
    pub pl2_enabled: bool,
}

impl ZoneLimits {
    /// Decodes a `*_POWER_LIMIT` register with `n` constraints.
    pub fn decode(reg: u64, n: usize) -> ZoneLimits {
        let field = |shift: u32| {
            let v = reg >> shift;
            Constraint {
                limit_uw: (v & 0x7fff) * POWER_UNIT_UW,
                window_us: window_field_to_us((v >> 17) & 0x7f),
            }
        };
        ZoneLimits {
            enabled: reg & (1 << 15) != 0,
            c: [field(0), field(32)],
            n,
            pl2_enabled: n > 1 && reg & (1 << 47) != 0,
        }
    }

    /// Writes into `old` the fields that differ from `prev` (as the kernel writes only the field
    /// of the file written), keeping the bits powercap does not show (clamp, lock, PL2 enable).
    pub fn encode_changes(&self, prev: &ZoneLimits, old: u64) -> u64 {
        let mut reg = old;
        for i in 0..self.n.min(2) {
            let shift = 32 * i as u32;
            if self.c[i].limit_uw != prev.c[i].limit_uw {
                let limit = (self.c[i].limit_uw / POWER_UNIT_UW).min(0x7fff);
                reg = (reg & !(0x7fff << shift)) | (limit << shift);
            }
            if self.c[i].window_us != prev.c[i].window_us {
                let window = us_to_window_field(self.c[i].window_us);
                reg = (reg & !(0x7f << (17 + shift))) | (window << (17 + shift));
            }
        }
        if self.enabled == prev.enabled {
            reg
        } else if self.enabled {
            reg | (1 << 15)
        } else {
            reg & !(1 << 15)
        }
    }

    /// The power the zone may draw in steady state, in watts, when a limit is enabled.
    pub fn cap_watts(&self) -> Option<f64> {
        let mut cap: Option<f64> = None;
        let mut take = |w: f64| cap = Some(cap.map_or(w, |c: f64| c.min(w)));
        if self.enabled {
            take(self.c[0].limit_uw as f64 / 1e6);
        }
        if self.n > 1 && self.pl2_enabled {
            take(self.c[1].limit_uw as f64 / 1e6);
        }
        cap
    }
}

/// The bit that locks a power-limit register: 31 for `MSR_DRAM_POWER_LIMIT`, 63 otherwise.
pub(crate) fn lock_bit(addr: u32) -> u32 {
    if addr == 0x618 { 31 } else { 63 }
}

/// A power-limit register value: PL1 (and PL2) in watts with enable and clamp bits and 7-bit
/// window fields (`Y | Z << 5`).
pub(crate) fn limit_reg(pl1_w: u64, en1: bool, win1: u64, pl2: Option<(u64, bool, u64)>) -> u64 {
    let field = |w: u64, en: bool, win: u64| {
        (w * 8) | (u64::from(en) << 15) | (1 << 16) | ((win & 0x7f) << 17)
    };
    let mut reg = field(pl1_w, en1, win1);
    if let Some((w, en, us)) = pl2 {
        reg |= field(w, en, us) << 32;
    }
    reg
}

/// A `*_POWER_INFO` register: thermal spec, minimum and maximum power in watts (1/8 W units),
/// and the maximum time window field.
pub(crate) fn power_info_reg(spec_w: u64, min_w: u64, max_w: u64, max_window: u64) -> u64 {
    (spec_w * 8) | ((min_w * 8) << 16) | ((max_w * 8) << 32) | ((max_window & 0x3f) << 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_uj_is_the_exact_floor_and_inverts() {
        assert_eq!(max_range_uj(14), 262_143_999_938);
        assert_eq!(max_range_uj(16), 65_535_999_984);
        assert_eq!(raw_to_uj(1, 14), 61);
        assert_eq!(raw_to_uj(0x4000_0000, 14), 65_536_000_000);
        for raw in [0u32, 1, 2, 3, 1000, 0x4000_0001, u32::MAX - 1, u32::MAX] {
            for esu in [14, 16] {
                assert_eq!(uj_to_raw(raw_to_uj(raw, esu), esu), Some(raw));
            }
        }
    }

    #[test]
    fn time_windows_follow_the_kernel() {
        assert_eq!(window_field_to_us(us_to_window_field(1_000_000)), 999_424);
        // The kernel's encoding truncates: 2440 µs (Y=1, Z=1) written back becomes 1952 µs.
        assert_eq!(window_field_to_us(0x21), 2_440);
        assert_eq!(window_field_to_us(us_to_window_field(2_440)), 1_952);
        assert_eq!(window_field_to_us(us_to_window_field(976)), 976);
        assert_eq!(us_to_window_field(0), 0);
    }

    #[test]
    fn limit_registers_round_trip() {
        let reg = limit_reg(150, true, 0x0A, Some((180, true, 0x21)));
        let z = ZoneLimits::decode(reg, 2);
        assert!(z.enabled && z.pl2_enabled);
        assert_eq!(z.c[0], Constraint { limit_uw: 150_000_000, window_us: 999_424 });
        assert_eq!(z.c[1], Constraint { limit_uw: 180_000_000, window_us: 2_440 });
        assert_eq!(z.encode_changes(&z, reg), reg);
        assert_eq!(z.cap_watts(), Some(150.0));
        let mut low = z;
        low.c[0].limit_uw = 80_000_000;
        let r2 = low.encode_changes(&z, reg | (1 << 63));
        assert_eq!(ZoneLimits::decode(r2, 2).c[1].window_us, 2_440);
        assert_eq!(r2 & 0x7fff, 640);
        assert!(r2 & (1 << 63) != 0 && r2 & (1 << 16) != 0);
    }

    #[test]
    fn counters_wrap_modulo_2_32() {
        let mut c = RaplCounter { comp: 0, esu: 14, scale: 1.0, offset: 0xFFFF_FFF0 };
        assert_eq!(c.raw(0.0), 0xFFFF_FFF0);
        assert_eq!(c.raw(32.0 / 16384.0), 0x10);
        c.set_raw(1.0, 5);
        assert_eq!(c.raw(1.0), 5);
    }
}
