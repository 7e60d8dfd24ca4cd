//! Golden tests: every output format on fixed inputs, compared with files in `tests/golden/`.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the files after an intended change, then review the diff.

use std::path::PathBuf;

use powerstack_api::job::{DataPresence, JobQueryNodeV1, JobQueryV1, JobResultV1, JobTotalV1};
use powerstack_api::job_csv::job_query_csv;
use powerstack_api::v1::{DomainsV1, EnergyV1, Origin, PowerV1, SourceV1};
use powerstack_api::{prometheus, table, variorum};
use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, Measurement, PowerLimit, PowerReport, Snapshot,
    Value,
};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display())
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

fn domain(
    kind: DomainKind,
    index: u32,
    provider: &'static str,
    source: &str,
    m: Measurement,
) -> DomainInfo {
    DomainInfo {
        id: DomainId::new(kind, index),
        provider,
        source: source.to_string(),
        measurement: m,
        limits: vec![],
        socket: match kind {
            DomainKind::Node | DomainKind::Platform => None,
            _ => Some(index),
        },
        label: None,
    }
}

fn rapl(max_uj: u64) -> Measurement {
    Measurement::Energy(CounterSpec::microjoules_wrapping_at(max_uj))
}

fn limit(
    name: &str,
    limit: f64,
    min: Option<f64>,
    max: Option<f64>,
    window: Option<f64>,
) -> PowerLimit {
    PowerLimit {
        name: name.to_string(),
        limit_watts: Some(limit),
        min_watts: min,
        max_watts: max,
        default_watts: None,
        time_window_s: window,
        time_windows: None,
        enabled: Some(true),
        locked: false,
    }
}

/// An intel-2s-like node: two packages with DRAM, and psys.
fn intel_2s() -> (Vec<DomainInfo>, PowerReport) {
    let mut cat = vec![
        domain(DomainKind::Package, 0, "powercap", "intel-rapl:0", rapl(262_143_999_938)),
        domain(DomainKind::Memory, 0, "powercap", "intel-rapl:0:0", rapl(65_535_999_984)),
        domain(DomainKind::Package, 1, "powercap", "intel-rapl:1", rapl(262_143_999_938)),
        domain(DomainKind::Memory, 1, "powercap", "intel-rapl:1:0", rapl(65_535_999_984)),
        domain(DomainKind::Platform, 0, "powercap", "intel-rapl:2", rapl(262_143_999_938)),
    ];
    for i in [0, 2] {
        cat[i].limits = vec![
            limit("long_term", 150.0, None, Some(150.0), Some(0.999424)),
            limit("short_term", 180.0, None, Some(300.0), Some(0.00244)),
        ];
    }
    for i in [1, 3] {
        cat[i].limits = vec![limit("long_term", 40.0, None, Some(40.0), Some(0.000976))];
        cat[i].limits[0].enabled = Some(false);
    }
    let e = |j: f64| Value::Energy { total_ticks: (j * 1e6) as u64, joules: j, hw_time_us: None };
    let a = Snapshot {
        mono_ns: 1_000_000_000,
        unix_us: 1_795_000_000_000_000,
        values: vec![e(1000.0), e(100.0), e(2000.0), e(200.0), e(5000.0)],
    };
    let b = Snapshot {
        mono_ns: 1_200_000_000,
        unix_us: 1_795_000_000_200_000,
        values: vec![e(1021.0), e(102.4), e(2020.5), e(202.0), e(5062.5)],
    };
    let report = PowerReport::between(&cat, &a, &b);
    (cat, report)
}

/// A cray-ex-like node: pm_counters node, cpu, memory and four accelerators, one socket.
fn cray_ex() -> (Vec<DomainInfo>, PowerReport) {
    let j = Measurement::Energy(CounterSpec::non_wrapping(1.0));
    let mut cat = vec![
        domain(DomainKind::Node, 0, "pm_counters", "energy", j),
        domain(DomainKind::Package, 0, "pm_counters", "cpu_energy", j),
        domain(DomainKind::Memory, 0, "pm_counters", "memory_energy", j),
    ];
    cat[0].limits = vec![PowerLimit { name: "cap".into(), locked: true, ..Default::default() }];
    for g in 0..4 {
        let mut d = domain(DomainKind::Gpu, g, "pm_counters", &format!("accel{g}_energy"), j);
        d.socket = Some(0);
        cat.push(d);
    }
    let e =
        |j: f64, t: u64| Value::Energy { total_ticks: j as u64, joules: j, hw_time_us: Some(t) };
    let t0 = 1_795_000_000_000_000;
    let t1 = t0 + 1_000_000;
    let a = Snapshot {
        mono_ns: 0,
        unix_us: t0 as i64,
        values: vec![
            e(1e6, t0),
            e(2e5, t0),
            e(5e4, t0),
            e(1e5, t0),
            e(1e5, t0),
            e(1e5, t0),
            e(1e5, t0),
        ],
    };
    let b = Snapshot {
        mono_ns: 1_000_000_000,
        unix_us: t1 as i64,
        values: vec![
            e(1e6 + 1675.0, t1),
            e(2e5 + 185.0, t1),
            e(5e4 + 40.0, t1),
            e(1e5 + 325.0, t1),
            e(1e5 + 325.0, t1),
            e(1e5 + 325.0, t1),
            e(1e5 + 325.0, t1),
        ],
    };
    let report = PowerReport::between(&cat, &a, &b);
    (cat, report)
}

