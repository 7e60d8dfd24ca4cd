//! The dependency rules of ARCHITECTURE.md hold: every workspace crate's normal and build
//! dependencies on other workspace crates, as `cargo metadata` reports them, are among those its
//! line of the ```` ```deps ```` block allows, and every workspace crate has a line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ```` ```deps ```` block of ARCHITECTURE.md: `crate: allowed, allowed`.
fn allowed(architecture: &str) -> Result<Graph, String> {
    let start = architecture.find("```deps\n").ok_or("ARCHITECTURE.md has no ```deps block")?;
    let body = &architecture[start + "```deps\n".len()..];
    let end = body.find("```").ok_or("the ```deps block is not closed")?;
    let mut rules = Graph::new();
    for line in body[..end].lines().filter(|l| !l.trim().is_empty()) {
        let (name, deps) =
            line.split_once(':').ok_or_else(|| format!("not `crate: deps`: {line}"))?;
        let deps = deps.split(',').map(str::trim).filter(|d| !d.is_empty());
        if rules.insert(name.trim().to_string(), deps.map(str::to_string).collect()).is_some() {
            return Err(format!("{} has two lines", name.trim()));
        }
    }
    Ok(rules)
}

/// Each workspace crate and the workspace crates it depends on (normal and build dependencies).
fn actual() -> Graph {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .filter_map(|d| d["name"].as_str())
                .filter(|n| members.contains(n))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

/// Every way `actual` breaks `rules`, one line each.
fn violations(rules: &Graph, actual: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (krate, deps) in actual {
        let Some(ok) = rules.get(krate) else {
            out.push(format!("{krate} has no line in ARCHITECTURE.md's ```deps block"));
            continue;
        };
        for d in deps.difference(ok) {
            out.push(format!("{krate} depends on {d}, which ARCHITECTURE.md does not allow"));
        }
    }
    for krate in rules.keys().filter(|k| !actual.contains_key(*k)) {
        out.push(format!("ARCHITECTURE.md has a rule for {krate}, which is not in the workspace"));
    }
    out
}

#[test]
fn workspace_dependencies_follow_architecture_md() {
    let text = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    let rules = allowed(&text).unwrap();
    let found = violations(&rules, &actual());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_forbidden_or_unlisted_dependency_is_reported() {
    let rules = allowed("x\n```deps\nhw: model\nmodel:\n```\n").unwrap();
    let graph = |edges: &[(&str, &[&str])]| -> Graph {
        edges
            .iter()
            .map(|(k, d)| (k.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    assert!(violations(&rules, &graph(&[("hw", &["model"]), ("model", &[])])).is_empty());
    let v = violations(&rules, &graph(&[("hw", &["model", "api"]), ("model", &[])]));
    assert_eq!(v, ["hw depends on api, which ARCHITECTURE.md does not allow"]);
    let v = violations(&rules, &graph(&[("hw", &[]), ("model", &[]), ("new", &[])]));
    assert_eq!(v, ["new has no line in ARCHITECTURE.md's ```deps block"]);
    assert!(allowed("no block").is_err());
}
