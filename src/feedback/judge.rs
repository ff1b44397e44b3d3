//! The judge: as decision records are projected, it applies the accountability rules to the
//! pull requests (and pushes) they touch and keeps the findings in the log true.
//!
//! - A pull request is judged once it has **settled**: `settle` after the arrival of its last
//!   record (GitHub does not order deliveries; catch-up and backfill deliver the past after
//!   the present, and a merge judged before its approval arrives would be wrong).
//! - A rule that finds something the PR has no standing finding for appends a
//!   `verdict-finding` entry, hash-chained with the deliveries; its delivery id names the
//!   rule, the PR and the evidence, so judging the same records again appends nothing.
//! - A standing finding the rules no longer make is withdrawn by a
//!   `verdict-finding-withdrawn` entry citing the records that arrived after it. Findings are
//!   never edited.
//! - Forced pushes (no pull request) are judged at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use super::config::RuleConfig;
use super::facts::{self, PrKey};
use super::messages::{Judged, Outputs, Recorded, Withdrawn};
use super::rules::{self, Finding, PullFacts};
use crate::log::entry::{KIND_FINDING, KIND_FINDING_WITHDRAWN, body_hash};
use crate::log::{AppendError, AppendOutcome, NewEntry, Sequencer};
use crate::projections::findings::{
    self as projected, FindingBody, FindingRepository, WithdrawalBody,
};

/// How often the judge looks for newly projected decisions.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// How long after a pull request's last record the server's judge waits before judging it.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(60);

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
    /// How long after a pull request's last record it is judged.
    settle: Duration,
}

/// A finding about to be recorded, with what it is about.
struct Found {
    finding: Finding,
    repo: String,
    private: bool,
    pr: Option<i64>,
    /// About history from GitHub's API: recorded, not alerted (unless asked).
    history: bool,
    quiet: bool,
}

