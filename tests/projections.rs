//! Decision records from real payloads, and the projector over a real log: ordering, features,
//! unreadable entries and `reproject`.

mod common;

use chrono::{DateTime, Utc};
use common::{SECRET, TestDb, fixture, fixture_payloads};
use serde_json::{Value, json};
use sqlx::Row;
use verdict::projections::decisions::{Decision, KINDS, project, project_value};
use verdict::projections::features::{DEFAULT_LABEL_PREFIX, FeatureLinking};

/// `feature:` labels, no tracker keys.
fn labels() -> FeatureLinking {
    FeatureLinking::labels(DEFAULT_LABEL_PREFIX)
}
use verdict::projections::projector::{Projector, backlog};

fn json_fixture(rel: &str) -> Value {
    serde_json::from_slice(&fixture(rel)).unwrap()
}

fn one(event: &str, payload: &Value) -> Decision {
    let p = project(
        event,
        &serde_json::to_vec(payload).unwrap(),
        Utc::now(),
        &labels(),
    )
    .unwrap();
    assert_eq!(p.decisions.len(), 1, "{event}: {:?}", p.decisions);
    let d = p.decisions.into_iter().next().unwrap();
    assert!(
        KINDS.contains(&d.kind.as_str()),
        "undocumented kind {}",
        d.kind
    );
    d
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

/// A merged copy of the real `closed` payload (none of GitHub's examples is a merge).
fn merged_pr() -> Value {
    let mut p = json_fixture("pull_request/closed.1.json");
    let pr = &mut p["pull_request"];
    pr["merged"] = json!(true);
    pr["merged_at"] = json!("2019-05-15T15:21:18Z");
    pr["merged_by"] = json!({"login": "Octocat"});
    pr["merge_commit_sha"] = json!("c4295bd74fb0f4fda03689c3df3f2803b658fd85");
    p
}

#[test]
fn every_real_payload_of_an_interpreted_event_projects() {
    for (event, path) in fixture_payloads() {
        let body = std::fs::read(&path).unwrap();
        let projected = project(&event, &body, Utc::now(), &labels());
        assert!(
            projected.is_ok(),
            "{}: {:?}",
            path.display(),
            projected.err()
        );
        for d in projected.unwrap().decisions {
            assert!(
                KINDS.contains(&d.kind.as_str()),
                "{}: undocumented kind {}",
                path.display(),
                d.kind
            );
        }
    }
}

/// The projector parses payloads without their API links (`*_url`, `_links`); over every
/// real payload that must project exactly as the whole payload does.
#[test]
fn leaving_out_api_links_changes_no_projection() {
    let mut compared = 0;
    for (event, path) in fixture_payloads() {
        let body = std::fs::read(&path).unwrap();
        let whole: Value = serde_json::from_slice(&body).unwrap();
        let from_whole = project_value(&event, &whole, at("2030-01-01T00:00:00Z"), &labels());
        let pruned = project(&event, &body, at("2030-01-01T00:00:00Z"), &labels());
        assert_eq!(pruned, from_whole, "{}", path.display());
        if from_whole.is_ok_and(|p| !p.decisions.is_empty()) {
            compared += 1;
        }
    }
    assert!(compared > 50, "only {compared} payloads yielded decisions");
}

#[test]
fn pull_request_lifecycle_decisions() {
    let opened = one("pull_request", &json_fixture("pull_request/opened.1.json"));
    assert_eq!(
        (opened.kind.as_str(), opened.pr_number, opened.repo.as_str()),
        ("pr.opened", Some(2), "Codertocat/Hello-World")
    );
    assert_eq!(opened.occurred_at, at("2019-05-15T15:20:33Z"));
    assert_eq!(opened.actor.as_deref(), Some("Codertocat"));

    let closed = one("pull_request", &json_fixture("pull_request/closed.1.json"));
    assert_eq!(closed.kind, "pr.closed");

    let merged = one("pull_request", &merged_pr());
    assert_eq!(merged.kind, "pr.merged");
    assert_eq!(merged.actor.as_deref(), Some("Octocat"));
    assert_eq!(
        merged.commit_sha.as_deref(),
        Some("c4295bd74fb0f4fda03689c3df3f2803b658fd85")
    );
    assert_eq!(merged.occurred_at, at("2019-05-15T15:21:18Z"));

    let sync = json_fixture("pull_request/synchronize.1.json");
    let d = one("pull_request", &sync);
    assert_eq!(d.kind, "pr.synchronize");
    assert_eq!(d.commit_sha.as_deref(), sync["after"].as_str());

    let labeled = one("pull_request", &json_fixture("pull_request/labeled.1.json"));
    assert_eq!(
        (labeled.kind.as_str(), labeled.details["label"].as_str()),
        ("pr.labeled", Some("bug"))
    );
    let requested = one(
        "pull_request",
        &json_fixture("pull_request/review_requested.1.json"),
    );
    assert_eq!(requested.kind, "pr.review_requested");
    assert!(
        requested.details.get("requested_reviewer").is_some()
            || requested.details.get("requested_team").is_some()
    );
    for action in [
        "reopened",
        "ready_for_review",
        "converted_to_draft",
        "unlabeled",
        "review_request_removed",
    ] {
        let d = one(
            "pull_request",
            &json_fixture(&format!("pull_request/{action}.1.json")),
        );
        assert_eq!(d.kind, format!("pr.{action}"));
    }
}

#[test]
fn review_decisions_carry_the_reviewed_commit() {
    let commented = json_fixture("pull_request_review/submitted.1.json");
    let d = one("pull_request_review", &commented);
    assert_eq!(d.kind, "review.commented");
    assert_eq!(
        d.commit_sha.as_deref(),
        Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821")
    );
    assert_eq!(d.occurred_at, at("2019-05-15T15:20:38Z"));
    for (state, kind) in [
        ("approved", "review.approved"),
        ("changes_requested", "review.changes_requested"),
        ("APPROVED", "review.approved"),
    ] {
        let mut p = commented.clone();
        p["review"]["state"] = json!(state);
        p["review"]["body"] = json!("LGTM");
        let d = one("pull_request_review", &p);
        assert_eq!(d.kind, kind);
        assert_eq!(d.body.as_deref(), Some("LGTM"));
    }
    let dismissed = one(
        "pull_request_review",
        &json_fixture("pull_request_review/dismissed.1.json"),
    );
    assert_eq!(dismissed.kind, "review.dismissed");
}

#[test]
fn comments_threads_checks_issues_and_forced_pushes() {
    let rc = one(
        "pull_request_review_comment",
        &json_fixture("pull_request_review_comment/created.1.json"),
    );
    assert_eq!(rc.kind, "review_comment.created");
    assert!(rc.body.is_some() && rc.commit_sha.is_some() && rc.details["path"].is_string());
    assert_eq!(
        one(
            "pull_request_review_thread",
            &json_fixture("pull_request_review_thread/resolved.1.json")
        )
        .kind,
        "review_thread.resolved"
    );
    assert_eq!(
        one(
            "pull_request_review_thread",
            &json_fixture("pull_request_review_thread/unresolved.1.json")
        )
        .kind,
        "review_thread.unresolved"
    );

    // A comment on a plain issue is discussion of the feature the issue names; the same
    // comment on a PR is a PR decision.
    let mut comment = json_fixture("issue_comment/created.1.json");
    let discussion = one("issue_comment", &comment);
    assert_eq!(
        (discussion.kind.as_str(), discussion.pr_number),
        ("issue.commented", None)
    );
    assert_eq!(discussion.details["feature"], "issue-1");
    comment["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"});
    let c = one("issue_comment", &comment);
    assert_eq!((c.kind.as_str(), c.pr_number), ("comment.created", Some(1)));

    let issue = project(
        "issues",
        &fixture("issues/opened.1.json"),
        Utc::now(),
        &labels(),
    )
    .unwrap();
    assert_eq!(issue.decisions[0].kind, "issue.opened");
    assert_eq!(issue.features[0].key, "issue-1");

    let suite = one("check_suite", &json_fixture("check_suite/completed.1.json"));
    assert_eq!(suite.kind, "check.success");
    assert!(suite.commit_sha.is_some());
    assert_eq!(
        one("status", &json_fixture("status/event.1.json")).kind,
        "check.success"
    );

    let mut push = json_fixture("push/event.1.json");
    assert!(
        project(
            "push",
            &serde_json::to_vec(&push).unwrap(),
            Utc::now(),
            &labels()
        )
        .unwrap()
        .decisions
        .is_empty()
    );
    push["forced"] = json!(true);
    let forced = one("push", &push);
    assert_eq!(forced.kind, "push.forced");
    assert_eq!(forced.commit_sha.as_deref(), push["after"].as_str());
}

