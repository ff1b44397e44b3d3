//! Alerts: each new finding goes, through the outbox, to every URL in
//! `VERDICT_ALERT_WEBHOOKS`, as generic JSON naming the rule id or in Slack's incoming-webhook
//! format. Bodies are signed like GitHub signs its webhooks, so receivers can reuse their
//! verification code: `X-Verdict-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::outbox::{Attempt, Claimed, classify};

/// Header carrying the body's HMAC-SHA256 under `VERDICT_ALERT_SECRET`.
pub const SIGNATURE_HEADER: &str = "X-Verdict-Signature-256";

/// How an alert URL wants its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// verdict's JSON ([`FindingAlert`]).
    Json,
    /// Slack's incoming-webhook `{"text": ...}`.
    Slack,
}

/// One configured receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTarget {
    pub url: String,
    pub format: Format,
}

/// Reads one configured URL: `https://hooks.slack.com/...` and any URL written with a
/// `slack+` prefix (`slack+https://chat.example/hook`) get Slack's format; others JSON.
pub fn parse_target(raw: &str) -> Result<AlertTarget, String> {
    let raw = raw.trim();
    let (format, url) = match raw.strip_prefix("slack+") {
        Some(rest) => (Format::Slack, rest),
        None => (Format::Json, raw),
    };
    let parsed = url::Url::parse(url).map_err(|e| {
        format!(
            "alert webhook {raw:?} is not a URL ({e}); write e.g. https://alerts.example/verdict"
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "alert webhook {raw:?} must be an http or https URL (optionally prefixed slack+)"
        ));
    }
    let format = if parsed.host_str() == Some("hooks.slack.com") {
        Format::Slack
    } else {
        format
    };
    Ok(AlertTarget {
        url: url.to_string(),
        format,
    })
}

/// The generic JSON alert: everything a receiver needs to route and link a finding.
#[derive(Debug, Clone, Serialize)]
pub struct FindingAlert {
    /// `"finding"`, or `"finding-withdrawn"` when later records showed the finding wrong.
    pub event: &'static str,
    pub rule: String,
    pub severity: String,
    pub message: String,
    pub repository: String,
    pub pull_request: Option<i64>,
    pub pull_request_url: Option<String>,
    /// The finding's own record in the log.
    pub finding_url: String,
    /// The decision records it rests on (for a withdrawal: the records that show it wrong).
    pub evidence: Vec<String>,
    /// The entry this alert announces (the finding, or its withdrawal).
    pub log: LogPosition,
    /// The withdrawal's own record, for a withdrawal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawal_url: Option<String>,
}

/// Where an entry sits in its log.
#[derive(Debug, Clone, Serialize)]
pub struct LogPosition {
    pub account: String,
    pub seq: i64,
    /// Hex SHA-256 entry hash (docs/log-format.md).
    pub entry_hash: String,
}

/// The body sent to a receiver of `format`.
pub fn render(format: Format, alert: &FindingAlert) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(alert).expect("an alert serializes"),
        Format::Slack => {
            let target = match (alert.pull_request, &alert.pull_request_url) {
                (Some(n), Some(url)) => format!("<{url}|{}#{n}>", alert.repository),
                _ => alert.repository.clone(),
            };
            let evidence = alert
                .evidence
                .iter()
                .enumerate()
                .map(|(i, url)| format!("<{url}|{}>", i + 1))
                .collect::<Vec<_>>()
                .join(" ");
            let text = format!(
                "{}*{}* ({}) on {target}: {}\nFinding <{}|{}#{}> · evidence {evidence}",
                if alert.withdrawal_url.is_some() {
                    "Withdrawn: "
                } else {
                    ""
                },
                alert.rule,
                alert.severity,
                slack_escape(&alert.message),
                alert.finding_url,
                alert.log.account,
                alert.log.seq,
            );
            serde_json::to_vec(&serde_json::json!({ "text": text })).expect("serializes")
        }
    }
}

/// Slack treats `&`, `<` and `>` as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends alerts from the outbox.
#[derive(Clone)]
pub struct AlertSender {
    http: reqwest::Client,
    secret: Option<String>,
}

impl AlertSender {
    pub fn new(secret: Option<String>) -> AlertSender {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("verdict/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with a timeout builds");
        AlertSender { http, secret }
    }

    /// One attempt to deliver `message` to its URL.
    pub async fn send(&self, message: &Claimed) -> Attempt {
        let mut request = self
            .http
            .post(&message.target)
            .header("Content-Type", "application/json")
            .header("X-Verdict-Event", message.purpose.as_str())
            .header("X-Verdict-Delivery", message.dedupe_key.as_str())
            .body(message.body.clone());
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &message.body));
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let after = retry_after(response.headers());
                let hint = response.text().await.unwrap_or_default();
                tracing::debug!(status, took = ?started.elapsed(), "alert answered");
                classify(status, &hint, after)
            }
            Err(err) => Attempt::Retry {
                status: None,
                error: format!("could not reach the receiver: {err}"),
                after: None,
            },
        }
    }
}

/// A `Retry-After: <seconds>` header.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_urls_get_slack_format() {
        assert_eq!(
            parse_target("https://hooks.slack.com/services/T/B/x")
                .unwrap()
                .format,
            Format::Slack
        );
        let forced = parse_target("slack+http://127.0.0.1:9/hook").unwrap();
        assert_eq!(
            (forced.format, forced.url.as_str()),
            (Format::Slack, "http://127.0.0.1:9/hook")
        );
        assert_eq!(
            parse_target("https://alerts.example/v").unwrap().format,
            Format::Json
        );
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("not a url").is_err());
    }

    #[test]
    fn signature_is_github_style_hmac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231-style
        // known answer from Wikipedia's HMAC article.
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
