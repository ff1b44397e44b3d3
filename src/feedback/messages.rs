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
use crate::projections::findings::{FindingBody, WithdrawalBody};

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

/// What the judge just did in one log.
pub struct Judged<'a> {
    pub log_id: i64,
    pub log_name: &'a str,
    /// The entries it looked at (for `/decision` answers).
    pub from: i64,
    pub to: i64,
    /// The pull requests it judged (settled).
    pub pulls: &'a [(String, i64)],
    /// Findings it recorded now.
    pub findings: &'a [Recorded],
    /// Findings it withdrew now.
    pub withdrawn: &'a [Withdrawn],
}

/// A finding in the log at `seq`.
pub struct Recorded {
    pub body: FindingBody,
    pub seq: i64,
    /// About history read from GitHub's API: recorded and shown, not alerted.
    pub quiet: bool,
}

/// A withdrawal in the log at `seq`.
pub struct Withdrawn {
    pub body: WithdrawalBody,
    pub seq: i64,
}

/// Writes the messages of what was judged; returns how many were new.
pub async fn write(
    tx: &mut PgConnection,
    outputs: &Outputs,
    judged: Judged<'_>,
) -> sqlx::Result<u64> {
    let mut messages = Vec::new();
    if !outputs.alerts.is_empty() {
        messages.extend(alert_messages(tx, outputs, &judged).await?);
    }
    if let Some(mode) = outputs.write_back {
        messages.extend(write_back_messages(tx, outputs, mode, &judged).await?);
        messages.extend(decision_replies(tx, outputs, &judged).await?);
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
    judged: &Judged<'_>,
) -> sqlx::Result<Vec<Message>> {
    let seqs: Vec<i64> = judged
        .findings
        .iter()
        .map(|f| f.seq)
        .chain(judged.withdrawn.iter().map(|w| w.seq))
        .collect();
    let hashes = entry_hashes(tx, judged.log_id, &seqs).await?;
    let public = &outputs.public_url;
    let log = judged.log_name;
    let position = |seq: i64| LogPosition {
        account: log.to_string(),
        seq,
        entry_hash: hashes.get(&seq).cloned().unwrap_or_default(),
    };
    let mut out = Vec::new();
    let message =
        |target: &AlertTarget, key: String, repo: &str, private: bool, pr, seq, alert| Message {
            channel: Channel::Alert,
            purpose: "finding",
            dedupe_key: key,
            target: target.url.clone(),
            repo: repo.to_string(),
            repo_private: private,
            pr_number: pr,
            log_id: judged.log_id,
            seq,
            route: json!({ "format": target.format }),
            body: alerts::render(target.format, &alert),
        };
    // New findings, except about history read from GitHub's API.
    for f in judged.findings.iter().filter(|f| !f.quiet) {
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
            finding_url: format!("{public}/records/{log}/{}", f.seq),
            evidence: b.evidence.iter().map(|e| format!("{public}{e}")).collect(),
            log: position(f.seq),
            withdrawal_url: None,
        };
        for target in &outputs.alerts {
            let url_id = hex::encode(&Sha256::digest(target.url.as_bytes())[..8]);
            out.push(message(
                target,
                format!("alert:{log}:{}:{url_id}", f.seq),
                &b.repository.full_name,
                b.repository.private,
                b.pull_request,
                f.seq,
                alert.clone(),
            ));
        }
    }
    // Withdrawals, to every receiver the finding was alerted to.
    for w in judged.withdrawn {
        let alerted: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT target FROM outbox
              WHERE channel = 'alert' AND purpose = 'finding' AND log_id = $1 AND seq = $2",
        )
        .bind(judged.log_id)
        .bind(w.body.finding_seq)
        .fetch_all(&mut *tx)
        .await?;
        let b = &w.body;
        let alert = FindingAlert {
            event: "finding-withdrawn",
            rule: b.rule.clone(),
            severity: String::new(),
            message: b.reason.clone(),
            repository: b.repository.full_name.clone(),
            pull_request: b.pull_request,
            pull_request_url: b
                .pull_request
                .map(|n| github_pr_url(&b.repository.full_name, n)),
            finding_url: format!("{public}/records/{log}/{}", b.finding_seq),
            evidence: b.evidence.iter().map(|e| format!("{public}{e}")).collect(),
            log: position(w.seq),
            withdrawal_url: Some(format!("{public}/records/{log}/{}", w.seq)),
        };
        for target in outputs.alerts.iter().filter(|t| alerted.contains(&t.url)) {
            let url_id = hex::encode(&Sha256::digest(target.url.as_bytes())[..8]);
            out.push(message(
                target,
                format!("alert-withdrawn:{log}:{}:{url_id}", w.seq),
                &b.repository.full_name,
                b.repository.private,
                b.pull_request,
                w.seq,
                alert.clone(),
            ));
        }
    }
    Ok(out)
}

