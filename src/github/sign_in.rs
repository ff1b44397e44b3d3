//! Signing people in through the GitHub App's user authorization (OAuth web application flow
//! with PKCE), and asking GitHub, as that person, which repositories they can read through the
//! App's installations. GitHub's answers are the only source of who may see what.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::pages::next_link;

/// The App's client credentials and where GitHub is.
#[derive(Clone)]
pub struct SignInConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `https://github.com`, or a GitHub Enterprise Server's host (where people sign in).
    pub github_url: String,
    /// `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: String,
}

impl std::fmt::Debug for SignInConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInConfig")
            .field("client_id", &self.client_id)
            .field("github_url", &self.github_url)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// A person's GitHub tokens, as GitHub issued them.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    /// `None`: the token does not expire (token expiry switched off for the App).
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

/// Who GitHub says the person is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GitHubUser {
    pub login: String,
    pub id: i64,
}

/// What went wrong asking GitHub; each variant says what the person should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// GitHub answered, and said no (a used or expired code, a revoked refresh token).
    #[error("GitHub refused: {0}")]
    Refused(String),
    /// The token is no longer accepted (revoked, or the App uninstalled for this person).
    #[error("GitHub no longer accepts this sign-in")]
    Unauthorized,
    /// GitHub could not be reached, failed, or is rate limiting.
    #[error("GitHub could not be reached: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<i64>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct Installations {
    installations: Vec<Installation>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

#[derive(Deserialize)]
struct Repositories {
    repositories: Vec<Repository>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

/// Most pages of one list read during a sign-in (100 items each).
const MAX_PAGES: usize = 100;

/// Talks to GitHub for sign-in.
#[derive(Clone)]
pub struct SignInClient {
    config: SignInConfig,
    http: reqwest::Client,
}

impl SignInClient {
    pub fn new(config: SignInConfig) -> SignInClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("verdict/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS-capable HTTP client builds");
        SignInClient { config, http }
    }

    pub fn config(&self) -> &SignInConfig {
        &self.config
    }

    /// Where to send the browser: GitHub's authorization page for this App.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("{}/login/oauth/authorize?{query}", self.config.github_url)
    }

    /// Exchanges the code GitHub handed the browser for the person's tokens.
    pub async fn exchange(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, SignInError> {
        self.token_request(&[
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
            ("code", code),
            ("code_verifier", code_verifier),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }

    /// New tokens for an expired access token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, SignInError> {
        self.token_request(&[
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, SignInError> {
        let url = format!("{}/login/oauth/access_token", self.config.github_url);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| SignInError::Unavailable(without_url(&e)))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SignInError::Unavailable(format!("HTTP {status}")));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| SignInError::Unavailable(format!("an unreadable answer ({e})")))?;
        if let Some(error) = answer.error {
            return Err(SignInError::Refused(
                answer.error_description.unwrap_or(error),
            ));
        }
        let now = Utc::now();
        let at = |secs: Option<i64>| secs.map(|s| now + chrono::Duration::seconds(s));
        Ok(Tokens {
            access_token: answer
                .access_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| SignInError::Refused("GitHub sent no access token".into()))?,
            access_expires_at: at(answer.expires_in),
            refresh_token: answer.refresh_token.filter(|t| !t.is_empty()),
            refresh_expires_at: at(answer.refresh_token_expires_in),
        })
    }

    /// `GET /user`.
    pub async fn user(&self, token: &str) -> Result<GitHubUser, SignInError> {
        let (user, _) = self
            .get::<GitHubUser>(token, &format!("{}/user", self.config.api_url))
            .await?;
        Ok(user)
    }

    /// Every repository the person can read through the App's installations, as
    /// `owner/name` (GitHub only lists those both the person and the installation can reach).
    pub async fn readable_repositories(&self, token: &str) -> Result<Vec<String>, SignInError> {
        let mut installations = Vec::new();
        let mut url = Some(format!(
            "{}/user/installations?per_page=100",
            self.config.api_url
        ));
        for _ in 0..MAX_PAGES {
            let Some(page) = url.take() else { break };
            let (answer, next) = self.get::<Installations>(token, &page).await?;
            installations.extend(answer.installations.into_iter().map(|i| i.id));
            url = next;
        }
        let mut repositories = Vec::new();
        for id in installations {
            let mut url = Some(format!(
                "{}/user/installations/{id}/repositories?per_page=100",
                self.config.api_url
            ));
            for _ in 0..MAX_PAGES {
                let Some(page) = url.take() else { break };
                let (answer, next) = self.get::<Repositories>(token, &page).await?;
                repositories.extend(answer.repositories.into_iter().map(|r| r.full_name));
                url = next;
            }
        }
        repositories.sort();
        repositories.dedup();
        Ok(repositories)
    }

    /// One GET as the person; the answer and the next page's URL.
    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        token: &str,
        url: &str,
    ) -> Result<(T, Option<String>), SignInError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| SignInError::Unavailable(without_url(&e)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            401 => return Err(SignInError::Unauthorized),
            403 | 429
                if response.headers().contains_key("retry-after")
                    || response
                        .headers()
                        .get("x-ratelimit-remaining")
                        .is_some_and(|v| v == "0") =>
            {
                return Err(SignInError::Unavailable(format!(
                    "rate limited (HTTP {status})"
                )));
            }
            403 | 404 => return Err(SignInError::Refused(format!("HTTP {status} for {url}"))),
            _ => return Err(SignInError::Unavailable(format!("HTTP {status}"))),
        }
        let next = next_link(
            response
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok()),
        );
        let value = response
            .json()
            .await
            .map_err(|e| SignInError::Unavailable(format!("an unreadable answer ({e})")))?;
        Ok((value, next))
    }
}

/// reqwest's error text without the URL (which may carry a token in a query for other APIs).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "GitHub");
    }
    text
}
