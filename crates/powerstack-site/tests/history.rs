//! The site's power over the past minutes (`GET /v1/site/power/history`), from the rollups of
//! every stream, on both databases.

mod common;

use common::{TestDb, node_watts, registration, sample};
use powerstack_api::site::BatchV1;
use powerstack_site::history::site_power_history;
use powerstack_site::store::IngestLimits;

const S: u64 = 1_000_000;
const MINUTE: u64 = 60 * S;
const T0: u64 = 1_780_000_000 * S;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_minute_is_the_sum_of_the_nodes_mean_power_and_a_silent_node_is_left_out() {
    for db in TestDb::both().await {
        let store = db.store().await;
        let kind = db.kind;
        // n01 and n02 for 12 minutes at 1 Hz; n03 only for its first 4 minutes.
        for (node, stream, seconds) in [
            ("n01", "00000000000000f1", 720),
            ("n02", "00000000000000f2", 720),
            ("n03", "00000000000000f3", 240),
        ] {
            store.register(node, stream, &registration(T0), T0).await.unwrap();
            let samples: Vec<Vec<u64>> = (0..=seconds).map(|k| sample(T0, T0 + k * S)).collect();
            for (n, chunk) in samples.chunks(600).enumerate() {
                let b = BatchV1 { seq: n as u64 + 1, samples: chunk.to_vec() };
                store
                    .ingest(node, stream, &b, T0 + 3600 * S, &IngestLimits::default())
                    .await
                    .unwrap();
            }
        }
        for _ in 0..10 {
            store.roll_up(T0 + 3600 * S).await.unwrap();
        }
        let now = T0 + 13 * MINUTE;
        let h = site_power_history(&store, 20, now).await.unwrap();
        assert_eq!(h.since_unix_us, now - 20 * MINUTE);
        assert!(h.points.len() >= 10, "{kind}: {h:?}");
        let mut seen_three = false;
        for p in &h.points {
            assert_eq!(p.unix_us % MINUTE, 0, "{kind}: on the minute grid: {p:?}");
            let want = node_watts() * p.nodes as f64;
            assert!((p.power_watts - want).abs() < 1e-6 * want, "{kind}: {p:?}, want {want}");
            // n03's minutes have three nodes (its last sample, at 4 minutes, lies in a minute
            // that ends within the next); after it went silent, two.
            if p.unix_us <= T0 + 5 * MINUTE {
                seen_three |= p.nodes == 3;
            } else {
                assert_eq!(p.nodes, 2, "{kind}: {p:?}");
            }
        }
        assert!(seen_three, "{kind}: {h:?}");
        assert!(h.points.windows(2).all(|w| w[0].unix_us < w[1].unix_us));
        // Fewer minutes asked: only those.
        let short = site_power_history(&store, 3, now).await.unwrap();
        assert!(short.points.iter().all(|p| p.unix_us >= now - 3 * MINUTE), "{kind}: {short:?}");
        store.db().close().await;
        db.drop_database().await;
    }
}
