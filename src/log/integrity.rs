//! Integrity alarms: what the tree builder found wrong with a log before signing it. While a
//! log has an alarm, nothing more of it is signed, deliveries are still accepted, `/healthz`
//! answers 503 naming it and `/api/logs` shows it (see migrations/0013_integrity_alarms.sql).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Row};

/// A raised alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    pub log: String,
    pub problem: String,
    pub detected_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Raises (or keeps up) the alarm of `log_id`, logging it as an error.
pub async fn raise(conn: impl PgExecutor<'_>, log_id: i64, log: &str, problem: &str) {
    tracing::error!(
        log,
        problem,
        "integrity alarm: nothing more of this log is signed"
    );
    let stored = sqlx::query(
        "INSERT INTO integrity_alarms (log_id, problem) VALUES ($1, $2)
         ON CONFLICT (log_id) DO UPDATE SET problem = EXCLUDED.problem, last_seen_at = now()",
    )
    .bind(log_id)
    .bind(problem)
    .execute(conn)
    .await;
    if let Err(err) = stored {
        tracing::error!(log, error = %err, "the integrity alarm could not be stored");
    }
}

/// Clears the alarm of `log_id`, once its log checks out again.
pub async fn clear(conn: impl PgExecutor<'_>, log_id: i64) -> sqlx::Result<()> {
    let cleared = sqlx::query("DELETE FROM integrity_alarms WHERE log_id = $1")
        .bind(log_id)
        .execute(conn)
        .await?;
    if cleared.rows_affected() > 0 {
        tracing::info!(log_id, "integrity alarm cleared: the log checks out again");
    }
    Ok(())
}

/// Every raised alarm, by log name.
pub async fn current(conn: impl PgExecutor<'_>) -> sqlx::Result<Vec<Alarm>> {
    let rows = sqlx::query(
        "SELECT l.name, a.problem, a.detected_at, a.last_seen_at
           FROM integrity_alarms a JOIN logs l ON l.id = a.log_id ORDER BY l.name",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Alarm {
            log: r.get("name"),
            problem: r.get("problem"),
            detected_at: r.get("detected_at"),
            last_seen_at: r.get("last_seen_at"),
        })
        .collect())
}
