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
    /// Not allowed for this visitor, or a form that did not come from verdict's own page.
    #[error("{0}")]
    Forbidden(String),
    /// Too many wrong operator tokens from one address.
    #[error("{0}")]
    TooManyAttempts(String),
    /// Something that existed and was erased on purpose (a redacted body).
    #[error("{0}")]
    Gone(String),
    /// A bug in verdict (a route outside the access check, say).
    #[error("verdict failed: {0}")]
    Internal(String),
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
            WebError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Gone(_) => StatusCode::GONE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the visitor is told: everything for their own mistakes, nothing of verdict's
    /// insides (PostgreSQL's error text, a template's) for its own. Logs get the detail.
    pub fn shown(&self) -> String {
        match self {
            WebError::Database(_) => "the database could not answer; try again shortly".into(),
            WebError::Render(_) | WebError::Internal(_) => {
                "verdict failed to answer this; the details are in its log".into()
            }
            other => other.to_string(),
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            WebError::NotFound(_) => "Not found",
            WebError::BadRequest(_) => "Bad request",
            WebError::Unauthorized(_) => "Not signed in",
            WebError::Forbidden(_) => "Not allowed",
            WebError::TooManyAttempts(_) => "Too many attempts",
            WebError::Gone(_) => "Redacted",
            WebError::Internal(_) => "Internal error",
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
