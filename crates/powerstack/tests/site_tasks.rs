//! `powerstack site transition|power-cap|task` against `site serve` as a process: this build has
//! no Redfish client, so every node's operation fails with the reason saying so, and the commands
//! wait, print the per-node table and exit non-zero; bad input is one line and nothing created.

mod common;

use std::process::Output;

use common::site::serve_with;
use common::{Proc, bin};

/// `site serve` with BMCs for n01 and n02 (SQLite in `dir`); the process and its URL.
fn serve(dir: &std::path::Path) -> (Proc, String) {
    let config = dir.join("site.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\ntask_poll_ms = 50\n\n\
         [[bmc]]\nnode = \"n01\"\nurl = \"https://n01-bmc\"\n\n\
         [[bmc]]\nnode = \"n02\"\nurl = \"https://n02-bmc\"\n",
        dir.display()
    );
    std::fs::write(&config, text).unwrap();
    serve_with(&["--config", config.to_str().unwrap()])
}

fn run(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = bin().args(["site"]).args(args).args(["--site", url]).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn control_tasks_wait_print_each_node_and_fail_when_a_node_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, url) = serve(dir.path());
    let (code, out, err) = run(&url, &["power-cap", "snapshot", "--nodes", "n[01-02]"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("power-cap-snapshot") && err.contains("2/2 done, 2 failed"), "{err}");
    assert!(err.contains("error: 2 of 2 nodes failed"), "{err}");
    assert!(out.starts_with("task ") && out.contains("power-cap snapshot, failed"), "{out}");
    let n01 = out.lines().find(|l| l.starts_with("n01")).unwrap();
    assert!(
        n01.contains("failed") && n01.contains("Redfish control is not built into this binary yet"),
        "{out}"
    );
    // Not waited for: the id alone; then shown as JSON.
    let (code, id, err) = run(&url, &["transition", "on", "--nodes", "n01", "--no-wait"]);
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    let (code, out, _) = run(&url, &["task", "show", id, "--json"]);
    assert_eq!(code, Some(1));
    let t: powerstack_api::site_tasks::TaskV1 = serde_json::from_str(&out).unwrap();
    assert_eq!((t.id.as_str(), t.counts.failed), (id, 1));
    assert!(t.nodes[0].reason.as_deref().unwrap().contains("nothing was sent"), "{t:?}");
    // Bad input: one line each, nothing created.
    let (code, _, err) = run(&url, &["transition", "off", "--nodes", "n[02-03]"]);
    assert!(code == Some(1) && err.contains("node n03 has no BMC"), "{err}");
    let (code, _, err) = run(&url, &["transition", "reboot", "--nodes", "n01"]);
    assert!(code == Some(1) && err.contains("one of on, off, force-off"), "{err}");
    let (code, _, err) = run(&url, &["power-cap", "set", "lots", "--nodes", "n01"]);
    assert!(code == Some(1) && err.contains("or off"), "{err}");
    let (code, _, err) = run(&url, &["task", "abort", "00000000-0000-4000-8000-000000000000"]);
    assert!(code == Some(1) && err.contains("404"), "{err}");
}
