//! The site power bound end to end: `powerstack site serve` with a `[bound]` section, two real
//! agents on simulated nodes advertising their addresses, a job over both; `powerstack site
//! bound` caps the nodes through the agents' node-cap path (the package and DRAM limits in the
//! simulated sysfs go down, the caps counted stay within the bound), `site decisions` and `site
//! admit` answer, and `site bound clear` raises every node back to its maximum.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::site::serve_with;
use common::{Node, Proc, bin, run, stderr_until};
use powerstack_api::site::SiteJobBeginV1;
use powerstack_api::site_bound::BoundDecisionV1;
use powerstack_client::site::Site;
use serde_json::Value;

/// A port free on loopback now (the agent's address must be known before it starts, to be
/// advertised).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `powerstack agent` on `node`, pushing to `site` as `name`, advertising its TCP address.
fn agent(node: &Node, site: &str, name: &str, token: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd: Command = bin();
    cmd.args(["agent", "--root", node.root().to_str().unwrap(), "--rate-hz", "20"])
        .args(["--socket", node.socket().to_str().unwrap()])
        .args(["--state-dir", node.state().to_str().unwrap(), "--listen", &addr])
        .args(["--token-file", token.to_str().unwrap(), "--site", site, "--node-name", name])
        .args(["--advertise-url", &format!("http://{addr}")]);
    let mut child = Proc(cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap());
    stderr_until(&mut child.0, "API http://");
    (child, addr)
}

/// `cap show --format json` of `node`.
fn caps(node: &Node) -> Value {
    let root = node.root();
    let (status, out, err) =
        run(&["cap", "show", "--root", root.to_str().unwrap(), "--format", "json"]);
    assert_eq!(status, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The sum of `node`'s package long-term limits, W.
fn package_limits_watts(node: &Node) -> f64 {
    caps(node)["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["domain"] == "package" && c["constraint"] == "long_term")
        .map(|c| c["limit_watts"].as_f64().unwrap_or(0.0))
        .sum()
}

fn decision(s: &Site, done: impl Fn(&BoundDecisionV1) -> bool) -> BoundDecisionV1 {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let found = s.bound_decisions(100).unwrap().decisions.into_iter().find(&done);
        if let Some(d) = found {
            return d;
        }
        assert!(Instant::now() < until, "no such decision came");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_site_bound_caps_real_agents_on_simulated_nodes_and_a_clear_uncaps_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let token = dir.path().join("agents.token");
    std::fs::write(&token, "bound-e2e-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[bound]\nperiod_s = 0.5\npolicy = \"uniform\"\nagent_token_file = \"{}\"\n",
            dir.path().join("state").display(),
            token.display()
        ),
    )
    .unwrap();
    let (_site, url) = serve_with(&["--config", config.to_str().unwrap()]);
    let s = Site::new(&url, None, Duration::from_secs(10)).unwrap();
    let nodes = [Node::new("intel-2s"), Node::new("intel-2s")];
    let names = ["b1", "b2"];
    let _agents: Vec<_> =
        nodes.iter().zip(names).map(|(n, name)| agent(n, &url, name, &token)).collect();
    let until = Instant::now() + Duration::from_secs(30);
    while s.nodes().unwrap().nodes.iter().filter(|n| n.control_url.is_some()).count() < 2 {
        assert!(Instant::now() < until, "the agents did not register their addresses");
        std::thread::sleep(Duration::from_millis(100));
    }
    let job = SiteJobBeginV1 {
        id: "e2e".into(),
        nodes: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    };
    s.begin_job(&job).unwrap();
    // A bound half-way between every node at its minimum and every node at its maximum.
    let ranges: Vec<(f64, f64)> = nodes
        .iter()
        .map(|n| {
            let r = caps(n)["node"].clone();
            (r["min_watts"].as_f64().unwrap(), r["max_watts"].as_f64().unwrap())
        })
        .collect();
    let low: f64 = ranges.iter().map(|r| r.0).sum();
    let high: f64 = ranges.iter().map(|r| r.1).sum();
    let bound = ((low + high) / 2.0).round();
    let before: Vec<f64> = nodes.iter().map(package_limits_watts).collect();
    let (status, out, err) = run(&["site", "bound", &bound.to_string(), "--site", &url]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains(&format!("bound {bound:.0} W")) && out.contains("from set"), "{out}");
    // Both nodes lowered (in one period, or in two when an agent answered late: the newest decision
    // then has one lowered and one kept).
    let d = decision(&s, |d| {
        d.bound_watts == Some(bound)
            && d.nodes.len() == 2
            && d.nodes.iter().all(|n| n.outcome == "lowered" || n.outcome == "kept")
    });
    assert!(d.nodes.iter().all(|n| n.via == "agent"), "{d:#?}");
    // Each node's cap was read back within a watt of its share, and the sum within the bound
    // (RAPL rounds to its power unit).
    assert!(d.accounted_watts <= bound + 2.0, "{d:#?}");
    let capped: Vec<f64> = nodes.iter().map(package_limits_watts).collect();
    for (now, old) in capped.iter().zip(&before) {
        assert!(*now < old - 1.0, "package limits {now} W, before {old} W");
    }
    // Nothing is written again while the caps read back within the tolerance of their targets
    // (RAPL rounds): four more periods record nothing (a decision is recorded when a period writes).
    std::thread::sleep(Duration::from_secs(2));
    let writes = s.bound_decisions(100).unwrap().decisions;
    let after: Vec<_> =
        writes.iter().filter(|x| x.id > d.id && x.bound_watts == Some(bound)).collect();
    assert!(after.is_empty(), "written again: {after:#?}");
    let (status, out, _) = run(&["site", "decisions", "--site", &url]);
    assert_eq!(status, 0);
    assert!(out.contains(" lowered,") && out.contains(&format!("bound {bound:.0} W")), "{out}");
    // Admission: no idle node; a new one at its minimum and the job's nodes squeezed cannot give
    // 1 MW; a 1 W request fits.
    let (status, out, err) =
        run(&["site", "admit", "--nodes", "1", "--power-watts", "1MW", "--site", &url]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(out.starts_with("does not fit") && err.contains("does not fit"), "{out}{err}");
    let (status, out, err) =
        run(&["site", "admit", "--nodes", "1", "--power-watts", "1", "--site", &url]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.starts_with("fits"), "{out}");
    // Cleared: both nodes raised to their maximum.
    let (status, out, err) = run(&["site", "bound", "clear", "--site", &url]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("no bound in force"), "{out}");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let now: Vec<f64> = nodes.iter().map(package_limits_watts).collect();
        let raised = now
            .iter()
            .zip(&before)
            .zip(&capped)
            .all(|((n, old), low)| *n > low + 1.0 && *n >= old - 1.0);
        if raised {
            break;
        }
        assert!(
            Instant::now() < until,
            "package limits {now:?}, capped {capped:?}, before {before:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = decision(&s, |d| d.why.starts_with("no bound") && d.bound_watts.is_none());
    assert!(d.raised >= 1, "{d:#?}");
}
