//! What Variorum's documents need from an opened node besides its catalog, found once for
//! `powerstack domains --format variorum` and the Variorum-compatible library
//! (`powerstack-variorum`).

use std::time::Duration;

use crate::open::OpenNode;

impl OpenNode {
    /// Variorum's domain information document (`variorum_get_node_power_domain_info_json`) of the
    /// catalog as it is now (refresh the limits first, as [`OpenNode::domains`] does, for the
    /// limits in force). One short reading tells whether the node's power is measurable (a direct
    /// source or a sum of components): only Variorum's document says so.
    pub fn variorum_domain_info(&mut self, timestamp_us: i64) -> serde_json::Value {
        let platform = &mut self.discovery.platform;
        let node_measurable = platform.measure(Duration::from_millis(10)).node.is_some();
        powerstack_api::variorum::domain_info(
            &self.origin.hostname,
            platform.catalog(),
            timestamp_us,
            node_measurable,
        )
    }
}
