//! What the judge writes to the outbox after judging a range of a log: an alert per finding
//! per configured receiver, a write-back per merged or closed PR, and an answer per
//! `/decision` command. Bodies are composed here, once, so retries send the same bytes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};

use super::alerts::{self, AlertTarget, FindingAlert, LogPosition};
use super::github::{self, FindingLine, PullSummary, RecordLine, WriteBackMode};
use super::outbox::{self, Channel, Message};
use crate::projections::decisions::decision_command;
use crate::projections::findings::FindingBody;

/// Which messages leave verdict, and the address its links start with.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Where verdict's pages are reachable (`VERDICT_PUBLIC_URL`), without a trailing slash.
    pub public_url: String,
    pub alerts: Vec<AlertTarget>,
    /// `None`: no GitHub App credentials, no write-back.
    pub write_back: Option<WriteBackMode>,
}

impl Outputs {
    /// No alerts, no write-back: findings only.
    pub fn none() -> std::sync::Arc<Outputs> {
        std::sync::Arc::new(Outputs::default())
    }
}

/// The part of one log the judge just judged: entries `from..to`.
pub struct Range<'a> {
    pub log_id: i64,
    pub log_name: &'a str,
    pub from: i64,
    pub to: i64,
}

/// A finding in the log at `seq`.
pub struct Recorded {
    pub body: FindingBody,
    pub seq: i64,
}

/// Writes the range's messages; returns how many were new.
pub async fn write(
    tx: &mut PgConnection,
    outputs: &Outputs,
    range: Range<'_>,
    findings: &[Recorded],
) -> sqlx::Result<u64> {
    let mut messages = Vec::new();
    if !outputs.alerts.is_empty() && !findings.is_empty() {
        messages.extend(alert_messages(tx, outputs, &range, findings).await?);
    }
    if let Some(mode) = outputs.write_back {
        messages.extend(write_back_messages(tx, outputs, mode, &range, findings).await?);
        messages.extend(decision_replies(tx, outputs, &range).await?);
    }
    let mut written = 0;
    for m in &messages {
        written += u64::from(outbox::enqueue(tx, m).await?);
    }
    Ok(written)
}

async fn entry_hashes(
    tx: &mut PgConnection,
    log_id: i64,
    seqs: &[i64],
) -> sqlx::Result<HashMap<i64, String>> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, entry_hash FROM log_entries WHERE log_id = $1 AND seq = ANY($2)",
    )
    .bind(log_id)
    .bind(seqs)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|(s, h)| (s, hex::encode(h))).collect())
}

fn github_pr_url(repo: &str, number: i64) -> String {
    format!("https://github.com/{repo}/pull/{number}")
}

async fn alert_messages(
    tx: &mut PgConnection,
    outputs: &Outputs,
    range: &Range<'_>,
    findings: &[Recorded],
) -> sqlx::Result<Vec<Message>> {
    let seqs: Vec<i64> = findings.iter().map(|f| f.seq).collect();
    let hashes = entry_hashes(tx, range.log_id, &seqs).await?;
    let public = &outputs.public_url;
    let mut out = Vec::new();
    for f in findings {
        let b = &f.body;
        let alert = FindingAlert {
            event: "finding",
            rule: b.rule.clone(),
            severity: b.severity.clone(),
            message: b.message.clone(),
            repository: b.repository.full_name.clone(),
            pull_request: b.pull_request,
            pull_request_url: b
                .pull_request
                .map(|n| github_pr_url(&b.repository.full_name, n)),
            finding_url: format!("{public}/records/{}/{}", range.log_name, f.seq),
            evidence: b.evidence.iter().map(|e| format!("{public}{e}")).collect(),
            log: LogPosition {
                account: range.log_name.to_string(),
                seq: f.seq,
                entry_hash: hashes.get(&f.seq).cloned().unwrap_or_default(),
            },
        };
        for target in &outputs.alerts {
            let url_id = hex::encode(&Sha256::digest(target.url.as_bytes())[..8]);
            out.push(Message {
                channel: Channel::Alert,
                purpose: "finding",
                dedupe_key: format!("alert:{}:{}:{url_id}", range.log_name, f.seq),
                target: target.url.clone(),
                repo: b.repository.full_name.clone(),
                repo_private: b.repository.private,
                pr_number: b.pull_request,
                log_id: range.log_id,
                seq: f.seq,
                route: json!({ "format": target.format }),
                body: alerts::render(target.format, &alert),
            });
        }
    }
    Ok(out)
}