/// Two sockets, GPUs attached by NUMA node unevenly (3 on socket 0, 1 on socket 1), one GPU power-only
/// and unreadable at the end.
fn uneven_gpus() -> (Vec<DomainInfo>, PowerReport) {
    let mut cat = vec![
        domain(DomainKind::Package, 0, "powercap", "intel-rapl:0", rapl(262_143_999_938)),
        domain(DomainKind::Package, 1, "powercap", "intel-rapl:1", rapl(262_143_999_938)),
    ];
    for (g, socket) in [(0, 0), (1, 0), (2, 0), (3, 1)] {
        let mut d = domain(
            DomainKind::Gpu,
            g,
            "hwmon",
            &format!("amdgpu 0000:{:02x}:00.0 power1_average", g + 3),
            Measurement::Power,
        );
        d.socket = Some(socket);
        cat.push(d);
    }
    let e = |j: f64| Value::Energy { total_ticks: (j * 1e6) as u64, joules: j, hw_time_us: None };
    let p = |w: f64| Value::Power { watts: w };
    let a = Snapshot {
        mono_ns: 0,
        unix_us: 1_795_000_000_000_000,
        values: vec![e(10.0), e(20.0), p(100.0), p(110.0), p(120.0), p(130.0)],
    };
    let b = Snapshot {
        mono_ns: 500_000_000,
        unix_us: 1_795_000_000_500_000,
        values: vec![e(60.0), e(65.0), p(100.0), p(110.0), p(120.0), Value::Missing],
    };
    let report = PowerReport::between(&cat, &a, &b);
    (cat, report)
}

/// The sources of an intel-2s node: powercap found, msr left out, the others absent.
fn intel_2s_sources() -> Vec<SourceV1> {
    let source = |name: &str, status: &str, domains: usize, detail: Option<&str>| SourceV1 {
        source: name.into(),
        status: status.into(),
        domains,
        detail: detail.map(str::to_string),
    };
    vec![
        source("powercap", "found", 5, None),
        source("msr", "not_probed", 0, Some("another source measures the packages")),
        source(
            "nvml",
            "absent",
            0,
            Some(
                "no NVIDIA GPU (no PCI device of vendor 0x10de under /sys/bus/pci/devices, no /proc/driver/nvidia)",
            ),
        ),
        source(
            "pm_counters",
            "absent",
            0,
            Some("no /sys/cray/pm_counters (not an HPE Cray EX node)"),
        ),
        source(
            "hwmon",
            "absent",
            0,
            Some("no hwmon chip with a power or energy channel under /sys/class/hwmon"),
        ),
    ]
}

fn origin(sim: Option<&str>) -> Origin {
    Origin { hostname: "node01".into(), simulated: sim.map(str::to_string) }
}

fn energies(report: &PowerReport) -> Vec<Option<f64>> {
    report.domains.iter().map(|d| d.energy_joules).collect()
}

#[test]
fn native_json() {
    for (name, (cat, report)) in
        [("intel-2s", intel_2s()), ("cray-ex", cray_ex()), ("uneven-gpus", uneven_gpus())]
    {
        let doc = PowerV1::new(&origin(None), &cat, &report, &[]);
        let text = serde_json::to_string_pretty(&doc).unwrap();
        check(&format!("power-{name}.json"), &text);
        // The document parses back into the same value.
        let back: PowerV1 = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
    }
}

