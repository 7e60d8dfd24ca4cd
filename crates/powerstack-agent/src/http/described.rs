//! Answers and parameters several routes share, as the OpenAPI document describes them (each
//! route's own are in its `#[utoipa::path]`).

use powerstack_api::agent::ErrorV1;
use utoipa::{IntoParams, IntoResponses};

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
