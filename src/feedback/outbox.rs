//! The durable outbox: messages leave verdict (alerts, GitHub write-back) only through it.
//! A message is written in the judge's transaction, claimed by a dispatcher under a lease
//! (so several `verdict serve` processes never send it twice at once), and retried with
//! exponential backoff until the receiver accepts it or refuses it for good. Every attempt
//! is recorded for the attempts page.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// An outgoing webhook (generic JSON or Slack).
    Alert,
    /// GitHub's REST API, as the GitHub App.
    GitHub,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Alert => "alert",
            Channel::GitHub => "github",
        }
    }
}

/// A message to write to the outbox.
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: Channel,
    pub purpose: &'static str,
    /// Same key, same message: written once however often it is produced.
    pub dedupe_key: String,
    pub target: String,
    pub repo: String,
    pub repo_private: bool,
    pub pr_number: Option<i64>,
    /// The log entry the message is about.
    pub log_id: i64,
    pub seq: i64,
    pub route: Value,
    pub body: Vec<u8>,
}

/// Writes `message` unless one with its key exists; true when written.
pub async fn enqueue(tx: &mut PgConnection, m: &Message) -> sqlx::Result<bool> {
    let written = sqlx::query(
        "INSERT INTO outbox (channel, purpose, dedupe_key, target, repo, repo_private, pr_number,
                             log_id, seq, route, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(m.channel.as_str())
    .bind(m.purpose)
    .bind(&m.dedupe_key)
    .bind(&m.target)
    .bind(&m.repo)
    .bind(m.repo_private)
    .bind(m.pr_number)
    .bind(m.log_id)
    .bind(m.seq)
    .bind(&m.route)
    .bind(&m.body)
    .execute(&mut *tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// A message claimed for one sending attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub channel: String,
    pub purpose: String,
    pub dedupe_key: String,
    pub target: String,
    pub repo: String,
    pub pr_number: Option<i64>,
    pub route: Value,
    pub body: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// Attempts made before this one: a retry must first look whether an earlier
    /// attempt got through after all.
    pub attempts: i32,
}

/// How long a claim keeps other dispatchers off a message; a sender that dies mid-attempt
/// leaves the message to be retried after it.
pub const LEASE: Duration = Duration::from_secs(120);

/// Claims up to `limit` due messages of `channels` (a process without GitHub credentials
/// leaves GitHub's messages to one that has them).
pub async fn claim_due(pool: &PgPool, channels: &[&str], limit: i64) -> sqlx::Result<Vec<Claimed>> {
    let rows = sqlx::query(
        "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $2)
          WHERE id IN (SELECT id FROM outbox
                        WHERE state = 'pending' AND next_attempt_at <= now()
                          AND channel = ANY($3)
                        ORDER BY next_attempt_at, id LIMIT $1
                          FOR UPDATE SKIP LOCKED)
          RETURNING id, channel, purpose, dedupe_key, target, repo, pr_number, route, body,
                    created_at, attempts",
    )
    .bind(limit)
    .bind(LEASE.as_secs_f64())
    .bind(channels)
    .fetch_all(pool)
    .await?;
    let mut claimed: Vec<Claimed> = rows
        .into_iter()
        .map(|r| Claimed {
            id: r.get("id"),
            channel: r.get("channel"),
            purpose: r.get("purpose"),
            dedupe_key: r.get("dedupe_key"),
            target: r.get("target"),
            repo: r.get("repo"),
            pr_number: r.get("pr_number"),
            route: r.get("route"),
            body: r.get("body"),
            created_at: r.get("created_at"),
            attempts: r.get("attempts"),
        })
        .collect();
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver accepted it; `location` is where it lives (check run URL...).
    Delivered {
        status: u16,
        location: Option<String>,
    },
    /// Try again later: network failure, 5xx, 429, rate limits. `after` overrides the
    /// backoff when the receiver said when (Retry-After, rate-limit reset).
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// The receiver refused it for good (4xx); retrying would not help.
    Refused { status: Option<u16>, error: String },
}

/// Exponential backoff between attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Wait before the second attempt; doubled after each failure.
    pub first_delay: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
    /// Attempts before the message is given up as failed.
    pub max_attempts: i32,
}

impl Default for RetryPolicy {
    /// 10 s, 20 s, 40 s ... capped at an hour: about 14 hours before giving up, longer than
    /// most outages of a webhook receiver.
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            max_attempts: 20,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: i32) -> Duration {
        let doublings = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.first_delay
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max_delay)
    }
}

/// Records an attempt and moves the message on: delivered, due again later, or failed.
pub async fn record(
    pool: &PgPool,
    message: &Claimed,
    started_at: DateTime<Utc>,
    took: Duration,
    attempt: &Attempt,
    policy: &RetryPolicy,
) -> sqlx::Result<()> {
    let number = message.attempts + 1;
    let (status, error) = match attempt {
        Attempt::Delivered { status, .. } => (Some(*status), None),
        Attempt::Retry { status, error, .. } | Attempt::Refused { status, error } => {
            (*status, Some(error.as_str()))
        }
    };
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO outbox_attempts (outbox_id, attempt, started_at, duration_ms, status, error)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(message.id)
    .bind(number)
    .bind(started_at)
    .bind(took.as_millis().min(i32::MAX as u128) as i32)
    .bind(status.map(i32::from))
    .bind(error)
    .execute(&mut *tx)
    .await?;
    match attempt {
        Attempt::Delivered { location, .. } => {
            sqlx::query(
                "UPDATE outbox SET state = 'delivered', attempts = $2, finished_at = now(),
                        outcome = $3 WHERE id = $1",
            )
            .bind(message.id)
            .bind(number)
            .bind(location)
            .execute(&mut *tx)
            .await?;
        }
        Attempt::Retry { error, after, .. } if number < policy.max_attempts => {
            let wait = after.unwrap_or_else(|| policy.delay(number));
            sqlx::query(
                "UPDATE outbox SET attempts = $2, outcome = $3,
                        next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
            )
            .bind(message.id)
            .bind(number)
            .bind(error)
            .bind(wait.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        }
        Attempt::Retry { error, .. } | Attempt::Refused { error, .. } => {
            sqlx::query(
                "UPDATE outbox SET state = 'failed', attempts = $2, finished_at = now(),
                        outcome = $3 WHERE id = $1",
            )
            .bind(message.id)
            .bind(number)
            .bind(error)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

/// Classifies an HTTP answer the way webhook senders usually do: 2xx delivered; 408, 429
/// and 5xx worth retrying; any other 4xx refused for good.
pub fn classify(status: u16, body_hint: &str, after: Option<Duration>) -> Attempt {
    let hint: String = body_hint.chars().take(200).collect();
    match status {
        200..=299 => Attempt::Delivered {
            status,
            location: None,
        },
        408 | 429 | 500..=599 => Attempt::Retry {
            status: Some(status),
            error: format!("HTTP {status}: {hint}"),
            after,
        },
        _ => Attempt::Refused {
            status: Some(status),
            error: format!("HTTP {status}: {hint}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            max_attempts: 5,
        };
        let waits: Vec<u64> = (1..=5).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
    }

    #[test]
    fn answers_are_classified_like_webhook_senders_do() {
        assert!(matches!(classify(204, "", None), Attempt::Delivered { .. }));
        assert!(matches!(classify(503, "", None), Attempt::Retry { .. }));
        assert!(matches!(classify(429, "", None), Attempt::Retry { .. }));
        assert!(matches!(
            classify(410, "gone", None),
            Attempt::Refused { .. }
        ));
    }
}
