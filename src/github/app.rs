//! verdict's one client for GitHub's REST API as the GitHub App: as the App itself (a JWT from
//! its private key: webhook deliveries and redeliveries, installations) and as each
//! installation (an installation token: reading a repository's history, write-back). octocrab
//! signs the JWTs and keeps the installation tokens fresh; this module adds what verdict needs
//! on top: raw answers (exact bytes, `Link`, `Date`), GitHub's rate limits, and a cap on
//! requests in flight.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, Semaphore};

use super::pages::next_link;

/// The GitHub App's credentials and the API it talks to.
#[derive(Clone)]
pub struct GitHubAppConfig {
    pub app_id: u64,
    /// The App's private key (PEM, as GitHub hands it out).
    pub private_key_pem: Vec<u8>,
    /// `https://api.github.com`, or a GitHub Enterprise Server's or a test's mock.
    pub api_url: String,
}

impl std::fmt::Debug for GitHubAppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubAppConfig")
            .field("app_id", &self.app_id)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error(
        "the GitHub App private key is not an RSA key in PEM form ({0}); download a new one from the App's settings page"
    )]
    Key(String),
    #[error("cannot set up the GitHub client for {url}: {reason}")]
    Client { url: String, reason: String },
}

/// What one request came to, when GitHub answered at all.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    /// The body exactly as GitHub sent it.
    pub body: Bytes,
    /// The URL asked.
    pub url: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `rel="next"` page, if any.
    pub fn next_page(&self) -> Option<String> {
        next_link(self.header("link"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Unreadable {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }

    /// How long GitHub asks to wait before asking again: `Retry-After` (secondary limits),
    /// or until `X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0.
    pub fn rate_limit_wait(&self) -> Option<Duration> {
        if let Some(secs) = self
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_secs(secs.max(1)));
        }
        let number = |name: &str| self.header(name)?.trim().parse::<i64>().ok();
        if number("x-ratelimit-remaining")? != 0 {
            return None;
        }
        let reset = number("x-ratelimit-reset")?;
        Some(Duration::from_secs(
            (reset - Utc::now().timestamp()).clamp(1, 3600) as u64,
        ))
    }

    /// A rate-limit refusal (403 or 429 saying when to come back).
    pub fn is_rate_limited(&self) -> bool {
        matches!(self.status, 403 | 429) && self.rate_limit_wait().is_some()
    }
}

/// Why a request did not get what it asked for.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("GitHub could not be reached at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("GitHub answered {status} for {url}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("GitHub is rate limiting {url}; retry in {} s", .wait.as_secs())]
    RateLimited { url: String, wait: Duration },
    #[error("GitHub's answer from {url} is not what verdict expected: {reason}")]
    Unreadable { url: String, reason: String },
    #[error("no installation of the GitHub App reaches {0}")]
    NotInstalled(String),
}

/// Who a request is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    /// The App (JWT).
    App,
    /// One of its installations (installation token).
    Installation(u64),
}

/// How [`GitHubApp::fetch`] rides out GitHub's limits and hiccups.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Longest wait for a rate limit to reset; longer is returned as `RateLimited`.
    pub max_wait: Duration,
    /// Attempts on 5xx and network errors.
    pub attempts: u32,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            max_wait: Duration::from_secs(900),
            attempts: 4,
        }
    }
}

/// Requests in flight at once, across everything verdict asks GitHub (its secondary limits
/// frown on concurrency).
pub const IN_FLIGHT: usize = 4;

/// The GitHub App, as a client.
pub struct GitHubApp {
    app: Octocrab,
    installations: Mutex<HashMap<u64, Octocrab>>,
    api_url: String,
    in_flight: Semaphore,
}

impl GitHubApp {
    pub fn new(config: &GitHubAppConfig) -> Result<GitHubApp, GitHubError> {
        let key = octocrab::EncodingKey::from_rsa_pem(&config.private_key_pem)
            .map_err(|e| GitHubError::Key(e.to_string()))?;
        let client = |reason: String| GitHubError::Client {
            url: config.api_url.clone(),
            reason,
        };
        let app = Octocrab::builder()
            .base_uri(config.api_url.as_str())
            .map_err(|e| client(e.to_string()))?
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .app(AppId(config.app_id), key)
            .build()
            .map_err(|e| client(e.to_string()))?;
        Ok(GitHubApp {
            app,
            installations: Mutex::new(HashMap::new()),
            api_url: config.api_url.trim_end_matches('/').to_string(),
            in_flight: Semaphore::new(IN_FLIGHT),
        })
    }

