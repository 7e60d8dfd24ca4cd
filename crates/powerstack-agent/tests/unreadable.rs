//! A domain the agent could never read has no figure: not 0 W in `/v1/power` (or `/metrics`),
//! not 0 W in a job's result, and no share of the node figure, which falls back as the CLI's
//! does (`powerstack_model::power::node_source`).

use powerstack_agent::http::recent_window;
use powerstack_agent::job::{JobWindow, job_result};
use powerstack_agent::record::Recorder;
use powerstack_agent::{DomainMeta, Shared};
use powerstack_api::job::NOT_MEASURED;
use powerstack_model::{
    CounterSpec, DomainId, DomainInfo, DomainKind, Measurement, NodeSource, PowerReport,
};

fn meta(kind: DomainKind) -> DomainMeta {
    DomainMeta {
        info: DomainInfo {
            id: DomainId::new(kind, 0),
            provider: "test",
            source: format!("{kind} file"),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
            limits: vec![],
            socket: Some(0),
            label: None,
        },
        joules_per_tick: 1e-6,
    }
}

/// An agent's shared state whose ring holds 3 s at 10 Hz of the columns of `kinds`: those in
/// `read` at 100 W each (1e5 µJ per row), the others never read.
fn shared(kinds: &[DomainKind], read: &[bool]) -> Shared {
    let domains: Vec<DomainMeta> = kinds.iter().map(|&k| meta(k)).collect();
    let shared = Shared::new("n".into(), None, domains, 10.0, 1000, 1_000_000);
    let mut rec = Recorder::new(&vec![false; kinds.len()]);
    {
        let mut ring = shared.ring.lock().unwrap();
        for k in 0..=30u64 {
            for (c, &r) in read.iter().enumerate() {
                rec.set(c, r.then_some(1_000_000 + k * 10_000_000));
            }
            rec.push(&mut ring, 1_000_000_000 + k * 100_000);
        }
    }
    shared
}

fn window() -> JobWindow {
    JobWindow {
        id: "j".into(),
        user: None,
        app: None,
        begin_unix_us: 1_000_000_000,
        end_unix_us: Some(1_003_000_000),
    }
}

#[test]
fn a_node_meter_never_read_leaves_the_node_to_the_sum_of_its_parts() {
    use DomainKind::*;
    let s = shared(&[Node, Package, Memory], &[false, true, true]);
    let (a, b, _) = recent_window(&s).unwrap();
    let r = PowerReport::between(&s.catalog(), &a, &b);
    assert_eq!(r.domains[0].power_watts, None, "never read: no 0 W");
    let node = r.node.unwrap();
    assert_eq!(node.source, NodeSource::Sum(vec![1, 2]));
    assert!((node.watts - 200.0).abs() < 1e-6, "{node:?}");

    let ring = s.ring.lock().unwrap();
    let j = job_result(&ring, &s.domains, &window(), 1_003_000_000, "n", 1_000_000);
    assert!((j.node_power - 200.0).abs() < 1e-6, "the node is the sum of its parts: {j:?}");
    assert!((j.energy_joules - 600.0).abs() < 1e-6, "{j:?}");
    assert!((j.domain_power["cpu_power_0"] - 100.0).abs() < 1e-6, "{j:?}");
}

#[test]
fn domains_never_read_have_no_figure_anywhere() {
    use DomainKind::*;
    let s = shared(&[Node, Package, Memory, Gpu], &[false, false, false, false]);
    let (a, b, _) = recent_window(&s).unwrap();
    let r = PowerReport::between(&s.catalog(), &a, &b);
    assert!(
        r.domains.iter().all(|d| d.power_watts.is_none() && d.energy_joules.is_none()),
        "{r:?}"
    );
    assert_eq!(r.node, None);
    let metrics = powerstack_agent::http::metrics::render(
        &s,
        None,
        &powerstack_agent::access::Tier::Privileged,
    );
    assert!(!metrics.contains("powerstack_power_watts{"), "{metrics}");
    assert!(!metrics.contains("powerstack_node_power_watts{"), "{metrics}");

    let ring = s.ring.lock().unwrap();
    let j = job_result(&ring, &s.domains, &window(), 1_003_000_000, "n", 1_000_000);
    assert_eq!(j.node_power, NOT_MEASURED, "{j:?}");
    assert_eq!(j.energy_joules, NOT_MEASURED, "{j:?}");
    assert!(j.domain_power.values().all(|&w| w == NOT_MEASURED), "{j:?}");
}

/// `/v1/samples` gives `null`, never a column of zeros, for a domain never read: to a privileged
/// reader (raw rows) and to any other (whole-second rows).
#[tokio::test]
async fn samples_give_null_for_a_domain_never_read() {
    use axum::body::Body;
    use axum::extract::connect_info::ConnectInfo;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use powerstack_agent::access::{AccessPolicy, Peer};
    use tower::ServiceExt;

    let s = shared(&[DomainKind::Node, DomainKind::Package], &[false, true]);
    let app = powerstack_agent::http::app(std::sync::Arc::new(s), None, AccessPolicy::default());
    for uid in [0, 65534] {
        let mut req = Request::get("/v1/samples").body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(Peer::Unix { uid, gid: uid, pid: None }));
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200, "uid {uid}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rows = v["samples"].as_array().unwrap();
        assert!(!rows.is_empty(), "uid {uid}: {v}");
        for row in rows {
            assert!(row[0].is_u64(), "uid {uid}: the time: {row}");
            assert!(row[1].is_null(), "uid {uid}: the node meter never read: {row}");
            assert!(row[2].is_u64(), "uid {uid}: the package was read: {row}");
        }
    }
}
