//! Unit tests of the pm_counters provider: file names, values and units.

use super::*;

#[test]
fn classifies_the_known_file_names() {
    assert_eq!(classify("energy"), Some((DomainKind::Node, 0, Quantity::Energy, false)));
    assert_eq!(classify("cpu_power"), Some((DomainKind::Package, 0, Quantity::Power, false)));
    assert_eq!(classify("cpu1_energy"), Some((DomainKind::Package, 1, Quantity::Energy, true)));
    assert_eq!(classify("memory_energy"), Some((DomainKind::Memory, 0, Quantity::Energy, false)));
    assert_eq!(classify("accel3_power"), Some((DomainKind::Gpu, 3, Quantity::Power, true)));
    assert_eq!(classify("accel_energy"), Some((DomainKind::Gpu, 0, Quantity::Energy, false)));
    for other in
        ["power_cap", "accel_power_cap", "cpu0_temp", "freshness", "raw_scan_hz", "cpux_power"]
    {
        assert_eq!(classify(other), None, "{other}");
    }
}

#[test]
fn parses_values_strictly() {
    assert_eq!(parse_value("724 W", Unit::Watts), Ok(PmValue { value: 724, time_us: None }));
    assert_eq!(
        parse_value("1234567 J 7810213855886 us", Unit::Joules),
        Ok(PmValue { value: 1234567, time_us: Some(7810213855886) })
    );
    for bad in [
        "",
        "W",
        "724",
        "724 J",
        "-1 W",
        "7.5 W",
        "724 W 12",
        "724 W 12 ms",
        "724 W 12 us x",
        "x W",
    ] {
        assert!(parse_value(bad, Unit::Watts).is_err(), "{bad:?} accepted");
    }
}
