//! The job documents: names, round trips, sums and totals.

use super::*;

fn result() -> JobResultV1 {
    JobResultV1 {
        hostname: "nid001".into(),
        job_id: "f2Xy".into(),
        user: Some("alice".into()),
        app: None,
        running: false,
        node_power: 410.5,
        energy_joules: 4105.0,
        domain_power: [
            ("cpu_power_0".to_string(), 150.0),
            ("mem_power_0".to_string(), -1.0),
            ("gpu_power_1".to_string(), 80.25),
        ]
        .into_iter()
        .collect(),
        peak_node_power: 500.0,
        peak_window_s: 1.0,
        result_start_time: 1_795_000_000_000_000,
        result_end_time: 1_795_000_010_000_000,
        samples: 1001,
        data_presence: DataPresence::Partial,
        gaps: Vec::new(),
    }
}

#[test]
fn the_result_has_the_flux_field_names_flat_and_round_trips() {
    let r = result();
    let v = serde_json::to_value(&r).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "hostname",
        "job_id",
        "user",
        "app",
        "running",
        "node_power",
        "energy_joules",
        "cpu_power_0",
        "mem_power_0",
        "gpu_power_1",
        "peak_node_power",
        "peak_window_s",
        "result_start_time",
        "result_end_time",
        "samples",
        "data_presence",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(keys.len(), 16);
    assert_eq!(v["data_presence"], "Partial");
    assert_eq!(v["mem_power_0"], -1.0);
    let back: JobResultV1 = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

#[test]
fn gaps_are_in_the_document_only_when_there_are_some_and_round_trip_in_a_query() {
    let mut r = result();
    assert!(serde_json::to_value(&r).unwrap().get("gaps").is_none());
    r.gaps.push(JobGapV1 {
        start_unix_us: r.result_start_time + 1,
        end_unix_us: r.result_start_time + 2,
        cause: GAP_RESTART.into(),
    });
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["gaps"][0]["cause"], "agent restarted");
    assert_eq!(serde_json::from_value::<JobResultV1>(v).unwrap(), r);
    let node = JobQueryNodeV1 { result: r, agent: "n:9464".into(), status: "ok".into() };
    let v = serde_json::to_value(&node).unwrap();
    assert_eq!(v["gaps"][0]["end_unix_us"], node.result.result_start_time + 2);
    assert_eq!(serde_json::from_value::<JobQueryNodeV1>(v).unwrap(), node);
}

#[test]
fn sums_skip_missing_figures() {
    assert_eq!(sum_known([1.0, -1.0, 2.5]), 3.5);
    assert_eq!(sum_known([-1.0, f64::NAN]), NOT_MEASURED);
    assert_eq!(sum_known([]), NOT_MEASURED);
    let r = result();
    assert_eq!(r.class_watts(DeviceClass::Gpu), Some(80.25));
    assert_eq!(r.class_watts(DeviceClass::Mem), None);
    assert_eq!(JobResultV1::unanswered("n", "j").class_watts(DeviceClass::Gpu), None);
}

#[test]
fn the_total_sums_what_answered_and_says_how_much_did() {
    let a = result();
    let mut b = result();
    b.hostname = "nid002".into();
    b.data_presence = DataPresence::Complete;
    b.node_power = -1.0;
    b.energy_joules = 100.0;
    b.domain_power.insert("cpu_power_0".into(), 50.0);
    b.result_start_time -= 5;
    let t = JobTotalV1::of(&[Some(&a), None, Some(&b)]);
    assert_eq!(t.node_power, 410.5);
    assert_eq!(t.energy_joules, 4205.0);
    assert_eq!(t.domain_power["cpu_power_0"], 200.0);
    assert_eq!(t.domain_power["mem_power_0"], NOT_MEASURED);
    assert_eq!(t.class_watts(DeviceClass::Cpu), Some(200.0));
    assert_eq!(t.result_start_time, a.result_start_time - 5);
    assert_eq!(t.result_end_time, a.result_end_time);
    assert_eq!(t.samples, 2002);
    assert_eq!(t.data_presence, DataPresence::Partial);
    assert_eq!((t.nodes, t.nodes_answered), (3, 2));
    let all = JobTotalV1::of(&[Some(&b), Some(&b)]);
    assert_eq!(all.data_presence, DataPresence::Complete);
    let none = JobTotalV1::of(&[None]);
    assert_eq!(none.data_presence, DataPresence::None);
    assert_eq!((none.node_power, none.result_start_time, none.nodes_answered), (-1.0, 0, 0));
    assert_eq!(JobTotalV1::of(&[]).data_presence, DataPresence::None);
}

#[test]
fn a_query_document_is_flat_per_node_and_round_trips() {
    let a = result();
    let missing = JobResultV1::unanswered("node03", "f2Xy");
    let q = JobQueryV1 {
        job_id: "f2Xy".into(),
        total: JobTotalV1::of(&[Some(&a), None]),
        nodes: vec![
            JobQueryNodeV1 { result: a, agent: "nid001:9464".into(), status: "ok".into() },
            JobQueryNodeV1 {
                result: missing,
                agent: "node03:9464".into(),
                status: "unreachable: refused".into(),
            },
        ],
    };
    let v = serde_json::to_value(&q).unwrap();
    assert_eq!(v["nodes"][0]["cpu_power_0"], 150.0);
    assert_eq!(v["nodes"][0]["agent"], "nid001:9464");
    assert_eq!(v["nodes"][1]["data_presence"], "None");
    assert_eq!(v["nodes"][1]["node_power"], -1.0);
    assert_eq!(v["total"]["hostname"], "TOTAL");
    assert_eq!(v["total"]["gpu_power_1"], 80.25);
    assert_eq!(v["total"]["nodes_answered"], 1);
    assert!(v["total"].get("domain_power").is_none());
    let back: JobQueryV1 = serde_json::from_value(v).unwrap();
    assert_eq!(back, q);
}

#[test]
fn presence_names_are_the_serialized_ones() {
    for p in [DataPresence::Complete, DataPresence::Partial, DataPresence::None] {
        assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
    }
}

#[test]
fn a_running_job_lists_with_a_null_end() {
    let j = JobV1 {
        id: "42".into(),
        user: None,
        app: Some("lammps".into()),
        begin_unix_us: 5,
        end_unix_us: None,
    };
    let v = serde_json::to_value(&j).unwrap();
    assert!(v["end_unix_us"].is_null());
    assert_eq!(serde_json::from_value::<JobV1>(v).unwrap(), j);
}
