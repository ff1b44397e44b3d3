//! The projector: reads log entries after each log's cursor and applies them to the
//! projection tables, in the background, never in the webhook's path. A page of entries and
//! the cursor move in one transaction, so a crash replays at most that page, idempotently.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::Notify;

use super::decisions::{self, Projected};
use crate::background::IntakeLoad;
use crate::log::entry::{
    GENESIS_PREV_HASH, Hash, KIND_ACK, KIND_FINDING, KIND_FINDING_WITHDRAWN, KIND_GITHUB_API,
    KIND_GITHUB_DELIVERY, KIND_RECONCILIATION,
};
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
    linking: super::features::FeatureLinking,
    page: i64,
    /// When set, each page waits (boundedly) while this intake is saturated.
    yield_to: Option<IntakeLoad>,
}

impl Projector {
    pub fn new(pool: PgPool, label_prefix: impl Into<String>) -> Self {
        Projector {
            pool,
            linking: super::features::FeatureLinking::labels(label_prefix),
            page: PAGE,
            yield_to: None,
        }
    }

    /// Also puts pull requests whose title or branch name holds a tracker key (Jira, Linear:
    /// `ABC-123`) matching `pattern` in the feature of that key.
    pub fn with_key_pattern(mut self, pattern: Option<regex::Regex>) -> Self {
        self.linking.key_pattern = pattern;
        self
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

    /// Applies every entry not yet projected, in every log. A log that cannot be projected
    /// now (its database work fails) does not hold up the others; the first such failure is
    /// returned once every log has had its turn.
    pub async fn catch_up(&self) -> sqlx::Result<CatchUp> {
        let logs: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM logs ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut total = CatchUp::default();
        let mut failed = None;
        for (log_id, name) in logs {
            loop {
                if let Some(load) = &self.yield_to {
                    load.until_quiet().await;
                }
                let page = match self.apply_page(log_id, &name).await {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::warn!(log = %name, error = %err, "log not projected now; will retry");
                        failed.get_or_insert(err);
                        break;
                    }
                };
                total.entries += page.entries;
                total.decisions += page.decisions;
                total.problems += page.problems;
                if page.entries < self.page as u64 {
                    break;
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(total),
        }
    }

    /// Empties the projections and rebuilds them from the log alone. Returns what the
    /// projections hold once rebuilt (a running `serve` may have projected part of it).
    pub async fn rebuild(&self) -> sqlx::Result<CatchUp> {
        sqlx::query(
            "TRUNCATE projection_cursors, decisions, pull_requests, features,
                      feature_pull_requests, projection_problems, repositories, findings,
                      finding_acks, reconciliations",
        )
        .execute(&self.pool)
        .await?;
        // Until every log is projected to its end (another process may hold a log's lock
        // for a moment).
        while {
            self.catch_up().await?;
            backlog(&self.pool).await? > 0
        } {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (entries, decisions, problems): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(next_seq), 0)::bigint FROM projection_cursors),
                    (SELECT count(*) FROM decisions), (SELECT count(*) FROM projection_problems)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(CatchUp {
            entries: entries as u64,
            decisions: decisions as u64,
            problems: problems as u64,
        })
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
        let mut page = Vec::new();
        for entry in &rows {
            last = Some(entry.seq);
            done.entries += 1;
            chain.check(log_name, entry);
            // A redacted entry is read through its redacted copy; without one, nothing is
            // derived from it any more.
            let readable;
            let entry = if entry.redacted {
                let Some(copy) = &entry.copy else { continue };
                readable = store::StoredEntry {
                    body: copy.clone(),
                    redacted: false,
                    ..entry.clone()
                };
                &readable
            } else {
                entry
            };
            match Work::of(entry, &self.linking) {
                Ok(Some(work)) => page.push(work),
                Ok(None) => {}
                Err(problem) => {
                    tracing::warn!(log_id, seq = entry.seq, delivery = %entry.delivery_id, %problem,
                        "entry not projected; it stays in the log");
                    record_problem(&mut tx, log_id, entry.seq as i64, &problem).await?;
                    done.problems += 1;
                }
            }
        }
        done.decisions = page.iter().map(Work::decisions).sum();
        // The page's writes, merged. If the database refuses any of them (a value it cannot
        // store), find the entry by writing them one by one: that entry is recorded as a
        // problem and skipped, the rest are projected, and the projector moves on.
        let mut attempt = (*tx).begin().await?;
        match write(&mut attempt, log_id, &page).await {
            Ok(()) => attempt.commit().await?,
            Err(err) if is_refusal(&err) => {
                attempt.rollback().await?;
                tracing::warn!(log_id, error = %err, "a page of projections was refused; writing its entries one by one");
                for work in &page {
                    let mut one = (*tx).begin().await?;
                    match write(&mut one, log_id, std::slice::from_ref(work)).await {
                        Ok(()) => one.commit().await?,
                        Err(err) if is_refusal(&err) => {
                            one.rollback().await?;
                            tracing::warn!(log_id, seq = work.seq(), error = %err,
                                "entry not projected: the database refused its values; it stays in the log");
                            let problem =
                                format!("the database refused this entry's projection: {err}");
                            record_problem(&mut tx, log_id, work.seq(), &problem).await?;
                            done.problems += 1;
                            done.decisions -= work.decisions();
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
            Err(err) => return Err(err),
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

/// What a GitHub entry (a delivery or an API object) projects to when read through `body`
/// (its body, or the redacted copy kept in its place): exactly what the projector derives.
pub fn project_github_entry(
    entry: &store::StoredEntry,
    body: &[u8],
    linking: &super::features::FeatureLinking,
) -> Result<Projected, String> {
    let readable = store::StoredEntry {
        body: body.to_vec(),
        redacted: false,
        copy: None,
        ..entry.clone()
    };
    match Work::of(&readable, linking)? {
        Some(Work::Delivery { projected, .. }) => Ok(*projected),
        _ => Ok(Projected::default()),
    }
}

/// Waits for the projector of `log_id` to finish its page and keeps it off that log until
/// this transaction ends: what a redaction re-derives must not race a page that read the
/// body before it was erased.
pub async fn hold_projector(tx: &mut PgConnection, log_id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(LOCK_NAMESPACE)
        .bind(log_id as i32)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Replaces the decision records entry `seq` of `log_id` derived with `decisions` (those its
/// redacted copy projects to; none when nothing of it is kept), as a rebuild would write them.
pub async fn rederive_decisions(
    tx: &mut PgConnection,
    log_id: i64,
    seq: i64,
    decisions: Vec<decisions::Decision>,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM decisions WHERE log_id = $1 AND seq = $2")
        .bind(log_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    let only = Projected {
        decisions,
        ..Projected::default()
    };
    super::writes::write_page(tx, log_id, &[(seq, &only)]).await
}

/// What one log entry asks of the projection tables.
enum Work {
    /// A GitHub delivery's decision records, pull request state and feature links.
    Delivery { seq: i64, projected: Box<Projected> },
    /// One of verdict's own entries: a finding or an acknowledgement.
    Verdict {
        seq: i64,
        kind: String,
        at: DateTime<Utc>,
        body: Vec<u8>,
    },
}

impl Work {
    /// What `entry` projects to, `None` for entries no projection reads, or the problem that
    /// keeps it from being projected.
    fn of(
        entry: &store::StoredEntry,
        linking: &super::features::FeatureLinking,
    ) -> Result<Option<Work>, String> {
        let seq = entry.seq as i64;
        match entry.kind.as_str() {
            KIND_FINDING | KIND_ACK | KIND_RECONCILIATION | KIND_FINDING_WITHDRAWN => {
                // Checked here, so only the database can refuse it later.
                let parsed = match entry.kind.as_str() {
                    KIND_FINDING => {
                        serde_json::from_slice::<super::findings::FindingBody>(&entry.body)
                            .map(|_| ())
                    }
                    KIND_ACK => {
                        serde_json::from_slice::<super::findings::AckBody>(&entry.body).map(|_| ())
                    }
                    KIND_FINDING_WITHDRAWN => {
                        serde_json::from_slice::<super::findings::WithdrawalBody>(&entry.body)
                            .map(|_| ())
                    }
                    _ => serde_json::from_slice::<super::coverage::ReconciliationBody>(&entry.body)
                        .map(|_| ()),
                };
                parsed.map_err(|e| super::findings::FindingError::Body(e).to_string())?;
                Ok(Some(Work::Verdict {
                    seq,
                    kind: entry.kind.clone(),
                    at: entry.received_at,
                    body: entry.body.clone(),
                }))
            }
            KIND_GITHUB_DELIVERY => {
                // Projection is pure: should it ever panic on a payload, that payload is this
                // entry's problem, and the projector (a long-lived task) lives on.
                let projected = std::panic::catch_unwind(|| {
                    decisions::project(&entry.event, &entry.body, entry.received_at, linking)
                })
                .map_err(|_| {
                    "projecting this payload failed inside verdict (a bug); it stays in the log"
                        .to_string()
                })?;
                projected
                    .map(|projected| {
                        Some(Work::Delivery {
                            seq,
                            projected: Box::new(projected),
                        })
                    })
                    .map_err(|e| e.to_string())
            }
            KIND_GITHUB_API => {
                let date = super::api::api_date(
                    entry.signature.as_deref().unwrap_or_default(),
                    entry.received_at,
                );
                let url = entry.hook_id.as_deref().unwrap_or_default();
                let projected = std::panic::catch_unwind(|| {
                    super::api::project(&entry.event, url, &entry.body, date, linking)
                })
                .map_err(|_| {
                    "projecting this object failed inside verdict (a bug); it stays in the log"
                        .to_string()
                })?;
                projected
                    .map(|projected| {
                        Some(Work::Delivery {
                            seq,
                            projected: Box::new(projected),
                        })
                    })
                    .map_err(|e| e.to_string())
            }
            _ => Ok(None),
        }
    }

    fn seq(&self) -> i64 {
        match self {
            Work::Delivery { seq, .. } | Work::Verdict { seq, .. } => *seq,
        }
    }

    fn decisions(&self) -> u64 {
        match self {
            Work::Delivery { projected, .. } => projected.decisions.len() as u64,
            Work::Verdict { .. } => 0,
        }
    }
}

/// Writes `page` (entries of one log, in log order) to the projection tables.
async fn write(tx: &mut PgConnection, log_id: i64, page: &[Work]) -> sqlx::Result<()> {
    let deliveries: Vec<(i64, &Projected)> = page
        .iter()
        .filter_map(|w| match w {
            Work::Delivery { seq, projected } => Some((*seq, &**projected)),
            Work::Verdict { .. } => None,
        })
        .collect();
    for work in page {
        if let Work::Verdict {
            seq,
            kind,
            at,
            body,
        } = work
        {
            let applied = match kind.as_str() {
                KIND_FINDING => super::findings::apply(tx, log_id, *seq, *at, body).await,
                KIND_ACK => super::findings::apply_ack(tx, log_id, *seq, *at, body).await,
                KIND_FINDING_WITHDRAWN => {
                    super::findings::apply_withdrawal(tx, log_id, *seq, *at, body).await
                }
                _ => super::coverage::apply(tx, log_id, *seq, *at, body).await,
            };
            applied.map_err(|e| match e {
                super::findings::FindingError::Database(e) => e,
                other => sqlx::Error::Protocol(other.to_string()),
            })?;
        }
    }
    super::writes::write_page(tx, log_id, &deliveries).await
}

/// Whether the database refused the values written (bad text, a limit, a constraint), as
/// opposed to being unreachable or overloaded: a refusal is the entry's problem and retrying
/// it would fail again, anything else is retried later.
fn is_refusal(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    !["08", "40", "53", "55", "57", "58", "XX"]
        .iter()
        .any(|class| code.starts_with(class))
}

async fn record_problem(
    tx: &mut PgConnection,
    log_id: i64,
    seq: i64,
    problem: &str,
) -> sqlx::Result<()> {
    let mut problem = problem.to_string();
    super::clean::text(&mut problem, super::clean::MAX_SHORT_BYTES);
    sqlx::query(
        "INSERT INTO projection_problems (log_id, seq, problem) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(log_id)
    .bind(seq)
    .bind(problem)
    .execute(&mut *tx)
    .await?;
    Ok(())
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
