//! The client against the mock BMC serving small built-in trees: absent resources, malformed
//! documents, timeouts, credentials, 503.

mod common;

use common::block_on;
use powerstack_mock_bmc::{BUILTIN_TREES, MockBmc, Options, Tree};
use powerstack_redfish::{
    Auth, Bmc, BmcConfig, Dialect, Energy, Error, ParseError, Readings, SetPoint,
};
use serde_json::json;

/// A BMC with one chassis `N` whose legacy Power and EnvironmentMetrics both answer.
fn tree() -> Tree {
    let mut tree = Tree::new();
    tree.insert("/redfish/v1", json!({"Chassis": {"@odata.id": "/redfish/v1/Chassis"}}))
        .insert("/redfish/v1/Chassis", json!({"Members": [{"@odata.id": "/redfish/v1/Chassis/N"}]}))
        .insert("/redfish/v1/Chassis/N", json!({
            "Id": "N",
            "Power": {"@odata.id": "/redfish/v1/Chassis/N/Power"},
            "EnvironmentMetrics": {"@odata.id": "/redfish/v1/Chassis/N/EnvironmentMetrics"},
            "Controls": {"@odata.id": "/redfish/v1/Chassis/N/Controls"}
        }))
        .insert("/redfish/v1/Chassis/N/Power", json!({"PowerControl": [
            {"Name": "Node", "PowerConsumedWatts": 411.5, "PowerLimit": {"LimitInWatts": null}}
        ]}))
        .insert("/redfish/v1/Chassis/N/EnvironmentMetrics", json!({
            "PowerWatts": {"Reading": 420}, "EnergyJoules": {"Reading": 9000}
        }))
        .insert("/redfish/v1/Chassis/N/Controls", json!({"Members": [
            {"@odata.id": "/redfish/v1/Chassis/N/Controls/Cap"}
        ]}))
        .insert("/redfish/v1/Chassis/N/Controls/Cap", json!({
            "ControlType": "Power", "SetPoint": 600, "SetPointUnits": "Watt", "ControlMode": "Automatic"
        }));
    tree
}

fn config(bmc: &MockBmc) -> BmcConfig {
    BmcConfig::new(bmc.url())
}

#[test]
fn a_built_in_tree_reads() {
    block_on(async {
        let mock = MockBmc::start(tree(), Options::default()).await.unwrap();
        let readings = Bmc::new(&config(&mock)).unwrap().readings().await.unwrap();
        assert!(readings.problems.is_empty(), "{:?}", readings.problems);
        let n = readings.chassis("N").unwrap();
        let watts: Vec<f64> = n.power.iter().map(|p| p.watts).collect();
        assert_eq!(watts, [420.0, 411.5]);
        assert!(matches!(n.energy, Some(Energy::Counter { joules, .. }) if joules == 9000.0));
        assert_eq!(n.limits.len(), 2);
        assert_eq!(n.limits[0].set_point, Some(SetPoint::Watts(600.0)));
        assert_eq!(n.limits[1].dialect, Dialect::LegacyLimitInWatts);
        assert!(!n.limits[1].enforced(), "LimitInWatts null turns capping off");
    });
}

#[test]
fn the_limits_alone_are_those_of_the_whole_walk_in_fewer_requests() {
    block_on(async {
        let trees = BUILTIN_TREES.iter().map(|n| (*n, Tree::builtin(n).unwrap()));
        for (name, tree) in trees.chain([("sensors and legacy", tree())]) {
            let mock = MockBmc::start(tree, Options::default()).await.unwrap();
            let bmc = Bmc::new(&config(&mock)).unwrap();
            let all = bmc.readings().await.unwrap();
            let walked = mock.requests();
            let lean = bmc.limit_readings().await.unwrap();
            let limits =
                |r: &Readings| r.chassis.iter().map(|c| c.limits.clone()).collect::<Vec<_>>();
            assert!(!limits(&all).concat().is_empty(), "{name}");
            assert_eq!(limits(&lean), limits(&all), "{name}");
            assert!(lean.problems.is_empty(), "{name}: {:?}", lean.problems);
            // Only a chassis with more than its limits (sensors, environment) is read in fewer.
            let lean_requests = mock.requests() - walked;
            let more = matches!(name, "dmtf-controls" | "sensors and legacy");
            let fewer = if more { lean_requests < walked } else { lean_requests == walked };
            assert!(fewer, "{name}: {lean_requests} requests, the whole walk {walked}");
            // Read again: the resources that hold the limits alone, the same limits.
            let before = mock.requests();
            let again = bmc.limit_readings().await.unwrap();
            assert_eq!(limits(&again), limits(&all), "{name}");
            let again_requests = mock.requests() - before;
            assert!(again_requests < lean_requests, "{name}: {again_requests} requests again");
        }
    });
}

