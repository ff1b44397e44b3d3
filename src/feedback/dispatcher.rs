//! The dispatcher drains the outbox in the background: alerts to their webhooks, write-back to
//! GitHub, one message at a time per process, each attempt recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;

use super::alerts::AlertSender;
use super::github::GitHubWriter;
use super::outbox::{self, Attempt, RetryPolicy};

/// How often an idle dispatcher looks for due messages.
pub const INTERVAL: Duration = Duration::from_millis(250);

pub struct Dispatcher {
    pool: PgPool,
    alerts: AlertSender,
    github: Option<Arc<GitHubWriter>>,
    policy: RetryPolicy,
    /// Pause between two writes to GitHub, which asks integrations not to burst.
    github_spacing: Duration,
}

impl Dispatcher {
    pub fn new(
        pool: PgPool,
        alerts: AlertSender,
        github: Option<Arc<GitHubWriter>>,
        policy: RetryPolicy,
        github_spacing: Duration,
    ) -> Dispatcher {
        Dispatcher {
            pool,
            alerts,
            github,
            policy,
            github_spacing,
        }
    }

    /// Sends every message due now; returns how many attempts were made.
    pub async fn run_once(&self) -> sqlx::Result<usize> {
        let channels: &[&str] = if self.github.is_some() {
            &["alert", "github"]
        } else {
            &["alert"]
        };
        let due = outbox::claim_due(&self.pool, channels, 32).await?;
        let mut last_github: Option<Instant> = None;
        for message in &due {
            let started_at = Utc::now();
            let clock = Instant::now();
            let attempt = match (message.channel.as_str(), &self.github) {
                ("github", Some(github)) => {
                    if let Some(last) = last_github {
                        tokio::time::sleep(self.github_spacing.saturating_sub(last.elapsed()))
                            .await;
                    }
                    last_github = Some(Instant::now());
                    github.send(message).await
                }
                _ => self.alerts.send(message).await,
            };
            match &attempt {
                Attempt::Delivered { status, .. } => tracing::info!(
                    id = message.id, channel = %message.channel, purpose = %message.purpose,
                    status, "outbox message delivered"),
                Attempt::Retry { error, .. } => tracing::warn!(
                    id = message.id, channel = %message.channel, %error,
                    "outbox message not delivered; will retry"),
                Attempt::Refused { error, .. } => tracing::warn!(
                    id = message.id, channel = %message.channel, %error,
                    "outbox message refused; giving it up"),
            }
            outbox::record(
                &self.pool,
                message,
                started_at,
                clock.elapsed(),
                &attempt,
                &self.policy,
            )
            .await?;
        }
        Ok(due.len())
    }

    /// Runs in the background.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(0) => tokio::time::sleep(INTERVAL).await,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "outbox paused; will retry");
                        tokio::time::sleep(INTERVAL).await;
                    }
                }
            }
        })
    }
}
