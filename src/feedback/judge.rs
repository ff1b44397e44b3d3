//! The judge: as decision records are projected, it applies the accountability rules to the
//! pull requests (and pushes) they touch and appends each new finding to the log as a
//! `verdict-finding` entry, hash-chained with the deliveries. A finding's delivery id names
//! the rule, the PR and the evidence, so judging the same records again appends nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use super::config::RuleConfig;
use super::facts::{self, PrKey};
use super::messages::{Outputs, Range, Recorded};
use super::rules::{self, Finding, PullFacts};
use crate::log::entry::{KIND_FINDING, body_hash};
use crate::log::{AppendError, NewEntry, Sequencer};
use crate::projections::findings::{FindingBody, FindingRepository};

/// How often the judge looks for newly projected decisions.
pub const INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("appending a finding: {0}")]
    Append(#[from] AppendError),
}

#[derive(Clone)]
pub struct Judge {
    pool: PgPool,
    sequencer: Sequencer,
    outputs: Arc<Outputs>,
    rules: Arc<RuleConfig>,
    /// Whether each round waits (boundedly) while the sequencer's intake is saturated.
    yields: bool,
}

impl Judge {
    /// `outputs` says which messages the judge writes to the outbox besides findings.
    pub fn new(pool: PgPool, sequencer: Sequencer, outputs: Arc<Outputs>) -> Judge {
        Judge {
            pool,
            sequencer,
            outputs,
            rules: Arc::new(RuleConfig::default()),
            yields: false,
        }
    }

    /// Steps aside before judging each log while the sequencer's intake is saturated (see
    /// [`crate::background::IntakeLoad::until_quiet`]): the server's judge.
    pub fn yielding_to_intake(mut self) -> Judge {
        self.yields = true;
        self
    }

    /// Judges with `rules` (scopes, severities, switched-off rules) instead of the defaults.
    pub fn with_rules(mut self, rules: Arc<RuleConfig>) -> Judge {
        self.rules = rules;
        self
    }

