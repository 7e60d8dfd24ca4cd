//! `GET /v1/openapi.json`: the site's API as OpenAPI 3.1, generated from each handler's
//! `#[utoipa::path]` and the wire types' schemas in `powerstack-api`.

use axum::Json;
use utoipa::{Modify, OpenApi};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        powerstack_api::openapi::finish(
            doc,
            "A token of the site's tokens file; none needed when the site has no tokens file.",
            env!("CARGO_PKG_VERSION"),
        );
        job_links(doc);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "powerstack site",
        description = "The site service of powerstack: node telemetry pushed by agents, job records written by the scheduler's hooks, job reports and time series, the site's power, control tasks (power transitions and power limits on nodes through their BMCs), and the site power bound (its decisions and the admission answer). See docs/site.md."
    ),
    paths(
        super::health,
        super::metrics::handler,
        handler,
        super::nodes::list,
        super::nodes::site_power,
        super::nodes::site_power_history,
        super::bound::get,
        super::bound::put,
        super::bound::decisions,
        super::bound::admit,
        super::ingest::register,
        super::ingest::batch,
        super::jobs::begin,
        super::jobs::end,
        super::jobs::get,
        super::jobs::timeseries,
        super::jobs::list,
        super::tasks::create_transition,
        super::tasks::list_transitions,
        super::tasks::get_transition,
        super::tasks::abort_transition,
        super::tasks::create_power_cap,
        super::tasks::create_snapshot,
        super::tasks::list_power_caps,
        super::tasks::get_power_cap,
        super::tasks::abort_power_cap,
    ),
    modifiers(&Bearer)
)]
struct SiteApi;

/// The OpenAPI 3.1 document of the site's API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    SiteApi::openapi()
}

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "siteOpenapi",
    summary = "This document.",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = serde_json::Value)))]
pub(crate) async fn handler() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// Links from a job's beginning to what may be asked of it next (its end, report and time
/// series), by the id its answer carries: clients and property-based testers follow them.
/// Written as an extension of the response because utoipa 5.5 writes a link's `operationId` as
/// `operation_id`.
fn job_links(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::extensions::Extensions;
    let Some(begin) = doc.paths.paths.get_mut("/v1/jobs").and_then(|p| p.post.as_mut()) else {
        return;
    };
    let Some(RefOr::T(created)) = begin.responses.responses.get_mut("201") else { return };
    let links: serde_json::Map<String, serde_json::Value> =
        [("end", "endSiteJob"), ("report", "siteJobReport"), ("timeseries", "siteJobTimeseries")]
            .into_iter()
            .map(|(name, operation)| {
                let link = serde_json::json!({
                    "operationId": operation,
                    "parameters": { "id": "$response.body#/id" },
                    "description": format!("The job begun ({operation})."),
                });
                (name.to_string(), link)
            })
            .collect();
    created
        .extensions
        .get_or_insert_with(Extensions::default)
        .insert("links".into(), serde_json::Value::Object(links));
}
