//! The feedback loop leaving verdict: alerts to local webhook receivers and write-back to a
//! mock of GitHub's REST API (wiremock speaking GitHub's shapes), driven by the demo story's
//! real payloads through the signed webhook endpoint.

mod common;

use std::time::Duration;

use common::{ADMIN_TOKEN, TestDb, fixture};
use serde_json::{Value, json};
use verdict::feedback::FeedbackConfig;
use verdict::feedback::alerts::{SIGNATURE_HEADER, parse_target, signature};
use verdict::feedback::github::{GitHubAppConfig, WriteBackMode};
use verdict::feedback::outbox::RetryPolicy;
use wiremock::matchers::{header_exists, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const APP_ID: u64 = 31337;
const INSTALLATION: u64 = 4242;
const TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
const ALERT_SECRET: &str = "alert-secret";

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        max_attempts: 5,
    }
}

fn feedback(github: Option<&MockServer>, alerts: &[String], mode: WriteBackMode) -> FeedbackConfig {
    FeedbackConfig {
        public_url: Some("https://verdict.example".into()),
        alerts: alerts.iter().map(|u| parse_target(u).unwrap()).collect(),
        alert_secret: Some(ALERT_SECRET.into()),
        github: github.map(|mock| GitHubAppConfig {
            app_id: APP_ID,
            private_key_pem: common::github::app_key(),
            api_url: mock.uri(),
        }),
        write_back: mode,
        retry: fast_retries(),
        github_spacing: Duration::ZERO,
        rules: Default::default(),
        judge_settle: Duration::ZERO,
    }
}

/// GitHub's answer to `POST /app/installations/{id}/access_tokens`.
async fn mount_installation_token(github: &MockServer) {
    Mock::given(method("POST"))
        .and(path(format!(
            "/app/installations/{INSTALLATION}/access_tokens"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "token": TOKEN,
            "expires_at": "2099-01-01T00:00:00Z",
            "permissions": {"checks": "write", "issues": "write", "pull_requests": "read"},
            "repository_selection": "all"
        })))
        .mount(github)
        .await;
}

/// Waits until `n` outbox messages are delivered; returns the outbox as (purpose, state).
async fn delivered(db: &TestDb, n: i64) -> Vec<(String, String, i32)> {
    let pool = db.app_pool().await;
    for _ in 0..300 {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'delivered'")
            .fetch_one(&pool)
            .await
            .unwrap();
        if done >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::query_as("SELECT purpose, state, attempts FROM outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
}

fn received<'a>(requests: &'a [Request], method_name: &str, path_part: &str) -> Vec<&'a Request> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == method_name && r.url.path().contains(path_part))
        .collect()
}

