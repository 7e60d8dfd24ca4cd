//! The leases of BMC telemetry: which replica polls a node's BMC ([`crate::telemetry`]). One
//! statement takes or renews a lease: a node nobody holds, one this replica holds, or one whose
//! lease ran out; otherwise it changes nothing and the caller leaves the node alone.

use super::{Store, StoreError};
use crate::db::{on_db, to_db};

const HOLD: &str = "INSERT INTO bmc_telemetry_leases (node, owner, stream, lease_until_us) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (node) DO UPDATE SET owner = excluded.owner, stream = excluded.stream, \
     lease_until_us = excluded.lease_until_us \
     WHERE bmc_telemetry_leases.owner = excluded.owner OR bmc_telemetry_leases.lease_until_us < $5";

impl Store {
    /// Takes or renews `owner`'s lease on polling node `node`'s BMC until `until_us`, its
    /// samples going to `stream` (`None`: none yet); whether `owner` holds it now. A lease held
    /// by another owner is taken only once it ran out (before `now_us`).
    pub async fn hold_bmc_lease(
        &self,
        node: &str,
        owner: &str,
        stream: Option<&str>,
        now_us: u64,
        until_us: u64,
    ) -> Result<bool, StoreError> {
        let _turn = self.turn().await;
        let n = on_db!(&self.db, pool => {
            sqlx::query(HOLD)
                .bind(node)
                .bind(owner)
                .bind(stream)
                .bind(to_db(until_us))
                .bind(to_db(now_us))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Ends `owner`'s leases at once (another replica takes the nodes over at its next
    /// reading).
    pub async fn release_bmc_leases(&self, owner: &str) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE bmc_telemetry_leases SET lease_until_us = 0 WHERE owner = $1")
                .bind(owner)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Who holds the lease on node `node` and its stream, if anyone ever did.
    pub async fn bmc_lease(
        &self,
        node: &str,
    ) -> Result<Option<(String, Option<String>, u64)>, StoreError> {
        on_db!(&self.db, pool => {
            let row: Option<(String, Option<String>, i64)> = sqlx::query_as(
                "SELECT owner, stream, lease_until_us FROM bmc_telemetry_leases WHERE node = $1",
            )
            .bind(node)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|(o, s, u)| (o, s, crate::db::from_db(u))))
        })
    }
}
