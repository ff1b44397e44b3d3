//! Write-back into GitHub as the GitHub App (through `crate::github::app`, as the
//! installation the PR's deliveries came through): a check run (or a comment) on each merged or closed PR linking
//! to its decision records and findings, and answers to `/decision` commands. Messages come
//! from the outbox, one at a time; a retry first looks whether an earlier attempt got through,
//! so nothing is posted twice.

use std::sync::Arc;

use axum::http::Method;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::outbox::{Attempt, Claimed, classify};
use crate::github::app::{ApiError, As, GitHubApp};
pub use crate::github::app::{GitHubAppConfig, GitHubError};

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

/// Sends GitHub messages from the outbox as the App's installations, one attempt at a time
/// (the outbox records each and decides when to retry).
pub struct GitHubWriter {
    app: Arc<GitHubApp>,
}

impl GitHubWriter {
    pub fn new(app: Arc<GitHubApp>) -> GitHubWriter {
        GitHubWriter { app }
    }

    /// The installation a message goes through: the one its delivery came through, or (a
    /// repository webhook without `installation`) the App's installation on the repository.
    async fn installation(&self, message: &Claimed) -> Result<u64, Attempt> {
        if let Some(id) = message.route.get("installation_id").and_then(Value::as_u64) {
            return Ok(id);
        }
        self.app
            .repository_installation(&message.repo)
            .await
            .map_err(|e| Attempt::Refused {
                status: None,
                error: format!("{e}; install the GitHub App there to get write-back"),
            })
    }

    /// One attempt to send `message`.
    pub async fn send(&self, message: &Claimed) -> Attempt {
        let installation = match self.installation(message).await {
            Ok(id) => As::Installation(id),
            Err(attempt) => return attempt,
        };
        if message.attempts > 0
            && let Some(location) = self.already_posted(installation, message).await
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
        let answer = match self
            .app
            .request(installation, Method::POST, &message.target, Some(&body))
            .await
        {
            Ok(answer) => answer,
            Err(e @ ApiError::Unreachable { .. }) => {
                return retry(format!("GitHub could not be reached: {e}"));
            }
            Err(e) => return retry(e.to_string()),
        };
        let after = answer.rate_limit_wait();
        let text = String::from_utf8_lossy(&answer.body).to_string();
        if answer.is_rate_limited() {
            return Attempt::Retry {
                status: Some(answer.status),
                error: format!(
                    "GitHub rate limit (HTTP {}); waiting until it resets",
                    answer.status
                ),
                after,
            };
        }
        match classify(answer.status, &text, after) {
            Attempt::Delivered { status, .. } => Attempt::Delivered {
                status,
                location: html_url(&text),
            },
            other => other,
        }
    }

    /// Whether an earlier attempt of `message` reached GitHub after all (its answer lost).
    async fn already_posted(&self, installation: As, message: &Claimed) -> Option<String> {
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
        let answer = self
            .app
            .request(installation, Method::GET, &lookup, None)
            .await
            .ok()
            .filter(|a| a.is_success())?;
        let listed: Value = answer.json().ok()?;
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