async fn table_dump(pool: &sqlx::PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT log_id, seq, ordinal, repo, pr_number, kind, actor, occurred_at::text, commit_sha, body, details::text FROM decisions ORDER BY 1, 2, 3",
        "SELECT repo, number, title, state, merged, merged_by, head_sha, updated_at::text FROM pull_requests ORDER BY 1, 2",
        "SELECT repo, key, title FROM features ORDER BY 1, 2",
        "SELECT repo, key, pr_repo, pr_number, source FROM feature_pull_requests ORDER BY 1, 2, 3, 4, 5",
        "SELECT log_id, seq, problem FROM projection_problems ORDER BY 1, 2",
        "SELECT repo, log_id, private, last_activity::text FROM repositories ORDER BY 1",
        "SELECT log_id, next_seq, verified_size, encode(verified_head, 'hex'), chain_problem FROM projection_cursors ORDER BY 1",
    ] {
        for row in sqlx::query(sql).fetch_all(pool).await.unwrap() {
            let cols: Vec<String> = (0..row.len())
                .map(|i| {
                    row.try_get::<Option<String>, _>(i)
                        .map(|v| v.unwrap_or_default())
                        .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                        .or_else(|_| row.try_get::<Option<i32>, _>(i).map(|v| format!("{v:?}")))
                        .or_else(|_| row.try_get::<Option<bool>, _>(i).map(|v| format!("{v:?}")))
                        .unwrap()
                })
                .collect();
            out.push(cols.join("|"));
        }
    }
    out
}

