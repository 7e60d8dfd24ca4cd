//! Agent benchmarks: a job query over a full 1,000,000-sample ring (goal: under 10 ms).
//!
//! Run: `cargo bench -p powerstack-agent --bench agent`. Bytes per stored sample are printed at
//! start (they are a property of the layout, not a timing). CPU use of a running agent at 1000 Hz,
//! beside the timer floor, is measured by `scripts/bench-agent-floor.sh`.

use divan::Bencher;
use powerstack_agent::DomainMeta;
use powerstack_agent::job::{JobWindow, job_result};
use powerstack_agent::ring::Ring;
use powerstack_model::{CounterSpec, DomainId, DomainInfo, DomainKind, Measurement};

const SAMPLES: usize = 1_000_000;

fn main() {
    let ring = Ring::new(16, 5);
    println!("bytes per stored sample with 5 domains (intel-2s): {}", ring.bytes_per_sample());
    divan::main();
}

fn domains() -> Vec<DomainMeta> {
    let d = |kind, index| DomainMeta {
        info: DomainInfo {
            id: DomainId::new(kind, index),
            provider: "bench",
            source: String::new(),
            measurement: Measurement::Energy(CounterSpec::non_wrapping(1e-6)),
            limits: vec![],
            socket: Some(index),
            label: None,
        },
        joules_per_tick: 1e-6,
    };
    vec![
        d(DomainKind::Package, 0),
        d(DomainKind::Memory, 0),
        d(DomainKind::Package, 1),
        d(DomainKind::Memory, 1),
        d(DomainKind::Platform, 0),
    ]
}

/// A full ring at 1000 Hz (1000 s), each domain drawing a steady 100 W.
fn full_ring() -> Ring {
    let mut ring = Ring::new(SAMPLES, 5);
    let mut row = [0u64; 5];
    for i in 0..SAMPLES as u64 {
        for (c, v) in row.iter_mut().enumerate() {
            *v = i * 100_000 + c as u64; // 100 W at 1 ms per sample, in µJ
        }
        ring.push(1_795_000_000_000_000 + i * 1000, &row);
    }
    ring
}

#[divan::bench]
fn job_query_over_a_full_million_sample_ring(b: Bencher) {
    let ring = full_ring();
    let domains = domains();
    // A job covering 90% of the buffer.
    let window = JobWindow {
        id: "bench".into(),
        user: None,
        app: None,
        begin_unix_us: 1_795_000_000_000_000 + 50_000_000,
        end_unix_us: Some(1_795_000_000_000_000 + 950_000_000),
    };
    b.bench_local(|| {
        divan::black_box(job_result(
            &ring,
            &domains,
            &window,
            1_795_000_001_000_000,
            "node01",
            1_000_000,
        ))
    });
}

#[divan::bench]
fn ring_push(b: Bencher) {
    let mut ring = Ring::new(100_000, 5);
    let row = [1u64, 2, 3, 4, 5];
    let mut t = 0u64;
    b.bench_local(|| {
        t += 1000;
        ring.push(t, &row);
    });
}

/// The eight GPUs of a simulated HGX H200 (nvidia-8gpu), whose mock NVML takes as long as a real
/// H200 to answer an energy read (2.85 ms, a tail to 15 ms): each GPU's provider apart, as the
/// sampler has them.
fn eight_gpus() -> (tempfile::TempDir, powerstack_sim::SimNode, Vec<powerstack_hw::Platform>) {
    use powerstack_hw::{Platform, Root, Selection, Source, discover};
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = powerstack_sim::SimOptions::default();
    let sim =
        powerstack_sim::SimNode::create(dir.path(), powerstack_sim::Profile::Nvidia8gpu, opts)
            .expect("sim root");
    let found = discover(&Root::new(dir.path()), &Selection::Only(vec![Source::Nvml]));
    let gpus: Vec<Platform> =
        found.platform.into_providers().into_iter().map(|p| Platform::new(vec![p]).0).collect();
    assert_eq!(gpus.len(), 8);
    (dir, sim, gpus)
}

/// A round of the eight GPUs' energy counters read one after another (what a single slow thread
/// would do): eight NVML calls in a row.
#[divan::bench(sample_count = 60)]
fn nvml_8gpu_round_one_after_another(b: Bencher) {
    let (_dir, _sim, mut gpus) = eight_gpus();
    b.bench_local(|| {
        for g in &mut gpus {
            divan::black_box(g.sample());
        }
    });
}

/// The same round with each GPU read on a thread of its own (what the sampler does; here the
/// threads are started for each round, which the sampler's long-lived ones are not).
#[divan::bench(sample_count = 60)]
fn nvml_8gpu_round_one_thread_per_gpu(b: Bencher) {
    let (_dir, _sim, mut gpus) = eight_gpus();
    b.bench_local(|| {
        std::thread::scope(|s| {
            for g in &mut gpus {
                s.spawn(move || divan::black_box(g.sample()));
            }
        });
    });
}
