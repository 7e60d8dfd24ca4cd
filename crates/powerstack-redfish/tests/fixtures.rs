//! Interop: the DMTF public-rackmount1 and public-liquid-cooled-server mockups and the HPE Cray
//! EX235a capture, parsed from the files and read through the mock BMC over HTTP. Each test skips
//! with a note when `../shared/fixtures/redfish` is absent.

mod common;

use common::{Dir, block_on, fixture};
use powerstack_mock_bmc::{MockBmc, Options, Tree};
use powerstack_redfish::{
    Bmc, BmcConfig, ControlMode, Dialect, Energy, Error, LimitRequest, PowerState, Readings,
    ResetType, SetPoint, Source, Transition, TransitionOptions, read, read_limits,
};

/// The readings of a mockup from its files, and the same through the mock BMC: they must agree.
fn both(name: &str) -> Option<Readings> {
    let dir = fixture(name)?;
    let from_files = block_on(read(&Dir(dir.clone()))).unwrap();
    let over_http = block_on(async {
        let bmc = MockBmc::start(Tree::from_dir(&dir).unwrap(), Options::default()).await.unwrap();
        let client = Bmc::new(&BmcConfig::new(bmc.url())).unwrap();
        let (walked, again) =
            (client.limit_readings().await.unwrap(), client.limit_readings().await.unwrap());
        assert_eq!(walked.chassis, again.chassis, "{name}: the limits read again differ");
        client.readings().await.unwrap()
    });
    assert_eq!(from_files.chassis, over_http.chassis, "{name}: files and HTTP disagree");
    let uris = |r: &Readings| r.problems.iter().map(|p| p.uri().to_string()).collect::<Vec<_>>();
    assert_eq!(uris(&from_files), uris(&over_http));
    let lean = block_on(read_limits(&Dir(dir))).unwrap();
    let limits = |r: &Readings| r.chassis.iter().map(|c| c.limits.clone()).collect::<Vec<_>>();
    assert_eq!(limits(&lean), limits(&from_files), "{name}: the limits alone differ");
    Some(from_files)
}

fn source(uri: &str, property: &str) -> Source {
    Source { uri: uri.into(), property: property.into() }
}

#[test]
fn public_rackmount1() {
    let Some(readings) = both("public-rackmount1") else { return };
    let c = readings.chassis("1U").unwrap();
    assert_eq!(c.power_watts(), Some(374.0));
    assert_eq!(
        c.power[0].source,
        source("/redfish/v1/Chassis/1U/EnvironmentMetrics", "PowerWatts/Reading")
    );
    let legacy = c.power.iter().find(|p| p.source.uri.ends_with("/Power")).unwrap();
    assert_eq!(legacy.watts, 344.0);
    assert_eq!(legacy.source.property, "PowerControl/0/PowerConsumedWatts");
    let Some(Energy::Counter { joules, source: from }) = &c.energy else {
        panic!("{:?}", c.energy)
    };
    assert_eq!(*joules, 325_675.0 * 3.6e6);
    assert_eq!(from.uri, "/redfish/v1/Chassis/1U/Sensors/TotalEnergy");
    assert_eq!(c.capacity_watts, Some(2000.0));
    assert_eq!(c.limits.len(), 2, "{:#?}", c.limits);
    let control = &c.limits[0];
    assert_eq!(control.dialect, Dialect::DmtfControls);
    assert_eq!(control.set_point, Some(SetPoint::Watts(500.0)));
    assert_eq!(control.mode, Some(ControlMode::Automatic));
    assert_eq!((control.min_watts, control.max_watts), (Some(150.0), Some(1000.0)));
    assert!(control.enforced());
    let legacy = &c.limits[1];
    assert_eq!(legacy.dialect, Dialect::LegacyLimitInWatts);
    assert_eq!(legacy.set_point, Some(SetPoint::Watts(500.0)));
    assert_eq!(legacy.max_watts, Some(800.0));
    let supply = c.sensors.iter().find(|s| s.id == "PS1InputPower").unwrap();
    assert_eq!((supply.value, supply.chassis_total), (Some(374.0), false));
    assert!(c.sensors.iter().all(|s| s.id != "CPU1Power"), "not a member of the collection");
}

#[test]
fn public_liquid_cooled_server_has_no_legacy_power() {
    let Some(readings) = both("public-liquid-cooled-server") else { return };
    let c = readings.chassis("1U").unwrap();
    assert!(c.power.iter().all(|p| !p.source.uri.ends_with("/Power")));
    assert_eq!(c.power_watts(), Some(374.0));
    assert!(matches!(c.energy, Some(Energy::Counter { .. })));
    assert_eq!(c.limits.len(), 1);
    assert_eq!(c.limits[0].source.uri, "/redfish/v1/Chassis/1U/Controls/PowerLimit");
}

