//! Finding entries: the body verdict writes to the log for each finding of an accountability
//! rule, and its projection into the `findings` table that pages read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// The JSON body of a `verdict-finding` log entry (docs/log-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingBody {
    pub rule: String,
    pub severity: String,
    pub message: String,
    /// Shaped like GitHub's, so the same visibility rules apply to findings as to deliveries.
    pub repository: FindingRepository,
    pub pull_request: Option<i64>,
    /// Permalinks (`/records/{account}/{seq}`) of the decision records it rests on.
    pub evidence: Vec<String>,
    /// About a pull request whose closing record came from GitHub's API (a backfill): shown,
    /// not alerted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

/// The JSON body of a `verdict-finding-withdrawn` entry (docs/log-format.md): records that
/// arrived after the finding at `finding_seq` show it wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalBody {
    pub finding_seq: i64,
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// Permalinks of the records, arrived after the finding, that show it wrong.
    pub evidence: Vec<String>,
    /// The finding's repository and pull request, so the same visibility rules apply.
    pub repository: FindingRepository,
    pub pull_request: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRepository {
    pub full_name: String,
    pub private: bool,
}

/// Projects one finding entry.
pub async fn apply(
    tx: &mut PgConnection,
    log_id: i64,
    seq: i64,
    recorded_at: DateTime<Utc>,
    body: &[u8],
) -> Result<(), FindingError> {
    let f: FindingBody = serde_json::from_slice(body).map_err(FindingError::Body)?;
    record(tx, log_id, seq, recorded_at, &f)
        .await
        .map_err(FindingError::Database)
}

/// The finding at `seq`, in the findings table (the judge writes it at once, the projector
/// again from the log: the same row either way).
pub async fn record(
    conn: &mut PgConnection,
    log_id: i64,
    seq: i64,
    recorded_at: DateTime<Utc>,
    f: &FindingBody,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO findings (log_id, seq, rule, severity, repo, repo_private, pr_number,
             message, evidence, recorded_at, history)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(log_id)
    .bind(seq)
    .bind(&f.rule)
    .bind(&f.severity)
    .bind(&f.repository.full_name)
    .bind(f.repository.private)
    .bind(f.pull_request)
    .bind(&f.message)
    .bind(serde_json::json!(f.evidence))
    .bind(recorded_at)
    .bind(f.history)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Projects one withdrawal entry.
pub async fn apply_withdrawal(
    tx: &mut PgConnection,
    log_id: i64,
    seq: i64,
    recorded_at: DateTime<Utc>,
    body: &[u8],
) -> Result<(), FindingError> {
    let w: WithdrawalBody = serde_json::from_slice(body).map_err(FindingError::Body)?;
    withdraw(tx, log_id, seq, recorded_at, &w)
        .await
        .map_err(FindingError::Database)
}

/// Marks the finding a withdrawal names as withdrawn (the first withdrawal stands).
pub async fn withdraw(
    conn: &mut PgConnection,
    log_id: i64,
    seq: i64,
    recorded_at: DateTime<Utc>,
    w: &WithdrawalBody,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE findings SET withdrawn_seq = $3, withdrawn_at = $4, withdrawn_why = $5
          WHERE log_id = $1 AND seq = $2 AND withdrawn_seq IS NULL",
    )
    .bind(log_id)
    .bind(w.finding_seq)
    .bind(seq)
    .bind(recorded_at)
    .bind(&w.reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The JSON body of a `verdict-ack` log entry (docs/log-format.md): someone acknowledged the
/// finding at `finding_seq` of the same log, with a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckBody {
    pub finding_seq: i64,
    /// Who: the GitHub login of the person signed in (`via` "github"), or the name an operator
    /// gave with the admin token (`via` "admin-token"). Entries written before sign-in existed
    /// carry a typed name and no `via`.
    pub by: String,
    /// The person's GitHub user id (stable across login renames), when signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_user_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub note: String,
    /// The finding's repository, so the same visibility rules apply.
    pub repository: FindingRepository,
}

/// Projects one acknowledgement entry.
pub async fn apply_ack(
    tx: &mut PgConnection,
    log_id: i64,
    seq: i64,
    recorded_at: DateTime<Utc>,
    body: &[u8],
) -> Result<(), FindingError> {
    let a: AckBody = serde_json::from_slice(body).map_err(FindingError::Body)?;
    sqlx::query(
        "INSERT INTO finding_acks (log_id, seq, finding_seq, by_name, note, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(log_id)
    .bind(seq)
    .bind(a.finding_seq)
    .bind(&a.by)
    .bind(&a.note)
    .bind(recorded_at)
    .execute(&mut *tx)
    .await
    .map_err(FindingError::Database)?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum FindingError {
    #[error("finding body is not a finding: {0}")]
    Body(serde_json::Error),
    #[error(transparent)]
    Database(sqlx::Error),
}