impl Judge {
    /// `outputs` says which messages the judge writes to the outbox besides findings. Judges
    /// at once (no settle window) unless told otherwise.
    pub fn new(pool: PgPool, sequencer: Sequencer, outputs: Arc<Outputs>) -> Judge {
        Judge {
            pool,
            sequencer,
            outputs,
            rules: Arc::new(RuleConfig::default()),
            yields: false,
            settle: Duration::ZERO,
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

    /// Waits `settle` after a pull request's last record before judging it.
    pub fn settling(mut self, settle: Duration) -> Judge {
        self.settle = settle;
        self
    }

    /// Judges every decision projected since the last run and every pull request that has
    /// settled; returns findings appended and withdrawn.
    pub async fn catch_up(&self) -> Result<u64, JudgeError> {
        let logs: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT l.id, l.name, coalesce(j.next_seq, 0), p.next_seq
               FROM logs l JOIN projection_cursors p ON p.log_id = l.id
               LEFT JOIN judge_cursors j ON j.log_id = l.id
              WHERE p.next_seq > coalesce(j.next_seq, 0)
                 OR EXISTS (SELECT 1 FROM judge_pending q WHERE q.log_id = l.id AND q.due_at <= now())",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut changed = 0;
        let mut failed = None;
        // One log the judge cannot finish now does not hold up the others.
        for (log_id, name, from, to) in logs {
            if self.yields {
                self.sequencer.load().until_quiet().await;
            }
            match self.judge_log(log_id, &name, from, to.max(from)).await {
                Ok(n) => changed += n,
                Err(err) => {
                    tracing::warn!(log = %name, error = %err, "log not judged now; will retry");
                    failed.get_or_insert(err);
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(changed),
        }
    }

    /// Marks the PRs entries `from..to` touched as pending until they settle, judges the
    /// forced pushes among them and every PR now due, and writes the messages.
    async fn judge_log(
        &self,
        log_id: i64,
        log_name: &str,
        from: i64,
        to: i64,
    ) -> Result<u64, JudgeError> {
        if to > from {
            sqlx::query(
                "INSERT INTO judge_pending (log_id, repo, pr_number, due_at)
                 SELECT $1, d.repo, d.pr_number, max(e.received_at) + make_interval(secs => $4)
                   FROM decisions d JOIN log_entries e ON e.log_id = d.log_id AND e.seq = d.seq
                  WHERE d.log_id = $1 AND d.seq >= $2 AND d.seq < $3 AND d.pr_number IS NOT NULL
                  GROUP BY d.repo, d.pr_number
                 ON CONFLICT (log_id, repo, pr_number)
                 DO UPDATE SET due_at = greatest(judge_pending.due_at, EXCLUDED.due_at)",
            )
            .bind(log_id)
            .bind(from)
            .bind(to)
            .bind(self.settle.as_secs_f64())
            .execute(&self.pool)
            .await?;
        }
        let due: Vec<PrKey> = sqlx::query_as(
            "SELECT repo, pr_number FROM judge_pending
              WHERE log_id = $1 AND due_at <= now() ORDER BY repo, pr_number",
        )
        .bind(log_id)
        .fetch_all(&self.pool)
        .await?;
        let mut found = self.judge_pulls(&due).await?;
        found.extend(self.judge_pushes(log_id, log_name, from, to).await?);
        let found: Vec<Found> = found
            .into_iter()
            .filter(|f| self.rules.applies(f.finding.rule, &f.repo))
            .map(|mut f| {
                f.finding.severity = self.rules.severity(rules::rule(f.finding.rule));
                f
            })
            .collect();

        // What the PRs' standing findings say now: new ones are recorded, ones no longer true
        // withdrawn.
        let mut changed = 0;
        let mut recorded = Vec::new();
        let mut withdrawn = Vec::new();
        let standing = self.standing(log_id, &due).await?;
        for f in &found {
            let already = f.pr.is_some()
                && standing
                    .iter()
                    .any(|s| s.repo == f.repo && Some(s.pr) == f.pr && s.rule == f.finding.rule);
            if already {
                continue;
            }
            let (finding, new) = self.record(log_id, log_name, f).await?;
            changed += u64::from(new);
            recorded.push(finding);
        }
        for s in &standing {
            let still = found
                .iter()
                .any(|f| f.repo == s.repo && f.pr == Some(s.pr) && f.finding.rule == s.rule);
            if !still {
                withdrawn.push(self.withdraw(log_id, log_name, s).await?);
                changed += 1;
            }
        }
        // Messages, the cursor and the judged PRs move together: a crash before the commit
        // judges them again, which appends nothing new and writes no message twice.
        let mut tx = self.pool.begin().await?;
        let written = super::messages::write(
            &mut tx,
            &self.outputs,
            Judged {
                log_id,
                log_name,
                from,
                to,
                pulls: &due,
                findings: &recorded,
                withdrawn: &withdrawn,
            },
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
        sqlx::query(
            "DELETE FROM judge_pending p USING UNNEST($2::text[], $3::bigint[]) AS k(repo, n)
              WHERE p.log_id = $1 AND p.repo = k.repo AND p.pr_number = k.n AND p.due_at <= now()",
        )
        .bind(log_id)
        .bind(due.iter().map(|k| k.0.clone()).collect::<Vec<_>>())
        .bind(due.iter().map(|k| k.1).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if written > 0 {
            tracing::info!(written, log = log_name, "outbox messages written");
        }
        Ok(changed)
    }

    /// What the rules find about each of `prs` now.
    async fn judge_pulls(&self, prs: &[PrKey]) -> Result<Vec<Found>, JudgeError> {
        if prs.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT p.repo, p.number, p.author, p.merged, p.merged_by, p.head_sha, p.repo_private,
                    coalesce((SELECT d.from_api IS NOT NULL FROM decisions d
                               WHERE d.repo = p.repo AND d.pr_number = p.number
                                 AND d.kind IN ('pr.merged', 'pr.closed')
                               ORDER BY d.occurred_at DESC LIMIT 1), false) AS history,
                    coalesce((SELECT b.alert_history FROM backfill_jobs b WHERE b.repo = p.repo),
                             false) AS alert_history
               FROM pull_requests p JOIN UNNEST($1::text[], $2::bigint[]) AS k(repo, n)
                 ON p.repo = k.repo AND p.number = k.n",
        )
        .bind(prs.iter().map(|k| k.0.clone()).collect::<Vec<_>>())
        .bind(prs.iter().map(|k| k.1).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        let keys: Vec<PrKey> = rows
            .iter()
            .map(|r| (r.get("repo"), r.get("number")))
            .collect();
        let facts = facts::load(&self.pool, &keys).await?;
        let mut found = Vec::new();
        for r in &rows {
            let key: PrKey = (r.get("repo"), r.get("number"));
            let pr = PullFacts {
                author: r.get("author"),
                merged: r.get("merged"),
                merged_by: r.get("merged_by"),
                head_sha: r.get("head_sha"),
            };
            let history: bool = r.get("history");
            let alert_history: bool = r.get("alert_history");
            for finding in rules::judge_pull(&pr, facts.get(&key).map(Vec::as_slice).unwrap_or(&[]))
            {
                found.push(Found {
                    finding,
                    repo: key.0.clone(),
                    private: r.get("repo_private"),
                    pr: Some(key.1),
                    history,
                    quiet: history && !alert_history,
                });
            }
        }
        Ok(found)
    }

    /// What the rules find about the forced pushes among entries `from..to`.
    async fn judge_pushes(
        &self,
        log_id: i64,
        log_name: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Found>, JudgeError> {
        let pushes = sqlx::query(
            "SELECT d.repo, d.repo_private, d.actor, d.details, d.seq FROM decisions d
              WHERE d.log_id = $1 AND d.seq >= $2 AND d.seq < $3 AND d.kind = 'push.forced'",
        )
        .bind(log_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut found = Vec::new();
        for p in &pushes {
            let record = (log_name.to_string(), p.get::<i64, _>("seq"));
            let actor: Option<String> = p.get("actor");
            if let Some(finding) = rules::judge_push(actor.as_deref(), &p.get("details"), &record) {
                found.push(Found {
                    finding,
                    repo: p.get("repo"),
                    private: p.get("repo_private"),
                    pr: None,
                    history: false,
                    quiet: false,
                });
            }
        }
        Ok(found)
    }

    /// The findings of `prs` that stand (not withdrawn).
    async fn standing(&self, log_id: i64, prs: &[PrKey]) -> Result<Vec<Standing>, JudgeError> {
        let rows = sqlx::query(
            "SELECT f.seq, f.rule, f.repo, f.pr_number, f.repo_private
               FROM findings f JOIN UNNEST($2::text[], $3::bigint[]) AS k(repo, n)
                 ON f.repo = k.repo AND f.pr_number = k.n
              WHERE f.log_id = $1 AND f.withdrawn_seq IS NULL
              ORDER BY f.seq",
        )
        .bind(log_id)
        .bind(prs.iter().map(|k| k.0.clone()).collect::<Vec<_>>())
        .bind(prs.iter().map(|k| k.1).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Standing {
                seq: r.get("seq"),
                rule: r.get("rule"),
                repo: r.get("repo"),
                pr: r.get("pr_number"),
                private: r.get("repo_private"),
            })
            .collect())
    }

    /// Appends `f` (once: the same rule, PR and evidence are the same finding) and shows it
    /// in the findings table at once. Returns where it is and whether it is new.
    async fn record(
        &self,
        log_id: i64,
        log_name: &str,
        f: &Found,
    ) -> Result<(Recorded, bool), JudgeError> {
        let body = FindingBody {
            rule: f.finding.rule.to_string(),
            severity: f.finding.severity.as_str().to_string(),
            message: f.finding.message.clone(),
            repository: FindingRepository {
                full_name: f.repo.clone(),
                private: f.private,
            },
            pull_request: f.pr,
            evidence: f.finding.evidence.clone(),
            history: f.history,
        };
        let bytes = serde_json::to_vec(&body).expect("a finding serializes");
        let evidence_id = hex::encode(&Sha256::digest(f.finding.evidence.join(" "))[..8]);
        let target = f.pr.map(|n| format!("#{n}")).unwrap_or_default();
        let received_at = micros(Utc::now());
        let outcome = self
            .sequencer
            .append(NewEntry {
                log_name: log_name.to_string(),
                kind: KIND_FINDING.into(),
                received_at,
                delivery_id: format!("{}:{}{target}:{evidence_id}", f.finding.rule, f.repo),
                event: f.finding.rule.to_string(),
                hook_id: None,
                installation_target_type: None,
                installation_target_id: None,
                signature: None,
                body_sha256: body_hash(&bytes),
                body: Bytes::from(bytes),
                body_readable: true,
            })
            .await?;
        let new = matches!(outcome, AppendOutcome::Appended { .. });
        let seq = outcome.position().1 as i64;
        if new {
            tracing::info!(rule = f.finding.rule, repo = %f.repo, pr = ?f.pr, history = f.history,
                "finding recorded in the log");
            let mut conn = self.pool.acquire().await?;
            projected::record(&mut conn, log_id, seq, received_at, &body).await?;
        }
        Ok((
            Recorded {
                body,
                seq,
                quiet: f.quiet,
            },
            new,
        ))
    }

    /// Appends the withdrawal of a standing finding the rules no longer make, citing the
    /// records of its PR that arrived after it.
    async fn withdraw(
        &self,
        log_id: i64,
        log_name: &str,
        s: &Standing,
    ) -> Result<Withdrawn, JudgeError> {
        let later: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT seq FROM decisions
              WHERE log_id = $1 AND repo = $2 AND pr_number = $3 AND seq > $4 ORDER BY seq",
        )
        .bind(log_id)
        .bind(&s.repo)
        .bind(s.pr)
        .bind(s.seq)
        .fetch_all(&self.pool)
        .await?;
        let body = WithdrawalBody {
            finding_seq: s.seq,
            rule: s.rule.clone(),
            reason: format!(
                "{} no longer holds: records that arrived after the finding show otherwise",
                s.rule
            ),
            evidence: later
                .iter()
                .map(|seq| format!("/records/{log_name}/{seq}"))
                .collect(),
            repository: FindingRepository {
                full_name: s.repo.clone(),
                private: s.private,
            },
            pull_request: Some(s.pr),
        };
        let bytes = serde_json::to_vec(&body).expect("a withdrawal serializes");
        let received_at = micros(Utc::now());
        let outcome = self
            .sequencer
            .append(NewEntry {
                log_name: log_name.to_string(),
                kind: KIND_FINDING_WITHDRAWN.into(),
                received_at,
                delivery_id: format!("withdrawn:{log_name}:{}", s.seq),
                event: s.rule.clone(),
                hook_id: None,
                installation_target_type: None,
                installation_target_id: None,
                signature: None,
                body_sha256: body_hash(&bytes),
                body: Bytes::from(bytes),
                body_readable: true,
            })
            .await?;
        let seq = outcome.position().1 as i64;
        tracing::info!(rule = %s.rule, repo = %s.repo, pr = s.pr, finding = s.seq,
            "finding withdrawn in the log");
        let mut conn = self.pool.acquire().await?;
        projected::withdraw(&mut conn, log_id, seq, received_at, &body).await?;
        Ok(Withdrawn { body, seq })
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

/// A finding of the log that stands.
struct Standing {
    seq: i64,
    rule: String,
    repo: String,
    pr: i64,
    private: bool,
}

fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