async fn write_back_messages(
    tx: &mut PgConnection,
    outputs: &Outputs,
    mode: WriteBackMode,
    range: &Range<'_>,
    findings: &[Recorded],
) -> sqlx::Result<Vec<Message>> {
    let closes = sqlx::query(
        "SELECT d.seq, d.kind, d.repo, d.repo_private, d.pr_number, p.head_sha, e.body
           FROM decisions d
           JOIN pull_requests p ON p.repo = d.repo AND p.number = d.pr_number
           JOIN log_entries e ON e.log_id = d.log_id AND e.seq = d.seq
          WHERE d.log_id = $1 AND d.seq >= $2 AND d.seq < $3
            AND d.kind IN ('pr.merged', 'pr.closed')
          ORDER BY d.seq",
    )
    .bind(range.log_id)
    .bind(range.from)
    .bind(range.to)
    .fetch_all(&mut *tx)
    .await?;
    if closes.is_empty() {
        return Ok(Vec::new());
    }
    let seqs: Vec<i64> = closes.iter().map(|r| r.get("seq")).collect();
    let hashes = entry_hashes(tx, range.log_id, &seqs).await?;
    let mut out = Vec::new();
    for close in closes {
        let seq: i64 = close.get("seq");
        let repo: String = close.get("repo");
        let number: i64 = close.get("pr_number");
        let head_sha: Option<String> = close.get("head_sha");
        let body: Vec<u8> = close.get("body");
        let records = sqlx::query(
            "SELECT seq, kind, actor, occurred_at FROM decisions
              WHERE log_id = $1 AND repo = $2 AND pr_number = $3 AND seq <= $4
              ORDER BY occurred_at, seq, ordinal",
        )
        .bind(range.log_id)
        .bind(&repo)
        .bind(number)
        .bind(seq)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| RecordLine {
            seq: r.get("seq"),
            kind: r.get("kind"),
            actor: r.get("actor"),
            occurred_at: r.get::<DateTime<Utc>, _>("occurred_at"),
        })
        .collect();
        let summary = PullSummary {
            repo: repo.clone(),
            number,
            head_sha: head_sha.clone(),
            merged: close.get::<String, _>("kind") == "pr.merged",
            account: range.log_name.to_string(),
            seq,
            entry_hash: hashes.get(&seq).cloned().unwrap_or_default(),
            records,
            findings: findings
                .iter()
                .filter(|f| {
                    f.body.repository.full_name == repo && f.body.pull_request == Some(number)
                })
                .map(|f| FindingLine {
                    rule: f.body.rule.clone(),
                    severity: f.body.severity.clone(),
                    message: f.body.message.clone(),
                    seq: f.seq,
                })
                .collect(),
        };
        // A check run needs the head commit; without it, a comment says the same.
        let (purpose, target) = match (mode, &head_sha) {
            (WriteBackMode::CheckRun, Some(_)) => {
                ("check-run", format!("/repos/{repo}/check-runs"))
            }
            _ => ("comment", format!("/repos/{repo}/issues/{number}/comments")),
        };
        let dedupe_key = format!("github:{purpose}:{}:{seq}", range.log_name);
        let request = match purpose {
            "check-run" => summary.check_run(&outputs.public_url, &dedupe_key),
            _ => summary.comment(&outputs.public_url, &dedupe_key),
        };
        out.push(Message {
            channel: Channel::GitHub,
            purpose,
            dedupe_key,
            target,
            repo,
            repo_private: close.get("repo_private"),
            pr_number: Some(number),
            log_id: range.log_id,
            seq,
            route: json!({
                "installation_id": crate::intake::account::installation_id(&body),
                "head_sha": head_sha,
            }),
            body: serde_json::to_vec(&request).expect("a request serializes"),
        });
    }
    Ok(out)
}

async fn decision_replies(
    tx: &mut PgConnection,
    outputs: &Outputs,
    range: &Range<'_>,
) -> sqlx::Result<Vec<Message>> {
    let commands = sqlx::query(
        "SELECT d.seq, d.repo, d.repo_private, d.pr_number, d.actor, d.body, e.body AS raw
           FROM decisions d JOIN log_entries e ON e.log_id = d.log_id AND e.seq = d.seq
          WHERE d.log_id = $1 AND d.seq >= $2 AND d.seq < $3
            AND d.kind = 'comment.created' AND d.body LIKE '%/decision%'
          ORDER BY d.seq",
    )
    .bind(range.log_id)
    .bind(range.from)
    .bind(range.to)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for c in commands {
        let body: Option<String> = c.get("body");
        let Some(command) = body.as_deref().and_then(decision_command) else {
            continue;
        };
        let seq: i64 = c.get("seq");
        let repo: String = c.get("repo");
        let number: i64 = c.get("pr_number");
        let actor: Option<String> = c.get("actor");
        let raw: Vec<u8> = c.get("raw");
        let dedupe_key = format!("github:decision-reply:{}:{seq}", range.log_name);
        let permalink = format!("{}/records/{}/{seq}", outputs.public_url, range.log_name);
        let request = match &command {
            Ok(text) => {
                github::decision_reply(Ok((&permalink, text)), actor.as_deref(), &dedupe_key)
            }
            Err(_) => github::decision_reply(Err(()), actor.as_deref(), &dedupe_key),
        };
        out.push(Message {
            channel: Channel::GitHub,
            purpose: "decision-reply",
            dedupe_key,
            target: format!("/repos/{repo}/issues/{number}/comments"),
            repo,
            repo_private: c.get("repo_private"),
            pr_number: Some(number),
            log_id: range.log_id,
            seq,
            route: json!({
                "installation_id": crate::intake::account::installation_id(&raw),
            }),
            body: serde_json::to_vec(&request).expect("a request serializes"),
        });
    }
    Ok(out)
}
