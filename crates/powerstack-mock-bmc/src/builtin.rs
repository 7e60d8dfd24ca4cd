//! Small built-in trees, one per dialect of power limits, each with a chassis, its limit, its
//! power, and a `ComputerSystem` with a reset action.

use serde_json::{Value, json};

use crate::tree::Tree;

fn link(uri: &str) -> Value {
    json!({"@odata.id": uri})
}

/// The service root, the collections and one chassis and one system named `id`.
fn skeleton(id: &str, chassis: Value, system: Value) -> Tree {
    let c = format!("/redfish/v1/Chassis/{id}");
    let s = format!("/redfish/v1/Systems/{id}");
    let mut tree = Tree::new();
    tree.insert(
        "/redfish/v1",
        json!({
            "@odata.id": "/redfish/v1", "Id": "RootService", "RedfishVersion": "1.17.0",
            "Chassis": link("/redfish/v1/Chassis"), "Systems": link("/redfish/v1/Systems"),
            "SessionService": link("/redfish/v1/SessionService"),
            "Links": {"Sessions": link("/redfish/v1/SessionService/Sessions")}
        }),
    )
    .insert("/redfish/v1/Chassis", json!({"Members": [link(&c)], "Members@odata.count": 1}))
    .insert("/redfish/v1/Systems", json!({"Members": [link(&s)], "Members@odata.count": 1}))
    .insert(
        "/redfish/v1/SessionService",
        json!({"Sessions": link("/redfish/v1/SessionService/Sessions")}),
    )
    .insert(&c, chassis)
    .insert(&s, system);
    tree
}

fn system(id: &str, reset: Value) -> Value {
    json!({
        "@odata.id": format!("/redfish/v1/Systems/{id}"), "Id": id, "Name": "Compute node",
        "PowerState": "On",
        "Actions": {"#ComputerSystem.Reset": reset}
    })
}

fn reset_target(id: &str) -> String {
    format!("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset")
}

const ALL_RESETS: [&str; 7] =
    ["On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PowerCycle", "Nmi"];

/// The names of the built-in trees, as `Tree::builtin` takes them.
pub const BUILTIN_TREES: [&str; 3] = ["dmtf-controls", "legacy-power", "hpe-cray-ex"];

impl Tree {
    /// The built-in tree named `name` (one of [`BUILTIN_TREES`]).
    pub fn builtin(name: &str) -> Option<Tree> {
        match name {
            "dmtf-controls" => Some(Tree::dmtf_controls()),
            "legacy-power" => Some(Tree::legacy_power()),
            "hpe-cray-ex" => Some(Tree::hpe_cray_ex()),
            _ => None,
        }
    }

    /// DMTF `Controls`: chassis `1` with `Controls/PowerLimit` (150 to 1000 W, 500 W in force)
    /// and `EnvironmentMetrics`; system `1` allowing every transition.
    pub fn dmtf_controls() -> Tree {
        let chassis = json!({
            "@odata.id": "/redfish/v1/Chassis/1", "Id": "1", "Name": "Server",
            "Controls": link("/redfish/v1/Chassis/1/Controls"),
            "EnvironmentMetrics": link("/redfish/v1/Chassis/1/EnvironmentMetrics")
        });
        let reset =
            json!({"target": reset_target("1"), "ResetType@Redfish.AllowableValues": ALL_RESETS});
        let mut tree = skeleton("1", chassis, system("1", reset));
        tree.insert("/redfish/v1/Chassis/1/Controls", json!({"Members": [link("/redfish/v1/Chassis/1/Controls/PowerLimit")]}))
            .insert("/redfish/v1/Chassis/1/Controls/PowerLimit", json!({
                "@odata.id": "/redfish/v1/Chassis/1/Controls/PowerLimit", "@odata.type": "#Control.v1_7_0.Control",
                "Id": "PowerLimit", "Name": "System Power Limit", "PhysicalContext": "Chassis",
                "ControlType": "Power", "ControlMode": "Automatic", "SetPoint": 500, "SetPointUnits": "W",
                "AllowableMin": 150, "AllowableMax": 1000
            }))
            .insert("/redfish/v1/Chassis/1/EnvironmentMetrics", json!({
                "PowerWatts": {"Reading": 374.5}, "EnergyJoules": {"Reading": 1_000_000}
            }));
        tree
    }