#[test]
fn native_json_energy_and_domains() {
    let (cat, report) = intel_2s();
    let doc =
        EnergyV1::new(&origin(Some("intel-2s")), &cat, &energies(&report), report.unix_us, &[]);
    check("energy-intel-2s.json", &serde_json::to_string_pretty(&doc).unwrap());
    let doc = DomainsV1::new(
        &origin(Some("intel-2s")),
        &cat,
        report.unix_us,
        &intel_2s_sources(),
        &["msr: example warning".into()],
    );
    check("domains-intel-2s.json", &serde_json::to_string_pretty(&doc).unwrap());
}

#[test]
fn variorum_nested() {
    for (name, (cat, report)) in
        [("intel-2s", intel_2s()), ("cray-ex", cray_ex()), ("uneven-gpus", uneven_gpus())]
    {
        check(
            &format!("variorum-{name}.json"),
            &variorum::to_pretty(&variorum::power("node01", &cat, &report)),
        );
    }
}

#[test]
fn variorum_flat() {
    for (name, (cat, report)) in
        [("intel-2s", intel_2s()), ("cray-ex", cray_ex()), ("uneven-gpus", uneven_gpus())]
    {
        check(
            &format!("variorum-flat-{name}.json"),
            &variorum::to_pretty(&variorum::power_flat("node01", &cat, &report)),
        );
    }
}

#[test]
fn variorum_energy_and_domain_info() {
    for (name, (cat, report)) in [("intel-2s", intel_2s()), ("cray-ex", cray_ex())] {
        let v = variorum::energy("node01", &cat, &energies(&report), report.unix_us);
        check(&format!("variorum-energy-{name}.json"), &variorum::to_pretty(&v));
        let v = variorum::domain_info("node01", &cat, report.unix_us, report.node.is_some());
        check(&format!("variorum-domains-{name}.json"), &variorum::to_pretty(&v));
    }
}

#[test]
fn prometheus_text() {
    let (cat, report) = intel_2s();
    check("prometheus-intel-2s.txt", &prometheus::power(&origin(None), &cat, &report));
    let (cat, report) = cray_ex();
    check(
        "prometheus-cray-ex-simulated.txt",
        &prometheus::power(&origin(Some("cray-ex")), &cat, &report),
    );
}

#[test]
fn prometheus_energy_keeps_dies_apart() {
    let die = |d: u32| {
        let mut info = domain(DomainKind::Package, 0, "powercap", "intel-rapl:0:0", rapl(1 << 32));
        info.id.die = Some(d);
        info
    };
    let cat =
        vec![die(0), die(1), domain(DomainKind::Node, 0, "hwmon", "power1", Measurement::Power)];
    let text =
        prometheus::energy(&origin(Some("intel-2s")), &cat, &[Some(10.5), Some(20.25), None]);
    assert_eq!(
        text,
        "# HELP powerstack_energy_joules_total Energy counted by a domain's hardware counter, extended across wraps, in joules.\n\
         # TYPE powerstack_energy_joules_total counter\n\
         powerstack_energy_joules_total{domain=\"package\",index=\"0\",die=\"0\"} 10.5\n\
         powerstack_energy_joules_total{domain=\"package\",index=\"0\",die=\"1\"} 20.25\n\
         # HELP powerstack_simulated 1 when the readings come from simulated hardware (label: simulator profile), else 0.\n\
         # TYPE powerstack_simulated gauge\n\
         powerstack_simulated{profile=\"intel-2s\"} 1\n"
    );
}

