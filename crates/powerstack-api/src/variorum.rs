//! LLNL Variorum-compatible JSON, for tools written against Variorum (Flux, Kokkos, Caliper, LDMS).
//!
//! Key names and nesting follow Variorum 0.8 (`variorum_get_power_json`, `variorum_get_energy_json`,
//! `variorum_get_node_power_domain_info_json`) and the older flat `variorum_get_node_power_json`.
//! The numbers are ours: wrap-extended energy, the right DRAM unit, a real first reading, GPUs
//! attached to sockets by NUMA node. Where a domain cannot be measured the value is `-1.0`, as
//! Variorum does on some back-ends. See `docs/formats.md` for the differences, on purpose, from
//! Variorum's own output.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use powerstack_model::{DomainInfo, DomainKind, PowerReport};

/// Sentinel Variorum uses for a value it cannot measure.
pub const UNAVAILABLE: f64 = -1.0;

/// The sockets of a node: those of packages, memory and GPUs; socket 0 when none is known.
fn sockets(catalog: &[DomainInfo]) -> Vec<u32> {
    let mut set: BTreeSet<u32> = catalog
        .iter()
        .filter(|d| {
            matches!(d.id.kind, DomainKind::Package | DomainKind::Memory | DomainKind::Core)
        })
        .map(|d| d.id.index)
        .collect();
    set.extend(catalog.iter().filter(|d| d.id.kind == DomainKind::Gpu).filter_map(|d| d.socket));
    if set.is_empty() {
        set.insert(0);
    }
    set.into_iter().collect()
}

/// The socket of each GPU (catalog index, GPU number, socket). GPUs whose socket is unknown are
/// spread over the sockets in blocks, as Variorum does for all GPUs.
fn gpu_sockets(catalog: &[DomainInfo], sockets: &[u32]) -> Vec<(usize, u32, u32)> {
    let gpus: Vec<(usize, &DomainInfo)> =
        catalog.iter().enumerate().filter(|(_, d)| d.id.kind == DomainKind::Gpu).collect();
    let per_socket = gpus.len().div_ceil(sockets.len().max(1)).max(1);
    gpus.iter()
        .map(|&(i, d)| {
            let socket = d.socket.unwrap_or_else(|| {
                let block = (d.id.index as usize / per_socket).min(sockets.len() - 1);
                sockets[block]
            });
            (i, d.id.index, socket)
        })
        .collect()
}

/// Sums a value over the catalog entries of `kind` on `socket` (dies of one package add up).
fn socket_sum(
    catalog: &[DomainInfo],
    values: &[Option<f64>],
    kind: DomainKind,
    socket: u32,
) -> f64 {
    let mut found = false;
    let mut sum = 0.0;
    for (i, d) in catalog.iter().enumerate() {
        if d.id.kind == kind && d.id.index == socket {
            match values.get(i).copied().flatten() {
                Some(v) => {
                    found = true;
                    sum += v;
                }
                None => return UNAVAILABLE,
            }
        }
    }
    if found { sum } else { UNAVAILABLE }
}

fn num_gpus_per_socket(gpus: &[(usize, u32, u32)], sockets: &[u32]) -> i64 {
    let counts: Vec<usize> =
        sockets.iter().map(|s| gpus.iter().filter(|g| g.2 == *s).count()).collect();
    match counts.first() {
        Some(&c) if counts.iter().all(|&x| x == c) => c as i64,
        _ => -1,
    }
}

/// Variorum 0.8 nested power JSON (`variorum_get_power_json`):
/// `{host: {timestamp, socket_N: {power_cpu_watts, power_mem_watts, power_gpu_watts: {GPU_n}},
/// power_node_watts, num_gpus_per_socket}}`.
pub fn power(hostname: &str, catalog: &[DomainInfo], report: &PowerReport) -> Value {
    let watts: Vec<Option<f64>> = report.domains.iter().map(|d| d.power_watts).collect();
    let sockets = sockets(catalog);
    let gpus = gpu_sockets(catalog, &sockets);
    let mut host = Map::new();
    host.insert("timestamp".into(), json!(report.unix_us));
    for &s in &sockets {
        let mut sock = Map::new();
        sock.insert(
            "power_cpu_watts".into(),
            json!(socket_sum(catalog, &watts, DomainKind::Package, s)),
        );
        sock.insert(
            "power_mem_watts".into(),
            json!(socket_sum(catalog, &watts, DomainKind::Memory, s)),
        );
        if !gpus.is_empty() {
            let mut g = Map::new();
            for &(i, n, gs) in &gpus {
                if gs == s {
                    g.insert(
                        format!("GPU_{n}"),
                        json!(watts.get(i).copied().flatten().unwrap_or(UNAVAILABLE)),
                    );
                }
            }
            sock.insert("power_gpu_watts".into(), Value::Object(g));
        }
        host.insert(format!("socket_{s}"), Value::Object(sock));
    }
    let node = report.node.as_ref().map(|n| n.watts).unwrap_or(UNAVAILABLE);
    host.insert("power_node_watts".into(), json!(node));
    if !gpus.is_empty() {
        host.insert("num_gpus_per_socket".into(), json!(num_gpus_per_socket(&gpus, &sockets)));
    }
    let mut top = Map::new();
    top.insert(hostname.to_string(), Value::Object(host));
    Value::Object(top)
}

