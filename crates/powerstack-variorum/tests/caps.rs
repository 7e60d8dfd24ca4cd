//! Variorum's cap calls go through powerstack's cap session: checked against the hardware's
//! range, journaled in the node's state directory, so that `powerstack cap reset` puts the
//! limits back.

mod common;

use common::*;

/// The long-term limit of socket `n` in a `powerstack domains --format json` document.
fn socket_limit(doc: &serde_json::Value, n: u64) -> f64 {
    let domains = doc["domains"].as_array().unwrap();
    let d = domains.iter().find(|d| d["domain"] == "package" && d["index"] == n).unwrap();
    let limits = d["controls"].as_array().unwrap();
    let l = limits.iter().find(|l| l["name"] == "long_term").unwrap();
    l["limit_watts"].as_f64().unwrap()
}

fn limits(root: &str) -> serde_json::Value {
    let o = run(&powerstack(), &["domains", "--format", "json", "--root", root], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn socket_caps_are_checked_journaled_and_reset_by_the_cli() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let o = run(&powerstack(), &["sim", "create", "--profile", "intel-2s", root_s], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = socket_limit(&limits(root_s), 0);
    let cap = compile("cap-socket-power-limit", dir.path());
    let env = [("POWERSTACK_ROOT", root_s)];

    // Out of the socket's range: refused, nothing written.
    let o = run(&cap, &["-l", "5000"], &env);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("returned -1"), "{}", stdout(&o));
    assert!(stderr(&o).contains("outside the allowed range"), "{}", stderr(&o));
    assert_eq!(socket_limit(&limits(root_s), 0), before);

    let o = run(&cap, &["-l", "100"], &env);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("_PACKAGE_POWER_LIMIT - "), "{}", stdout(&o));
    let now = limits(root_s);
    assert_eq!((socket_limit(&now, 0), socket_limit(&now, 1)), (100.0, 100.0));

    // The journal is the CLI's: its reset puts the original limits back.
    let o = run(&powerstack(), &["cap", "reset", "--root", root_s, "--format", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(socket_limit(&limits(root_s), 0), before);
}

#[test]
fn best_effort_node_cap_splits_evenly_over_the_sockets() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cap = compile("cap-best-effort-node-power-limit", dir.path());
    let o = run(&cap, &["-l", "201"], &[("POWERSTACK_SIMULATE", "intel-2s")]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    // 201 W rounded down to a multiple of 2 sockets: 100 W each, as Variorum splits it.
    for socket in ["0", "1"] {
        let line = format!(
            "_PACKAGE_POWER_LIMIT Offset: -, Host: {}, Socket: {socket}, Bits: -, PowerLimit1_W: 100.000000,",
            host(&out)
        );
        assert!(out.contains(&line), "{line}\n{out}");
    }
    // Below what the sockets can be capped to: refused.
    let o = run(&cap, &["-l", "10"], &[("POWERSTACK_SIMULATE", "intel-2s")]);
    assert!(!o.status.success(), "{}", stdout(&o));
}

/// The host name the library printed.
fn host(out: &str) -> String {
    let line = out.lines().find(|l| l.contains("Host: ")).unwrap();
    line.split("Host: ").nth(1).unwrap().split(',').next().unwrap().to_string()
}

#[test]
fn gpu_caps_are_checked_and_written() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cap = compile("cap-gpu-power-limit", dir.path());
    let nvml = mock_nvml();
    let env =
        [("POWERSTACK_SIMULATE", "nvidia-4gpu"), ("POWERSTACK_MOCK_NVML", nvml.to_str().unwrap())];
    let o = run(&cap, &["-l", "200"], &env);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let gpus: Vec<&str> =
        out.lines().filter(|l| l.starts_with("_GPU_POWER_LIMIT ")).skip(1).collect();
    assert_eq!(gpus.len(), 4, "{out}");
    assert!(gpus.iter().all(|l| l.ends_with(" 200.000000")), "{out}");
    // Above what the GPUs accept: refused.
    let o = run(&cap, &["-l", "5000"], &env);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("outside the allowed range"), "{}", stderr(&o));
}
