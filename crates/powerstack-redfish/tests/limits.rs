//! Setting power limits against the mock BMC's built-in trees: each dialect set, read back and
//! turned off; ETags (412, 428), task monitors, reset-required, refusals with nothing sent.

mod common;

use common::{block_on, fast};
use powerstack_mock_bmc::{LimitTiming, MockBmc, Options, Tree};
use powerstack_redfish::{
    Bmc, ControlMode, Deviation, Error, LimitApplied, LimitRequest, ResetType, SetPoint,
};
use serde_json::json;

const DMTF_LIMIT: &str = "/redfish/v1/Chassis/1/Controls/PowerLimit";

fn watts(w: f64) -> LimitRequest {
    LimitRequest { watts: Some(w), ..LimitRequest::default() }
}

fn off() -> LimitRequest {
    LimitRequest::default()
}

async fn set(mock: &MockBmc, request: &LimitRequest) -> Result<LimitApplied, Error> {
    Bmc::new(&fast(mock.url())).unwrap().set_power_limit(request).await
}

fn patches(mock: &MockBmc) -> Vec<serde_json::Value> {
    mock.recorded_matching("PATCH", "").into_iter().map(|r| r.body).collect()
}

#[test]
fn dmtf_controls_set_read_back_and_off() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        let applied = set(&mock, &watts(400.0)).await.unwrap();
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(400.0)));
        assert!(applied.limit.enforced() && !applied.takes_effect_after_reset);
        assert_eq!(applied.limit.source.uri, DMTF_LIMIT);
        let applied = set(&mock, &off()).await.unwrap();
        assert_eq!(applied.limit.mode, Some(ControlMode::Disabled));
        assert!(!applied.limit.enforced() && !applied.takes_effect_after_reset);
        assert_eq!(
            patches(&mock),
            [
                json!({"SetPoint": 400, "ControlMode": "Automatic"}),
                json!({"ControlMode": "Disabled"})
            ]
        );
        assert!(mock.recorded().iter().all(|r| r.path == DMTF_LIMIT));
    });
}

#[test]
fn legacy_power_set_read_back_and_off() {
    block_on(async {
        let mock = MockBmc::start(Tree::legacy_power(), Options::default()).await.unwrap();
        let applied = set(&mock, &watts(612.5)).await.unwrap();
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(612.5)));
        assert!(!applied.takes_effect_after_reset);
        let applied = set(&mock, &off()).await.unwrap();
        assert_eq!((applied.limit.set_point, applied.limit.enforced()), (None, false));
        assert_eq!(
            patches(&mock),
            [
                json!({"PowerControl": [{"PowerLimit": {"LimitInWatts": 612.5}}]}),
                json!({"PowerControl": [{"PowerLimit": {"LimitInWatts": null}}]})
            ]
        );
        let doc = mock.document("/redfish/v1/Chassis/1/Power").unwrap();
        assert_eq!(doc["PowerControl"][0]["PowerLimit"]["LimitException"], "LogEventOnly");
    });
}

#[test]
fn hpe_cray_node_and_accelerator_limits() {
    block_on(async {
        let mock = MockBmc::start(Tree::hpe_cray_ex(), Options::default()).await.unwrap();
        let applied = set(&mock, &watts(1500.0)).await.unwrap();
        assert_eq!(applied.limit.name, "NodePowerLimit");
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(1500.0)));
        assert!(applied.limit.enforced());
        let gpu = LimitRequest {
            chassis_id: Some("Node0".into()),
            control: Some("Accelerator0PowerLimit".into()),
            watts: Some(300.0),
        };
        assert!(set(&mock, &gpu).await.unwrap().limit.enforced());
        assert!(!set(&mock, &off()).await.unwrap().limit.enforced());
        assert_eq!(
            patches(&mock),
            [
                json!({"ControlMode": "Automatic", "SetPoint": 1500}),
                json!({"ControlMode": "Automatic", "SetPoint": 300}),
                json!({"ControlMode": "Disabled"})
            ]
        );
    });
}

#[test]
fn a_set_point_in_watt_units_is_set_and_its_deviation_reported() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        mock.edit_tree(|t| {
            let mut doc = t.get(DMTF_LIMIT).unwrap().clone();
            doc["SetPointUnits"] = json!("Watt");
            t.insert(DMTF_LIMIT, doc);
        });
        let applied = set(&mock, &watts(420.0)).await.unwrap();
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(420.0)));
        assert_eq!(applied.limit.deviations, [Deviation::SetPointUnitsWatt]);
    });
}

