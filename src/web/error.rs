//! What can go wrong answering a page or API request, and the status each maps to.

use axum::http::StatusCode;

/// A request verdict can't answer; the message is shown to the visitor as is.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Unknown account, repository, PR, feature or record (or one the visitor may not see:
    /// private records are indistinguishable from missing ones).
    #[error("{0}")]
    NotFound(String),
    /// A malformed query parameter or path value.
    #[error("{0}")]
    BadRequest(String),
    /// A wrong operator token.
    #[error("{0}")]
    Unauthorized(String),
    /// Needs operator access the visitor does not have.
    #[error("{0}")]
    Forbidden(String),
    #[error("the database could not answer; try again shortly ({0})")]
    Database(#[from] sqlx::Error),
    #[error("the page could not be rendered: {0}")]
    Render(#[from] askama::Error),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            WebError::NotFound(_) => "Not found",
            WebError::BadRequest(_) => "Bad request",
            WebError::Unauthorized(_) => "Not signed in",
            WebError::Forbidden(_) => "Operators only",
            WebError::Database(_) => "Temporarily unavailable",
            WebError::Render(_) => "Internal error",
        }
    }
}

/// Without a page to render into (an extractor's rejection), errors answer as JSON.
impl axum::response::IntoResponse for WebError {
    fn into_response(self) -> axum::response::Response {
        super::api::error(self)
    }
}