fn promtool(text: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn tables() {
    let (cat, report) = intel_2s();
    let o = origin(Some("intel-2s"));
    check("table-power-intel-2s.txt", &table::power(&PowerV1::new(&o, &cat, &report, &[])));
    check(
        "table-energy-intel-2s.txt",
        &table::energy(&EnergyV1::new(&o, &cat, &energies(&report), report.unix_us, &[])),
    );
    check(
        "table-domains-intel-2s.txt",
        &table::domains(&DomainsV1::new(&o, &cat, report.unix_us, &intel_2s_sources(), &[])),
    );
    let (cat, report) = uneven_gpus();
    check(
        "table-power-uneven-gpus.txt",
        &table::power(&PowerV1::new(&origin(None), &cat, &report, &[])),
    );
}

#[test]
fn promtool_accepts_the_prometheus_output() {
    // promtool comes with Debian's `prometheus` package; .ci/run installs it. Skip where absent.
    let Ok(out) = std::process::Command::new("promtool").arg("--version").output() else {
        // CI sets POWERSTACK_REQUIRE_PROMTOOL so that a missing promtool fails instead of skipping.
        assert!(
            std::env::var_os("POWERSTACK_REQUIRE_PROMTOOL").is_none(),
            "promtool is required but not installed"
        );
        eprintln!("promtool not installed: skipping");
        return;
    };
    assert!(out.status.success());
    for (cat, report, sim) in
        [(intel_2s().0, intel_2s().1, None), (cray_ex().0, cray_ex().1, Some("cray-ex"))]
    {
        let text = prometheus::power(&origin(sim), &cat, &report);
        let out = promtool(&text);
        assert!(
            out.status.success(),
            "promtool rejected:\n{text}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (cat, report) = intel_2s();
    let out = promtool(&prometheus::energy(&origin(None), &cat, &energies(&report)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // The check itself can fail: a counter without `_total` is rejected.
    let bad = promtool("# HELP x_joules bad\n# TYPE x_joules counter\nx_joules 1\n");
    assert!(!bad.status.success(), "promtool accepted a counter without _total");
}

/// A node's job result: `devices` are its `cpu_power_N`/`gpu_power_N`/`mem_power_N` figures.
fn job_result(host: &str, node_power: f64, devices: &[(&str, f64)]) -> JobResultV1 {
    let start = 1_795_000_000_000_000;
    JobResultV1 {
        hostname: host.into(),
        job_id: "42".into(),
        user: Some("alice".into()),
        app: None,
        running: false,
        node_power,
        energy_joules: node_power * 10.0,
        domain_power: devices.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
        peak_node_power: node_power * 1.25,
        peak_window_s: 1.0,
        result_start_time: start,
        result_end_time: start + 10_000_000,
        samples: 1001,
        data_presence: DataPresence::Complete,
        gaps: Vec::new(),
    }
}

/// A query's document: each node's result (`None`: it gave none, with that status).
fn job_query(nodes: Vec<(JobResultV1, &str)>) -> JobQueryV1 {
    let total = JobTotalV1::of(
        &nodes.iter().map(|(r, s)| s.starts_with("ok").then_some(r)).collect::<Vec<_>>(),
    );
    let nodes = nodes
        .into_iter()
        .map(|(result, status)| JobQueryNodeV1 {
            agent: format!("{}:9464", result.hostname),
            result,
            status: status.into(),
        })
        .collect();
    JobQueryV1 { job_id: "42".into(), nodes, total }
}

#[test]
fn job_query_csv_on_a_cpu_only_node() {
    // Two sockets with memory, no GPU: no GPU column at all.
    let r = job_result(
        "cpu01",
        402.5,
        &[
            ("cpu_power_0", 150.0),
            ("cpu_power_1", 148.25),
            ("mem_power_0", 20.125),
            ("mem_power_1", 19.0),
        ],
    );
    check("job-csv-cpu-only.csv", &job_query_csv(&job_query(vec![(r, "ok")])));
}

#[test]
fn job_query_csv_on_a_gpu_only_node() {
    // An H200 VM with NVML only: one GPU, no CPU or memory domain, the job still running.
    let mut r = job_result("h200vm", 612.0, &[("gpu_power_0", 612.0)]);
    r.running = true;
    check("job-csv-gpu-only.csv", &job_query_csv(&job_query(vec![(r, "ok (running)")])));
}

#[test]
fn job_query_csv_on_mixed_nodes_one_without_an_answer() {
    // nodeA: two sockets (memory-1 unmeasurable), two GPUs. nodeB: one socket, four GPUs, only
    // part of the window in its buffer. node03: no answer.
    let a = job_result(
        "nodeA",
        700.0,
        &[
            ("cpu_power_0", 150.0),
            ("cpu_power_1", 140.0),
            ("mem_power_0", 20.0),
            ("mem_power_1", -1.0),
            ("gpu_power_0", 200.0),
            ("gpu_power_1", 190.0),
        ],
    );
    let mut b = job_result(
        "nodeB",
        1500.5,
        &[
            ("cpu_power_0", 210.0),
            ("mem_power_0", 30.5),
            ("gpu_power_0", 300.0),
            ("gpu_power_1", 310.0),
            ("gpu_power_2", 305.0),
            ("gpu_power_3", 295.0),
        ],
    );
    b.data_presence = DataPresence::Partial;
    b.result_start_time += 2_000_000;
    b.samples = 801;
    let unreachable = JobResultV1::unanswered("node03", "42");
    let q = job_query(vec![
        (a, "ok"),
        (b, "ok"),
        (unreachable, "unreachable: agent node03:9464 did not answer within 2s, giving up"),
    ]);
    check("job-csv-mixed.csv", &job_query_csv(&q));
}
