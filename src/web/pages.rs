//! What every server-rendered page (askama) shares: rendering with the error page on failure,
//! the not-found page, the JSON twin's address and the decision filter's choices. Pages are
//! readable without JavaScript, printable, one address per thing so reviewers can paste links
//! into PRs; each page's handler and read side live in its own module (`repository.rs`,
//! `pull.rs`, `feature.rs`, `findings.rs`, `records.rs`, ...), and every handler takes the
//! [`Viewer`] the access middleware resolved.

use askama::Template;
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};

use super::access::Viewer;
use super::error::WebError;

/// The decision filter's choices, in words.
pub(super) fn kind_choices() -> &'static [super::filters::KindGroup] {
    super::filters::GROUPS
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorHtml {
    viewer: Viewer,
    api_url: String,
    title: &'static str,
    message: String,
}

/// Renders a template, or the error page when something failed on the way.
pub(super) fn respond<T: Template>(viewer: &Viewer, result: Result<T, WebError>) -> Response {
    match result.and_then(|t| t.render().map_err(WebError::from)) {
        Ok(html) => Html(html).into_response(),
        Err(err) => error_page(viewer, err),
    }
}

/// The HTML page for an error: its status, a title and the one-line reason.
pub fn error_page(viewer: &Viewer, err: WebError) -> Response {
    if matches!(
        err,
        WebError::Database(_) | WebError::Render(_) | WebError::Internal(_)
    ) {
        tracing::error!(error = %err, "page failed");
    }
    let page = ErrorHtml {
        viewer: viewer.clone(),
        api_url: String::new(),
        title: err.title(),
        message: err.shown(),
    };
    let body = page
        .render()
        .unwrap_or_else(|_| format!("{}: {}", err.title(), err.shown()));
    (err.status(), Html(body)).into_response()
}

pub(super) fn api_url(uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("/api{}?{q}", uri.path()),
        None => format!("/api{}", uri.path()),
    }
}

pub fn not_found(viewer: &Viewer, uri: &Uri) -> Response {
    error_page(
        viewer,
        WebError::NotFound(format!(
            "there is no page at {}; addresses look like /OWNER, /OWNER/REPO, /OWNER/REPO/pull/N, /OWNER/REPO/features/KEY or /records/ACCOUNT/N{}",
            uri.path(),
            viewer.not_found_hint()
        )),
    )
}
