//! The projector: reads log entries after each log's cursor and applies them to the
//! projection tables, in the background, never in the webhook's path. A page of entries and
//! the cursor move in one transaction, so a crash replays at most that page, idempotently.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgPool, Row};
use tokio::sync::Notify;

use super::decisions;
use crate::background::IntakeLoad;
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
    page: i64,
    /// When set, each page waits (boundedly) while this intake is saturated.
    yield_to: Option<IntakeLoad>,
}

impl Projector {
    pub fn new(pool: PgPool, label_prefix: impl Into<String>) -> Self {
        Projector {
            pool,
            label_prefix: label_prefix.into(),
            page: PAGE,
            yield_to: None,
        }
    }

    /// Steps aside before each page while `load` says intake is saturated (see
    /// [`IntakeLoad::until_quiet`]): the server's projector, not `reproject`.
    pub fn yielding_to(mut self, load: IntakeLoad) -> Self {
        self.yield_to = Some(load);
        self
    }

    /// Applies at most `entries` per transaction (default 200). A page's writes are merged
    /// before they reach the database; the tables come out the same whatever the page size.
    pub fn with_page_size(mut self, entries: i64) -> Self {
        self.page = entries.max(1);
        self
    }

    /// Applies every entry not yet projected, in every log.
    pub async fn catch_up(&self) -> sqlx::Result<CatchUp> {
        let logs: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM logs ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut total = CatchUp::default();
        for (log_id, name) in logs {
            loop {
                if let Some(load) = &self.yield_to {
                    load.until_quiet().await;
                }
                let page = self.apply_page(log_id, &name).await?;
                total.entries += page.entries;
                total.decisions += page.decisions;
                total.problems += page.problems;
                if page.entries < self.page as u64 {
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
        let rows = store::entries_from(&mut *tx, log_id, next as u64, self.page).await?;
        let mut done = CatchUp::default();
        let mut last = None;
        let mut projected_page = Vec::new();
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
                    projected_page.push((entry.seq as i64, projected));
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
        super::writes::write_page(&mut tx, log_id, &projected_page).await?;
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

/// How many entries of all logs are not yet projected (for health and tests). Each log's
/// size is one probe of the primary key, so asking often costs nothing as the log grows.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<i64> {
    let row = sqlx::query(
        "SELECT coalesce(sum(t.size - coalesce(c.next_seq, 0)), 0)::bigint FROM
           (SELECT l.id AS log_id, coalesce((SELECT e.seq + 1 FROM log_entries e
                                              WHERE e.log_id = l.id
                                              ORDER BY e.seq DESC LIMIT 1), 0) AS size
              FROM logs l) t
           LEFT JOIN projection_cursors c ON c.log_id = t.log_id",
    )
    .fetch_one(pool)
    .await?;
    Ok(row.get(0))
}
