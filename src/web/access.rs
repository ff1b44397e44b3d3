//! Who is looking. Until sign-in with GitHub exists there are two kinds of visitor: anonymous
//! ones, who see public repositories only, and the operator, who proves knowledge of
//! `VERDICT_ADMIN_TOKEN` with a bearer token or a cookie set once through a form.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::WebError;

/// Name of the cookie the sign-in form sets.
pub const COOKIE_NAME: &str = "verdict_operator";

/// The operator token, kept only as digests so comparisons take the same time whatever the
/// guess.
#[derive(Clone)]
pub struct OperatorToken {
    token_digest: [u8; 32],
    cookie_value: Arc<str>,
}

impl OperatorToken {
    /// `None` when no token is configured: then nobody is operator and private records stay
    /// hidden from everyone.
    pub fn new(token: Option<&str>) -> Option<OperatorToken> {
        let token = token.map(str::trim).filter(|t| !t.is_empty())?;
        // The cookie carries a value derived from the token, never the token itself.
        let cookie = Sha256::new()
            .chain_update(b"verdict/operator-cookie/v1\0")
            .chain_update(token.as_bytes())
            .finalize();
        Some(OperatorToken {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            cookie_value: hex::encode(cookie).into(),
        })
    }

    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.trim().as_bytes()).into();
        constant_time_eq(&digest, &self.token_digest)
    }

    /// The `Set-Cookie` value that makes a browser the operator's.
    pub fn set_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000",
            self.cookie_value
        )
    }

    fn cookie_matches(&self, value: &str) -> bool {
        let a: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let b: [u8; 32] = Sha256::digest(self.cookie_value.as_bytes()).into();
        constant_time_eq(&a, &b)
    }
}

/// The `Set-Cookie` value that signs a browser out.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The visitor of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    /// May see private repositories.
    pub operator: bool,
}

/// Anything that knows the operator token can name the viewer.
pub trait HasOperatorToken {
    fn operator_token(&self) -> Option<&OperatorToken>;
}

impl<S> FromRequestParts<S> for Viewer
where
    S: HasOperatorToken + Send + Sync,
{
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Viewer, WebError> {
        let token = state.operator_token();
        if let Some(auth) = parts.headers.get(AUTHORIZATION) {
            let bearer = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    WebError::Unauthorized(
                        "the Authorization header must be `Bearer <VERDICT_ADMIN_TOKEN>`".into(),
                    )
                })?;
            return match token {
                Some(t) if t.matches(bearer) => Ok(Viewer { operator: true }),
                Some(_) => Err(WebError::Unauthorized(
                    "wrong operator token: send the value of VERDICT_ADMIN_TOKEN".into(),
                )),
                None => Err(WebError::Unauthorized(
                    "this verdict has no operator token; set VERDICT_ADMIN_TOKEN to enable one"
                        .into(),
                )),
            };
        }
        let operator = token.is_some_and(|t| {
            parts
                .headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .any(|(k, v)| k == COOKIE_NAME && t.cookie_matches(v))
        });
        Ok(Viewer { operator })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself_and_the_cookie_hides_it() {
        let t = OperatorToken::new(Some("s3cret")).unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.set_cookie().contains("s3cret"));
        assert!(OperatorToken::new(Some("  ")).is_none());
        assert!(OperatorToken::new(None).is_none());
    }
}
