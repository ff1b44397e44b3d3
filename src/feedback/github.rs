//! Write-back into GitHub as the GitHub App (app id + private key → JWT → installation
//! token, through octocrab): a check run (or a comment) on each merged or closed PR linking
//! to its decision records and findings, and answers to `/decision` commands. Messages come
//! from the outbox, one at a time; a retry first looks whether an earlier attempt got through,
//! so nothing is posted twice.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::outbox::{Attempt, Claimed, classify};

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

/// How a closed PR hears from verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteBackMode {
    /// A completed check run named `verdict` on the PR's head commit.
    #[default]
    CheckRun,
    /// A comment on the PR.
    Comment,
}

impl std::str::FromStr for WriteBackMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "check-run" => Ok(WriteBackMode::CheckRun),
            "comment" => Ok(WriteBackMode::Comment),
            other => Err(format!(
                "write-back mode {other:?} is unknown; use check-run or comment"
            )),
        }
    }
}

/// The name of verdict's check runs.
pub const CHECK_NAME: &str = "verdict";

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error(
        "the GitHub App private key is not an RSA key in PEM form ({0}); download a new one from the App's settings page"
    )]
    Key(String),
    #[error("cannot set up the GitHub client for {url}: {reason}")]
    Client { url: String, reason: String },
}

/// Sends GitHub messages from the outbox as the App's installations.
pub struct GitHubWriter {
    app: Octocrab,
    installations: Mutex<HashMap<u64, Octocrab>>,
}

impl GitHubWriter {
    pub fn new(config: &GitHubAppConfig) -> Result<GitHubWriter, GitHubError> {
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
        Ok(GitHubWriter {
            app,
            installations: Mutex::new(HashMap::new()),
        })
    }

    /// An installation's client (octocrab caches and renews its token).
    async fn installation(&self, message: &Claimed) -> Result<Octocrab, Attempt> {
        let id = match message.route.get("installation_id").and_then(Value::as_u64) {
            Some(id) => id,
            // A delivery without `installation` (a repository webhook): ask GitHub.
            None => self.repository_installation(&message.repo).await?,
        };
        let mut cache = self.installations.lock().await;
        if let Some(client) = cache.get(&id) {
            return Ok(client.clone());
        }
        let client = self
            .app
            .installation(InstallationId(id))
            .map_err(|e| retry(format!("installation {id}: {e}")))?;
        cache.insert(id, client.clone());
        Ok(client)
    }

    async fn repository_installation(&self, repo: &str) -> Result<u64, Attempt> {
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        match self
            .app
            .apps()
            .get_repository_installation(owner, name)
            .await
        {
            Ok(installation) => Ok(installation.id.0),
            Err(e) => Err(Attempt::Refused {
                status: None,
                error: format!(
                    "the GitHub App is not installed on {repo} ({e}); install it there to get write-back"
                ),
            }),
        }
    }

    /// One attempt to send `message`.
    pub async fn send(&self, message: &Claimed) -> Attempt {
        let client = match self.installation(message).await {
            Ok(client) => client,
            Err(attempt) => return attempt,
        };
        if message.attempts > 0
            && let Some(location) = self.already_posted(&client, message).await
        {
            return Attempt::Delivered {
                status: 200,
                location: Some(location),
            };
        }
        let body: Value = match serde_json::from_slice(&message.body) {
            Ok(body) => body,
            Err(e) => {
                return Attempt::Refused {
                    status: None,
                    error: format!("stored request is not JSON: {e}"),
                };
            }
        };
        let response = match client._post(message.target.as_str(), Some(&body)).await {
            Ok(response) => response,
            Err(e) => return retry(format!("GitHub could not be reached: {e}")),
        };
        let status = response.status().as_u16();
        let after = rate_limit_wait(response.headers());
        let text = client.body_to_string(response).await.unwrap_or_default();
        if (status == 403 || status == 429) && after.is_some() {
            return Attempt::Retry {
                status: Some(status),
                error: format!("GitHub rate limit (HTTP {status}); waiting until it resets"),
                after,
            };
        }
        match classify(status, &text, after) {
            Attempt::Delivered { status, .. } => Attempt::Delivered {
                status,
                location: html_url(&text),
            },
            other => other,
        }
    }

    /// Whether an earlier attempt of `message` reached GitHub after all (its answer lost).
    async fn already_posted(&self, client: &Octocrab, message: &Claimed) -> Option<String> {
        let lookup = match message.purpose.as_str() {
            "check-run" => format!(
                "/repos/{}/commits/{}/check-runs?check_name={CHECK_NAME}&per_page=100",
                message.repo,
                message.route.get("head_sha")?.as_str()?
            ),
            _ => format!(
                "/repos/{}/issues/{}/comments?per_page=100&since={}",
                message.repo,
                message.pr_number?,
                (message.created_at - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
            ),
        };
        let response = client._get(lookup.as_str()).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let listed: Value =
            serde_json::from_str(&client.body_to_string(response).await.ok()?).ok()?;
        let marker = marker(&message.dedupe_key);
        let items = listed
            .get("check_runs")
            .unwrap_or(&listed)
            .as_array()?
            .clone();
        items
            .into_iter()
            .find(|item| {
                item.get("external_id").and_then(Value::as_str) == Some(&message.dedupe_key)
                    || item
                        .get("body")
                        .and_then(Value::as_str)
                        .is_some_and(|b| b.contains(&marker))
            })
            .and_then(|item| item.get("html_url")?.as_str().map(String::from))
    }
}

fn retry(error: String) -> Attempt {
    Attempt::Retry {
        status: None,
        error,
        after: None,
    }
}

fn html_url(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("html_url")?
        .as_str()
        .map(String::from)
}

/// How long GitHub asks us to wait: `Retry-After` (secondary limits), or until
/// `X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0.
fn rate_limit_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(wait) = super::alerts::retry_after(headers) {
        return Some(wait);
    }
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    if header("x-ratelimit-remaining")? != 0 {
        return None;
    }
    let reset = header("x-ratelimit-reset")?;
    Some(Duration::from_secs(
        (reset - Utc::now().timestamp()).clamp(1, 3600) as u64,
    ))
}

