//! Retention: the bodies of chosen events are dropped after a number of days, through the
//! same recorded path as any redaction (one `verdict-redaction` entry per batch, naming every
//! entry it erases). Events verdict derives decisions from are kept unless the configuration
//! says otherwise in so many words.
//!
//! ```toml
//! [retention]
//! after_days = 365
//! events = ["star", "watch", "fork"]      # or "uninterpreted": events no projection reads
//! # drop_decision_events = true           # needed to list pull_request, issue_comment, ...
//! ```

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;

use super::redaction::{self, RedactionError};

/// Events decision records come from: kept unless `drop_decision_events` is set.
pub const DECISION_EVENTS: &[&str] = &[
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "issue_comment",
    "issues",
    "check_run",
    "check_suite",
    "status",
    "push",
];

/// Most entries one redaction entry names.
pub const BATCH: i64 = 500;

/// The `[retention]` section of the rules configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Bodies older than this many days are dropped.
    pub after_days: u32,
    /// Event names; `uninterpreted` stands for every event no projection reads.
    pub events: Vec<String>,
    /// Allows decision-bearing events in `events` (their pages then lose their texts).
    #[serde(default)]
    pub drop_decision_events: bool,
    /// Seconds between runs inside `serve` (default: hourly).
    #[serde(default = "hourly")]
    pub every_seconds: u64,
}

fn hourly() -> u64 {
    3600
}

impl Retention {
    /// Refuses a configuration that would drop decision-bearing events by accident.
    pub fn check(&self) -> Result<(), String> {
        if self.events.is_empty() {
            return Err("[retention] events is empty: name the events whose bodies to drop".into());
        }
        if !self.drop_decision_events
            && let Some(e) = self
                .events
                .iter()
                .find(|e| DECISION_EVENTS.contains(&e.as_str()))
        {
            return Err(format!(
                "[retention] events lists {e:?}, which decision records come from; set \
                 drop_decision_events = true if their bodies must go too"
            ));
        }
        if self.every_seconds == 0 {
            return Err("[retention] every_seconds must be at least 1".into());
        }
        Ok(())
    }

    /// The event names to drop: `uninterpreted` expands to every delivery event name in
    /// the log that is not decision-bearing (verdict derives nothing from those).
    fn matches(&self, event: &str) -> bool {
        self.events
            .iter()
            .any(|e| e == event || (e == "uninterpreted" && !DECISION_EVENTS.contains(&event)))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.every_seconds)
    }
}

/// Drops every body due, log by log, in batches; returns how many bodies were erased.
pub async fn run(pool: &PgPool, retention: &Retention) -> Result<u64, RedactionError> {
    let candidates: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT l.name, e.seq, e.event FROM log_entries e JOIN logs l ON l.id = e.log_id
          WHERE e.kind = 'github-delivery' AND e.body IS NOT NULL
            AND e.received_at < now() - make_interval(days => $1)
          ORDER BY l.name, e.seq",
    )
    .bind(retention.after_days as i32)
    .fetch_all(pool)
    .await?;
    let mut by_log: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (log, seq, event) in candidates {
        if retention.matches(&event) {
            by_log.entry(log).or_default().push(seq as u64);
        }
    }
    let mut erased = 0;
    for (log, seqs) in by_log {
        for batch in seqs.chunks(BATCH as usize) {
            erased += redaction::redact_batch(
                pool,
                &log,
                batch,
                &format!(
                    "retention: bodies of {} older than {} days",
                    retention.events.join(", "),
                    retention.after_days
                ),
                "verdict retention",
            )
            .await? as u64;
        }
    }
    Ok(erased)
}

/// Runs retention every `retention.interval()` until aborted.
pub fn spawn(pool: PgPool, retention: Retention) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match run(&pool, &retention).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(bodies = n, "retention dropped bodies (recorded in the log)")
                }
                Err(err) => {
                    tracing::warn!(error = %err, "retention run failed; trying again next time")
                }
            }
            tokio::time::sleep(retention.interval()).await;
        }
    })
}
