//! Where every log stands: its size, how much of it is signed, projected and judged, how old
//! the oldest work waiting is; the outbox by state; integrity alarms. One read serves
//! `verdict status`, `/readyz` and the metrics, so they cannot disagree.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::log::integrity::{self, Alarm};

/// One log.
#[derive(Debug, Clone, Serialize)]
pub struct LogStatus {
    pub log: String,
    /// Entries in the log.
    pub size: i64,
    /// Entries covered by the newest signed checkpoint.
    pub signed: i64,
    pub signed_at: Option<DateTime<Utc>>,
    /// Entries the projections have read.
    pub projected: i64,
    /// Entries the judge has read (absent where no judge ever ran).
    pub judged: Option<i64>,
    /// When the oldest entry no checkpoint covers was received.
    pub oldest_unsigned_at: Option<DateTime<Utc>>,
    /// When the oldest entry the projections have not read was received.
    pub oldest_unprojected_at: Option<DateTime<Utc>>,
}

impl LogStatus {
    pub fn unsigned(&self) -> i64 {
        self.size - self.signed
    }
    pub fn projection_lag(&self) -> i64 {
        self.size - self.projected
    }
    pub fn judge_lag(&self) -> Option<i64> {
        self.judged.map(|j| self.size - j)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub logs: Vec<LogStatus>,
    /// Outbox messages by state (`pending`, `delivered`, `failed`).
    pub outbox: Vec<(String, i64)>,
    pub alarms: Vec<Alarm>,
    pub read_at: DateTime<Utc>,
}

/// Reads where everything stands.
pub async fn read(pool: &PgPool) -> sqlx::Result<Status> {
    let rows = sqlx::query(
        "WITH l AS (
           SELECT l.id, l.name,
                  coalesce((SELECT max(seq) + 1 FROM log_entries e WHERE e.log_id = l.id), 0)
                      AS size,
                  coalesce((SELECT max(tree_size) FROM checkpoints c WHERE c.log_id = l.id), 0)
                      AS signed,
                  (SELECT max(signed_at) FROM checkpoints c WHERE c.log_id = l.id) AS signed_at,
                  coalesce((SELECT next_seq FROM projection_cursors p WHERE p.log_id = l.id), 0)
                      AS projected,
                  (SELECT next_seq FROM judge_cursors j WHERE j.log_id = l.id) AS judged
             FROM logs l)
         SELECT l.*,
                (SELECT received_at FROM log_entries e WHERE e.log_id = l.id AND e.seq = l.signed)
                    AS oldest_unsigned_at,
                (SELECT received_at FROM log_entries e
                  WHERE e.log_id = l.id AND e.seq = l.projected) AS oldest_unprojected_at
           FROM l ORDER BY l.name",
    )
    .fetch_all(pool)
    .await?;
    let outbox: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(pool)
            .await?;
    Ok(Status {
        logs: rows
            .iter()
            .map(|r| LogStatus {
                log: r.get("name"),
                size: r.get("size"),
                signed: r.get("signed"),
                signed_at: r.get("signed_at"),
                projected: r.get("projected"),
                judged: r.get("judged"),
                oldest_unsigned_at: r.get("oldest_unsigned_at"),
                oldest_unprojected_at: r.get("oldest_unprojected_at"),
            })
            .collect(),
        outbox,
        alarms: integrity::current(pool).await?,
        read_at: Utc::now(),
    })
}

/// What readiness expects of the background work.
#[derive(Debug, Clone, Copy)]
pub struct Expectations {
    /// The server signs checkpoints (off only when measuring what the tree costs).
    pub signing: bool,
    /// Work waiting longer than this means the worker is stuck.
    pub stuck_after: Duration,
}

impl Status {
    /// What keeps the server from being ready, in words (empty: ready).
    pub fn problems(&self, expect: Expectations) -> Vec<String> {
        let bound = chrono::Duration::from_std(expect.stuck_after)
            .unwrap_or_else(|_| chrono::Duration::seconds(120));
        let waited = |at: Option<DateTime<Utc>>| at.filter(|at| self.read_at - *at > bound);
        let mut out: Vec<String> = self
            .alarms
            .iter()
            .map(|a| {
                format!(
                    "integrity alarm: log {}: {} (since {}); nothing more of it is signed until it checks out again",
                    a.log,
                    a.problem,
                    a.detected_at.format("%Y-%m-%d %H:%M:%S UTC")
                )
            })
            .collect();
        for l in &self.logs {
            if expect.signing
                && !self.alarms.iter().any(|a| a.log == l.log)
                && let Some(at) = waited(l.oldest_unsigned_at)
            {
                out.push(format!(
                    "log {}: {} entries unsigned, the oldest received {} (the checkpoint signer is stuck)",
                    l.log,
                    l.unsigned(),
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
            if let Some(at) = waited(l.oldest_unprojected_at) {
                out.push(format!(
                    "log {}: {} entries not projected, the oldest received {} (the projector is stuck)",
                    l.log,
                    l.projection_lag(),
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
        }
        out
    }
}
