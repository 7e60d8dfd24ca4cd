//! The topology document (`powerstack.topology.v1`): the node's CPUs, packages and GPUs as
//! discovery found them, for `powerstack topology`.

use powerstack_api::Origin;
use powerstack_api::v1::HeaderV1;
use powerstack_api::v1::{GpuV1, PackageV1, TOPOLOGY_SCHEMA, TopologyV1};
use powerstack_hw::Discovery;
use powerstack_hw::topology::Vendor;
use powerstack_model::DomainKind;
use powerstack_model::cpulist::format_cpulist;

/// The topology document of a discovered node: the CPU model, online and offline CPUs, each
/// package's cores and online CPUs, and each GPU with the socket it is attached to.
pub fn document(origin: &Origin, discovery: &Discovery) -> TopologyV1 {
    let topo = &discovery.topology;
    let packages = topo
        .packages()
        .into_iter()
        .map(|p| PackageV1 {
            id: p,
            cores: topo.cores_of(p) as u32,
            cpus: format_cpulist(&topo.online_cpus_of(p)),
        })
        .collect();
    let online: Vec<u32> = topo.cpus.iter().filter(|c| c.online).map(|c| c.id).collect();
    let offline: Vec<u32> = topo.cpus.iter().filter(|c| !c.online).map(|c| c.id).collect();
    let gpus = discovery
        .platform
        .catalog()
        .iter()
        .filter(|d| d.id.kind == DomainKind::Gpu)
        .map(|d| GpuV1 {
            index: d.id.index,
            socket: d.socket,
            provider: d.provider.to_string(),
            source: d.source.clone(),
        })
        .collect();
    let model = topo.model.as_ref();
    TopologyV1 {
        header: HeaderV1::new(TOPOLOGY_SCHEMA, origin),
        cpu_vendor: model.map(|m| match &m.vendor {
            Vendor::Intel => "intel".to_string(),
            Vendor::Amd => "amd".to_string(),
            Vendor::Other(v) => v.clone(),
        }),
        cpu_family: model.map(|m| m.family),
        cpu_model: model.map(|m| m.model),
        cpu_model_name: model.map(|m| m.name.clone()),
        online_cpus: format_cpulist(&online),
        offline_cpus: format_cpulist(&offline),
        packages,
        gpus,
    }
}
