//! The outbox's read side: every message verdict sent or is sending (alerts, GitHub
//! write-back) with each attempt, for the attempts page and its API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::WebState;
use super::access::Viewer;
use super::error::WebError;

/// Newest messages shown.
pub const SHOWN: i64 = 200;

#[derive(Debug, Serialize)]
pub struct OutboxPage {
    pub messages: Vec<OutboxItem>,
    /// Messages in each state (visible to this viewer).
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
    pub state: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OutboxItem {
    pub id: i64,
    /// `alert` or `github`.
    pub channel: String,
    /// `finding`, `check-run`, `comment`, `decision-reply`.
    pub purpose: String,
    /// Where it goes. Alert URLs often embed secrets (Slack's do), so only their origin is
    /// shown; GitHub messages show the API path.
    pub receiver: String,
    pub repo: String,
    pub pr_number: Option<i64>,
    /// The log entry the message is about.
    pub record_url: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Where the receiver put it (a check run's URL...), or the last error.
    pub outcome: Option<String>,
    /// The outcome as a link: a GitHub address (a check run, a comment) and nothing else.
    pub outcome_link: Option<String>,
    pub attempts: Vec<AttemptItem>,
}

#[derive(Debug, Serialize)]
pub struct AttemptItem {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status: Option<i32>,
    pub error: Option<String>,
}

/// `https://hooks.slack.com/services/T0/B0/secret` → `https://hooks.slack.com/…`: scheme,
/// host and port only, however the address is spelled (user name and password, upper case,
/// `..` segments); an address that does not parse shows nothing of itself.
pub fn redact(target: &str) -> String {
    match url::Url::parse(target.trim()) {
        Ok(u) if u.has_host() => format!("{}/…", u.origin().ascii_serialization()),
        _ => "(an alert address verdict does not show)".into(),
    }
}

/// `text` (an error, which may quote the address in any spelling) with every word that names
/// `target`'s host replaced by `shown`.
fn scrub(text: &str, target: &str, shown: &str) -> String {
    let host = url::Url::parse(target.trim())
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    let mut text = text.replace(target, shown);
    if let Some(host) = host {
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || "()<>[]\"'`,".contains(c))
            .filter(|w| w.to_ascii_lowercase().contains(&host))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut out = text.clone();
        for w in words {
            out = out.replace(w, shown);
        }
        text = out;
    }
    text
}

pub async fn outbox(
    pool: &PgPool,
    state: Option<String>,
    viewer: &Viewer,
) -> Result<OutboxPage, WebError> {
    if let Some(s) = &state
        && !matches!(s.as_str(), "pending" | "delivered" | "failed")
    {
        return Err(WebError::BadRequest(format!(
            "state={s:?} is not a message state; use pending, delivered or failed"
        )));
    }
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM outbox WHERE $1::text[] IS NULL OR repo = ANY($1)
          GROUP BY state",
    )
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?;
    let count = |s: &str| counts.iter().find(|c| c.0 == s).map_or(0, |c| c.1);
    let rows = sqlx::query(
        "SELECT o.id, o.channel, o.purpose, o.target, o.repo, o.pr_number, o.seq, l.name AS account,
                o.state, o.created_at, o.next_attempt_at, o.finished_at, o.outcome
           FROM outbox o JOIN logs l ON l.id = o.log_id
          WHERE ($1::text[] IS NULL OR o.repo = ANY($1)) AND ($2::text IS NULL OR o.state = $2)
          ORDER BY o.id DESC LIMIT $3",
    )
    .bind(viewer.visible())
    .bind(&state)
    .bind(SHOWN)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect();
    let attempts = sqlx::query(
        "SELECT outbox_id, attempt, started_at, duration_ms, status, error FROM outbox_attempts
          WHERE outbox_id = ANY($1) ORDER BY outbox_id, attempt",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let messages = rows
        .iter()
        .map(|r| {
            let id: i64 = r.get("id");
            let channel: String = r.get("channel");
            let target: String = r.get("target");
            let (receiver, hide) = if channel == "alert" {
                (redact(&target), Some(target.clone()))
            } else {
                (format!("GitHub {target}"), None)
            };
            // Errors can quote the URL (reqwest's do): never show what the receiver hides.
            let clean = |text: String| match &hide {
                Some(secret) => scrub(&text, secret, &receiver),
                None => text,
            };
            let outcome: Option<String> = r.get::<Option<String>, _>("outcome").map(clean);
            let state: String = r.get("state");
            OutboxItem {
                id,
                purpose: r.get("purpose"),
                receiver: receiver.clone(),
                repo: r.get("repo"),
                pr_number: r.get("pr_number"),
                record_url: format!(
                    "/records/{}/{}",
                    r.get::<String, _>("account"),
                    r.get::<i64, _>("seq")
                ),
                next_attempt_at: (state == "pending").then(|| r.get("next_attempt_at")),
                state,
                created_at: r.get("created_at"),
                finished_at: r.get("finished_at"),
                // Where GitHub put a message, as a link only if it is on GitHub.
                outcome_link: outcome
                    .as_deref()
                    .filter(|_| hide.is_none())
                    .and_then(|o| viewer.github_link(o)),
                outcome,
                attempts: attempts
                    .iter()
                    .filter(|a| a.get::<i64, _>("outbox_id") == id)
                    .map(|a| AttemptItem {
                        attempt: a.get("attempt"),
                        started_at: a.get("started_at"),
                        duration_ms: a.get("duration_ms"),
                        status: a.get("status"),
                        error: a.get::<Option<String>, _>("error").map(clean),
                    })
                    .collect(),
                channel,
            }
        })
        .collect();
    Ok(OutboxPage {
        messages,
        pending: count("pending"),
        delivered: count("delivered"),
        failed: count("failed"),
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_addresses_show_scheme_host_and_port_only_however_spelled() {
        for (target, shown) in [
            (
                "https://hooks.slack.com/services/T0/B0/secret",
                "https://hooks.slack.com/…",
            ),
            (
                "https://user:secret@alerts.example/hook",
                "https://alerts.example/…",
            ),
            (
                "HTTPS://Alerts.Example:8443/a/../secret",
                "https://alerts.example:8443/…",
            ),
            (
                "http://alerts.example/%2e%2e/secret?token=x",
                "http://alerts.example/…",
            ),
            (
                "not a url secret",
                "(an alert address verdict does not show)",
            ),
        ] {
            assert_eq!(redact(target), shown, "{target}");
        }
        let target = "HTTPS://user:pw@Alerts.Example/a/../hook?token=secret";
        let shown = redact(target);
        let error = "error sending request for url (https://user:pw@alerts.example/hook?token=secret): \
                     connection refused; was HTTPS://user:pw@Alerts.Example/a/../hook?token=secret";
        let scrubbed = scrub(error, target, &shown);
        assert!(
            !scrubbed.contains("secret") && !scrubbed.contains("pw"),
            "{scrubbed}"
        );
        assert!(scrubbed.contains("connection refused"));
    }
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxHtml {
    viewer: Viewer,
    api_url: String,
    page: super::outbox::OutboxPage,
}

/// The attempts page: every alert and GitHub message, with each attempt to send it.
pub async fn page(
    State(s): State<WebState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let state = params.get("state").filter(|s| !s.is_empty()).cloned();
    let result = async {
        Ok(OutboxHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            page: super::outbox::outbox(&s.pool, state, &viewer).await?,
        })
    }
    .await;
    super::pages::respond(&viewer, result)
}

pub async fn api(
    State(s): State<WebState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let state = params.get("state").filter(|s| !s.is_empty()).cloned();
    super::api::json(async { super::outbox::outbox(&s.pool, state, &viewer).await }.await)
}
