//! The one error type of the HTTP API, its JSON body, and the extractors that turn bad input into
//! it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::de::DeserializeOwned;

use crate::access::Denied;

/// An error answered to a client: a status and a one-line message, sent as
/// `{"error":{"status":404,"message":"no job 42 on this node"}}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, a bad field, a bad query parameter).
    #[error("{0}")]
    BadRequest(String),
    /// 401: a write over TCP without the right bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not write.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408: the request's body did not arrive in time (the connection is then closed).
    #[error("{0}")]
    RequestTimeout(String),
    /// 409: the request conflicts with the state (a job begun twice, ended twice).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the agent accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 422: well-formed, but the hardware or the node cannot do it (a cap out of range, locked,
    /// refused by the hardware).
    #[error("{0}")]
    Unprocessable(String),
    /// 422 from a cap reset that could not put every limit back, with what it did.
    #[error("{0}")]
    NotRestored(String, Box<powerstack_api::cap::CapResultV1>),
    /// 503: not available now (too few samples yet, capping not configured, a timeout).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a fault of the agent. The detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) | ApiError::NotRestored(..) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the client.
    pub fn message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal error in the agent; see its log".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Forbidden(m) => ApiError::Forbidden(m),
            Denied::Unauthorized(m) => ApiError::Unauthorized(m),
        }
    }
}

impl From<powerstack_cap::CapError> for ApiError {
    fn from(e: powerstack_cap::CapError) -> Self {
        powerstack_node::cap_session::SessionError::Cap(e).into()
    }
}

/// The cap session's one mapping of its errors to a status ([`SessionError::status`]).
///
/// [`SessionError::status`]: powerstack_node::cap_session::SessionError::status
impl From<powerstack_node::cap_session::SessionError> for ApiError {
    fn from(e: powerstack_node::cap_session::SessionError) -> Self {
        use powerstack_node::cap_session::SessionError;
        let message = e.to_string();
        match (e.status(), e) {
            (_, SessionError::NotRestored { doc, .. }) => ApiError::NotRestored(message, doc),
            (503, _) => ApiError::Unavailable(message),
            _ => ApiError::Unprocessable(message),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("a blocking task failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            eprintln!("powerstack-agent: {status}: {detail}");
        }
        let message = self.message();
        let result = match self {
            ApiError::NotRestored(_, doc) => Some(doc),
            _ => None,
        };
        let body = powerstack_api::agent::ErrorV1 {
            error: powerstack_api::agent::ErrorBodyV1 { status: status.as_u16(), message, result },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON body read with the API's error shape: any content type is accepted (so `curl -d`
/// works), a body over the limit is 413, an empty or malformed one is 400 (with serde's message,
/// which names the field). See [`OptionalJson`] for an optional body.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "the request body is larger than {} bytes",
            super::BODY_LIMIT
        ))
    } else {
        ApiError::BadRequest(format!("cannot read the request body: {}", rejection.body_text()))
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body of the API is an object: serde would also take a struct from an array of its
    // fields' values (`[null, null]`), which the schema does not allow.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "malformed JSON body: expected a JSON object ({...})".into(),
        ));
    }
    Json::<T>::from_bytes(bytes)
        .map(|Json(v)| v)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {}", e.body_text())))
}

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("the request needs a JSON body".into()));
        }
        parse(&bytes).map(AppJson)
    }
}

/// Like [`AppJson`], for an optional body: an empty body gives `None`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        parse(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// Query parameters read with the API's error shape (400 naming the parameter).
#[derive(Debug)]
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| AppQuery(v))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// Path parameters read with the API's error shape (400).
#[derive(Debug)]
pub struct AppPath<T>(pub T);

impl<S, T> FromRequestParts<S> for AppPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| AppPath(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}
