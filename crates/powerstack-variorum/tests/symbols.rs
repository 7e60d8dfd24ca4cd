//! Every function `include/*.h` declares is exported by `libvariorum.so` (read with
//! `nm -D --defined-only`), and so is each symbol pyVariorum binds when it starts.

mod common;

use std::process::Command;

use common::*;

/// The function names declared in a header: `TYPE [*]name(...);` at the start of a line.
fn prototypes(header: &str) -> Vec<String> {
    header
        .lines()
        .filter(|l| l.trim_end().ends_with(");") && !l.starts_with(' ') && !l.starts_with('/'))
        .filter_map(|l| {
            let before = l.split('(').next()?;
            let name = before.rsplit([' ', '*']).next()?;
            Some(name.to_string())
        })
        .collect()
}

fn exported() -> Option<Vec<String>> {
    let lib = lib_dir().join("libvariorum.so");
    let o = Command::new("nm").args(["-D", "--defined-only"]).arg(&lib).output().ok()?;
    assert!(o.status.success(), "nm: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    Some(text.lines().filter_map(|l| l.split_whitespace().nth(2)).map(str::to_string).collect())
}

#[test]
fn every_declared_function_is_exported() {
    let Some(symbols) = exported() else {
        eprintln!("skipped: nm is not installed");
        return;
    };
    let mut declared = Vec::new();
    for h in ["variorum.h", "variorum_topology.h"] {
        let text = std::fs::read_to_string(crate_dir().join("include").join(h)).unwrap();
        declared.extend(prototypes(&text));
    }
    assert_eq!(declared.len(), 41, "{declared:?}");
    let missing: Vec<&String> = declared.iter().filter(|d| !symbols.contains(d)).collect();
    assert!(missing.is_empty(), "declared but not exported: {missing:?}");
}

#[test]
fn every_symbol_pyvariorum_binds_is_exported() {
    let Some(symbols) = exported() else {
        eprintln!("skipped: nm is not installed");
        return;
    };
    // The names pyVariorum (Variorum 0.8's Python wrapper) looks up in libvariorum.so when its
    // `variorum` class is made; one missing name fails its start.
    let pyvariorum = [
        "print_power",
        "print_verbose_power",
        "print_power_limit",
        "print_verbose_power_limit",
        "print_thermals",
        "print_verbose_thermals",
        "print_counters",
        "print_verbose_counters",
        "print_frequency",
        "print_verbose_frequency",
        "print_gpu_utilization",
        "print_verbose_gpu_utilization",
        "print_hyperthreading",
        "print_topology",
        "print_features",
        "print_turbo",
        "print_available_frequencies",
        "print_energy",
        "get_current_version",
        "cap_best_effort_node_power_limit",
        "cap_each_socket_power_limit",
        "cap_each_core_frequency_limit",
        "cap_socket_frequency_limit",
        "cap_gpu_power_ratio",
        "get_power_json",
        "get_node_power_domain_info_json",
        "enable_turbo",
        "disable_turbo",
        "get_num_sockets",
        "get_num_cores",
        "get_num_threads",
    ];
    let missing: Vec<String> = pyvariorum
        .iter()
        .map(|n| format!("variorum_{n}"))
        .filter(|n| !symbols.contains(n))
        .collect();
    assert!(missing.is_empty(), "pyVariorum would fail to start: {missing:?}");
}
