//! `GET /v1/openapi.json`: the API described as OpenAPI 3.1, generated from each handler's
//! `#[utoipa::path]` (route, parameters, answers) and the wire types' schemas in
//! `powerstack-api`. Tests check it against the router's route list, both ways, and every
//! request and answer of every route against it.

use utoipa::{Modify, OpenApi};

/// Over TCP, writes carry a bearer token; on the Unix socket the caller is identified by
/// SO_PEERCRED.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        powerstack_api::openapi::finish(
            doc,
            "Over TCP only. On the Unix socket the caller is identified by SO_PEERCRED.",
            env!("CARGO_PKG_VERSION"),
        );
        // The body of a job's begin may be left out (an empty body); when given, it is a
        // `JobBeginV1` object.
        if let Some(body) = doc
            .paths
            .paths
            .get_mut("/v1/jobs/{id}/begin")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
        {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "powerstack agent",
        description = "The node agent of powerstack: power and energy from its sample ring, job windows, power caps, Prometheus metrics. Reads are open; writes (POST) need root or an allowed user/group on the Unix socket, or a bearer token over TCP. See docs/api.md."
    ),
    paths(
        super::healthz,
        super::metrics::handler,
        super::openapi_handler,
        super::power::power,
        super::power::samples,
        super::jobs::list,
        super::jobs::get,
        super::jobs::begin,
        super::jobs::end,
        super::caps::show,
        super::caps::set,
        super::caps::reset,
    ),
    components(schemas(powerstack_api::agent::PowerFormatV1)),
    modifiers(&Bearer)
)]
struct AgentApi;

/// The OpenAPI 3.1 document of the agent's API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    AgentApi::openapi()
}
