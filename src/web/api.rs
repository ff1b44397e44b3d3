//! The JSON API's shared parts: each page's data is served under `/api` at the same path by
//! the page's own module, described by the OpenAPI document at `/api/openapi.json`. Errors
//! are `{"error": reason}` with the page's status.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::access::Viewer;
use super::error::WebError;

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(super) fn json<T: Serialize>(result: Result<T, WebError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(err) => error(err),
    }
}

pub fn error(err: WebError) -> Response {
    if matches!(
        err,
        WebError::Database(_) | WebError::Render(_) | WebError::Internal(_)
    ) {
        tracing::error!(error = %err, "api request failed");
    }
    (
        err.status(),
        Json(serde_json::json!({"error": err.shown()})),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub fn not_found(viewer: &Viewer, uri: &axum::http::Uri) -> Response {
    error(WebError::NotFound(format!(
        "no API endpoint at {}; /api/openapi.json lists them{}",
        uri.path(),
        viewer.not_found_hint()
    )))
}