/// The hidden line that makes a comment recognisable as a given outbox message.
pub fn marker(dedupe_key: &str) -> String {
    format!("<!-- verdict:{dedupe_key} -->")
}

/// What a closed PR's write-back says.
#[derive(Debug, Clone)]
pub struct PullSummary {
    pub repo: String,
    pub number: i64,
    pub head_sha: Option<String>,
    pub merged: bool,
    /// The log (GitHub account) and the closing entry's position and hash.
    pub account: String,
    pub seq: i64,
    pub entry_hash: String,
    pub records: Vec<RecordLine>,
    pub findings: Vec<FindingLine>,
}

#[derive(Debug, Clone)]
pub struct RecordLine {
    pub seq: i64,
    pub kind: String,
    pub actor: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct FindingLine {
    pub rule: String,
    pub severity: String,
    pub message: String,
    pub seq: i64,
}

/// Most decision records listed in one check run or comment (GitHub caps their size).
const MAX_LISTED: usize = 200;

impl PullSummary {
    fn record_url(&self, public_url: &str, seq: i64) -> String {
        format!("{public_url}/records/{}/{seq}", self.account)
    }

    fn title(&self) -> String {
        match self.findings.len() {
            0 => format!("{} decision records, no findings", self.records.len()),
            n => {
                let mut rules: Vec<&str> = self.findings.iter().map(|f| f.rule.as_str()).collect();
                rules.dedup();
                format!(
                    "{n} finding{}: {}",
                    if n == 1 { "" } else { "s" },
                    rules.join(", ")
                )
            }
        }
    }

    /// Markdown: the log position, findings, then every decision record with its link.
    pub fn markdown(&self, public_url: &str) -> String {
        let history = format!("{public_url}/{}/pull/{}", self.repo, self.number);
        let mut md = format!(
            "**{}** in verdict's log for `{}` at entry [{}]({}) (entry hash `{}`). \
             [Decision history of #{}]({history}).\n\n",
            if self.merged { "Merged" } else { "Closed" },
            self.account,
            self.seq,
            self.record_url(public_url, self.seq),
            self.entry_hash,
            self.number,
        );
        if self.findings.is_empty() {
            md.push_str("No accountability rule found anything.\n\n");
        } else {
            md.push_str("### Findings\n\n");
            for f in &self.findings {
                md.push_str(&format!(
                    "- **`{}`** ({}): {} [record]({})\n",
                    f.rule,
                    f.severity,
                    f.message,
                    self.record_url(public_url, f.seq)
                ));
            }
            md.push('\n');
        }
        md.push_str(
            "### Decision records\n\n| When (UTC) | Decision | By | Record |\n|---|---|---|---|\n",
        );
        for r in self.records.iter().take(MAX_LISTED) {
            md.push_str(&format!(
                "| {} | `{}` | {} | [{}#{}]({}) |\n",
                r.occurred_at.format("%Y-%m-%d %H:%M"),
                r.kind,
                r.actor
                    .as_deref()
                    .map(|a| format!("@{a}"))
                    .unwrap_or_default(),
                self.account,
                r.seq,
                self.record_url(public_url, r.seq)
            ));
        }
        if self.records.len() > MAX_LISTED {
            md.push_str(&format!(
                "\n{} more on the [decision history]({history}).\n",
                self.records.len() - MAX_LISTED
            ));
        }
        md
    }

    /// `POST /repos/{repo}/check-runs` body.
    pub fn check_run(&self, public_url: &str, dedupe_key: &str) -> Value {
        json!({
            "name": CHECK_NAME,
            "head_sha": self.head_sha,
            "status": "completed",
            "conclusion": if self.findings.is_empty() { "success" } else { "neutral" },
            "completed_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "details_url": format!("{public_url}/{}/pull/{}", self.repo, self.number),
            "external_id": dedupe_key,
            "output": {
                "title": self.title(),
                "summary": self.markdown(public_url),
            },
        })
    }

    /// `POST /repos/{repo}/issues/{n}/comments` body.
    pub fn comment(&self, public_url: &str, dedupe_key: &str) -> Value {
        json!({
            "body": format!("### verdict: {}\n\n{}\n{}", self.title(), self.markdown(public_url), marker(dedupe_key)),
        })
    }
}

/// The answer to a `/decision` command: the new record's permalink, or usage.
pub fn decision_reply(
    recorded: Result<(&str, &str), ()>,
    actor: Option<&str>,
    dedupe_key: &str,
) -> Value {
    let text = match recorded {
        Ok((permalink, decision)) => format!(
            "Recorded{} as decision record {permalink}:\n\n> {}",
            actor.map(|a| format!(" for @{a}")).unwrap_or_default(),
            decision.replace('\n', "\n> ")
        ),
        Err(()) => crate::projections::decisions::DECISION_USAGE.to_string(),
    };
    json!({ "body": format!("{text}\n\n{}", marker(dedupe_key)) })
}
