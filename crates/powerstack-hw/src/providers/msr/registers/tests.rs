//! The register layouts against values read on real parts.

use super::*;
use proptest::prelude::*;

/// Skylake-SP's 0x606: power 1/8 W, energy 2^-14 J, time 2^-10 s.
const SKX_UNITS: u64 = 0x000A_0E03;

#[test]
fn units_decode_from_their_bit_fields() {
    let u = decode_units(SKX_UNITS);
    assert_eq!(u.watts_per_unit, 0.125);
    assert_eq!(u.joules_per_tick, 1.0 / 16384.0);
    assert_eq!(u.seconds_per_unit, 1.0 / 1024.0);
    // Client parts and AMD: energy 2^-16 J (15.3 µJ).
    assert_eq!(decode_units(0x000A_1003).joules_per_tick, 1.0 / 65536.0);
    // Reserved bits are ignored.
    let reserved = 0xFFFF_FFFF_FFF0_E0F0;
    assert_eq!(decode_units(SKX_UNITS | reserved), decode_units(SKX_UNITS));
}

#[test]
fn dram_uses_the_fixed_unit_only_on_server_models() {
    assert_eq!(dram_fixed_unit(0x55), Some(1.0 / 65536.0));
    assert_eq!(dram_fixed_unit(0x3F), Some(1.0 / 65536.0));
    assert_eq!(dram_fixed_unit(0x8F), None);
    assert_eq!(dram_fixed_unit(0x9E), None);
}

#[test]
fn time_windows_decode_as_two_to_the_y_times_one_plus_z_quarters() {
    let tu = 1.0 / 1024.0;
    assert_eq!(decode_time_window(0x0A, tu), 1.0); // Y=10, Z=0: 1 s
    assert_eq!(decode_time_window(0x21, tu), 2.0 * 1.25 / 1024.0); // Y=1, Z=1: 2.44 ms
    assert_eq!(decode_time_window(0x6E, tu), 16.0 * 1.75); // Y=14, Z=3: 28 s
    assert_eq!(decode_time_window(0, tu), tu);
    // Only 7 bits count.
    assert_eq!(decode_time_window(0x80 | 0x0A, tu), 1.0);
}

#[test]
fn time_windows_encode_by_rounding_down() {
    let tu = 1.0 / 1024.0;
    assert_eq!(encode_time_window(1.0, tu), 0x0A);
    assert_eq!(encode_time_window(28.0, tu), 0x6E);
    assert_eq!(encode_time_window(1.2, tu), 0x0A); // 1.25 s is above 1.2 s
    assert_eq!(encode_time_window(1.25, tu), 0x2A);
    assert_eq!(encode_time_window(0.0, tu), 0);
    assert_eq!(encode_time_window(f64::NAN, tu), 0);
    assert_eq!(encode_time_window(1e30, tu), 0x7F);
    for field in 0..128u64 {
        for k in [0, 4, 10, 15] {
            let u = 1.0 / f64::from(1u32 << k);
            assert_eq!(
                encode_time_window(decode_time_window(field, u), u),
                field,
                "field {field:#x} unit 2^-{k}"
            );
        }
    }
}

#[test]
fn package_power_limit_decodes_pl1_pl2_and_the_lock() {
    let u = decode_units(SKX_UNITS);
    // PL1 125 W enabled + clamp, 1 s; PL2 150 W enabled, 2.44 ms; locked.
    let l = decode_pkg_power_limit(0x8042_84B0_0015_83E8, &u);
    assert_eq!(
        l.pl1,
        RaplLimit { limit_watts: 125.0, enabled: true, clamp: true, time_window_s: 1.0 }
    );
    assert_eq!(
        l.pl2,
        RaplLimit { limit_watts: 150.0, enabled: true, clamp: false, time_window_s: 2.5 / 1024.0 }
    );
    assert!(l.locked);
    let unlocked = decode_pkg_power_limit(0x0042_84B0_0015_83E8, &u);
    assert!(!unlocked.locked);
    let disabled = decode_pkg_power_limit(0x03E8, &u);
    assert!(!disabled.pl1.enabled && !disabled.pl1.clamp);
    assert_eq!(disabled.pl1.limit_watts, 125.0);
}

#[test]
fn dram_power_limit_has_its_lock_at_bit_31() {
    let u = decode_units(SKX_UNITS);
    let l = decode_dram_power_limit(0x8015_8140, &u); // 40 W, enabled, clamp, 1 s, locked
    assert_eq!(l.limit.limit_watts, 40.0);
    assert!(l.limit.enabled && l.locked);
    assert_eq!(l.limit.time_window_s, 1.0);
    assert!(!decode_dram_power_limit(0x0015_8140, &u).locked);
}

#[test]
fn power_info_decodes_tdp_min_max_and_zero_is_unknown() {
    let u = decode_units(SKX_UNITS);
    // Max window 0x2E: Y = 14, Z = 1: 2^14 × 1.25 × 2^-10 s = 20 s.
    let i = decode_power_info(0x002E_0640_0230_03E8, &u);
    assert_eq!(
        i,
        PowerInfo {
            tdp_watts: Some(125.0),
            min_watts: Some(70.0),
            max_watts: Some(200.0),
            max_time_window_s: Some(20.0),
        }
    );
    let tdp_only = decode_power_info(0x03E8, &u);
    assert_eq!(
        tdp_only,
        PowerInfo {
            tdp_watts: Some(125.0),
            min_watts: None,
            max_watts: None,
            max_time_window_s: None,
        }
    );
    // A catalog limit falls back to the TDP as its maximum, and to the encoding's largest
    // window; the reported maximum window bounds the windows it accepts.
    let pl1 = decode_limit_half(0x0015_83E8, &u);
    let limit = power_limit("long_term", &pl1, &tdp_only, &u, false);
    assert_eq!(limit.max_watts, Some(125.0));
    assert_eq!(limit.min_watts, None);
    assert_eq!(limit.enabled, Some(true));
    assert_eq!(limit.time_windows, Some(TimeWindows::rapl(u.seconds_per_unit, None)));
    let bounded = power_limit("long_term", &pl1, &i, &u, false).time_windows.unwrap();
    assert_eq!(bounded.max_s(), 20.0);
    assert_eq!(bounded.min_s(), 1.0 / 1024.0);
}

proptest! {
    /// Encoding rounds down to a representable window no more than 20% below the request, and
    /// decoding then encoding gives the same field.
    #[test]
    fn time_window_round_trip(k in 0u32..16, units in 1.0f64..3.0e9) {
        let u = 1.0 / f64::from(1u32 << k);
        let seconds = units * u;
        let field = encode_time_window(seconds, u);
        prop_assert!(field < 128);
        let back = decode_time_window(field, u);
        if units < f64::from(1u32 << 31) * 1.75 {
            prop_assert!(back <= seconds * (1.0 + 1e-12), "{back} > {seconds}");
            prop_assert!(back >= seconds * 0.8 * (1.0 - 1e-12), "{back} < 0.8 × {seconds}");
        }
        prop_assert_eq!(encode_time_window(back, u), field);
    }
}
