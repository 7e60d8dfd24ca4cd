//! What the site's power bound reads: where each node's agent takes caps (its control URL) and
//! what each running job asks for (power, priority), on both databases and over HTTP.

mod common;

use std::time::Duration;

use common::{TestDb, registration};
use powerstack_api::site::{SiteJobBeginV1, SiteJobsQueryV1};
use powerstack_client::site::Site;
use powerstack_site::store::{BoundJobRow, NodeControlRow, StoreError};
use powerstack_site::{Running, SiteConfig};

const S: u64 = 1_000_000;
const T0: u64 = 1_780_000_000 * S;

fn job(
    id: &str,
    nodes: &[&str],
    power_watts: Option<f64>,
    priority: Option<i32>,
) -> SiteJobBeginV1 {
    SiteJobBeginV1 {
        id: id.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        power_watts,
        priority,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_control_url_is_its_agents_newest_registration_on_both_databases() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        let with = |url: Option<&str>| {
            let mut r = registration(T0);
            r.control_url = url.map(str::to_string);
            r
        };
        store
            .register("n01", "00000000000000a1", &with(Some("http://n01:9464")), T0)
            .await
            .unwrap();
        store.register("n02", "00000000000000b1", &with(None), T0).await.unwrap();
        store
            .register("n03", "00000000000000c1", &with(Some("https://n03:9464")), T0 + S)
            .await
            .unwrap();
        let rows = store.node_controls().await.unwrap();
        let row = |node: &str, url: &str, t: u64| NodeControlRow {
            node: node.into(),
            url: url.into(),
            updated_unix_us: i64::try_from(t).unwrap(),
        };
        assert_eq!(
            rows,
            [row("n01", "http://n01:9464", T0), row("n03", "https://n03:9464", T0 + S)],
            "{kind}"
        );
        // A new run with another address replaces it; one with none forgets it.
        store
            .register("n01", "00000000000000a2", &with(Some("http://10.0.0.1:9464")), T0 + 2 * S)
            .await
            .unwrap();
        store.register("n03", "00000000000000c2", &with(None), T0 + 2 * S).await.unwrap();
        let rows = store.node_controls().await.unwrap();
        assert_eq!(rows, [row("n01", "http://10.0.0.1:9464", T0 + 2 * S)], "{kind}");
        // An older run registered late (its spool sent after the newer run's) changes nothing.
        let mut old = with(None);
        old.started_unix_us = T0 - S;
        store.register("n01", "00000000000000a0", &old, T0 + 3 * S).await.unwrap();
        assert_eq!(store.node_controls().await.unwrap(), rows, "{kind}");
        // The listing shows it.
        let nodes = store.nodes(T0 + 3 * S).await.unwrap();
        let urls: Vec<(String, Option<String>)> =
            nodes.into_iter().map(|(n, _)| (n.name, n.control_url)).collect();
        assert_eq!(
            urls,
            [
                ("n01".into(), Some("http://10.0.0.1:9464".into())),
                ("n02".into(), None),
                ("n03".into(), None)
            ],
            "{kind}"
        );
        // A URL that is none is refused, and nothing changes.
        let e = store
            .register("n01", "00000000000000a3", &with(Some("n01:9464")), T0)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("http:// or https://")),
            "{kind}: {e}"
        );
        assert_eq!(store.node_controls().await.unwrap().len(), 1, "{kind}");
        store.db().close().await;
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_jobs_give_the_bound_their_priority_request_and_nodes_on_both_databases() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        store.begin_job(&job("a", &["n02", "n01"], Some(4000.0), Some(10)), T0).await.unwrap();
        store.begin_job(&job("b", &["n03"], None, None), T0 + S).await.unwrap();
        store.begin_job(&job("c", &["n04"], Some(250.5), Some(-3)), T0 + 2 * S).await.unwrap();
        store.end_job("c", T0 + 3 * S).await.unwrap();
        let running = store.running_jobs_for_bound().await.unwrap();
        let row = |id: &str, priority, power_watts, nodes: &[&str]| BoundJobRow {
            id: id.into(),
            priority,
            power_watts,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        };
        assert_eq!(
            running,
            [row("a", 10, Some(4000.0), &["n02", "n01"]), row("b", 0, None, &["n03"])],
            "{kind}"
        );
        // The records keep what was asked, ended or not.
        let c = store.job("c").await.unwrap();
        assert_eq!((c.power_watts, c.priority), (Some(250.5), Some(-3)), "{kind}");
        let b = store.job("b").await.unwrap();
        assert_eq!((b.power_watts, b.priority), (None, None), "{kind}");
        // A power that is none is refused.
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = store.begin_job(&job("d", &["n05"], Some(w), None), T0).await.unwrap_err();
            assert!(
                matches!(&e, StoreError::Invalid(m) if m.contains("power_watts")),
                "{kind}: {e}"
            );
        }
        store.db().close().await;
        db.drop_database().await;
    }
}

fn start(db: &TestDb) -> Running {
    let config = SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        ..SiteConfig::default()
    };
    powerstack_site::start(&config).unwrap()
}

#[test]
fn over_http_a_bad_control_url_or_power_is_a_400_and_good_ones_are_shown() {
    let db = TestDb::sqlite();
    let r = start(&db);
    let site =
        Site::new(&format!("http://{}", r.ready().addr), None, Duration::from_secs(10)).unwrap();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
            as u64;
    let mut reg = registration(now - 60 * S);
    for bad in ["n01:9464", "ftp://n01", "http://", "http://n 01"] {
        reg.control_url = Some(bad.into());
        let e = site.register("n01", "00000000000000a1", &reg).unwrap_err();
        assert_eq!(e.status(), Some(400), "{bad}: {e}");
        assert!(e.to_string().contains("control_url"), "{bad}: {e}");
    }
    reg.control_url = Some("http://n01:9464".into());
    site.register("n01", "00000000000000a1", &reg).unwrap();
    let nodes = site.nodes().unwrap();
    assert_eq!(nodes.nodes[0].control_url.as_deref(), Some("http://n01:9464"));
    for w in [0.0, -5.0] {
        let e = site.begin_job(&job("j1", &["n01"], Some(w), None)).unwrap_err();
        assert_eq!(e.status(), Some(400), "{w}: {e}");
        assert!(e.to_string().contains("power_watts"), "{e}");
    }
    let begun = site.begin_job(&job("j1", &["n01"], Some(4000.0), Some(5))).unwrap();
    assert_eq!((begun.power_watts, begun.priority), (Some(4000.0), Some(5)));
    let listed = site.jobs(&SiteJobsQueryV1::default()).unwrap();
    assert_eq!((listed.jobs[0].power_watts, listed.jobs[0].priority), (Some(4000.0), Some(5)));
    let report = site.job_report("j1").unwrap();
    assert_eq!((report.job.power_watts, report.job.priority), (Some(4000.0), Some(5)));
    r.stop().unwrap();
}