#[tokio::test]
async fn the_projector_orders_by_github_time_links_features_survives_garbage_and_reprojects_identically()
 {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;

    let mut opened = json_fixture("pull_request/opened.1.json");
    opened["pull_request"]["body"] = json!("This adds the greeting.\n\nFixes #1");
    opened["pull_request"]["labels"] = json!([{"name": "feature: Greetings"}]);
    let mut approved = json_fixture("pull_request_review/submitted.1.json");
    approved["review"]["state"] = json!("approved");
    let story: Vec<(&str, Value)> = vec![
        // The review arrives before the PR's "opened": it must still sort after it.
        ("pull_request_review", approved),
        ("pull_request", opened),
        ("issues", json_fixture("issues/opened.1.json")),
        ("pull_request", merged_pr()),
    ];
    for (i, (event, payload)) in story.iter().enumerate() {
        let res = server
            .deliver(
                event,
                &format!("story-{i}"),
                &serde_json::to_vec(payload).unwrap(),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let res = server
        .deliver("pull_request", "garbage", b"{\"action\": \"opened\"")
        .await;
    assert_eq!(res.status(), 201);
    server.shutdown().await;

    let pool = db.app_pool().await;
    let projector = Projector::new(pool.clone(), DEFAULT_LABEL_PREFIX);
    // The server's own projector may have read some entries before it stopped: a rebuild
    // reads all five, whatever it did.
    let done = projector.rebuild().await.unwrap();
    assert_eq!(done.entries, 5);
    assert_eq!(
        done.problems, 1,
        "the unreadable body is reported, not fatal"
    );
    assert_eq!(backlog(&pool).await.unwrap(), 0);

    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM decisions WHERE repo = 'Codertocat/Hello-World' AND pr_number = 2
          ORDER BY occurred_at, log_id, seq, ordinal",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["pr.opened", "review.approved", "pr.merged"]);

    let pr: (String, bool, Option<String>) =
        sqlx::query_as("SELECT state, merged, merged_by FROM pull_requests WHERE number = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        pr,
        ("closed".to_string(), true, Some("Octocat".to_string()))
    );

    // The merged state's body no longer says "Fixes #1" nor carries the label: the PR's
    // features follow its newest state; the issue's feature remains, titled by the issue.
    let features: Vec<(String, String)> =
        sqlx::query_as("SELECT key, title FROM features ORDER BY key")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        features.contains(&(
            "issue-1".into(),
            "#1 Spelling error in the README file".into()
        )),
        "{features:?}"
    );
    assert!(
        features.iter().any(|(k, _)| k == "greetings"),
        "{features:?}"
    );

    let problems: Vec<String> = sqlx::query_scalar("SELECT problem FROM projection_problems")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(problems, ["body is not JSON"]);

    // Catching up again changes nothing; rebuilding from the log gives the same tables.
    let before = table_dump(&pool).await;
    assert_eq!(projector.catch_up().await.unwrap().entries, 0);
    let rebuilt = projector.rebuild().await.unwrap();
    assert_eq!(rebuilt.entries, 5);
    assert_eq!(table_dump(&pool).await, before);
    assert!(before.len() >= 8, "the dump compares real rows: {before:?}");
}

/// The projector merges a page's writes before they reach the database; whatever the page
/// size, the tables must come out as if each entry were applied alone, in log order.
#[tokio::test]
async fn a_page_of_entries_projects_exactly_as_its_entries_one_by_one() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let mut deliveries = verdict::story::feature_story("pages");
    for (_, _, story) in verdict::story::rule_stories("pages") {
        deliveries.extend(story);
    }
    // The same PR in several states within one page, newest first: only GitHub's newest
    // state (and its feature links) may stand.
    let mut newer = json_fixture("pull_request/opened.1.json");
    newer["pull_request"]["updated_at"] = json!("2030-01-01T00:00:00Z");
    newer["pull_request"]["labels"] = json!([{"name": "feature: Newest"}]);
    let mut older = json_fixture("pull_request/opened.1.json");
    older["pull_request"]["labels"] = json!([{"name": "feature: Older"}]);
    older["pull_request"]["title"] = json!("older title");
    for (i, payload) in [newer, older].iter().enumerate() {
        deliveries.push(verdict::story::Delivery {
            event: "pull_request",
            delivery_id: format!("pages-order-{i}"),
            body: serde_json::to_vec(payload).unwrap(),
        });
    }
    for d in &deliveries {
        let res = server.deliver(d.event, &d.delivery_id, &d.body).await;
        assert_eq!(res.status(), 201, "{}", d.delivery_id);
    }
    server.shutdown().await;

    let pool = db.app_pool().await;
    let one_by_one = Projector::new(pool.clone(), DEFAULT_LABEL_PREFIX).with_page_size(1);
    let rebuilt = one_by_one.rebuild().await.unwrap();
    assert_eq!(rebuilt.entries as usize, deliveries.len());
    let alone = table_dump(&pool).await;
    let paged = Projector::new(pool.clone(), DEFAULT_LABEL_PREFIX);
    paged.rebuild().await.unwrap();
    assert_eq!(table_dump(&pool).await, alone);

    assert!(
        alone.len() >= 40,
        "the dump compares real rows: {}",
        alone.len()
    );
    let pr: String = sqlx::query_scalar(
        "SELECT title FROM pull_requests WHERE repo = 'Codertocat/Hello-World' AND number = 2",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_ne!(pr, "older title", "an older state replaced a newer one");
    let links: Vec<String> = sqlx::query_scalar(
        "SELECT key FROM feature_pull_requests WHERE pr_repo = 'Codertocat/Hello-World'
            AND pr_number = 2 ORDER BY key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(links.contains(&"newest".to_string()), "{links:?}");
    assert!(!links.contains(&"older".to_string()), "{links:?}");
}

#[tokio::test]
async fn serve_projects_in_the_background_and_reproject_cli_rebuilds() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let res = server
        .deliver(
            "pull_request",
            "bg-1",
            &fixture("pull_request/opened.1.json"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let pool = db.app_pool().await;
    let mut projected = false;
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
            .fetch_one(&pool)
            .await
            .unwrap();
        if n == 1 {
            projected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(projected, "serve's projector did not pick up the delivery");
    server.shutdown().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["reproject", "--database-url", &db.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("reprojected 1 entries: 1 decision records"),
        "{stdout}"
    );
}

/// Every decision kind verdict names comes out of a real GitHub payload: one of GitHub's
/// published examples, or — for actions the examples lack — an example with only the action
/// or the deciding field changed, as GitHub sends them. No kind exists only on paper.
#[test]
fn every_decision_kind_comes_from_a_real_payload() {
    let received = at("2026-01-01T00:00:00Z");
    let mut seen = std::collections::BTreeSet::new();
    for (event, path) in common::fixture_payloads() {
        if let Ok(p) = project(&event, &std::fs::read(path).unwrap(), received, &labels()) {
            seen.extend(p.decisions.into_iter().map(|d| d.kind));
        }
    }
    // The demo story: GitHub's examples with names, numbers, commits and times changed.
    for d in verdict::story::feature_story("kinds") {
        if let Ok(p) = project(d.event, &d.body, received, &labels()) {
            seen.extend(p.decisions.into_iter().map(|d| d.kind));
        }
    }
    let with = |rel: &str, edits: &[(&str, Value)]| {
        let mut v = json_fixture(rel);
        for (ptr, value) in edits {
            let (parent, key) = ptr.rsplit_once('/').unwrap();
            v.pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .unwrap_or_else(|| panic!("{rel} has {parent}"))
                .insert(key.to_string(), value.clone());
        }
        v
    };
    let on_pr = json!({"url": "https://api.github.com/repos/o/r/pulls/1"});
    let derived: Vec<(&str, &str, Value)> = vec![
        (
            "pull_request",
            "pr.edited",
            with(
                "pull_request/opened.1.json",
                &[("/action", json!("edited"))],
            ),
        ),
        (
            "pull_request",
            "pr.milestoned",
            with(
                "pull_request/opened.1.json",
                &[
                    ("/action", json!("milestoned")),
                    (
                        "/pull_request/milestone",
                        json!({"title": "v2", "number": 2}),
                    ),
                ],
            ),
        ),
        (
            "pull_request",
            "pr.demilestoned",
            with(
                "pull_request/opened.1.json",
                &[("/action", json!("demilestoned"))],
            ),
        ),
        (
            "pull_request",
            "pr.auto_merge_enabled",
            with(
                "pull_request/opened.1.json",
                &[("/action", json!("auto_merge_enabled"))],
            ),
        ),
        (
            "pull_request",
            "pr.auto_merge_disabled",
            with(
                "pull_request/opened.1.json",
                &[("/action", json!("auto_merge_disabled"))],
            ),
        ),
        (
            "pull_request",
            "pr.enqueued",
            with(
                "pull_request/opened.1.json",
                &[("/action", json!("enqueued"))],
            ),
        ),
        (
            "pull_request",
            "pr.dequeued",
            with(
                "pull_request/opened.1.json",
                &[("/action", json!("dequeued"))],
            ),
        ),
        (
            "pull_request_review",
            "review.edited",
            with(
                "pull_request_review/submitted.1.json",
                &[("/action", json!("edited"))],
            ),
        ),
        (
            "issue_comment",
            "comment.edited",
            with(
                "issue_comment/edited.1.json",
                &[("/issue/pull_request", on_pr.clone())],
            ),
        ),
        (
            "issue_comment",
            "comment.deleted",
            with(
                "issue_comment/deleted.1.json",
                &[("/issue/pull_request", on_pr.clone())],
            ),
        ),
        (
            "check_run",
            "check.cancelled",
            with(
                "check_run/completed.1.json",
                &[("/check_run/conclusion", json!("cancelled"))],
            ),
        ),
        (
            "check_run",
            "check.skipped",
            with(
                "check_run/completed.1.json",
                &[("/check_run/conclusion", json!("skipped"))],
            ),
        ),
        (
            "check_run",
            "check.timed_out",
            with(
                "check_run/completed.1.json",
                &[("/check_run/conclusion", json!("timed_out"))],
            ),
        ),
        (
            "check_run",
            "check.action_required",
            with(
                "check_run/completed.1.json",
                &[("/check_run/conclusion", json!("action_required"))],
            ),
        ),
        (
            "check_run",
            "check.stale",
            with(
                "check_run/completed.1.json",
                &[("/check_run/conclusion", json!("stale"))],
            ),
        ),
        (
            "status",
            "check.error",
            with("status/event.1.json", &[("/state", json!("error"))]),
        ),
        (
            "push",
            "push.forced",
            with("push/event.1.json", &[("/forced", json!(true))]),
        ),
        (
            "issue_comment",
            "decision.recorded",
            with(
                "issue_comment/created.1.json",
                &[
                    (
                        "/issue/pull_request",
                        json!({"url": "https://api.github.com/repos/o/r/pulls/1"}),
                    ),
                    (
                        "/comment/body",
                        json!("/decision keep the old checkout until Q3"),
                    ),
                ],
            ),
        ),
    ];
    for (event, kind, payload) in derived {
        let p = project(
            event,
            &serde_json::to_vec(&payload).unwrap(),
            received,
            &labels(),
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let kinds: Vec<String> = p.decisions.into_iter().map(|d| d.kind).collect();
        assert!(kinds.iter().any(|k| k == kind), "{kind}: got {kinds:?}");
        seen.extend(kinds);
    }
    let missing: Vec<&&str> = KINDS.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "no real payload yields {missing:?}");
}
