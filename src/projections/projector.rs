//! The projector: reads log entries after each log's cursor and applies them to the
//! projection tables, in the background, never in the webhook's path. A page of entries and
//! the cursor move in one transaction, so a crash replays at most that page, idempotently.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::Notify;

use super::decisions::{self, Projected};
use super::features::LinkSource;
use crate::log::entry::{GENESIS_PREV_HASH, Hash};
use crate::log::store;
use crate::log::verify::check_entry;

/// Entries applied per transaction.
const PAGE: i64 = 200;
/// Namespace of the per-log projection lock (the sequencer uses another).
const LOCK_NAMESPACE: i32 = 0x7072_6f6a; // "proj"

/// What one catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    pub entries: u64,
    pub decisions: u64,
    pub problems: u64,
}

/// Applies the log to the projections.
#[derive(Clone)]
pub struct Projector {
    pool: PgPool,
    label_prefix: String,
}

impl Projector {
    pub fn new(pool: PgPool, label_prefix: impl Into<String>) -> Self {
        Projector {
            pool,
            label_prefix: label_prefix.into(),
        }
    }

    /// Applies every entry not yet projected, in every log.
    pub async fn catch_up(&self) -> sqlx::Result<CatchUp> {
        let logs: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM logs ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut total = CatchUp::default();
        for (log_id, name) in logs {
            loop {
                let page = self.apply_page(log_id, &name).await?;
                total.entries += page.entries;
                total.decisions += page.decisions;
                total.problems += page.problems;
                if page.entries < PAGE as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Empties the projections and rebuilds them from the log alone.
    pub async fn rebuild(&self) -> sqlx::Result<CatchUp> {
        sqlx::query(
            "TRUNCATE projection_cursors, decisions, pull_requests, features,
                      feature_pull_requests, projection_problems, repositories, findings,
                      finding_acks",
        )
        .execute(&self.pool)
        .await?;
        self.catch_up().await
    }

    /// Runs in the background: catches up whenever `wake` is notified, and every second.
    pub fn spawn(self, wake: Arc<Notify>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.catch_up().await {
                    Ok(c) if c.entries > 0 => {
                        tracing::debug!(entries = c.entries, decisions = c.decisions, "projected")
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "projection paused; will retry"),
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            }
        })
    }

    async fn apply_page(&self, log_id: i64, log_name: &str) -> sqlx::Result<CatchUp> {
        let mut tx = self.pool.begin().await?;
        // One projector per log at a time, across processes; others skip this log for now.
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(log_id as i32)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(CatchUp::default());
        }
        sqlx::query("INSERT INTO projection_cursors (log_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(log_id)
            .execute(&mut *tx)
            .await?;
        let cursor = sqlx::query(
            "SELECT next_seq, verified_size, verified_head, chain_problem
               FROM projection_cursors WHERE log_id = $1",
        )
        .bind(log_id)
        .fetch_one(&mut *tx)
        .await?;
        let next: i64 = cursor.get("next_seq");
        let mut chain = ChainCheck {
            size: cursor.get::<i64, _>("verified_size") as u64,
            head: cursor
                .get::<Option<Vec<u8>>, _>("verified_head")
                .and_then(|h| h.try_into().ok())
                .unwrap_or(GENESIS_PREV_HASH),
            problem: cursor.get("chain_problem"),
        };
        let rows = store::entries_from(&mut *tx, log_id, next as u64, PAGE).await?;
        let mut done = CatchUp::default();
        let mut last = None;
        for entry in &rows {
            last = Some(entry.seq);
            done.entries += 1;
            chain.check(log_name, entry);
            if entry.kind == crate::log::entry::KIND_FINDING
                || entry.kind == crate::log::entry::KIND_ACK
            {
                let (seq, at) = (entry.seq as i64, entry.received_at);
                let applied = if entry.kind == crate::log::entry::KIND_FINDING {
                    super::findings::apply(&mut tx, log_id, seq, at, &entry.body).await
                } else {
                    super::findings::apply_ack(&mut tx, log_id, seq, at, &entry.body).await
                };
                match applied {
                    Ok(()) => {}
                    Err(super::findings::FindingError::Database(e)) => return Err(e),
                    Err(problem) => {
                        done.problems += 1;
                        sqlx::query(
                            "INSERT INTO projection_problems (log_id, seq, problem) VALUES ($1, $2, $3)
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(log_id)
                        .bind(entry.seq as i64)
                        .bind(problem.to_string())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                continue;
            }
            if entry.kind != crate::log::KIND_GITHUB_DELIVERY {
                continue;
            }
            match decisions::project(
                &entry.event,
                &entry.body,
                entry.received_at,
                &self.label_prefix,
            ) {
                Ok(projected) => {
                    done.decisions += projected.decisions.len() as u64;
                    apply(&mut tx, log_id, entry.seq as i64, &projected).await?;
                }
                Err(problem) => {
                    done.problems += 1;
                    tracing::warn!(log_id, seq = entry.seq, delivery = %entry.delivery_id, %problem,
                        "entry not projected; it stays in the log");
                    sqlx::query(
                        "INSERT INTO projection_problems (log_id, seq, problem) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(log_id)
                    .bind(entry.seq as i64)
                    .bind(problem.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        if let Some(last) = last {
            sqlx::query(
                "UPDATE projection_cursors
                    SET next_seq = $2, verified_size = $3, verified_head = $4, chain_problem = $5
                  WHERE log_id = $1",
            )
            .bind(log_id)
            .bind(last as i64 + 1)
            .bind(chain.size as i64)
            .bind((chain.size > 0).then_some(&chain.head[..]))
            .bind(&chain.problem)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// The projector's running check of the chain: pages show how far it verifies.
struct ChainCheck {
    size: u64,
    head: Hash,
    problem: Option<String>,
}

impl ChainCheck {
    fn check(&mut self, log_name: &str, entry: &store::StoredEntry) {
        if self.problem.is_some() {
            return;
        }
        match check_entry(log_name, self.size, &self.head, entry) {
            Ok(hash) => {
                self.head = hash;
                self.size += 1;
            }
            Err(problem) => {
                tracing::error!(log = log_name, %problem, "the log's chain does not verify");
                self.problem = Some(problem.to_string());
            }
        }
    }
}

async fn apply(tx: &mut PgConnection, log_id: i64, seq: i64, p: &Projected) -> sqlx::Result<()> {
    let mut touched: Vec<(&str, bool, chrono::DateTime<chrono::Utc>)> = Vec::new();
    touched.extend(
        p.decisions
            .iter()
            .map(|d| (d.repo.as_str(), d.repo_private, d.occurred_at)),
    );
    touched.extend(
        p.pull_request
            .iter()
            .map(|pr| (pr.repo.as_str(), pr.repo_private, pr.updated_at)),
    );
    for (repo, private, at) in touched {
        sqlx::query(
            "INSERT INTO repositories (repo, log_id, private, last_activity) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo) DO UPDATE SET private = EXCLUDED.private,
                 last_activity = greatest(repositories.last_activity, EXCLUDED.last_activity)",
        )
        .bind(repo)
        .bind(log_id)
        .bind(private)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    for (ordinal, d) in p.decisions.iter().enumerate() {
        sqlx::query(
            "INSERT INTO decisions (log_id, seq, ordinal, repo, repo_private, pr_number, kind,
                 actor, occurred_at, commit_sha, body, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT DO NOTHING",
        )
        .bind(log_id)
        .bind(seq)
        .bind(ordinal as i32)
        .bind(&d.repo)
        .bind(d.repo_private)
        .bind(d.pr_number)
        .bind(&d.kind)
        .bind(&d.actor)
        .bind(d.occurred_at)
        .bind(&d.commit_sha)
        .bind(&d.body)
        .bind(&d.details)
        .execute(&mut *tx)
        .await?;
    }
    let mut newest_pr_state = false;
    if let Some(pr) = &p.pull_request {
        // Only a newer state replaces the stored one: deliveries may arrive out of order.
        let stored: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
            "SELECT updated_at FROM pull_requests WHERE repo = $1 AND number = $2",
        )
        .bind(&pr.repo)
        .bind(pr.number)
        .fetch_optional(&mut *tx)
        .await?;
        newest_pr_state = stored.is_none_or(|t| pr.updated_at >= t);
        if newest_pr_state {
            sqlx::query(
                "INSERT INTO pull_requests (repo, number, repo_private, title, author, state, draft,
                     merged, merged_by, merged_at, merge_commit_sha, head_sha, base_ref, html_url,
                     body, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT (repo, number) DO UPDATE SET repo_private = EXCLUDED.repo_private,
                     title = EXCLUDED.title, author = EXCLUDED.author, state = EXCLUDED.state,
                     draft = EXCLUDED.draft, merged = EXCLUDED.merged, merged_by = EXCLUDED.merged_by,
                     merged_at = EXCLUDED.merged_at, merge_commit_sha = EXCLUDED.merge_commit_sha,
                     head_sha = EXCLUDED.head_sha, base_ref = EXCLUDED.base_ref,
                     html_url = EXCLUDED.html_url, body = EXCLUDED.body, updated_at = EXCLUDED.updated_at",
            )
            .bind(&pr.repo)
            .bind(pr.number)
            .bind(pr.repo_private)
            .bind(&pr.title)
            .bind(&pr.author)
            .bind(&pr.state)
            .bind(pr.draft)
            .bind(pr.merged)
            .bind(&pr.merged_by)
            .bind(pr.merged_at)
            .bind(&pr.merge_commit_sha)
            .bind(&pr.head_sha)
            .bind(&pr.base_ref)
            .bind(&pr.html_url)
            .bind(&pr.body)
            .bind(pr.updated_at)
            .execute(&mut *tx)
            .await?;
            // The PR's feature links are those its newest state shows.
            sqlx::query("DELETE FROM feature_pull_requests WHERE pr_repo = $1 AND pr_number = $2")
                .bind(&pr.repo)
                .bind(pr.number)
                .execute(&mut *tx)
                .await?;
        }
    }
    for link in &p.features {
        let by_issue = link.source == LinkSource::IssueTitle;
        sqlx::query(
            "INSERT INTO features (repo, key, title, titled_by_issue) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repo, key) DO UPDATE
                SET title = EXCLUDED.title, titled_by_issue = true
              WHERE EXCLUDED.titled_by_issue",
        )
        .bind(&link.repo)
        .bind(&link.key)
        .bind(&link.title)
        .bind(by_issue)
        .execute(&mut *tx)
        .await?;
        if let (Some(number), Some(pr)) = (link.pr_number, &p.pull_request)
            && newest_pr_state
        {
            sqlx::query(
                "INSERT INTO feature_pull_requests (repo, key, pr_repo, pr_number, source)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&link.repo)
            .bind(&link.key)
            .bind(&pr.repo)
            .bind(number)
            .bind(link.source.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// How many entries of each log are not yet projected (for health and tests).
pub async fn backlog(pool: &PgPool) -> sqlx::Result<i64> {
    let row = sqlx::query(
        "SELECT coalesce(sum(t.size - coalesce(c.next_seq, 0)), 0)::bigint FROM
           (SELECT log_id, max(seq) + 1 AS size FROM log_entries GROUP BY log_id) t
           LEFT JOIN projection_cursors c ON c.log_id = t.log_id",
    )
    .fetch_one(pool)
    .await?;
    Ok(row.get(0))
}
