//! Catch-up of missed deliveries. GitHub does not retry a failed delivery by itself: it keeps
//! each attempt for about three days and lists them through the App's API. Every few minutes
//! (and on `verdict catch-up`) verdict lists the deliveries GitHub made since the last
//! reconciliation, asks GitHub to send again each delivery GUID the log does not hold (the
//! redelivery then arrives through the signed endpoint like any other), and writes what it
//! checked to each affected account's log as a `verdict-reconciliation` entry. When the last
//! reconciliation is older than what GitHub still lists, the stretch in between can no longer
//! be checked: the next reconciliation records it as a coverage gap, for auditors to see.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;

use super::account::FALLBACK_LOG;
use crate::github::app::{ApiError, As, GitHubApp, Patience};
use crate::log::entry::{KIND_RECONCILIATION, body_hash};
use crate::log::{AppendError, NewEntry, Sequencer};
use crate::projections::coverage::{FailedRequest, ReconciliationBody, Window};

/// How far back the first reconciliation looks (GitHub keeps deliveries for about 3 days).
pub const FIRST_LOOKBACK: chrono::Duration = chrono::Duration::hours(72);
/// Deliveries younger than this may still be on their way: they are left to the next run.
pub const IN_FLIGHT: chrono::Duration = chrono::Duration::minutes(1);
/// Each window starts this much before the last one ended, so a delivery GitHub dates just
/// before the boundary is not missed.
pub const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);
/// A redelivery asked for is not asked for again while this young.
pub const PENDING: chrono::Duration = chrono::Duration::minutes(30);
/// Pages of GitHub's delivery list read at most in one run (100 each).
const MAX_PAGES: usize = 500;
/// Namespace of the advisory lock that keeps one catch-up running at a time.
const LOCK: i64 = 0x6361_7463_6875_7000; // "catchup"