/// Variorum's older flat power JSON (`variorum_get_node_power_json`): one level, with
/// `power_cpu_watts_socket_N`, `power_mem_watts_socket_N`, `power_gpu_watts_socket_N` (GPU power
/// summed per socket) and `-1.0` where a domain cannot be measured. Both `hostname` and Variorum's
/// original `host` key carry the hostname.
pub fn power_flat(hostname: &str, catalog: &[DomainInfo], report: &PowerReport) -> Value {
    let watts: Vec<Option<f64>> = report.domains.iter().map(|d| d.power_watts).collect();
    let sockets = sockets(catalog);
    let gpus = gpu_sockets(catalog, &sockets);
    let mut m = Map::new();
    m.insert("hostname".into(), json!(hostname));
    m.insert("host".into(), json!(hostname));
    m.insert("timestamp".into(), json!(report.unix_us));
    let node = report.node.as_ref().map(|n| n.watts).unwrap_or(UNAVAILABLE);
    m.insert("power_node_watts".into(), json!(node));
    for &s in &sockets {
        m.insert(
            format!("power_cpu_watts_socket_{s}"),
            json!(socket_sum(catalog, &watts, DomainKind::Package, s)),
        );
        m.insert(
            format!("power_mem_watts_socket_{s}"),
            json!(socket_sum(catalog, &watts, DomainKind::Memory, s)),
        );
        let on_socket: Vec<Option<f64>> =
            gpus.iter().filter(|g| g.2 == s).map(|g| watts.get(g.0).copied().flatten()).collect();
        let gpu = if on_socket.is_empty() || on_socket.iter().any(Option::is_none) {
            UNAVAILABLE
        } else {
            on_socket.iter().flatten().sum()
        };
        m.insert(format!("power_gpu_watts_socket_{s}"), json!(gpu));
    }
    Value::Object(m)
}

/// Variorum 0.8 energy JSON (`variorum_get_energy_json`):
/// `{host: {timestamp, socket_N: {energy_cpu_joules, energy_mem_joules}, energy_node_joules}}`,
/// plus `energy_gpu_joules: {GPU_n}` per socket when the node has GPUs with energy counters.
/// `energies[i]` is the extended counter of `catalog[i]` in joules.
pub fn energy(
    hostname: &str,
    catalog: &[DomainInfo],
    energies: &[Option<f64>],
    timestamp_us: i64,
) -> Value {
    let sockets = sockets(catalog);
    let gpus = gpu_sockets(catalog, &sockets);
    let gpus_with_energy = gpus.iter().any(|g| energies.get(g.0).copied().flatten().is_some());
    let mut host = Map::new();
    host.insert("timestamp".into(), json!(timestamp_us));
    for &s in &sockets {
        let mut sock = Map::new();
        sock.insert(
            "energy_cpu_joules".into(),
            json!(socket_sum(catalog, energies, DomainKind::Package, s)),
        );
        sock.insert(
            "energy_mem_joules".into(),
            json!(socket_sum(catalog, energies, DomainKind::Memory, s)),
        );
        if gpus_with_energy {
            let mut g = Map::new();
            for &(i, n, gs) in &gpus {
                if gs == s {
                    g.insert(
                        format!("GPU_{n}"),
                        json!(energies.get(i).copied().flatten().unwrap_or(UNAVAILABLE)),
                    );
                }
            }
            sock.insert("energy_gpu_joules".into(), Value::Object(g));
        }
        host.insert(format!("socket_{s}"), Value::Object(sock));
    }
    let (node, _) = crate::v1::node_energy(catalog, energies);
    host.insert("energy_node_joules".into(), json!(node.unwrap_or(UNAVAILABLE)));
    let mut top = Map::new();
    top.insert(hostname.to_string(), Value::Object(host));
    Value::Object(top)
}

/// Variorum 0.8 domain information JSON (`variorum_get_node_power_domain_info_json`):
/// `{host: {timestamp, control: {power_X: {min, max, units}}, unsupported: [...],
/// measurement: {power_X: {units}}}}` over `power_node`, `power_cpu`, `power_mem`, `power_gpu`.
/// Control ranges come from the first unlocked limit of the first domain of each kind that has one
/// (socket 0, GPU 0), as Variorum reports socket 0.
pub fn domain_info(
    hostname: &str,
    catalog: &[DomainInfo],
    timestamp_us: i64,
    node_measurable: bool,
) -> Value {
    let groups: [(&str, &[DomainKind]); 4] = [
        ("power_node", &[DomainKind::Node]),
        ("power_cpu", &[DomainKind::Package]),
        ("power_mem", &[DomainKind::Memory]),
        ("power_gpu", &[DomainKind::Gpu]),
    ];
    let mut control = Map::new();
    let mut measurement = Map::new();
    let mut unsupported = Vec::new();
    for (name, kinds) in groups {
        let members: Vec<&DomainInfo> =
            catalog.iter().filter(|d| kinds.contains(&d.id.kind)).collect();
        // Only limits that can be changed are controls; a locked (read-only) one is not.
        let limit = members.iter().flat_map(|d| d.limits.iter().find(|l| !l.locked)).next();
        let measurable = !members.is_empty() || (name == "power_node" && node_measurable);
        if let Some(l) = limit {
            control.insert(
                name.into(),
                json!({
                    "min": l.min_watts.unwrap_or(0.0),
                    "max": l.max_watts.unwrap_or(0.0),
                    "units": "Watts"
                }),
            );
        }
        if measurable {
            measurement.insert(name.into(), json!({"units": "Watts"}));
        }
        if limit.is_none() && !measurable {
            unsupported.push(json!(name));
        }
    }
    let mut host = Map::new();
    host.insert("timestamp".into(), json!(timestamp_us));
    host.insert("control".into(), Value::Object(control));
    host.insert("unsupported".into(), Value::Array(unsupported));
    host.insert("measurement".into(), Value::Object(measurement));
    let mut top = Map::new();
    top.insert(hostname.to_string(), Value::Object(host));
    Value::Object(top)
}

/// Serializes like Variorum prints: indented by four spaces, keys in insertion order.
pub fn to_pretty(value: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing a `Value` into memory cannot fail.
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}
