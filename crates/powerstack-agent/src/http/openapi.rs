//! `GET /v1/openapi.json`: the API described as OpenAPI 3.1, generated from each handler's
//! `#[utoipa::path]` (route, parameters, answers) and the wire types' schemas in
//! `powerstack-api`. Tests check it against the router's route list, both ways, and every
//! request and answer of every route against it.

use powerstack_api::agent::ErrorV1;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};

/// The answers every write may get besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only a description of answers: ApiError builds them.
pub(crate) enum WriteErrors {
    /// Over TCP: no bearer token, or a wrong one.
    #[response(status = 401)]
    Unauthorized(ErrorV1),
    /// The caller may not write (Unix socket: not root nor allowed; TCP: writes disabled).
    #[response(status = 403)]
    Forbidden(ErrorV1),
}

/// A request the agent could not read.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only a description of an answer: ApiError builds it.
pub(crate) enum BadRequest {
    /// Malformed request: the message names the field.
    #[response(status = 400)]
    BadRequest(ErrorV1),
}

/// A job mark that could not be kept.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only a description of an answer: ApiError builds it.
pub(crate) enum JobsNotSaved {
    /// The job windows could not be saved in the state directory; nothing was changed.
    #[response(status = 503)]
    Unavailable(ErrorV1),
}

/// The `{id}` of a job's routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only a description of the path: `AppPath<String>` reads it.
pub(crate) struct JobId {
    /// The job's id: 1 to 128 characters of A-Z a-z 0-9 . _ : -
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    id: String,
}

/// Over TCP, writes carry a bearer token; on the Unix socket the caller is identified by
/// SO_PEERCRED.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "Over TCP only. On the Unix socket the caller is identified by SO_PEERCRED.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.tags = None;
            }
        }
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