/// A check run (or comment) for each judged pull request that is merged or closed, listing
/// its standing findings and every decision record. Not for history read from GitHub's API
/// (unless its backfill asked for alerts).
async fn write_back_messages(
    tx: &mut PgConnection,
    outputs: &Outputs,
    mode: WriteBackMode,
    judged: &Judged<'_>,
) -> sqlx::Result<Vec<Message>> {
    if judged.pulls.is_empty() {
        return Ok(Vec::new());
    }
    let range = judged;
    let closes = sqlx::query(
        "SELECT DISTINCT ON (d.repo, d.pr_number)
                d.seq, d.kind, d.repo, d.repo_private, d.pr_number, p.head_sha, e.body
           FROM decisions d
           JOIN UNNEST($2::text[], $3::bigint[]) AS k(repo, n)
             ON d.repo = k.repo AND d.pr_number = k.n
           JOIN pull_requests p ON p.repo = d.repo AND p.number = d.pr_number
           JOIN log_entries e ON e.log_id = d.log_id AND e.seq = d.seq
          WHERE d.log_id = $1 AND d.kind IN ('pr.merged', 'pr.closed')
            AND (d.from_api IS NULL
                 OR coalesce((SELECT b.alert_history FROM backfill_jobs b WHERE b.repo = d.repo),
                             false))
          ORDER BY d.repo, d.pr_number, d.occurred_at DESC, d.seq DESC",
    )
    .bind(judged.log_id)
    .bind(judged.pulls.iter().map(|k| k.0.clone()).collect::<Vec<_>>())
    .bind(judged.pulls.iter().map(|k| k.1).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    if closes.is_empty() {
        return Ok(Vec::new());
    }
    let standing = sqlx::query(
        "SELECT f.repo, f.pr_number, f.rule, f.severity, f.message, f.seq FROM findings f
           JOIN UNNEST($2::text[], $3::bigint[]) AS k(repo, n)
             ON f.repo = k.repo AND f.pr_number = k.n
          WHERE f.log_id = $1 AND f.withdrawn_seq IS NULL ORDER BY f.seq",
    )
    .bind(judged.log_id)
    .bind(judged.pulls.iter().map(|k| k.0.clone()).collect::<Vec<_>>())
    .bind(judged.pulls.iter().map(|k| k.1).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
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
            findings: standing
                .iter()
                .filter(|f| {
                    f.get::<String, _>("repo") == repo && f.get::<i64, _>("pr_number") == number
                })
                .map(|f| FindingLine {
                    rule: f.get("rule"),
                    severity: f.get("severity"),
                    message: f.get("message"),
                    seq: f.get("seq"),
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

/// An answer to each `/decision` command among the entries judged (signed deliveries only:
/// a command read from history was answered then, or never).
async fn decision_replies(
    tx: &mut PgConnection,
    outputs: &Outputs,
    range: &Judged<'_>,
) -> sqlx::Result<Vec<Message>> {
    let commands = sqlx::query(
        "SELECT d.seq, d.repo, d.repo_private, d.pr_number, d.actor, d.body, e.body AS raw
           FROM decisions d JOIN log_entries e ON e.log_id = d.log_id AND e.seq = d.seq
          WHERE d.log_id = $1 AND d.seq >= $2 AND d.seq < $3 AND d.from_api IS NULL
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
