use super::*;
use crate::v1::Origin;

fn doc() -> MeasureV1 {
    let origin = Origin { hostname: "n1".into(), simulated: Some("intel-2s".into()) };
    let domain = |domain: &str, index, energy: Option<f64>| DomainMeasureV1 {
        domain: domain.into(),
        index,
        die: None,
        socket: Some(index),
        energy_joules: energy,
        mean_watts: energy.map(|e| e / 2.0),
        peak_watts: energy.map(|e| e / 2.0 + 10.0),
        provider: "powercap".into(),
        source: "intel-rapl:0".into(),
    };
    MeasureV1 {
        header: HeaderV1::new(MEASURE_SCHEMA, &origin),
        command: vec!["sleep".into(), "2".into()],
        exit_code: Some(0),
        signal: None,
        start_us: 1,
        end_us: 2_000_001,
        duration_s: 2.0,
        interval_s: 0.1,
        samples: 21,
        node_energy_joules: Some(300.0),
        node_mean_watts: Some(150.0),
        node_peak_watts: Some(170.0),
        node_source: Some("sum".into()),
        node_parts: vec!["package-0".into(), "memory-0".into()],
        domains: vec![domain("package", 0, Some(250.0)), domain("memory", 0, None)],
        warnings: vec![],
    }
}

#[test]
fn csv_has_a_row_per_domain_and_the_node_last_with_minus_one_for_what_is_missing() {
    let text = csv(&doc());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "domain,energy_joules,mean_watts,peak_watts,duration_s,exit_code");
    assert_eq!(lines[1], "package-0,250,125,135,2,0");
    assert_eq!(lines[2], "memory-0,-1,-1,-1,2,0");
    assert_eq!(lines[3], "NODE,300,150,170,2,0");
    assert_eq!(lines.len(), 4);
}

#[test]
fn table_says_the_command_how_it_ended_and_the_node() {
    let text = crate::table::measure(&doc());
    assert!(text.starts_with("Energy of `sleep 2` on n1  [SIMULATED hardware: profile intel-2s]"));
    assert!(text.contains("exit status 0, 2.000 s, 21 samples every 100 ms"), "{text}");
    let node = text.lines().find(|l| l.starts_with("NODE")).unwrap();
    assert!(node.contains("300.000") && node.contains("150.00") && node.contains("170.00"));
    assert!(node.ends_with("sum of package-0 + memory-0"), "{node}");
}

#[test]
fn prometheus_has_the_three_families_the_duration_and_the_simulated_line() {
    let text = prometheus(&doc());
    assert!(
        text.contains("powerstack_measure_energy_joules{domain=\"package\",index=\"0\"} 250\n")
    );
    assert!(
        text.contains("powerstack_measure_mean_power_watts{domain=\"NODE\",index=\"0\"} 150\n")
    );
    assert!(
        text.contains("powerstack_measure_peak_power_watts{domain=\"NODE\",index=\"0\"} 170\n")
    );
    assert!(!text.contains("domain=\"memory\""), "a missing value is left out: {text}");
    assert!(text.contains("powerstack_measure_duration_seconds 2\n"));
    assert!(text.contains("powerstack_measure_exit_code 0\n"));
    assert!(text.contains("powerstack_simulated{profile=\"intel-2s\"} 1\n"));
}

#[test]
fn json_carries_the_header_first_and_round_trips() {
    let d = doc();
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        text.starts_with("{\"schema\":\"powerstack.measure.v1\",\"hostname\":\"n1\""),
        "{text}"
    );
    let back: MeasureV1 = serde_json::from_str(&text).unwrap();
    assert_eq!(back, d);
}