#[test]
fn limits_read_again_see_new_values_and_walk_again_when_a_control_is_gone() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        let bmc = Bmc::new(&config(&mock)).unwrap();
        let set_point = |r: &Readings| r.chassis[0].limits[0].set_point;
        let first = bmc.limit_readings().await.unwrap();
        assert_eq!(set_point(&first), Some(SetPoint::Watts(500.0)));
        assert_eq!(mock.requests(), 5, "root, Chassis, the chassis, Controls, the control");
        let control = "/redfish/v1/Chassis/1/Controls/PowerLimit";
        mock.edit_tree(|t| {
            let mut doc = t.get(control).unwrap().clone();
            doc["SetPoint"] = json!(420);
            t.insert(control, doc);
        });
        let again = bmc.limit_readings().await.unwrap();
        assert_eq!(set_point(&again), Some(SetPoint::Watts(420.0)));
        assert_eq!(mock.requests(), 6, "the control alone");
        // The control moves: its old URI answers 404, and the BMC is walked again.
        let moved = "/redfish/v1/Chassis/1/Controls/NodeLimit";
        mock.edit_tree(|t| {
            let mut doc = t.remove(control).unwrap();
            doc["@odata.id"] = json!(moved);
            t.insert(moved, doc);
            t.insert("/redfish/v1/Chassis/1/Controls", json!({"Members": [{"@odata.id": moved}]}));
        });
        let walked = bmc.limit_readings().await.unwrap();
        assert_eq!(walked.chassis[0].limits[0].source.uri, moved);
        assert_eq!(mock.requests(), 12, "the old URI, then the walk");
        bmc.limit_readings().await.unwrap();
        assert_eq!(mock.requests(), 13, "the new URI alone");
    });
}

#[test]
fn a_404_for_power_reads_environment_metrics() {
    block_on(async {
        let mut tree = tree();
        tree.remove("/redfish/v1/Chassis/N/Power");
        let mock = MockBmc::start(tree, Options::default()).await.unwrap();
        let readings = Bmc::new(&config(&mock)).unwrap().readings().await.unwrap();
        assert!(readings.problems.is_empty(), "a 404 is an absent resource, not a problem");
        let n = readings.chassis("N").unwrap();
        assert_eq!(n.power_watts(), Some(420.0));
        assert_eq!(n.power.len(), 1);
        assert!(n.limits.iter().all(|l| l.dialect != Dialect::LegacyLimitInWatts));
    });
}

#[test]
fn without_an_energy_counter_energy_is_to_integrate() {
    block_on(async {
        let mut tree = tree();
        tree.insert(
            "/redfish/v1/Chassis/N/EnvironmentMetrics",
            json!({"PowerWatts": {"Reading": 1}}),
        );
        let mock = MockBmc::start(tree, Options::default()).await.unwrap();
        let readings = Bmc::new(&config(&mock)).unwrap().readings().await.unwrap();
        assert_eq!(readings.chassis("N").unwrap().energy, Some(Energy::IntegrateFromPower));
    });
}

