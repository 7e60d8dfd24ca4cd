//! One full sample of a node, with kept-open files and `pread`.
//!
//! Run: `cargo bench -p powerstack-hw --bench sample`. The roots are simulated trees on the local
//! file system: this measures powerstack's own cost (syscalls, parsing, counter extension), not the
//! kernel's `rdmsr` behind a real `energy_uj`. Results go to BENCHMARKS.md.

use divan::Bencher;
use powerstack_hw::{Platform, Root, Selection, Source, discover};
use powerstack_sim::{NvmlLatency, Profile, SimNode, SimOptions};

fn main() {
    divan::main();
}

fn platform(profile: Profile, sources: Vec<Source>) -> (tempfile::TempDir, SimNode, Platform) {
    let dir = tempfile::tempdir().expect("temp dir");
    // The mock NVML library's calls take no time, so that its figure is powerstack's side (a real
    // H200's energy call takes 2.85 ms, which the simulator's default latency reproduces).
    let opts = SimOptions { nvml_latency: NvmlLatency::NONE, ..SimOptions::default() };
    let sim = SimNode::create(dir.path(), profile, opts).expect("sim root");
    let found = discover(&Root::new(dir.path()), &Selection::Only(sources));
    (dir, sim, found.platform)
}

/// intel-2s through powercap: package-0, dram-0, package-1, dram-1, psys (5 zones).
#[divan::bench]
fn intel_2s_powercap(b: Bencher) {
    let (_dir, _sim, mut p) = platform(Profile::Intel2s, vec![Source::Powercap]);
    assert_eq!(p.catalog().len(), 5);
    b.bench_local(|| divan::black_box(p.sample()));
}

/// intel-2s through the MSR image: package, DRAM and platform energy registers.
#[divan::bench]
fn intel_2s_msr(b: Bencher) {
    let (_dir, _sim, mut p) = platform(Profile::Intel2s, vec![Source::Msr]);
    assert!(p.catalog().len() >= 4);
    b.bench_local(|| divan::black_box(p.sample()));
}

/// cray-ex through pm_counters: node, cpu, memory, 4 accelerators, with the freshness check.
#[divan::bench]
fn cray_ex_pm_counters(b: Bencher) {
    let (_dir, _sim, mut p) = platform(Profile::CrayEx, vec![Source::PmCounters]);
    assert_eq!(p.catalog().len(), 7);
    b.bench_local(|| divan::black_box(p.sample()));
}

/// hwmon-node: ACPI power meter and one amdgpu card.
#[divan::bench]
fn hwmon_node(b: Bencher) {
    let (_dir, _sim, mut p) = platform(Profile::HwmonNode, vec![Source::Hwmon]);
    assert_eq!(p.catalog().len(), 2);
    b.bench_local(|| divan::black_box(p.sample()));
}

/// nvidia-4gpu through NVML: four energy-counter calls into the (mock) NVML library, without its
/// simulated call latency. The mock reads its state from files, so this is an upper bound of
/// powerstack's side plus the mock's.
#[divan::bench]
fn nvidia_4gpu_nvml(b: Bencher) {
    let (_dir, _sim, mut p) = platform(Profile::Nvidia4gpu, vec![Source::Nvml]);
    assert_eq!(p.catalog().len(), 4);
    b.bench_local(|| divan::black_box(p.sample()));
}
