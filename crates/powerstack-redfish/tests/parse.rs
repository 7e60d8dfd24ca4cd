//! The pure parsers on small documents.

use powerstack_redfish::parse::{control, environment_metrics, legacy_power, members, sensor};
use powerstack_redfish::{ControlMode, Deviation, Dialect, ParseError, SensorKind, SetPoint};
use serde_json::json;

#[test]
fn sensors_are_in_si_units() {
    let s = sensor("/s/E", &json!({"Id": "E", "ReadingType": "EnergykWh", "Reading": 2})).unwrap();
    let s = s.unwrap();
    assert_eq!((s.kind, s.value), (SensorKind::Energy, Some(7.2e6)));
    let wh = json!({"ReadingType": "EnergyWh", "ReadingUnits": "W.h", "Reading": 1});
    assert_eq!(sensor("/s/W", &wh).unwrap().unwrap().value, Some(3600.0));
    assert_eq!(sensor("/s/W", &wh).unwrap().unwrap().id, "W", "the Id falls back on the URI");
    let temp = json!({"ReadingType": "Temperature", "Reading": 40});
    assert_eq!(sensor("/s/T", &temp).unwrap(), None);
    let odd = json!({"ReadingType": "Power", "ReadingUnits": "hp", "Reading": 1});
    assert!(matches!(sensor("/s/P", &odd), Err(ParseError::UnknownUnits { .. })));
}

#[test]
fn set_point_unit_deviations_are_reported() {
    let watt = json!({"ControlType": "Power", "SetPoint": 300, "SetPointUnits": "Watt", "AllowableMin": 100});
    let limit = control("/c", &watt).unwrap().unwrap();
    assert_eq!(limit.set_point, Some(SetPoint::Watts(300.0)));
    assert_eq!(limit.deviations, [Deviation::SetPointUnitsWatt]);
    assert_eq!((limit.dialect, limit.min_watts), (Dialect::DmtfControls, Some(100.0)));
    let percent =
        json!({"ControlType": "Power", "SetPoint": 80, "SetPointUnits": "%", "AllowableMax": 100});
    let limit = control("/c", &percent).unwrap().unwrap();
    assert_eq!(limit.set_point, Some(SetPoint::Percent(80.0)));
    assert_eq!(limit.max_watts, None, "a range in percent is no range in watts");
    let freq = json!({"ControlType": "Frequency", "SetPoint": 2000});
    assert_eq!(control("/c", &freq).unwrap(), None);
}

#[test]
fn hpe_cray_controls_are_their_dialect() {
    let doc = json!({"ControlType": "Power", "ControlMode": "Automatic", "SetPoint": 1500,
                     "SettingRangeMin": 764, "SettingRangeMax": 2754});
    let limit =
        control("/redfish/v1/Chassis/Node0/Controls/NodePowerLimit", &doc).unwrap().unwrap();
    assert_eq!(limit.dialect, Dialect::HpeCrayNodePowerLimit);
    assert_eq!(limit.name, "NodePowerLimit");
    assert_eq!((limit.min_watts, limit.max_watts), (Some(764.0), Some(2754.0)));
    assert_eq!(limit.mode, Some(ControlMode::Automatic));
    assert!(limit.enforced());
}

#[test]
fn legacy_power_takes_integers_floats_and_null_limits() {
    let doc = json!({"PowerControl": [
        {"PowerConsumedWatts": 250.5, "PowerCapacityWatts": 900,
         "PowerLimit": {"LimitInWatts": 700}, "Oem": {"Cray": {"PowerLimit": {"Min": 350, "Max": 850}}}},
        {"PowerConsumedWatts": 12, "PowerLimit": {"LimitInWatts": null}}
    ]});
    let power = legacy_power("/p", &doc).unwrap();
    let watts: Vec<f64> = power.power.iter().map(|p| p.watts).collect();
    assert_eq!(watts, [250.5, 12.0]);
    assert_eq!(power.capacity_watts, Some(900.0));
    assert_eq!((power.limits[0].min_watts, power.limits[0].max_watts), (Some(350.0), Some(850.0)));
    assert_eq!(power.limits[1].mode, Some(ControlMode::Disabled));
    assert_eq!(power.limits[1].source.property, "PowerControl/1/PowerLimit/LimitInWatts");
    let bad = json!({"PowerControl": [{"PowerConsumedWatts": "lots"}]});
    assert_eq!(
        legacy_power("/p", &bad),
        Err(ParseError::WrongType {
            property: "PowerControl/0/PowerConsumedWatts".into(),
            expected: "a number"
        })
    );
}

#[test]
fn environment_metrics_energy_in_kwh_is_joules() {
    let env = environment_metrics("/e", &json!({"EnergykWh": {"Reading": 1.5}})).unwrap();
    assert_eq!(env.energy.unwrap().0, 5.4e6);
    let env = environment_metrics(
        "/e",
        &json!({"EnergyJoules": {"Reading": 10}, "EnergykWh": {"Reading": 1}}),
    );
    assert_eq!(env.unwrap().energy.unwrap().0, 10.0, "joules win over kWh");
}

#[test]
fn malformed_shapes_are_errors_not_panics() {
    assert_eq!(members(&json!([1, 2])), Err(ParseError::NotAnObject));
    assert_eq!(members(&json!({})), Err(ParseError::Missing("Members".into())));
    assert!(members(&json!({"Members": [{"x": 1}]})).is_err());
    assert!(control("/c", &json!("text")).is_err());
    assert!(environment_metrics("/e", &json!({"PowerWatts": 5})).is_err());
}
