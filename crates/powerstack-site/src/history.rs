//! The site's power over the past minutes, from every stream's per-minute rollups (one query for
//! all of them): each node's mean power between its newest samples of two consecutive minutes,
//! summed per minute.

use std::collections::BTreeMap;

use powerstack_api::site_history::{SitePowerHistoryV1, SitePowerPointV1};

use crate::store::{MINUTE_US, Store, StoreError, node_watts, parts_of};

/// The site's power in each minute of `[now_us - minutes, now_us]` that the rollups cover.
pub async fn site_power_history(
    store: &Store,
    minutes: u32,
    now_us: u64,
) -> Result<SitePowerHistoryV1, StoreError> {
    let since = now_us.saturating_sub(u64::from(minutes) * MINUTE_US);
    // The minute before the first one too: its newest sample starts the first difference.
    let from = since - since % MINUTE_US;
    let streams = store.streams_between(from.saturating_sub(MINUTE_US), now_us).await?;
    let rollups = store.minutes_between(from.saturating_sub(MINUTE_US), now_us).await?;
    // Per minute (its end): the power summed over the streams, and the nodes counted.
    let mut sums: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    for s in &streams {
        let Some(rows) = rollups.get(&s.id) else { continue };
        let parts = parts_of(&s.domains);
        for pair in rows.windows(2) {
            let ((t0, c0), (t1, c1)) = (&pair[0], &pair[1]);
            let minute_end = t1 - t1 % MINUTE_US + MINUTE_US;
            // Consecutive minutes only: a gap leaves its minutes out rather than smeared.
            if *t1 < since || t1 - t0 > 2 * MINUTE_US {
                continue;
            }
            if let Some(w) = node_watts(&parts, c0, c1, t1 - t0) {
                let e = sums.entry(minute_end).or_insert((0.0, 0));
                e.0 += w;
                e.1 += 1;
            }
        }
    }
    Ok(SitePowerHistoryV1 {
        schema: "powerstack.site-power-history.v1".into(),
        since_unix_us: since,
        points: sums
            .into_iter()
            .map(|(unix_us, (power_watts, nodes))| SitePowerPointV1 { unix_us, power_watts, nodes })
            .collect(),
    })
}