    /// The API's base URL (no trailing slash).
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// An installation's client (octocrab caches and renews its token).
    async fn client(&self, who: As) -> Result<Octocrab, ApiError> {
        let id = match who {
            As::App => return Ok(self.app.clone()),
            As::Installation(id) => id,
        };
        let mut cache = self.installations.lock().await;
        if let Some(client) = cache.get(&id) {
            return Ok(client.clone());
        }
        let client =
            self.app
                .installation(InstallationId(id))
                .map_err(|e| ApiError::Unreachable {
                    url: format!("installation {id}"),
                    reason: e.to_string(),
                })?;
        cache.insert(id, client.clone());
        Ok(client)
    }

    /// The installation of the App on `owner/name`.
    pub async fn repository_installation(&self, repo: &str) -> Result<u64, ApiError> {
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        self.app
            .apps()
            .get_repository_installation(owner, name)
            .await
            .map(|i| i.id.0)
            .map_err(|_| ApiError::NotInstalled(repo.to_string()))
    }

    /// One request, whatever GitHub answers (write-back records each attempt itself).
    /// `url` is a path under the API (`/repos/...`) or an absolute URL (a `Link` page).
    pub async fn request(
        &self,
        who: As,
        method: axum::http::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ApiError> {
        let url = relative(&self.api_url, url)?;
        let url = url.as_str();
        let client = self.client(who).await?;
        let _turn = self.in_flight.acquire().await.expect("never closed");
        let unreachable = |e: &dyn std::fmt::Display| ApiError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let response = match method {
            axum::http::Method::POST => client._post(url, body).await,
            _ => client._get(url).await,
        }
        .map_err(|e| unreachable(&e))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            url: url.to_string(),
        })
    }

    /// A GET that rides out rate limits (waiting as GitHub asks, up to `patience.max_wait`)
    /// and transient failures; a successful answer, or why there is none.
    pub async fn fetch(&self, who: As, url: &str, patience: Patience) -> Result<Answer, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = match self.request(who, axum::http::Method::GET, url, None).await {
                Ok(answer) => answer,
                Err(e @ ApiError::Unreachable { .. }) if attempt < patience.attempts => {
                    tracing::debug!(error = %e, "GitHub unreachable; trying again");
                    tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if answer.is_success() {
                return Ok(answer);
            }
            if answer.is_rate_limited() {
                let wait = answer.rate_limit_wait().unwrap_or_default();
                if wait > patience.max_wait {
                    return Err(ApiError::RateLimited {
                        url: url.to_string(),
                        wait,
                    });
                }
                tracing::info!(
                    url,
                    wait_secs = wait.as_secs(),
                    "GitHub rate limit: waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if answer.status >= 500 && attempt < patience.attempts {
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
                continue;
            }
            return Err(ApiError::Refused {
                url: url.to_string(),
                status: answer.status,
                message: String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(200)
                    .collect(),
            });
        }
    }
}

/// `url` as a path under the API root. GitHub's `Link` pages are absolute URLs on the API's
/// host; the App's credentials go to that host only, so any other is refused.
fn relative(api_url: &str, url: &str) -> Result<String, ApiError> {
    if url.starts_with('/') {
        return Ok(url.to_string());
    }
    let normalize = |u: &str| {
        url::Url::parse(u).ok().map(|u| {
            (
                u.origin().ascii_serialization(),
                u.path().trim_end_matches('/').to_string(),
            )
        })
    };
    let (Some((origin, prefix)), Some(parsed)) = (normalize(api_url), url::Url::parse(url).ok())
    else {
        return Err(ApiError::Unreadable {
            url: url.to_string(),
            reason: "not a URL".into(),
        });
    };
    match parsed.path().strip_prefix(prefix.as_str()) {
        Some(rest) if parsed.origin().ascii_serialization() == origin => Ok(match parsed.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        }),
        _ => Err(ApiError::Unreadable {
            url: url.to_string(),
            reason: format!(
                "a page outside {}; verdict's credentials stay with GitHub",
                api_url
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn pages_on_the_api_host_become_paths_and_other_hosts_are_refused() {
        let api = "https://api.github.com";
        assert_eq!(
            relative(api, "/app/hook/deliveries").unwrap(),
            "/app/hook/deliveries"
        );
        assert_eq!(
            relative(
                api,
                "https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_7"
            )
            .unwrap(),
            "/app/hook/deliveries?per_page=100&cursor=v1_7"
        );
        let ghes = "https://ghe.example.com/api/v3";
        assert_eq!(
            relative(
                ghes,
                "https://ghe.example.com/api/v3/repos/o/r/pulls?page=2"
            )
            .unwrap(),
            "/repos/o/r/pulls?page=2"
        );
        for elsewhere in [
            "https://evil.example/app/hook/deliveries",
            "https://ghe.example.com/other/repos",
            "http://api.github.com/app",
        ] {
            let base = if elsewhere.contains("ghe.") {
                ghes
            } else {
                api
            };
            assert!(relative(base, elsewhere).is_err(), "{elsewhere}");
        }
    }
}
