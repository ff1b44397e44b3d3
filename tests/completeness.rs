//! A complete record: deliveries GitHub failed to make are found and asked for again
//! (catch-up), against a mock of GitHub speaking its REST shapes and headers
//! (tests/fixtures/github-rest), rate limits and failures included.

mod common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use common::{ADMIN_TOKEN, TestDb, TestServer, project_all};
use serde_json::{Value, json};
use verdict::github::app::GitHubApp;
use verdict::intake::catch_up::CatchUp;
use wiremock::matchers::{method, path, path_regex, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP_ID: u64 = 31337;
const INSTALLATION: u64 = 4242;

fn rest_fixture(name: &str) -> Value {
    serde_json::from_slice(&common::local_fixture(&format!("github-rest/{name}"))).unwrap()
}

/// One delivery attempt as GitHub lists it (GitHub's example, with these values).
fn attempt(id: u64, guid: &str, minutes_ago: i64, redelivery: bool, status: &str) -> Value {
    let mut d = rest_fixture("GET_app_hook_deliveries.200.default.json")[0].clone();
    d["id"] = json!(id);
    d["guid"] = json!(guid);
    d["delivered_at"] = json!(
        (Utc::now() - Duration::minutes(minutes_ago))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    d["redelivery"] = json!(redelivery);
    d["status"] = json!(status);
    d["status_code"] = json!(if status == "OK" { 201 } else { 502 });
    d["installation_id"] = json!(INSTALLATION);
    d["event"] = json!("pull_request_review");
    d
}

/// The App's one installation, on account `acme`.
async fn mount_installations(github: &MockServer) {
    let mut installation = rest_fixture("GET_app_installations.200.default.json")[0].clone();
    installation["id"] = json!(INSTALLATION);
    installation["account"]["login"] = json!("acme");
    Mock::given(method("GET"))
        .and(path("/app/installations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([installation])))
        .mount(github)
        .await;
}

/// GitHub's delivery list in two pages (cursor pagination): the first answer of the first page
/// is a rate limit, and the first answer of the second a 502.
async fn mount_deliveries(github: &MockServer, first: Vec<Value>, second: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header(
                    "x-ratelimit-reset",
                    (Utc::now().timestamp() + 1).to_string(),
                )
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(github)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param_is_missing("cursor"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!(first))
                .insert_header(
                    "link",
                    format!(
                        "<{}/app/hook/deliveries?per_page=100&cursor=v1_next>; rel=\"next\"",
                        github.uri()
                    ),
                ),
        )
        .with_priority(2)
        .mount(github)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param("cursor", "v1_next"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(github)
        .await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        .and(query_param("cursor", "v1_next"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(second)))
        .with_priority(2)
        .mount(github)
        .await;
}

async fn mount_redelivery(github: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/app/hook/deliveries/\d+/attempts$"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .mount(github)
        .await;
}

async fn redeliveries_asked(github: &MockServer) -> Vec<String> {
    github
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| r.url.path().to_string())
        .collect()
}

/// A server holding three deliveries of account `acme`, with the GUIDs GitHub lists.
async fn three_delivered() -> (TestDb, TestServer) {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    let story = verdict::story::feature_story("x");
    for (i, guid) in ["guid-1", "guid-2", "guid-3"].iter().enumerate() {
        let r = server.deliver(story[i].event, guid, &story[i].body).await;
        assert_eq!(r.status(), 201);
    }
    (db, server)
}

fn catch_up(db_pool: &sqlx::PgPool, github: &MockServer) -> CatchUp {
    CatchUp::new(
        db_pool.clone(),
        Arc::new(GitHubApp::new(&common::github::app_config(APP_ID, &github.uri())).unwrap()),
        verdict::log::Sequencer::new(db_pool.clone()),
    )
}

async fn reconciliation_bodies(pool: &sqlx::PgPool) -> Vec<Value> {
    sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT body FROM log_entries WHERE kind = 'verdict-reconciliation' ORDER BY log_id, seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|b| serde_json::from_slice(&b).unwrap())
    .collect()
}

#[tokio::test]
async fn missing_deliveries_are_asked_for_once_and_recorded_in_the_log() {
    let (db, server) = three_delivered().await;
    let pool = db.app_pool().await;
    let github = MockServer::start().await;
    mount_installations(&github).await;
    mount_redelivery(&github).await;
    // Five GUIDs: three logged; guid-4 tried twice (the redelivery failed too), guid-5 once.
    mount_deliveries(
        &github,
        vec![
            attempt(205, "guid-4", 5, true, "Invalid HTTP Response: 502"),
            attempt(103, "guid-3", 20, false, "OK"),
            attempt(102, "guid-2", 30, false, "OK"),
        ],
        vec![
            attempt(105, "guid-5", 35, false, "Invalid HTTP Response: 503"),
            attempt(104, "guid-4", 40, false, "Invalid HTTP Response: 502"),
            attempt(101, "guid-1", 50, false, "OK"),
        ],
    )
    .await;
    let report = catch_up(&pool, &github).run_once().await.unwrap().unwrap();
    assert_eq!((report.listed, report.already_logged), (5, 3));
    assert_eq!(report.requested, ["guid-4", "guid-5"]);
    let mut asked = redeliveries_asked(&github).await;
    asked.sort();
    assert_eq!(
        asked,
        [
            "/app/hook/deliveries/105/attempts",
            "/app/hook/deliveries/205/attempts"
        ],
        "once per GUID, the newest attempt"
    );
    // Every request went as the App, with a JWT GitHub accepts.
    for r in github.received_requests().await.unwrap() {
        assert!(
            r.headers.get("authorization").is_some(),
            "{} {} unauthenticated",
            r.method,
            r.url
        );
        common::github::assert_app_jwt(APP_ID, &r);
    }
    // The rate-limited page and the 502 were waited out and retried.
    let listings = github
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/app/hook/deliveries")
        .count();
    assert_eq!(listings, 4, "two pages, each asked twice");

    // One reconciliation entry in acme's log says what was checked.
    let bodies = reconciliation_bodies(&pool).await;
    assert_eq!(bodies.len(), 1);
    let r = &bodies[0];
    assert_eq!(r["listed"], 5);
    assert_eq!(r["already_logged"], 3);
    assert_eq!(r["redelivery_requested"], json!(["guid-4", "guid-5"]));
    assert_eq!(r["coverage_gap"], Value::Null);
    let log: String = sqlx::query_scalar(
        "SELECT l.name FROM log_entries e JOIN logs l ON l.id = e.log_id
          WHERE e.kind = 'verdict-reconciliation'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(log, "acme");

    // A second run asks for nothing again (both requests are pending) and appends its check.
    let again = catch_up(&pool, &github).run_once().await.unwrap().unwrap();
    assert!(again.requested.is_empty());
    assert_eq!(redeliveries_asked(&github).await.len(), 2);
    assert_eq!(reconciliation_bodies(&pool).await.len(), 2);

    // GitHub redelivers guid-4 through the signed endpoint: /coverage counts it recovered.
    let story = verdict::story::feature_story("x");
    let r = server
        .deliver(story[3].event, "guid-4", &story[3].body)
        .await;
    assert_eq!(r.status(), 201);
    project_all(&pool).await;
    let coverage: Value = server
        .get("/api/coverage", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let acme = &coverage["accounts"][0];
    assert_eq!(acme["account"], "acme");
    assert_eq!(acme["recovered"], 1);
    assert_eq!(acme["pending"], 1);
    assert_eq!(acme["pending_guids"], json!(["guid-5"]));
    assert_eq!(acme["gaps"], json!([]));
    assert_eq!(acme["reconciliations"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn a_window_older_than_github_keeps_is_recorded_as_a_gap_and_shown() {
    let (db, server) = three_delivered().await;
    let pool = db.app_pool().await;
    let github = MockServer::start().await;
    mount_installations(&github).await;
    mount_redelivery(&github).await;
    mount_deliveries(
        &github,
        vec![attempt(103, "guid-3", 20, false, "OK")],
        vec![
            attempt(102, "guid-2", 30, false, "OK"),
            attempt(101, "guid-1", 50, false, "OK"),
        ],
    )
    .await;
    // The last reconciliation was five days ago: GitHub keeps about three.
    let last = Utc::now() - Duration::days(5);
    sqlx::query("INSERT INTO catch_up_state (reconciled_through) VALUES ($1)")
        .bind(last)
        .execute(&db.admin_pool().await)
        .await
        .unwrap();
    let report = catch_up(&pool, &github).run_once().await.unwrap().unwrap();
    let gap = report.gap.expect("a coverage gap");
    assert_eq!(gap.from.timestamp(), last.timestamp());
    assert!(
        gap.to > Utc::now() - Duration::minutes(51) && gap.to < Utc::now() - Duration::minutes(49)
    );
    assert!(report.requested.is_empty());
    let r = &reconciliation_bodies(&pool).await[0];
    assert_eq!(
        r["coverage_gap"]["from"].as_str().unwrap()[..16],
        last.to_rfc3339()[..16]
    );

    project_all(&pool).await;
    let coverage: Value = server
        .get("/api/coverage", None)
        .await
        .json()
        .await
        .unwrap();
    let acme = &coverage["accounts"][0];
    assert_eq!(acme["gaps"].as_array().unwrap().len(), 1);
    assert!(
        acme.get("pending_guids").is_none(),
        "GUIDs are for operators"
    );
    let page = server.get("/coverage", None).await.text().await.unwrap();
    assert!(
        page.contains("1 earlier gap GitHub no longer lists"),
        "{page}"
    );
    let repo = server
        .get(&format!("/{}", verdict::story::REPO), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(repo.contains("Deliveries: complete since"), "{repo}");
    assert!(repo.contains("1 earlier gap"), "{repo}");
    server.shutdown().await;
}

/// PR #60 of the rule stories (opened, then merged without a review), and an approval of its
/// head submitted before the merge, built from GitHub's review payload.
fn merge_then_late_approval() -> (Vec<verdict::story::Delivery>, verdict::story::Delivery) {
    let stories = verdict::story::rule_stories("late");
    let (_, _, unreviewed) = stories
        .iter()
        .find(|(rule, _, _)| *rule == "merged-without-approval")
        .unwrap()
        .clone();
    let opened: Value = serde_json::from_slice(&unreviewed[0].body).unwrap();
    let head = opened["pull_request"]["head"]["sha"].clone();
    let (_, _, red) = stories
        .iter()
        .find(|(rule, _, _)| *rule == "merged-with-failing-checks")
        .unwrap()
        .clone();
    let review = red
        .iter()
        .find(|d| d.event == "pull_request_review")
        .unwrap();
    let mut approval: Value = serde_json::from_slice(&review.body).unwrap();
    approval["pull_request"] = opened["pull_request"].clone();
    approval["review"]["id"] = json!(8_800_001);
    approval["review"]["commit_id"] = head;
    approval["review"]["submitted_at"] = json!("2026-11-09T09:30:00Z");
    let approval = verdict::story::Delivery {
        event: "pull_request_review",
        delivery_id: "late-approval".into(),
        body: serde_json::to_vec(&approval).unwrap(),
    };
    (unreviewed, approval)
}

async fn findings_of(pool: &sqlx::PgPool) -> Vec<(String, Option<i64>)> {
    sqlx::query_as("SELECT rule, withdrawn_seq FROM findings WHERE pr_number = 60 ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_finding_that_later_records_show_wrong_is_withdrawn_and_alerts_say_so() {
    let db = TestDb::new().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let feedback = verdict::feedback::FeedbackConfig {
        alerts: vec![
            verdict::feedback::alerts::parse_target(&format!("{}/alerts", receiver.uri())).unwrap(),
        ],
        ..Default::default()
    };
    let server = db
        .server_with_feedback(&[common::SECRET], true, feedback)
        .await;
    let pool = db.app_pool().await;
    let (merge, approval) = merge_then_late_approval();
    for d in &merge {
        assert_eq!(
            server
                .deliver(d.event, &d.delivery_id, &d.body)
                .await
                .status(),
            201
        );
    }
    // Judged at once (no settle window): the merge has no approval yet.
    let mut recorded = Vec::new();
    for _ in 0..200 {
        project_all(&pool).await;
        recorded = findings_of(&pool).await;
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(recorded, [("merged-without-approval".to_string(), None)]);
    // The approval, submitted before the merge, arrives late (as catch-up would bring it).
    assert_eq!(
        server
            .deliver(approval.event, &approval.delivery_id, &approval.body)
            .await
            .status(),
        201
    );
    let mut withdrawn = None;
    for _ in 0..200 {
        project_all(&pool).await;
        if let [(_, Some(seq))] = findings_of(&pool).await.as_slice() {
            withdrawn = Some(*seq);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let withdrawn = withdrawn.expect("the finding is withdrawn");
    // The withdrawal is an entry of its own, citing the approval; the finding is unchanged.
    let record: Value = server
        .get(&format!("/api/records/acme/{withdrawn}"), Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(record["kind"], "verdict-finding-withdrawn");
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    let approval_seq: i64 =
        sqlx::query_scalar("SELECT seq FROM log_entries WHERE delivery_id = 'late-approval'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        body["evidence"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("/records/acme/{approval_seq}"))),
        "{body}"
    );
    // Pages and the API show it withdrawn, and no longer count it.
    let pull: Value = server
        .get("/api/acme/storefront/pull/60", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        pull["pull"]["findings"][0]["rule"],
        "merged-without-approval"
    );
    assert!(pull["pull"]["findings"][0]["withdrawn"]["record_url"].is_string());
    let open: Value = server
        .get("/api/findings?acknowledged=no", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open["total"], 0, "nothing stands");
    // The receiver heard of the finding, then of its withdrawal.
    let mut events = Vec::new();
    for _ in 0..200 {
        events = receiver
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["event"].clone())
            .collect::<Vec<_>>();
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(events, [json!("finding"), json!("finding-withdrawn")]);
    server.shutdown().await;
}

#[tokio::test]
async fn within_the_settle_window_a_late_approval_leaves_no_finding_at_all() {
    let db = TestDb::new().await;
    let feedback = verdict::feedback::FeedbackConfig {
        judge_settle: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let server = db
        .server_with_feedback(&[common::SECRET], true, feedback)
        .await;
    let pool = db.app_pool().await;
    let (merge, approval) = merge_then_late_approval();
    for d in merge.iter().chain([&approval]) {
        assert_eq!(
            server
                .deliver(d.event, &d.delivery_id, &d.body)
                .await
                .status(),
            201
        );
    }
    // Once the PR has settled and been judged, it has no finding.
    for _ in 0..400 {
        project_all(&pool).await;
        let (judged_to, pending): (i64, i64) = sqlx::query_as(
            "SELECT coalesce((SELECT max(next_seq) FROM judge_cursors), 0),
                    (SELECT count(*) FROM judge_pending)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if judged_to >= 3 && pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        findings_of(&pool).await.is_empty(),
        "no finding was ever recorded"
    );
    let entries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM log_entries WHERE kind LIKE 'verdict-finding%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(entries, 0);
    server.shutdown().await;
}

/// The `href`s of a page that point into verdict (anchors and query variants of one page
/// aside, which answer as the page does).
fn internal_links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with('/') && !href.starts_with("//"))
        .map(|href| href.replace("&#38;", "&").replace("&amp;", "&"))
        .map(|href| href.split('#').next().unwrap_or_default().to_string())
        .filter(|href| !href.is_empty())
        .collect()
}

#[tokio::test]
async fn nothing_verdict_links_to_answers_404() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    // Every real payload there is, and a comment on a pull request whose opening never came.
    for (i, (event, path)) in common::fixture_payloads().iter().enumerate() {
        let body = std::fs::read(path).unwrap();
        server.deliver(event, &format!("fixture-{i}"), &body).await;
    }
    let mut lone: Value =
        serde_json::from_slice(&common::fixture("issue_comment/created.1.json")).unwrap();
    lone["issue"]["number"] = json!(777);
    lone["issue"]["pull_request"] = json!({
        "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/777",
        "html_url": "https://github.com/Codertocat/Hello-World/pull/777"
    });
    lone["comment"]["id"] = json!(777_001);
    lone["comment"]["html_url"] =
        json!("https://github.com/Codertocat/Hello-World/pull/777#issuecomment-1");
    let r = server
        .deliver(
            "issue_comment",
            "lone-comment",
            &serde_json::to_vec(&lone).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201);
    project_all(&db.app_pool().await).await;

    // The pull request known only through that comment has a page that says so.
    let page = server
        .get("/Codertocat/Hello-World/pull/777", Some(ADMIN_TOKEN))
        .await;
    let status = page.status();
    let page = page.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"opening-not-seen\""), "{page}");
    assert!(page.contains("href=\"https://github.com/Codertocat/Hello-World/pull/777\""));
    let api: Value = server
        .get("/api/Codertocat/Hello-World/pull/777", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["pull"]["opening_seen"], false);
    assert_eq!(api["pull"]["state"], "unknown");
    assert_eq!(api["decisions"]["decisions"][0]["kind"], "comment.created");

    // Every page verdict links to, from the front page on, answers.
    let mut seen = std::collections::BTreeSet::new();
    let mut queue = std::collections::VecDeque::from(["/".to_string()]);
    let mut dead = Vec::new();
    while let Some(path) = queue.pop_front() {
        // One page of a query-string family is enough (filters, pages, kinds).
        let family = path.split('?').next().unwrap().to_string();
        if !seen.insert(family) || seen.len() > 600 {
            continue;
        }
        let r = server.get(&path, Some(ADMIN_TOKEN)).await;
        let status = r.status().as_u16();
        if status == 404 || status >= 500 {
            dead.push(format!("{path} → {status}"));
            continue;
        }
        let html_page = r
            .headers()
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap_or("").starts_with("text/html"));
        if html_page {
            queue.extend(internal_links(&r.text().await.unwrap()));
        }
    }
    assert!(seen.len() > 50, "the crawl reached {} pages", seen.len());
    assert!(
        seen.contains("/Codertocat/Hello-World/pull/777"),
        "linked from its repository"
    );
    assert!(dead.is_empty(), "links to nothing: {dead:#?}");
    server.shutdown().await;
}