    /// Legacy `Power`: chassis `1` with `PowerControl[0].PowerLimit.LimitInWatts` (500 W, at
    /// most the capacity, 800 W); system `1` allowing every transition.
    pub fn legacy_power() -> Tree {
        let chassis = json!({
            "@odata.id": "/redfish/v1/Chassis/1", "Id": "1", "Name": "Server",
            "Power": link("/redfish/v1/Chassis/1/Power")
        });
        let reset =
            json!({"target": reset_target("1"), "ResetType@Redfish.AllowableValues": ALL_RESETS});
        let mut tree = skeleton("1", chassis, system("1", reset));
        tree.insert("/redfish/v1/Chassis/1/Power", json!({
            "@odata.id": "/redfish/v1/Chassis/1/Power",
            "PowerControl": [{
                "@odata.id": "/redfish/v1/Chassis/1/Power#/PowerControl/0", "MemberId": "0",
                "Name": "System Power Control", "PowerConsumedWatts": 344, "PowerCapacityWatts": 800,
                "PowerLimit": {"LimitInWatts": 500, "LimitException": "LogEventOnly", "CorrectionInMs": 50}
            }]
        }));
        tree
    }

    /// HPE Cray EX style: chassis `Node0` with `Controls/NodePowerLimit` (764 to 2754 W,
    /// disabled) and `Accelerator0PowerLimit`; system `Node0` whose `ResetActionInfo` allows
    /// `On`, `ForceOff` and `Off`.
    pub fn hpe_cray_ex() -> Tree {
        let chassis = json!({
            "@odata.id": "/redfish/v1/Chassis/Node0", "Id": "Node0", "Name": "Node0",
            "Controls": link("/redfish/v1/Chassis/Node0/Controls")
        });
        let info = "/redfish/v1/Systems/Node0/ResetActionInfo";
        let reset = json!({"target": reset_target("Node0"), "@Redfish.ActionInfo": info});
        let mut tree = skeleton("Node0", chassis, system("Node0", reset));
        let control = |id: &str, context: &str, min: u32, max: u32| {
            json!({
                "@odata.id": format!("/redfish/v1/Chassis/Node0/Controls/{id}"),
                "@odata.type": "#Control.v1_0_0.Control", "Id": id, "Name": id,
                "ControlType": "Power", "ControlMode": "Disabled", "ControlDelaySeconds": 6,
                "PhysicalContext": context, "SetPoint": 0, "SettingRangeMin": min, "SettingRangeMax": max,
                "Oem": {"Hpe": {"LimitException": "NoAction", "PowerLimitFactor": "1.000000"}}
            })
        };
        tree.insert(
            "/redfish/v1/Chassis/Node0/Controls",
            json!({"Members": [
                link("/redfish/v1/Chassis/Node0/Controls/NodePowerLimit"),
                link("/redfish/v1/Chassis/Node0/Controls/Accelerator0PowerLimit")
            ]}),
        )
        .insert(
            "/redfish/v1/Chassis/Node0/Controls/NodePowerLimit",
            control("NodePowerLimit", "Chassis", 764, 2754),
        )
        .insert(
            "/redfish/v1/Chassis/Node0/Controls/Accelerator0PowerLimit",
            control("Accelerator0PowerLimit", "Accelerator", 100, 560),
        )
        .insert(
            info,
            json!({
                "@odata.id": info, "Id": "ResetAction",
                "Parameters": [{"Name": "ResetType", "Required": true, "DataType": "String",
                                "AllowableValues": ["On", "ForceOff", "Off"]}]
            }),
        );
        tree
    }
}