fn json_of(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn story_findings_reach_alert_receivers_and_a_check_run_reaches_github() {
    let db = TestDb::new().await;
    let github = MockServer::start().await;
    let sink = MockServer::start().await;
    mount_installation_token(&github).await;
    // The first check run meets GitHub's rate limit; verdict waits for the reset and retries.
    let reset = chrono::Utc::now().timestamp() + 1;
    Mock::given(method("POST"))
        .and(path_regex(r"^/repos/acme/storefront/check-runs$"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(json!({"message": "API rate limit exceeded for installation."})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/repos/acme/storefront/check-runs$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 4, "html_url": "https://github.com/acme/storefront/runs/4", "status": "completed"
        })))
        .mount(&github)
        .await;
    // The JSON receiver fails once (a 502), then accepts: verdict retries with backoff.
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .and(header_exists(SIGNATURE_HEADER))
        .respond_with(ResponseTemplate::new(204))
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&sink)
        .await;
    let alerts = [
        format!("{}/alerts", sink.uri()),
        format!("slack+{}/slack", sink.uri()),
    ];
    let server = db
        .server_with_feedback(
            &[common::SECRET],
            true,
            feedback(Some(&github), &alerts, WriteBackMode::CheckRun),
        )
        .await;
    server.deliver_story().await;

    // 3 findings × 2 receivers + a check run for each of the two merged PRs.
    let outbox = delivered(&db, 8).await;
    let states: Vec<&str> = outbox.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(states, vec!["delivered"; 8], "outbox: {outbox:?}");

    // Alerts: generic JSON, signed over the exact body, naming the rule ids.
    let to_sink = sink.received_requests().await.unwrap();
    // A retry sends the same bytes again (the 502'd one arrives twice).
    let mut json_alerts: Vec<&Request> = received(&to_sink, "POST", "/alerts");
    json_alerts.dedup_by(|a, b| a.body == b.body);
    json_alerts.sort_by(|a, b| a.body.cmp(&b.body));
    json_alerts.dedup_by(|a, b| a.body == b.body);
    let mut rules: Vec<String> = Vec::new();
    for r in &json_alerts {
        let sig = r.headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap();
        assert_eq!(
            sig,
            signature(ALERT_SECRET, &r.body),
            "signature covers the body"
        );
        let alert = json_of(r);
        assert_eq!(alert["event"], "finding");
        assert_eq!(alert["repository"], "acme/storefront");
        let finding_url = alert["finding_url"].as_str().unwrap();
        let permalink = finding_url.strip_prefix("https://verdict.example").unwrap();
        // The link leads to the finding's own record, with the hash the alert names.
        let record: Value = server
            .get(&format!("/api{permalink}"), Some(ADMIN_TOKEN))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(record["kind"], "verdict-finding");
        assert_eq!(record["event"], alert["rule"]);
        assert_eq!(record["entry_hash"], alert["log"]["entry_hash"]);
        assert!(!alert["evidence"].as_array().unwrap().is_empty());
        rules.push(alert["rule"].as_str().unwrap().to_string());
    }
    rules.sort();
    assert_eq!(
        rules,
        [
            "dismissed-then-merged",
            "merged-with-changes-requested",
            "stale-approval"
        ]
    );
    // The 502 was retried: one JSON message took two attempts.
    assert_eq!(received(&to_sink, "POST", "/alerts").len(), 4);
    let slack = received(&to_sink, "POST", "/slack");
    assert_eq!(slack.len(), 3);
    assert!(slack.iter().any(|r| {
        json_of(r)["text"]
            .as_str()
            .unwrap()
            .contains("*stale-approval* (medium)")
    }));

    // GitHub: a token for the installation the deliveries came through, fetched with the
    // App's JWT; check runs made with that token on each merged PR's head commit.
    let to_github = github.received_requests().await.unwrap();
    let token_requests = received(&to_github, "POST", "/access_tokens");
    assert!(!token_requests.is_empty());
    common::github::assert_app_jwt(APP_ID, token_requests[0]);
    let check_runs = received(&to_github, "POST", "/check-runs");
    assert_eq!(
        check_runs.len(),
        3,
        "two check runs, one retried after the rate limit"
    );
    let pool = db.app_pool().await;
    let heads: Vec<(i64, String)> = sqlx::query_as(
        "SELECT number, head_sha FROM pull_requests WHERE repo = $1 ORDER BY number",
    )
    .bind(verdict::story::REPO)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut by_sha = std::collections::BTreeMap::new();
    for r in &check_runs {
        assert_eq!(
            r.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {TOKEN}")
        );
        let run = json_of(r);
        by_sha.insert(run["head_sha"].as_str().unwrap().to_string(), run);
    }
    assert_eq!(by_sha.len(), 2);
    for (number, sha) in heads {
        let run = &by_sha[&sha];
        assert_eq!(run["name"], "verdict");
        assert_eq!(run["status"], "completed");
        assert_eq!(
            run["details_url"],
            format!("https://verdict.example/acme/storefront/pull/{number}")
        );
        let summary = run["output"]["summary"].as_str().unwrap();
        assert!(summary.contains("https://verdict.example/records/acme/"));
        assert!(summary.contains("`review.approved`"), "{summary}");
        assert!(summary.contains("entry hash `"));
        let expected_rules: &[&str] = if number == 42 {
            &["merged-with-changes-requested"]
        } else {
            &["stale-approval", "dismissed-then-merged"]
        };
        for rule in expected_rules {
            assert!(
                summary.contains(&format!("**`{rule}`**")),
                "#{number}: {summary}"
            );
        }
        assert_eq!(run["conclusion"], "neutral");
    }

    // Redelivering the whole story changes nothing outside verdict.
    server.deliver_story().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outbox_after: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outbox_after, 8);
    assert_eq!(
        received(
            &github.received_requests().await.unwrap(),
            "POST",
            "/check-runs"
        )
        .len(),
        3
    );

    // The attempts page shows every attempt, the failed ones with their reason.
    let page = server
        .get("/outbox", Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("HTTP 502"), "{page}");
    assert!(page.contains("check-run"));
    assert!(
        !page.contains("/slack"),
        "receiver URLs may hold secrets; only hosts shown"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_wait_in_the_outbox_across_a_restart() {
    let db = TestDb::new().await;
    // A receiver that is down: nothing listens on this port.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap();
    let down_url = format!("http://{down_addr}/hook");
    drop(down);
    // The first retry would be an hour away; the test moves it to "now" once the receiver
    // is back instead of waiting.
    let mut config = feedback(
        None,
        std::slice::from_ref(&down_url),
        WriteBackMode::CheckRun,
    );
    config.retry.first_delay = Duration::from_secs(3600);
    let server = db
        .server_with_feedback(&[common::SECRET], true, config)
        .await;
    server.deliver_story().await;
    let pool = db.app_pool().await;
    for _ in 0..300 {
        let tried: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_attempts")
            .fetch_one(&pool)
            .await
            .unwrap();
        if tried >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'pending' AND attempts = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(pending, 3, "each finding's alert failed once and waits");

    // The receiver comes back on its address and verdict restarts: the waiting messages
    // are sent, once each.
    let back = std::net::TcpListener::bind(down_addr).expect("the receiver's port is free again");
    let sink = MockServer::builder().listener(back).start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    sqlx::query("UPDATE outbox SET next_attempt_at = now()")
        .execute(&db.admin_pool().await)
        .await
        .unwrap();
    let server = db
        .server_with_feedback(
            &[common::SECRET],
            true,
            feedback(None, &[down_url], WriteBackMode::CheckRun),
        )
        .await;
    let outbox = delivered(&db, 3).await;
    assert_eq!(outbox.len(), 3);
    assert!(outbox.iter().all(|(_, s, a)| s == "delivered" && *a == 2));
    assert_eq!(sink.received_requests().await.unwrap().len(), 3);
    server.shutdown().await;
}

/// An `issue_comment` delivery on PR #43 of the story's repository, from GitHub's example.
fn pr_comment(id: u64, body: &str) -> Vec<u8> {
    let story = verdict::story::feature_story("comment");
    let context: Value = serde_json::from_slice(&story[0].body).unwrap();
    let mut p: Value = serde_json::from_slice(&fixture("issue_comment/created.1.json")).unwrap();
    p["repository"] = context["repository"].clone();
    p["organization"] = context["organization"].clone();
    p["installation"] = context["installation"].clone();
    p["issue"]["number"] = json!(43);
    p["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/acme/storefront/pulls/43"});
    p["comment"]["id"] = json!(id);
    p["comment"]["body"] = json!(body);
    p["comment"]["user"]["login"] = json!("priya");
    serde_json::to_vec(&p).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn decision_commands_are_recorded_and_answered_once() {
    let db = TestDb::new().await;
    let github = MockServer::start().await;
    mount_installation_token(&github).await;
    // The answer to the first comment is lost in a 502 although GitHub stored it; the retry
    // finds it (by its hidden marker) instead of posting it again.
    let stored_reply: std::sync::Arc<std::sync::Mutex<Option<Value>>> = Default::default();
    let keep = stored_reply.clone();
    Mock::given(method("POST"))
        .and(path("/repos/acme/storefront/issues/43/comments"))
        .respond_with(move |r: &Request| {
            let mut kept = keep.lock().unwrap();
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            if kept.is_none() && body["body"].as_str().unwrap().contains("Recorded") {
                *kept = Some(body);
                return ResponseTemplate::new(502);
            }
            ResponseTemplate::new(201).set_body_json(json!({
                "id": 7, "html_url": "https://github.com/acme/storefront/pull/43#issuecomment-7"
            }))
        })
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/storefront/issues/42/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 5, "html_url": "https://github.com/acme/storefront/pull/42#issuecomment-5"
        })))
        .mount(&github)
        .await;
    let listed = stored_reply.clone();
    Mock::given(method("GET"))
        .and(path("/repos/acme/storefront/issues/43/comments"))
        .respond_with(move |_: &Request| {
            let stored = listed.lock().unwrap().clone();
            let comments: Vec<Value> = stored
                .into_iter()
                .map(|b| json!({"id": 6, "body": b["body"], "html_url": "https://github.com/acme/storefront/pull/43#issuecomment-6"}))
                .collect();
            ResponseTemplate::new(200).set_body_json(comments)
        })
        .mount(&github)
        .await;
    let server = db
        .server_with_feedback(
            &[common::SECRET],
            true,
            feedback(Some(&github), &[], WriteBackMode::Comment),
        )
        .await;
    server.deliver_story().await;
    let decided = pr_comment(
        9001,
        "/decision ship one-click checkout to 10% of users first",
    );
    assert!(
        server
            .deliver("issue_comment", "decision-1", &decided)
            .await
            .status()
            .is_success()
    );
    let malformed = pr_comment(9002, "/decision");
    assert!(
        server
            .deliver("issue_comment", "decision-2", &malformed)
            .await
            .status()
            .is_success()
    );
    // Redelivered by GitHub: no second answer.
    assert!(
        server
            .deliver("issue_comment", "decision-1", &decided)
            .await
            .status()
            .is_success()
    );

    // Two merged PRs get comments (comment mode), plus the two answers.
    let outbox = delivered(&db, 4).await;
    assert_eq!(outbox.len(), 4, "{outbox:?}");
    assert!(
        outbox.iter().all(|(_, s, _)| s == "delivered"),
        "{outbox:?}"
    );
    let to_github = github.received_requests().await.unwrap();
    let posts: Vec<Value> = received(&to_github, "POST", "/issues/43/comments")
        .into_iter()
        .map(json_of)
        .collect();
    let answers: Vec<&str> = posts
        .iter()
        .map(|p| p["body"].as_str().unwrap())
        .filter(|b| b.contains("/decision") || b.contains("Recorded"))
        .collect();
    assert_eq!(
        answers.len(),
        2,
        "the lost answer was found, not posted twice: {answers:?}"
    );
    let usage = answers.iter().find(|b| b.starts_with("Usage:")).unwrap();
    assert!(usage.contains("Nothing was recorded"));
    assert_eq!(received(&to_github, "GET", "/issues/43/comments").len(), 1);

    // The explicit decision is a record of its own, with who, when, what and which PR.
    let reply = stored_reply.lock().unwrap().clone().unwrap();
    let text = reply["body"].as_str().unwrap();
    assert!(text.contains("for @priya"), "{text}");
    let permalink = text
        .split_whitespace()
        .find(|w| w.starts_with("https://verdict.example/records/"))
        .unwrap()
        .trim_end_matches(':')
        .strip_prefix("https://verdict.example")
        .unwrap()
        .to_string();
    let record: Value = server
        .get(&format!("/api{permalink}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let decisions = record["decisions"].as_array().unwrap();
    let explicit = decisions
        .iter()
        .find(|d| d["kind"] == "decision.recorded")
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(explicit["actor"], "priya");
    assert_eq!(explicit["pr_number"], 43);
    assert_eq!(
        explicit["body"],
        "ship one-click checkout to 10% of users first"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_app_credentials_write_back_is_off_and_nothing_waits_for_github() {
    let db = TestDb::new().await;
    let server = db
        .server_with_feedback(
            &[common::SECRET],
            true,
            feedback(None, &[], WriteBackMode::CheckRun),
        )
        .await;
    server.deliver_story().await;
    let pool = db.app_pool().await;
    // The findings are judged (so the judge has passed the merges) ...
    for _ in 0..300 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
            .fetch_one(&pool)
            .await
            .unwrap();
        if n >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let judged: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(judged, 3);
    // ... and no message for GitHub was written.
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rules_config_switches_rules_off_scopes_them_and_sets_severities() {
    let db = TestDb::new().await;
    let mut config = feedback(None, &[], WriteBackMode::CheckRun);
    config.rules = verdict::feedback::config::RuleConfig::parse(
        r#"
        [rules.stale-approval]
        enabled = false

        [rules.dismissed-then-merged]
        severity = "high"

        [rules.merged-with-changes-requested]
        exclude = ["acme/store*"]
        "#,
    )
    .unwrap();
    let server = db
        .server_with_feedback(&[common::SECRET], true, config)
        .await;
    server.deliver_story().await;
    let pool = db.app_pool().await;
    let mut findings: Vec<(String, String)> = Vec::new();
    for _ in 0..100 {
        findings = sqlx::query_as("SELECT rule, severity FROM findings ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
        if !findings.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the judge finish the story, then look again: only the configured finding remains.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again: Vec<(String, String)> =
        sqlx::query_as("SELECT rule, severity FROM findings ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(findings, again);
    assert_eq!(
        again,
        [("dismissed-then-merged".to_string(), "high".to_string())]
    );
    server.shutdown().await;
}