/// One delivery attempt as GitHub lists it (`GET /app/hook/deliveries`).
#[derive(Debug, Clone, Deserialize)]
pub struct HookDelivery {
    pub id: u64,
    pub guid: String,
    pub delivered_at: DateTime<Utc>,
    #[serde(default)]
    pub redelivery: bool,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub event: String,
    pub installation_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Installation {
    id: u64,
    account: Option<Account>,
}

#[derive(Debug, Deserialize)]
struct Account {
    login: String,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CatchUpReport {
    pub window: Option<Window>,
    pub listed: usize,
    pub already_logged: usize,
    pub requested: Vec<String>,
    pub failed: Vec<String>,
    pub gap: Option<Window>,
    /// Reconciliation entries appended.
    pub entries: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    GitHub(#[from] ApiError),
    #[error("the database could not answer: {0}")]
    Database(#[from] sqlx::Error),
    #[error("appending a reconciliation: {0}")]
    Append(#[from] AppendError),
}

/// Reconciles GitHub's list of the App's deliveries with the log.
#[derive(Clone)]
pub struct CatchUp {
    pool: PgPool,
    app: Arc<GitHubApp>,
    sequencer: Sequencer,
}

impl CatchUp {
    pub fn new(pool: PgPool, app: Arc<GitHubApp>, sequencer: Sequencer) -> CatchUp {
        CatchUp {
            pool,
            app,
            sequencer,
        }
    }

    /// One reconciliation; `None` when another process is running one.
    pub async fn run_once(&self) -> Result<Option<CatchUpReport>, CatchUpError> {
        let mut lock = self.pool.acquire().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK)
            .fetch_one(&mut *lock)
            .await?;
        if !locked {
            return Ok(None);
        }
        let result = self.reconcile().await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK)
            .execute(&mut *lock)
            .await;
        result.map(Some)
    }

    async fn reconcile(&self) -> Result<CatchUpReport, CatchUpError> {
        let now = Utc::now();
        let last: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT reconciled_through FROM catch_up_state")
                .fetch_optional(&self.pool)
                .await?;
        let end = now - IN_FLIGHT;
        let start = match last {
            Some(last) => last - OVERLAP,
            None => now - FIRST_LOOKBACK,
        };

        // GitHub lists attempts newest first; read back to the window's start.
        let mut attempts: Vec<HookDelivery> = Vec::new();
        let mut reached_start = false;
        let mut url = Some("/app/hook/deliveries?per_page=100".to_string());
        for _ in 0..MAX_PAGES {
            let Some(page_url) = url.take() else { break };
            let answer = self
                .app
                .fetch(As::App, &page_url, Patience::default())
                .await?;
            let page: Vec<HookDelivery> = answer.json()?;
            for d in page {
                if d.delivered_at < start {
                    reached_start = true;
                    break;
                }
                attempts.push(d);
            }
            if reached_start {
                break;
            }
            url = answer.next_page();
        }
        // GitHub's list ended before reaching the last reconciliation: what lies between can
        // no longer be checked.
        let gap = match last {
            Some(last) if !reached_start => {
                let oldest = attempts.iter().map(|d| d.delivered_at).min().unwrap_or(end);
                (oldest > last).then_some(Window {
                    from: last,
                    to: oldest,
                })
            }
            _ => None,
        };
        let window = Window {
            from: gap.map_or(start, |g| g.to).min(end),
            to: end,
        };
        attempts.retain(|d| d.delivered_at <= end);

        // Per GUID, its newest attempt (the one to redeliver).
        let mut newest: BTreeMap<String, HookDelivery> = BTreeMap::new();
        for d in attempts {
            match newest.get(&d.guid) {
                Some(held) if held.delivered_at >= d.delivered_at && held.id >= d.id => {}
                _ => {
                    newest.insert(d.guid.clone(), d);
                }
            }
        }
        let guids: Vec<String> = newest.keys().cloned().collect();
        let logged: Vec<String> = sqlx::query_scalar(
            "SELECT delivery_id FROM log_entries WHERE kind = 'github-delivery'
                AND delivery_id = ANY($1)",
        )
        .bind(&guids)
        .fetch_all(&self.pool)
        .await?;
        let pending: Vec<String> = sqlx::query_scalar(
            "SELECT guid FROM redelivery_requests WHERE guid = ANY($1) AND outcome = 'requested'
                AND requested_at > now() - make_interval(secs => $2)",
        )
        .bind(&guids)
        .bind(PENDING.num_seconds() as f64)
        .fetch_all(&self.pool)
        .await?;

        // Ask GitHub to send again each GUID the log lacks (once while a request is pending).
        let mut requested = Vec::new();
        let mut failed: Vec<FailedRequest> = Vec::new();
        for (guid, d) in &newest {
            if logged.contains(guid) || pending.contains(guid) {
                continue;
            }
            let url = format!("/app/hook/deliveries/{}/attempts", d.id);
            let outcome = self
                .app
                .request(As::App, axum::http::Method::POST, &url, None)
                .await;
            let error = match outcome {
                Ok(a) if a.is_success() => None,
                Ok(a) => Some(format!(
                    "HTTP {}: {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
                Err(e) => Some(e.to_string()),
            };
            sqlx::query(
                "INSERT INTO redelivery_requests (guid, attempt_id, event, installation_id,
                     outcome, error)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (guid) DO UPDATE SET attempt_id = EXCLUDED.attempt_id,
                     requested_at = now(), outcome = EXCLUDED.outcome, error = EXCLUDED.error",
            )
            .bind(guid)
            .bind(d.id as i64)
            .bind(&d.event)
            .bind(d.installation_id.map(|i| i as i64))
            .bind(if error.is_none() {
                "requested"
            } else {
                "failed"
            })
            .bind(&error)
            .execute(&self.pool)
            .await?;
            match error {
                None => requested.push(guid.clone()),
                Some(error) => {
                    tracing::warn!(guid, %error, "GitHub did not accept a redelivery request");
                    failed.push(FailedRequest {
                        guid: guid.clone(),
                        error,
                    });
                }
            }
        }

        // Each account (log) the deliveries belong to gets its own account of the window.
        let accounts = self.installation_accounts().await?;
        let log_of = |d: &HookDelivery| {
            d.installation_id
                .and_then(|i| accounts.get(&i).cloned())
                .unwrap_or_else(|| FALLBACK_LOG.to_string())
        };
        let mut per_log: BTreeMap<String, ReconciliationBody> = BTreeMap::new();
        let blank = || ReconciliationBody {
            window,
            listed: 0,
            already_logged: 0,
            redelivery_requested: Vec::new(),
            redelivery_failed: Vec::new(),
            coverage_gap: gap,
        };
        for (guid, d) in &newest {
            let r = per_log.entry(log_of(d)).or_insert_with(blank);
            r.listed += 1;
            if logged.contains(guid) {
                r.already_logged += 1;
            }
            if requested.contains(guid) {
                r.redelivery_requested.push(guid.clone());
            }
            if let Some(f) = failed.iter().find(|f| &f.guid == guid) {
                r.redelivery_failed.push(f.clone());
            }
        }
        // A gap may hide deliveries of any account: every account the App is installed on
        // hears of it.
        if gap.is_some() {
            for account in accounts.values() {
                per_log.entry(account.clone()).or_insert_with(blank);
            }
        }
        let mut entries = 0;
        for (log, body) in &per_log {
            let bytes = serde_json::to_vec(body).expect("a reconciliation serializes");
            self.sequencer
                .append(NewEntry {
                    log_name: log.clone(),
                    kind: KIND_RECONCILIATION.into(),
                    received_at: micros(now),
                    delivery_id: format!("reconciliation:{log}:{}", window.to.timestamp_micros()),
                    event: "reconciliation".into(),
                    hook_id: None,
                    installation_target_type: None,
                    installation_target_id: None,
                    signature: None,
                    body_sha256: body_hash(&bytes),
                    body: Bytes::from(bytes),
                    body_readable: true,
                })
                .await?;
            entries += 1;
        }
        sqlx::query(
            "INSERT INTO catch_up_state (reconciled_through) VALUES ($1)
             ON CONFLICT (singleton) DO UPDATE SET reconciled_through = EXCLUDED.reconciled_through",
        )
        .bind(end)
        .execute(&self.pool)
        .await?;
        let report = CatchUpReport {
            window: Some(window),
            listed: newest.len(),
            already_logged: logged.len(),
            requested,
            failed: failed.into_iter().map(|f| f.guid).collect(),
            gap,
            entries,
        };
        tracing::info!(
            listed = report.listed,
            missing = report.requested.len(),
            failed = report.failed.len(),
            gap = report.gap.is_some(),
            "deliveries reconciled"
        );
        Ok(report)
    }

    /// Installation id → account login (lower-case), as GitHub lists the App's installations.
    async fn installation_accounts(&self) -> Result<HashMap<u64, String>, CatchUpError> {
        let mut accounts = HashMap::new();
        let mut url = Some("/app/installations?per_page=100".to_string());
        for _ in 0..MAX_PAGES {
            let Some(page_url) = url.take() else { break };
            let answer = self
                .app
                .fetch(As::App, &page_url, Patience::default())
                .await?;
            let page: Vec<Installation> = answer.json()?;
            for i in page {
                if let Some(a) = i.account {
                    accounts.insert(i.id, a.login.to_ascii_lowercase());
                }
            }
            url = answer.next_page();
        }
        Ok(accounts)
    }

    /// Runs every `interval` in the background.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "catch-up paused; will retry"),
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}

/// `at` at the precision PostgreSQL stores (the entry hash is computed on it).
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
