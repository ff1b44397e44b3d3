//! The feedback loop: accountability rules judge the decision records (judge, rules,
//! facts); what they find leaves verdict through a durable outbox (messages, outbox,
//! dispatcher) as alerts (alerts) and write-back into GitHub (github).

pub mod alerts;
pub mod config;
pub mod dispatcher;
pub mod facts;
pub mod github;
pub mod judge;
pub mod messages;
pub mod outbox;
pub mod rules;

use std::time::Duration;

/// Everything `serve` needs to know about what leaves verdict.
#[derive(Debug, Clone, Default)]
pub struct FeedbackConfig {
    /// Where verdict's pages are reachable from outside (links in alerts and on GitHub);
    /// `None`: the listening address.
    pub public_url: Option<String>,
    pub alerts: Vec<alerts::AlertTarget>,
    /// `VERDICT_ALERT_SECRET`: signs alert bodies.
    pub alert_secret: Option<String>,
    /// `None`: write-back is off (and `serve` says so).
    pub github: Option<github::GitHubAppConfig>,
    pub write_back: github::WriteBackMode,
    pub retry: outbox::RetryPolicy,
    /// Pause between two writes to GitHub.
    pub github_spacing: Duration,
    /// Where and how each accountability rule applies.
    pub rules: config::RuleConfig,
    /// How long after a pull request's last record it is judged (records arrive out of order).
    pub judge_settle: Duration,
}
