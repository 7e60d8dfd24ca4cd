//! Jobs sharing a node, on both databases: each gets its part of the node's energy (equally,
//! by CPUs, a GPU to the job holding it), the parts add up to the node's, a job alone on its node
//! keeps the whole node, and a shared node settles only once every job on it has ended.

mod common;

use common::{TestDb, WATTS, batch, node_watts, registration};
use powerstack_api::site::{JobAllocationV1, SiteJobBeginV1, SiteJobReportV1};
use powerstack_site::report::{ReportSettings, job_report};
use powerstack_site::store::{IngestLimits, Store};

const S: u64 = 1_000_000;
const T0: u64 = 1_780_000_000 * S;
/// Where the samples end: every node has one a second from T0 to here.
const LAST: u64 = T0 + 200 * S;

fn job(id: &str, node: &str, alloc: Option<(u32, &[u32])>) -> SiteJobBeginV1 {
    SiteJobBeginV1 {
        id: id.into(),
        nodes: vec![node.into()],
        allocations: alloc
            .map(|(cpus, gpus)| JobAllocationV1 {
                node: node.into(),
                cpus: Some(cpus),
                gpus: gpus.to_vec(),
            })
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// Job `id` on `node` from `begin` to `end` s after T0.
async fn run(store: &Store, j: SiteJobBeginV1, begin: u64, end: u64) {
    let id = j.id.clone();
    store.begin_job(&j, T0 + begin * S).await.unwrap();
    store.end_job(&id, T0 + end * S).await.unwrap();
}

async fn report(store: &Store, id: &str) -> SiteJobReportV1 {
    job_report(store, id, LAST + 100 * S, &ReportSettings::default()).await.unwrap()
}

fn energy(r: &SiteJobReportV1) -> f64 {
    r.report.nodes[0].result.energy_joules
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_nodes_energy_is_split_between_its_jobs_and_conserved_on_both_databases() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        for (k, node) in ["n01", "n02", "n03"].iter().enumerate() {
            let stream = format!("00000000000000c{k}");
            store.register(node, &stream, &registration(T0), T0).await.unwrap();
            let b = batch(1, T0, (0..=200).map(|s| T0 + s * S));
            store.ingest(node, &stream, &b, LAST + S, &IngestLimits::default()).await.unwrap();
        }
        let node = node_watts();
        let gpu = WATTS[4];
        // n01: j1 from 10 s to 70 s, j2 from 40 s to 100 s, nothing said: an equal split of the
        // 30 s they share.
        run(&store, job("j1", "n01", None), 10, 70).await;
        run(&store, job("j2", "n01", None), 40, 100).await;
        let (r1, r2) = (report(&store, "j1").await, report(&store, "j2").await);
        assert!(close(energy(&r1), node * 45.0), "{kind}: {}", energy(&r1));
        assert!(close(energy(&r2), node * 45.0), "{kind}: {}", energy(&r2));
        // Conserved: together, the node's energy from 10 s to 100 s.
        assert!(close(energy(&r1) + energy(&r2), node * 90.0), "{kind}");
        assert!(close(r1.report.nodes[0].result.node_power, node * 45.0 / 60.0), "{kind}");
        assert_eq!(r1.report.nodes[0].status, "ok (shared)", "{kind}");
        assert_eq!(r1.shared.len(), 1);
        assert_eq!(
            (r1.shared[0].node.as_str(), r1.shared[0].jobs.clone()),
            ("n01", vec!["j2".to_string()])
        );
        // n02: 16 CPUs and no GPU against 48 CPUs and GPU 0.
        run(&store, job("j3", "n02", Some((16, &[]))), 10, 70).await;
        run(&store, job("j4", "n02", Some((48, &[0]))), 40, 100).await;
        let (r3, r4) = (report(&store, "j3").await, report(&store, "j4").await);
        let rest = node - gpu;
        assert!(close(energy(&r3), node * 30.0 + rest * 0.25 * 30.0), "{kind}: {}", energy(&r3));
        assert!(close(energy(&r4), node * 30.0 + (rest * 0.75 + gpu) * 30.0), "{kind}");
        assert!(close(energy(&r3) + energy(&r4), node * 90.0), "{kind}");
        let gpu3 = r3.report.nodes[0].result.domain_power["gpu_power_0"];
        assert!(close(gpu3, gpu * 30.0 / 60.0), "{kind}: {gpu3}");
        let cpu3 = r3.report.nodes[0].result.domain_power["cpu_power_0"];
        assert!(close(cpu3, (WATTS[0] * 30.0 + WATTS[0] * 0.25 * 30.0) / 60.0), "{kind}: {cpu3}");
        // n03: a job alone keeps the whole node.
        run(&store, job("j5", "n03", Some((8, &[]))), 10, 70).await;
        let r5 = report(&store, "j5").await;
        assert!(close(energy(&r5), node * 60.0), "{kind}");
        assert_eq!(r5.report.nodes[0].status, "ok", "{kind}");
        assert!(r5.shared.is_empty() && r5.job.settled, "{kind}");
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_node_settles_once_every_job_on_it_has_ended_on_both_databases() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let stream = "00000000000000d1";
        store.register("n01", stream, &registration(T0), T0).await.unwrap();
        let b = batch(1, T0, (0..=200).map(|s| T0 + s * S));
        store.ingest("n01", stream, &b, LAST + S, &IngestLimits::default()).await.unwrap();
        run(&store, job("a", "n01", None), 10, 70).await;
        store.begin_job(&job("b", "n01", None), T0 + 40 * S).await.unwrap();
        // The samples reach past a's end, but b still runs.
        let early = report(&store, "a").await;
        assert!(!early.job.settled, "{kind}");
        assert!(close(energy(&early), node_watts() * 45.0), "{kind}: {}", energy(&early));
        store.end_job("b", T0 + 100 * S).await.unwrap();
        let late = report(&store, "a").await;
        assert!(late.job.settled, "{kind}");
        assert!(close(energy(&late), node_watts() * 45.0), "{kind}");
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_must_name_the_jobs_own_nodes_once() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let mut j = job("x", "n01", Some((4, &[0])));
    j.allocations[0].node = "n02".into();
    assert_eq!(store.begin_job(&j, T0).await.unwrap_err().status(), 422);
    let mut j = job("x", "n01", Some((4, &[0])));
    j.allocations.push(j.allocations[0].clone());
    assert_eq!(store.begin_job(&j, T0).await.unwrap_err().status(), 422);
    let j = job("x", "n01", Some((0, &[0])));
    assert_eq!(store.begin_job(&j, T0).await.unwrap_err().status(), 422);
    let j = job("x", "n01", Some((4, &[1, 1])));
    assert_eq!(store.begin_job(&j, T0).await.unwrap_err().status(), 422);
    let began = store.begin_job(&job("x", "n01", Some((4, &[1]))), T0).await.unwrap();
    let nodes = store.job_nodes(&began.id).await.unwrap();
    assert_eq!(
        nodes[0].allocation.as_ref().map(|a| (a.cpus, a.gpus.clone())),
        Some((Some(4), vec![1]))
    );
}