#[test]
fn a_malformed_document_is_a_typed_error_naming_its_uri() {
    block_on(async {
        let mock = MockBmc::start(tree(), Options::default()).await.unwrap();
        mock.faults().set_malformed("/redfish/v1/Chassis/N/EnvironmentMetrics");
        mock.edit_tree(|t| {
            t.insert(
                "/redfish/v1/Chassis/N/Controls/Cap",
                json!({"ControlType": "Power", "SetPoint": "high"}),
            );
        });
        let bmc = Bmc::new(&config(&mock)).unwrap();
        let readings = bmc.readings().await.unwrap();
        let [malformed, wrong] = readings.problems.as_slice() else {
            panic!("{:?}", readings.problems)
        };
        assert!(
            matches!(malformed, Error::Malformed { uri, .. } if uri == "/redfish/v1/Chassis/N/EnvironmentMetrics")
        );
        let Error::Document { uri, source } = wrong else { panic!("{wrong:?}") };
        assert_eq!(uri, "/redfish/v1/Chassis/N/Controls/Cap");
        assert_eq!(
            *source,
            ParseError::WrongType { property: "SetPoint".into(), expected: "a number" }
        );
        assert!(wrong.to_string().contains("/redfish/v1/Chassis/N/Controls/Cap"));
        // The rest was read: legacy power.
        assert_eq!(readings.chassis("N").unwrap().power_watts(), Some(411.5));
        mock.faults().set_malformed("/redfish/v1");
        assert!(
            matches!(bmc.readings().await, Err(Error::Malformed { uri, .. }) if uri == "/redfish/v1")
        );
    });
}

#[test]
fn a_slow_bmc_is_a_timeout() {
    block_on(async {
        let mock = MockBmc::start(tree(), Options::default()).await.unwrap();
        mock.faults().set_delay_ms(2_000);
        let bmc = Bmc::new(&BmcConfig { timeout_ms: 50, retries: 0, ..config(&mock) }).unwrap();
        let err = bmc.readings().await.unwrap_err();
        assert!(
            matches!(err, Error::Timeout { ref uri, timeout_ms: 50 } if uri == "/redfish/v1"),
            "{err}"
        );
    });
}

#[test]
fn credentials_are_sent_and_checked() {
    block_on(async {
        let options =
            Options { credentials: Some(("root".into(), "secret".into())), ..Options::default() };
        let mock = MockBmc::start(tree(), options).await.unwrap();
        let anonymous = Bmc::new(&config(&mock)).unwrap();
        // The service root needs no credentials (DSP0266; redfishtool reads it without), the
        // rest does.
        assert!(anonymous.get_json("/redfish/v1").await.unwrap().is_some());
        assert!(matches!(anonymous.readings().await, Err(Error::Unauthorized { .. })));
        let auth = Auth::Basic { user: "root".into(), password: "secret".into() };
        let with = BmcConfig { auth, ..config(&mock) };
        assert!(Bmc::new(&with).unwrap().readings().await.unwrap().chassis("N").is_some());
    });
}

#[test]
fn a_503_carries_its_retry_after() {
    block_on(async {
        let mock = MockBmc::start(tree(), Options::default()).await.unwrap();
        mock.faults().set_unavailable(1, 7);
        let bmc = Bmc::new(&BmcConfig { retries: 0, ..config(&mock) }).unwrap();
        let err = bmc.get_json("/redfish/v1").await.unwrap_err();
        assert!(matches!(err, Error::Status { status: 503, retry_after_s: Some(7), .. }), "{err}");
        assert!(bmc.get_json("/redfish/v1").await.unwrap().is_some(), "only one 503 was asked for");
        assert!(bmc.get_json("/redfish/v1/Nothing").await.unwrap().is_none());
    });
}

#[test]
fn urls_are_checked() {
    for bad in ["https://bmc", "ftp://bmc", "http://bmc/redfish", "not a url"] {
        assert!(matches!(Bmc::new(&BmcConfig::new(bad)), Err(Error::Url { .. })), "{bad}");
    }
}

#[test]
fn the_blocking_wrapper_reads() {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        block_on(async {
            let mock = MockBmc::start(tree(), Options::default()).await.unwrap();
            url_tx.send(mock.url()).unwrap();
            let _ = stop_rx.await;
        })
    });
    let url = url_rx.recv().unwrap();
    let bmc = powerstack_redfish::BlockingBmc::new(&BmcConfig::new(url)).unwrap();
    assert_eq!(bmc.readings().unwrap().chassis("N").unwrap().power_watts(), Some(420.0));
    stop_tx.send(()).unwrap();
    server.join().unwrap();
}
