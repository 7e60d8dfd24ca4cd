//! Which socket a device is attached to, from its NUMA node.
//!
//! A PCI device's `numa_node` names a NUMA node; the node's `cpulist`
//! (`/sys/devices/system/node/nodeN/cpulist`) names its CPUs, and the first of them that the
//! topology knows gives the package. On a single-package node every device is on that package.

use std::path::Path;

use powerstack_model::cpulist::parse_cpulist;

use crate::file::read_trimmed;
use crate::root::Root;
use crate::topology::{Cpu, CpuTopology};

/// The package of NUMA node `node` (`None` for a negative node, i.e. unknown), through the node's
/// CPU list; on a single-package node, that package whatever the node says.
pub fn package_of_numa_node(root: &Root, topology: &CpuTopology, node: i64) -> Option<u32> {
    let single = match topology.packages().as_slice() {
        [p] => Some(*p),
        _ => None,
    };
    let Ok(node) = u32::try_from(node) else { return single };
    let cpulist = root.path(format!("/sys/devices/system/node/node{node}/cpulist"));
    let Ok(text) = read_trimmed(&cpulist, "cpulist") else { return single };
    let Ok(cpus) = parse_cpulist(&text) else { return single };
    cpus.iter()
        .find_map(|id| topology.cpus.iter().find(|c| c.id == *id))
        .and_then(Cpu::counted_package)
        .or(single)
}

/// The package of a device directory (a PCI device under `sys/devices`, or the
/// `sys/bus/pci/devices/ADDR` link to it), from its `numa_node` file. `None` when the node is
/// unknown (`-1`, no file) on a node with several packages.
pub fn socket_of_device(root: &Root, topology: &CpuTopology, device: &Path) -> Option<u32> {
    let node = read_trimmed(&device.join("numa_node"), "numa_node")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(-1);
    package_of_numa_node(root, topology, node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(packages: &[u32]) -> CpuTopology {
        let cpus = packages
            .iter()
            .enumerate()
            .map(|(i, p)| Cpu {
                id: i as u32,
                online: true,
                package: Some(*p),
                die: Some(0),
                core: Some(i as u32),
                siblings: vec![i as u32],
                capacity: None,
            })
            .collect();
        CpuTopology { cpus, model: None }
    }

    #[test]
    fn maps_a_device_through_its_numa_node_cpus() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        for (n, cpus) in [(0, "0-1"), (1, "2-3")] {
            let d = root.path(format!("/sys/devices/system/node/node{n}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cpulist"), format!("{cpus}\n")).unwrap();
        }
        let dev = root.path("/sys/devices/pci0000:00/0000:17:00.0");
        std::fs::create_dir_all(&dev).unwrap();
        let two = topo(&[0, 0, 1, 1]);
        std::fs::write(dev.join("numa_node"), "1\n").unwrap();
        assert_eq!(socket_of_device(&root, &two, &dev), Some(1));
        std::fs::write(dev.join("numa_node"), "-1\n").unwrap();
        assert_eq!(socket_of_device(&root, &two, &dev), None);
        assert_eq!(socket_of_device(&root, &topo(&[0, 0]), &dev), Some(0));
        assert_eq!(package_of_numa_node(&root, &two, 7), None);
    }
}
