//! History from before the App was installed, read from GitHub's API (a stand-in speaking its
//! REST shapes and headers): it shows on the pages marked as from the API, a second run adds
//! nothing, a webhook for the same review adds an entry but no second record, a crash resumes,
//! and findings on history send no alert.

mod common;

use std::sync::Arc;

use common::github::FakeRepository;
use common::{ADMIN_TOKEN, TestDb, TestServer, project_all};
use serde_json::{Value, json};
use verdict::github::app::GitHubApp;
use verdict::intake::backfill::{Backfill, Progress};
use wiremock::MockServer;

const APP_ID: u64 = 31337;
const REPO: &str = "acme/web";

async fn stand_in(repo: FakeRepository) -> (Arc<FakeRepository>, MockServer) {
    let github = MockServer::start().await;
    let repo = Arc::new(repo);
    repo.mount(&github).await;
    (repo, github)
}

fn backfill(pool: &sqlx::PgPool, github: &MockServer) -> Backfill {
    Backfill::new(
        pool.clone(),
        Arc::new(GitHubApp::new(&common::github::app_config(APP_ID, &github.uri())).unwrap()),
        verdict::log::Sequencer::new(pool.clone()),
    )
}

async fn run(b: &Backfill, since: Option<chrono::DateTime<chrono::Utc>>) -> Progress {
    b.enqueue(REPO, 4242, since, false).await.unwrap();
    b.run(REPO, |_| {}).await.unwrap()
}

async fn api_entries(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM log_entries WHERE kind = 'github-api'")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn get(server: &TestServer, path: &str) -> Value {
    let r = server.get(path, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_backfilled_history_shows_on_the_pages_marked_as_from_the_api() {
    let mut fake = FakeRepository::new(REPO, 3, 2, 2);
    fake.page_size = 2;
    fake.rate_limit_once = true;
    let (fake, github) = stand_in(fake).await;
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    let pool = db.app_pool().await;
    let b = backfill(&pool, &github);

    let done = run(&b, None).await;
    assert_eq!(done.pulls_done, 3);
    assert_eq!(done.appended as usize, fake.objects());
    assert_eq!(api_entries(&pool).await as usize, fake.objects());
    // Every entry is the exact bytes GitHub sent, with the request URL and GitHub's Date.
    let (url, date, event, body): (String, String, String, Vec<u8>) = sqlx::query_as(
        "SELECT hook_id, signature, event, body FROM log_entries
          WHERE kind = 'github-api' AND event = 'pull_request_review' ORDER BY seq LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        url.starts_with("/repos/acme/web/pulls/") && url.contains("/reviews"),
        "{url}"
    );
    assert_eq!(date, "Mon, 30 Nov 2026 12:00:00 GMT");
    assert_eq!(event, "pull_request_review");
    let review: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        review["node_id"], "MDE3OlB1bGxSZXF1ZXN0UmV2aWV3ODA=",
        "GitHub's own object"
    );
    let page = github
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/repos/acme/web/pulls")
        .count();
    assert_eq!(page, 3, "a rate-limited answer, then two pages");
    let asked = |path: &'static str| {
        let github = &github;
        async move {
            github
                .received_requests()
                .await
                .unwrap()
                .iter()
                .filter(|r| r.url.path() == path)
                .count()
        }
    };
    assert_eq!(
        asked("/repos/acme/web/pulls/1").await,
        2,
        "a 502, then the answer"
    );
    let timelines = github
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/timeline"))
        .count();
    assert_eq!(
        timelines,
        1 + 3 * 2,
        "a 429 with Retry-After, then three timelines of two pages"
    );

    project_all(&pool).await;
    // The merged pull request: its decisions, each marked as from the API.
    let pull = get(&server, "/api/acme/web/pull/2").await;
    assert_eq!(pull["pull"]["merged_by"], "lead-bo");
    let decisions = pull["decisions"]["decisions"].as_array().unwrap();
    let kinds: Vec<&str> = decisions
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "pr.opened",
        "pr.review_requested",
        "pr.labeled",
        "pr.synchronize",
        "review.changes_requested",
        "review.approved",
        "review_comment.created",
        "comment.created",
        "check.success",
        "pr.merged",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(
        decisions
            .iter()
            .all(|d| d["from_api"] == "2026-11-30T12:00:00Z"),
        "{decisions:?}"
    );
    let html = server
        .get("/acme/web/pull/2", Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("from GitHub&#39;s API on 2026-11-30, not a signed delivery")
            || html.contains("from GitHub's API on 2026-11-30, not a signed delivery"),
        "{html}"
    );
    assert!(html.contains("force-pushed the branch"));
    // A record read from the API says what its fields are: the request, GitHub's Date.
    let record_url = decisions[0]["record_url"]
        .as_str()
        .unwrap()
        .split('#')
        .next()
        .unwrap();
    // Shown to whoever may see the repository: here, it being public, to anyone.
    let record = server.get(record_url, None).await.text().await.unwrap();
    assert!(
        record.contains("<dt>Request</dt><dd><code>GET /repos/acme/web/pulls"),
        "{record}"
    );
    assert!(record.contains("Mon, 30 Nov 2026 12:00:00 GMT"));
    assert!(
        record.contains("as GitHub&#39;s API returned it")
            || record.contains("as GitHub's API returned it")
    );
    // The feature the pull requests close, with the product manager's discussion on the issue.
    let feature = get(&server, "/api/acme/web/features/issue-100000").await;
    assert_eq!(feature["feature"]["title"], "#100000 Saved payment methods");
    assert_eq!(feature["totals"]["pull_requests"], 3);
    assert_eq!(feature["totals"]["merged"], 1);
    let discussion: Vec<&Value> = feature["decisions"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "issue.commented")
        .collect();
    assert_eq!(discussion.len(), 2);
    assert_eq!(discussion[0]["actor"], "maria-pm");

    // A second backfill appends nothing: every object is already there, unchanged.
    let again = run(&b, None).await;
    assert_eq!(again.appended, 0);
    assert_eq!(api_entries(&pool).await as usize, fake.objects());
    server.shutdown().await;
}

