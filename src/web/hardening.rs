//! What a request from the open internet may put into verdict's answers, and what a browser
//! showing them may do: names in paths are checked against GitHub's rules before any handler
//! sees them, and every answer carries headers that forbid script, framing and sniffing.

use std::collections::HashMap;

use axum::extract::{RawPathParams, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::access::Viewer;
use super::error::WebError;
use crate::github::names;

/// The stylesheet, the one thing the pages load besides themselves.
pub const STYLESHEET: &str = include_str!("../../templates/verdict.css");

/// Pages need no script at all and load nothing from elsewhere: images in comments are links
/// (markdown.rs), so a tracking pixel never loads.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// Adds the browser-hardening headers to every answer.
pub async fn browser_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /assets/verdict.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Refuses, with a 400 that says why, a request whose path names something GitHub could not
/// have named: an owner, repository, account or feature key breaking GitHub's rules, or any
/// path or query value holding a control character. Nothing malformed reaches a link, a file
/// name, a header or the database.
pub async fn check_names(params: RawPathParams, request: Request, next: Next) -> Response {
    let problem = params
        .iter()
        .find_map(|(name, value)| path_problem(name, value))
        .or_else(|| query_problem(request.uri().query()));
    match problem {
        None => next.run(request).await,
        Some(reason) => {
            let viewer = request
                .extensions()
                .get::<Viewer>()
                .cloned()
                .unwrap_or_else(|| Viewer::anonymous(false));
            super::respond_error(request.uri(), &viewer, WebError::BadRequest(reason))
        }
    }
}

/// What is wrong with path parameter `name` = `value`, if anything.
fn path_problem(name: &str, value: &str) -> Option<String> {
    if value.chars().any(char::is_control) {
        return Some(format!(
            "the {name} in this address holds a control character; no GitHub name does"
        ));
    }
    let ok = match name {
        "owner" => names::is_login(value),
        "repo" => names::is_repo_name(value),
        "account" => names::is_login(value) || value == crate::intake::account::FALLBACK_LOG,
        "feature" => is_feature_key(value),
        _ => true,
    };
    (!ok).then(|| match name {
        "owner" => {
            format!("{value:?} is not a GitHub account: logins are letters, digits and hyphens")
        }
        "repo" => format!(
            "{value:?} is not a repository name: GitHub's are letters, digits, '.', '-' and '_'"
        ),
        "account" => format!("{value:?} is not a log: logs are named by GitHub account logins"),
        _ => {
            format!("{value:?} is not a feature key: use issue-N, a label's slug, milestone-SLUG or a tracker key such as ABC-123")
        }
    })
}

/// Feature keys as verdict makes them: `issue-N`, a label's slug, `milestone-<slug>`.
/// Feature keys: slugs (`issue-41`, `checkout`, `milestone-v2-0`) and tracker keys
/// (`PAY-12`, `web_ui.7`): ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
fn is_feature_key(s: &str) -> bool {
    (1..=200).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A query value with a control character (a NUL would otherwise reach PostgreSQL).
fn query_problem(query: Option<&str>) -> Option<String> {
    let pairs: HashMap<String, String> = form_urlencoded::parse(query?.as_bytes())
        .filter(|(_, v)| v.chars().any(char::is_control))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let name = pairs.keys().next()?;
    Some(format!(
        "the query parameter {name:?} holds a control character; remove it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_paths_follow_githubs_rules() {
        assert_eq!(path_problem("owner", "acme"), None);
        assert_eq!(path_problem("repo", "Hello-World.js"), None);
        assert_eq!(path_problem("account", "_unattributed"), None);
        assert_eq!(path_problem("feature", "issue-41"), None);
        assert_eq!(path_problem("number", "42"), None);
        for (name, bad) in [
            ("owner", "//evil.example"),
            ("owner", "a\r\nSet-Cookie: x=1"),
            ("repo", ".."),
            ("repo", "web\"; filename=evil.exe"),
            ("account", "acme\0"),
            ("feature", "<script>"),
            ("number", "4\u{0}2"),
        ] {
            assert!(path_problem(name, bad).is_some(), "{name}={bad:?}");
        }
        assert!(query_problem(Some("q=a%00b")).is_some());
        assert!(query_problem(Some("q=tests&page=2")).is_none());
    }
}
