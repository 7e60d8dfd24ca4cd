//! The site pusher's settings, checked at start with the agent's other settings.

use std::time::Duration;

use powerstack_api::site::is_node_name;
use powerstack_api::v1::Origin;
use powerstack_hw::Discovery;

use super::AgentError;
use crate::config::AgentConfig;
use crate::push::{CALL_TIMEOUT, PushSettings};

/// What the pusher needs when `config` names a site (`None` when it does not): the node's name
/// there (`node_name`, else `hostname`, which must then be a node name), its token (checked like
/// the agent's own token file), the site CA file (read and checked), the topology document of
/// the discovered node, and the URL the site caps the node at (`advertise_url`).
pub fn settings(
    config: &AgentConfig,
    origin: &Origin,
    discovery: &Discovery,
) -> Result<Option<PushSettings>, AgentError> {
    let Some(site) = config.site() else { return Ok(None) };
    let node = config.node_name.clone().unwrap_or_else(|| origin.hostname.clone());
    if !is_node_name(&node) {
        return Err(AgentError(format!(
            "hostname {node:?} is not a node name for the site: set node_name (--node-name) to 1 to 64 of A-Z a-z 0-9 . _ -"
        )));
    }
    let token = match &config.site_token_file {
        Some(p) => Some(
            crate::access::load_token(p)
                .map_err(|e| AgentError(format!("site_token_file: {e}")))?,
        ),
        None => None,
    };
    // The CA file is read now: a bad one stops the agent at start, not its first push.
    if let Some(ca) = &config.site_ca_file {
        powerstack_client::site::Site::new(site, None, CALL_TIMEOUT)
            .and_then(|s| s.with_ca_file(Some(ca)))
            .map_err(|e| AgentError(format!("site_ca_file: {e}")))?;
    }
    let topology =
        serde_json::to_value(powerstack_node::topology::document(origin, discovery)).ok();
    Ok(Some(PushSettings {
        site: site.to_string(),
        node,
        token,
        site_ca_file: config.site_ca_file.clone(),
        interval: Duration::from_millis(config.push_interval_ms),
        spool_dir: config.state_dir.join("spool"),
        spool_max_bytes: config.spool_max_bytes,
        spool_max_age: Duration::from_secs(config.spool_max_age_s),
        topology,
        control_url: config.advertise_url.clone(),
        call_timeout: CALL_TIMEOUT,
    }))
}