#[tokio::test]
async fn a_webhook_for_a_backfilled_review_adds_its_entry_but_no_second_record() {
    let (_fake, github) = stand_in(FakeRepository::new(REPO, 1, 1, 0)).await;
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    let pool = db.app_pool().await;
    run(&backfill(&pool, &github), None).await;
    project_all(&pool).await;
    let records = async || -> Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> {
        sqlx::query_as(
            "SELECT kind, from_api FROM decisions WHERE repo = 'acme/web' AND pr_number = 1
                AND kind LIKE 'review.%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let before = records().await;
    assert_eq!(before.len(), 1);
    assert!(before[0].1.is_some(), "from the API");

    // GitHub (redelivering, say) sends the same review as a signed webhook.
    let mut delivery: Value =
        serde_json::from_slice(&common::fixture("pull_request_review/submitted.1.json")).unwrap();
    delivery["repository"]["full_name"] = json!(REPO);
    delivery["repository"]["name"] = json!("web");
    delivery["repository"]["owner"]["login"] = json!("acme");
    delivery["repository"]["private"] = json!(false);
    delivery["pull_request"]["number"] = json!(1);
    delivery["review"]["id"] = json!(100);
    delivery["review"]["state"] = json!("changes_requested");
    let r = server
        .deliver(
            "pull_request_review",
            "review-100-webhook",
            &serde_json::to_vec(&delivery).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201, "the delivery has its own entry in the log");
    project_all(&pool).await;
    let after = records().await;
    assert_eq!(after.len(), 1, "still one record of the review: {after:?}");
    assert_eq!(after[0].1, None, "now the signed delivery's");
    server.shutdown().await;
}

#[tokio::test]
async fn a_backfill_that_crashes_in_the_middle_resumes_where_it_was() {
    let mut fake = FakeRepository::new(REPO, 5, 1, 1);
    fake.page_size = 2;
    let (fake, github) = stand_in(fake).await;
    let db = TestDb::new().await;
    let pool = db.app_pool().await;
    let b = backfill(&pool, &github);
    b.enqueue(REPO, 4242, None, false).await.unwrap();
    // The third page's pull request hangs: the process dies there.
    *fake.hang_on.lock().unwrap() = Some("/pulls/5/reviews".into());
    let running = tokio::spawn({
        let b = b.clone();
        async move { b.run(REPO, |_| {}).await }
    });
    for _ in 0..400 {
        let next: Option<String> =
            sqlx::query_scalar("SELECT next_page FROM backfill_jobs WHERE repo = $1")
                .bind(REPO)
                .fetch_one(&pool)
                .await
                .unwrap();
        if next.is_some_and(|n| n.contains("page=3")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    running.abort();
    let _ = running.await;
    let partial = api_entries(&pool).await;
    assert!(
        partial > 0 && (partial as usize) < fake.objects(),
        "{partial}"
    );
    let state: String = sqlx::query_scalar("SELECT state FROM backfill_jobs WHERE repo = $1")
        .bind(REPO)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "running", "left as a crash leaves it");

    // Restarted: it resumes at the third page and completes, nothing twice.
    *fake.hang_on.lock().unwrap() = None;
    let runner = verdict::intake::backfill::Runner::new(b.clone());
    sqlx::query("UPDATE backfill_jobs SET updated_at = now() - interval '2 minutes'")
        .execute(&db.admin_pool().await)
        .await
        .unwrap();
    let (repo, done) = runner
        .run_next()
        .await
        .unwrap()
        .expect("the stale job is picked up");
    assert_eq!(repo, REPO);
    assert_eq!(done.pulls_done, 5);
    assert_eq!(api_entries(&pool).await as usize, fake.objects());
    let reread = github
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/repos/acme/web/pulls/1")
        .count();
    assert_eq!(reread, 1, "the first pages were not read again");
}

#[tokio::test]
async fn installing_the_app_queues_a_backfill_of_its_repositories() {
    let (_fake, github) = stand_in(FakeRepository::new(REPO, 1, 1, 0)).await;
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    let pool = db.app_pool().await;
    let mut created: Value =
        serde_json::from_slice(&common::fixture("installation/created.1.json")).unwrap();
    created["installation"]["id"] = json!(4242);
    created["installation"]["account"]["login"] = json!("acme");
    created["repositories"] =
        json!([{"id": 1, "name": "web", "full_name": REPO, "private": false}]);
    let r = server
        .deliver(
            "installation",
            "installed-1",
            &serde_json::to_vec(&created).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201);
    let runner = verdict::intake::backfill::Runner::new(backfill(&pool, &github));
    assert_eq!(runner.discover().await.unwrap(), 1);
    assert_eq!(
        runner.discover().await.unwrap(),
        0,
        "each delivery queues once"
    );
    let (repo, done) = runner.run_next().await.unwrap().unwrap();
    assert_eq!((repo.as_str(), done.pulls_done), (REPO, 1));
    project_all(&pool).await;
    let coverage: Value = server
        .get("/api/coverage", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let job = &coverage["accounts"][0]["backfills"][0];
    assert_eq!(job["repo"], REPO);
    assert_eq!(job["state"], "done");
    assert_eq!(job["pulls_done"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn findings_on_history_are_recorded_and_shown_but_send_no_alert() {
    // One merged pull request whose only review asked for changes.
    let (_fake, github) = stand_in(FakeRepository::new(REPO, 2, 1, 0)).await;
    let db = TestDb::new().await;
    let receiver = MockServer::start().await;
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
    run(&backfill(&pool, &github), None).await;
    let mut findings = Value::Null;
    for _ in 0..200 {
        project_all(&pool).await;
        findings = get(&server, "/api/findings").await;
        // Judged as the objects are projected: wait for the change request to be seen.
        if findings
            .to_string()
            .contains("merged-with-changes-requested")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rules: Vec<&str> = findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"merged-with-changes-requested"),
        "{rules:?}"
    );
    assert!(
        findings["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["history"] == true)
    );
    let html = server
        .get("/findings", Some(ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(">history</span>"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outbox, 0, "no alert, no write-back for history");
    assert!(receiver.received_requests().await.unwrap().is_empty());
    server.shutdown().await;
}
