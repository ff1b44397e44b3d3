//! The JSON API: each page's data under `/api` at the same path, described by the OpenAPI
//! document at `/api/openapi.json`. Errors are `{"error": reason}` with the page's status.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::access::Viewer;
use super::error::WebError;
use super::filters::Filters;
use super::views;
use super::{WebState, parse_number, repo_name};

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

pub async fn index(State(s): State<WebState>, viewer: Viewer) -> Response {
    json(async { views::index(&s.pool, &viewer).await }.await)
}

pub async fn repository(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    json(
        async {
            let filters = Filters::parse(&params)?;
            views::repository(&s.pool, &repo_name(&owner, &name), &filters, &viewer).await
        }
        .await,
    )
}

pub async fn pull(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name, number)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    json(
        async {
            let number = parse_number(&number)?;
            let filters = Filters::parse(&params)?;
            views::pull(
                &s.pool,
                &repo_name(&owner, &name),
                number,
                &filters,
                &viewer,
            )
            .await
        }
        .await,
    )
}

pub async fn feature(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name, key)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    json(
        async {
            let filters = Filters::parse(&params)?;
            let mut page =
                views::feature(&s.pool, &repo_name(&owner, &name), &key, &filters, &viewer).await?;
            page.link_tracker(&s.features);
            Ok(page)
        }
        .await,
    )
}

/// The feature across the account's repositories.
pub async fn account_feature(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, key)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    json(
        async {
            let filters = Filters::parse(&params)?;
            let mut page = views::account_feature(&s.pool, &owner, &key, &filters, &viewer).await?;
            page.link_tracker(&s.features);
            Ok(page)
        }
        .await,
    )
}

pub fn not_found(viewer: &Viewer, uri: &axum::http::Uri) -> Response {
    error(WebError::NotFound(format!(
        "no API endpoint at {}; /api/openapi.json lists them{}",
        uri.path(),
        viewer.not_found_hint()
    )))
}

pub async fn findings(
    State(s): State<WebState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    json(
        async {
            let filters = views::FindingFilters::parse(&params)?;
            views::findings(&s.pool, &filters, &viewer).await
        }
        .await,
    )
}

pub async fn outbox(
    State(s): State<WebState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let state = params.get("state").filter(|s| !s.is_empty()).cloned();
    json(async { super::outbox::outbox(&s.pool, state, &viewer).await }.await)
}

/// `POST /api/findings/{account}/{seq}/acknowledgements` with `{"by": ..., "note": ...}`.
pub async fn acknowledge(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((account, seq)): Path<(String, String)>,
    body: Result<Json<super::acks::AckRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let result = async {
        let Json(request) = body.map_err(|e| {
            WebError::BadRequest(format!(
                "send JSON like {{\"by\": \"your name\", \"note\": \"why\"}} ({e})"
            ))
        })?;
        super::acks::acknowledge(&s, &viewer, &account, &seq, request).await
    }
    .await;
    match result {
        Ok(receipt) => (axum::http::StatusCode::CREATED, Json(receipt)).into_response(),
        Err(err) => error(err),
    }
}

pub async fn report(
    State(s): State<WebState>,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    json(async { super::report::report(&s.pool, &repo_name(&owner, &name), &viewer).await }.await)
}