    /// Judges every decision projected since the last run; returns findings appended.
    pub async fn catch_up(&self) -> Result<u64, JudgeError> {
        let logs: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT l.id, l.name, coalesce(j.next_seq, 0), p.next_seq
               FROM logs l JOIN projection_cursors p ON p.log_id = l.id
               LEFT JOIN judge_cursors j ON j.log_id = l.id
              WHERE p.next_seq > coalesce(j.next_seq, 0)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut appended = 0;
        let mut failed = None;
        // One log the judge cannot finish now does not hold up the others.
        for (log_id, name, from, to) in logs {
            if self.yields {
                self.sequencer.load().until_quiet().await;
            }
            match self.judge_range(log_id, &name, from, to).await {
                Ok(n) => appended += n,
                Err(err) => {
                    tracing::warn!(log = %name, error = %err, "log not judged now; will retry");
                    failed.get_or_insert(err);
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(appended),
        }
    }

    async fn judge_range(
        &self,
        log_id: i64,
        log_name: &str,
        from: i64,
        to: i64,
    ) -> Result<u64, JudgeError> {
        // The PRs these entries touched, with what the rules need to know about them.
        let prs = sqlx::query(
            "SELECT DISTINCT p.repo, p.number, p.author, p.merged, p.merged_by, p.head_sha,
                    p.repo_private
               FROM decisions d JOIN pull_requests p ON p.repo = d.repo AND p.number = d.pr_number
              WHERE d.log_id = $1 AND d.seq >= $2 AND d.seq < $3",
        )
        .bind(log_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let keys: Vec<PrKey> = prs
            .iter()
            .map(|r| (r.get("repo"), r.get("number")))
            .collect();
        let facts = facts::load(&self.pool, &keys).await?;
        let mut found: Vec<(Finding, String, bool, Option<i64>)> = Vec::new();
        for r in &prs {
            let key: PrKey = (r.get("repo"), r.get("number"));
            let pr = PullFacts {
                author: r.get("author"),
                merged: r.get("merged"),
                merged_by: r.get("merged_by"),
                head_sha: r.get("head_sha"),
            };
            for f in rules::judge_pull(&pr, facts.get(&key).map(Vec::as_slice).unwrap_or(&[])) {
                found.push((f, key.0.clone(), r.get("repo_private"), Some(key.1)));
            }
        }
        let pushes = sqlx::query(
            "SELECT d.repo, d.repo_private, d.actor, d.details, d.seq FROM decisions d
              WHERE d.log_id = $1 AND d.seq >= $2 AND d.seq < $3 AND d.kind = 'push.forced'",
        )
        .bind(log_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        for p in &pushes {
            let record = (log_name.to_string(), p.get::<i64, _>("seq"));
            let actor: Option<String> = p.get("actor");
            if let Some(f) = rules::judge_push(actor.as_deref(), &p.get("details"), &record) {
                found.push((f, p.get("repo"), p.get("repo_private"), None));
            }
        }
        // The configured scope and severity of each rule.
        let found: Vec<_> = found
            .into_iter()
            .filter(|(f, repo, _, _)| self.rules.applies(f.rule, repo))
            .map(|(mut f, repo, private, pr)| {
                f.severity = self.rules.severity(rules::rule(f.rule));
                (f, repo, private, pr)
            })
            .collect();
        let mut appended = 0;
        let mut recorded = Vec::with_capacity(found.len());
        for (finding, repo, private, pr) in found {
            let body = FindingBody {
                rule: finding.rule.to_string(),
                severity: finding.severity.as_str().to_string(),
                message: finding.message.clone(),
                repository: FindingRepository {
                    full_name: repo.clone(),
                    private,
                },
                pull_request: pr,
                evidence: finding.evidence.clone(),
            };
            let bytes = serde_json::to_vec(&body).expect("a finding serializes");
            // Same rule, same PR, same evidence: same finding, stored once.
            let evidence_id = hex::encode(&Sha256::digest(finding.evidence.join(" "))[..8]);
            let target = pr.map(|n| format!("#{n}")).unwrap_or_default();
            let outcome = self
                .sequencer
                .append(NewEntry {
                    log_name: log_name.to_string(),
                    kind: KIND_FINDING.into(),
                    received_at: Utc::now(),
                    delivery_id: format!("{}:{repo}{target}:{evidence_id}", finding.rule),
                    event: finding.rule.to_string(),
                    hook_id: None,
                    installation_target_type: None,
                    installation_target_id: None,
                    signature: None,
                    body_sha256: body_hash(&bytes),
                    body: Bytes::from(bytes),
                    body_readable: true,
                })
                .await?;
            let seq = match outcome {
                crate::log::AppendOutcome::Appended { seq, .. } => {
                    appended += 1;
                    tracing::info!(
                        rule = finding.rule,
                        repo,
                        ?pr,
                        "finding recorded in the log"
                    );
                    seq
                }
                // Recorded by an earlier pass; its messages are written again below, and
                // the outbox keeps each once. (Only GitHub deliveries can be replays.)
                crate::log::AppendOutcome::Duplicate { seq, .. }
                | crate::log::AppendOutcome::Replay { seq, .. } => seq,
            } as i64;
            recorded.push(Recorded { body, seq });
        }
        // Messages and the cursor move together: a crash before the commit judges the
        // range again, which appends nothing new and writes no message twice.
        let mut tx = self.pool.begin().await?;
        let written = super::messages::write(
            &mut tx,
            &self.outputs,
            Range {
                log_id,
                log_name,
                from,
                to,
            },
            &recorded,
        )
        .await?;
        sqlx::query(
            "INSERT INTO judge_cursors (log_id, next_seq) VALUES ($1, $2)
             ON CONFLICT (log_id) DO UPDATE SET next_seq = greatest(judge_cursors.next_seq, EXCLUDED.next_seq)",
        )
        .bind(log_id)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if written > 0 {
            tracing::info!(written, log = log_name, "outbox messages written");
        }
        Ok(appended)
    }

    /// Runs in the background every [`INTERVAL`].
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(err) = self.catch_up().await {
                    tracing::warn!(error = %err, "judging paused; will retry");
                }
                tokio::time::sleep(INTERVAL).await;
            }
        })
    }
}