#[test]
fn a_changed_etag_is_read_again_and_the_patch_retried_once() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        mock.faults().set_stale_etag_once(DMTF_LIMIT);
        let applied = set(&mock, &watts(300.0)).await.unwrap();
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(300.0)));
        let sent = mock.recorded_matching("PATCH", DMTF_LIMIT);
        assert_eq!(sent.len(), 2, "the first PATCH was refused with 412");
        assert_ne!(sent[0].if_match, sent[1].if_match, "the ETag was read again");
    });
}

#[test]
fn if_match_required_fetches_the_etag_first() {
    block_on(async {
        let options = Options { require_if_match: true, ..Options::default() };
        let mock = MockBmc::start(Tree::dmtf_controls(), options).await.unwrap();
        // The readings' GET and the GET before the PATCH carry no ETag: the PATCH goes without
        // If-Match, is answered 428, and the ETag is fetched for a second PATCH.
        mock.faults().set_no_etag(DMTF_LIMIT, 2);
        let applied = set(&mock, &watts(320.0)).await.unwrap();
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(320.0)));
        let sent = mock.recorded_matching("PATCH", DMTF_LIMIT);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].if_match, None);
        assert!(sent[1].if_match.as_deref().is_some_and(|t| t.starts_with("W/")));
    });
}

#[test]
fn a_task_monitor_is_followed_to_its_end() {
    block_on(async {
        let options = Options { patch_task_polls: Some(3), ..Options::default() };
        let mock = MockBmc::start(Tree::dmtf_controls(), options).await.unwrap();
        let applied = set(&mock, &watts(250.0)).await.unwrap();
        assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(250.0)));
        assert!(!applied.takes_effect_after_reset, "the change is made when the task completes");
    });
}

#[test]
fn a_limit_that_waits_for_a_reset_is_reported() {
    block_on(async {
        for timing in [LimitTiming::AfterResetAnnounced, LimitTiming::AfterResetSilent] {
            let options = Options { limit_timing: timing, ..Options::default() };
            let mock = MockBmc::start(Tree::legacy_power(), options).await.unwrap();
            let bmc = Bmc::new(&fast(mock.url())).unwrap();
            let applied = bmc.set_power_limit(&watts(450.0)).await.unwrap();
            assert!(applied.takes_effect_after_reset, "{timing:?}");
            assert_eq!(applied.limit.set_point, Some(SetPoint::Watts(500.0)), "still the old one");
            bmc.send_reset("1", ResetType::ForceRestart).await.unwrap();
            let readings = bmc.readings().await.unwrap();
            let limit = &readings.chassis("1").unwrap().limits[0];
            assert_eq!(limit.set_point, Some(SetPoint::Watts(450.0)), "{timing:?}");
        }
    });
}

#[test]
fn out_of_range_and_percent_set_points_are_refused_with_nothing_sent() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        for bad in [1001.0, 149.0, 0.0, -5.0, f64::NAN] {
            let err = set(&mock, &watts(bad)).await.unwrap_err();
            assert!(matches!(err, Error::Refused(_)), "{bad}: {err}");
        }
        let err = set(&mock, &watts(2000.0)).await.unwrap_err();
        assert!(err.to_string().contains("150 to 1000 W"), "{err}");
        mock.edit_tree(|t| {
            t.insert(DMTF_LIMIT, json!({"ControlType": "Power", "PhysicalContext": "Chassis",
                "SetPoint": 80, "SetPointUnits": "%", "AllowableMax": 100, "ControlMode": "Automatic"}));
        });
        let err = set(&mock, &watts(80.0)).await.unwrap_err();
        assert!(matches!(err, Error::Refused(ref m) if m.contains("percent")), "{err}");
        let unknown = LimitRequest { chassis_id: Some("9".into()), ..watts(300.0) };
        assert!(matches!(set(&mock, &unknown).await, Err(Error::Refused(_))));
        let unknown = LimitRequest { control: Some("Nope".into()), ..watts(300.0) };
        assert!(matches!(set(&mock, &unknown).await, Err(Error::Refused(_))));
        assert_eq!(mock.recorded(), [], "nothing was sent");
    });
}
