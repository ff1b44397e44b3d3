//! Reconciliation entries: what verdict writes to an account's log each time it compares
//! GitHub's list of the App's deliveries with the log, and their projection into
//! `reconciliations`, which /coverage reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// A stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A redelivery GitHub did not accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRequest {
    pub guid: String,
    pub error: String,
}

/// The JSON body of a `verdict-reconciliation` entry (docs/log-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationBody {
    /// The deliveries GitHub listed as delivered in this window were checked.
    pub window: Window,
    /// Distinct delivery GUIDs GitHub listed for this account in the window.
    pub listed: u32,
    /// How many of them the log already held.
    pub already_logged: u32,
    /// GUIDs whose redelivery verdict asked GitHub for.
    pub redelivery_requested: Vec<String>,
    pub redelivery_failed: Vec<FailedRequest>,
    /// A stretch GitHub no longer lists (the last reconciliation is older than what GitHub
    /// keeps): deliveries GitHub failed to make then cannot be checked or recovered.
    pub coverage_gap: Option<Window>,
}

/// Projects one reconciliation entry.
pub async fn apply(
    tx: &mut PgConnection,
    log_id: i64,
    seq: i64,
    recorded_at: DateTime<Utc>,
    body: &[u8],
) -> Result<(), super::findings::FindingError> {
    let r: ReconciliationBody =
        serde_json::from_slice(body).map_err(super::findings::FindingError::Body)?;
    sqlx::query(
        "INSERT INTO reconciliations (log_id, seq, window_start, window_end, listed,
             already_logged, requested, failed, gap_start, gap_end, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(log_id)
    .bind(seq)
    .bind(r.window.from)
    .bind(r.window.to)
    .bind(r.listed as i32)
    .bind(r.already_logged as i32)
    .bind(&r.redelivery_requested)
    .bind(
        r.redelivery_failed
            .iter()
            .map(|f| f.guid.clone())
            .collect::<Vec<_>>(),
    )
    .bind(r.coverage_gap.map(|g| g.from))
    .bind(r.coverage_gap.map(|g| g.to))
    .bind(recorded_at)
    .execute(&mut *tx)
    .await
    .map_err(super::findings::FindingError::Database)?;
    Ok(())
}