#[test]
fn hpe_cray_ex235a() {
    let Some(readings) = both("EX235a") else { return };
    let node = readings.chassis("Node0").unwrap();
    assert_eq!(node.power_watts(), Some(747.0));
    assert_eq!(
        node.power[0].source.uri,
        "/redfish/v1/Chassis/Node0/Sensors/ChassisVoltageRegulator0InputPower"
    );
    let Some(Energy::Counter { joules, .. }) = node.energy else { panic!("{:?}", node.energy) };
    assert_eq!(joules, 1_222_273_783.0);
    assert_eq!(node.limits.len(), 5);
    assert!(node.limits.iter().all(|l| l.dialect == Dialect::HpeCrayNodePowerLimit));
    let limit = node.limits.iter().find(|l| l.name == "Node Power Limit").unwrap();
    assert_eq!(limit.set_point, Some(SetPoint::Watts(0.0)));
    assert_eq!(limit.mode, Some(ControlMode::Disabled));
    assert_eq!((limit.min_watts, limit.max_watts), (Some(764.0), Some(2754.0)));
    assert_eq!(limit.physical_context.as_deref(), Some("Chassis"));
    assert!(!limit.enforced());
    let accel = node.limits.iter().find(|l| l.name == "Accelerator0 Power Limit").unwrap();
    assert_eq!((accel.min_watts, accel.max_watts), (Some(100.0), Some(560.0)));
    // Mezz0's Power is a captured 404: it reads without it, and has no chassis total.
    let mezz = readings.chassis("Mezz0").unwrap();
    assert!(mezz.power.is_empty() && mezz.energy.is_none() && mezz.limits.is_empty());
    assert!(!mezz.sensors.is_empty());
}

/// The mock BMC serving a fixture, with a power state machine of one read per step.
async fn serve(name: &str) -> Option<MockBmc> {
    let dir = fixture(name)?;
    let options = Options { transition_reads: 1, ..Options::default() };
    Some(MockBmc::start(Tree::from_dir(&dir).unwrap(), options).await.unwrap())
}

#[test]
fn setting_limits_on_the_ex235a_capture() {
    block_on(async {
        let Some(mock) = serve("EX235a").await else { return };
        let bmc = Bmc::new(&common::fast(mock.url())).unwrap();
        let node = LimitRequest { watts: Some(1500.0), ..LimitRequest::default() };
        let applied = bmc.set_power_limit(&node).await.unwrap();
        assert_eq!(applied.limit.source.uri, "/redfish/v1/Chassis/Node0/Controls/NodePowerLimit");
        assert_eq!(applied.limit.dialect, Dialect::HpeCrayNodePowerLimit);
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(1500.0)));
        assert_eq!(applied.limit.mode, Some(ControlMode::Automatic));
        assert!(!applied.takes_effect_after_reset);
        let too_low = LimitRequest { watts: Some(700.0), ..LimitRequest::default() };
        assert!(matches!(bmc.set_power_limit(&too_low).await, Err(Error::Refused(_))));
        let gpu = LimitRequest {
            chassis_id: Some("Node0".into()),
            control: Some("Accelerator2PowerLimit".into()),
            watts: Some(400.0),
        };
        assert!(bmc.set_power_limit(&gpu).await.unwrap().limit.enforced());
        let off = bmc.set_power_limit(&LimitRequest::default()).await.unwrap();
        assert!(!off.limit.enforced());
        assert_eq!(mock.recorded_matching("PATCH", "").len(), 3);
        let systems = bmc.systems().await.unwrap();
        assert_eq!(systems[0].allowed_resets[2], ResetType::Other("Off".into()));
    });
}

#[test]
fn setting_limits_and_a_reset_on_public_rackmount1() {
    block_on(async {
        let Some(mock) = serve("public-rackmount1").await else { return };
        let bmc = Bmc::new(&common::fast(mock.url())).unwrap();
        let request = LimitRequest { watts: Some(400.0), ..LimitRequest::default() };
        let applied = bmc.set_power_limit(&request).await.unwrap();
        assert_eq!(applied.limit.source.uri, "/redfish/v1/Chassis/1U/Controls/PowerLimit");
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(400.0)));
        let legacy = LimitRequest {
            chassis_id: Some("1U".into()),
            control: Some("PowerControl/0".into()),
            watts: Some(600.0),
        };
        let applied = bmc.set_power_limit(&legacy).await.unwrap();
        assert_eq!(applied.limit.dialect, Dialect::LegacyLimitInWatts);
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(600.0)));
        let options =
            TransitionOptions { deadline_ms: 60_000, poll_interval_ms: 1, escalate: false };
        let outcome =
            bmc.transition("437XR1138R2", Transition::ForceRestart, &options).await.unwrap();
        assert!(outcome.confirmed, "{}", outcome.note);
        assert_eq!(outcome.final_state, Some(PowerState::On));
        let posts =
            mock.recorded_matching("POST", "/Systems/437XR1138R2/Actions/ComputerSystem.Reset");
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].body, serde_json::json!({"ResetType": "ForceRestart"}));
        let err = bmc.send_reset("437XR1138R2", ResetType::PowerCycle).await.unwrap_err();
        assert!(
            matches!(err, Error::Refused(_)),
            "PowerCycle is not in its AllowableValues: {err}"
        );
    });
}
