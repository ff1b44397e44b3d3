//! verdict on the open internet: what an attacker can send and what it must not achieve.
//! Every case is built from GitHub's real payloads (the fixtures and the story made of them).

mod common;

use common::{ADMIN_TOKEN, TestDb, TestServer, project_all};
use serde_json::Value;
use verdict::story;

/// Everything a viewer could learn from the pages, as JSON: the feature, both PRs, the
/// findings and the outbox.
async fn observable(server: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/{}/features/{}", story::REPO, story::FEATURE_KEY),
        format!("/api/{}/pull/42", story::REPO),
        format!("/api/{}/pull/43", story::REPO),
        format!("/api/{}", story::REPO),
        "/api/findings".to_string(),
        "/api/outbox".to_string(),
    ] {
        let r = server.get(&path, Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status(), 200, "{path}");
        out.push(r.json().await.unwrap());
    }
    out
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the judge has looked at everything projected (so a finding a replay caused
/// would be there).
async fn settle(pool: &sqlx::PgPool) {
    for _ in 0..200 {
        project_all(pool).await;
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projection_cursors p LEFT JOIN judge_cursors j USING (log_id)
              WHERE coalesce(j.next_seq, 0) < p.next_seq",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the judge did not settle");
}

#[tokio::test]
async fn a_replayed_public_body_under_a_new_guid_and_event_changes_nothing() {
    let (db, server) = common::judged_story_server().await;
    let pool = db.app_pool().await;
    settle(&pool).await;
    let before = observable(&server).await;
    let entries = count(&pool, "log_entries").await;
    let decisions = count(&pool, "decisions").await;

    // Public record pages show every body: take the story's merge of #43 and rev-sam's change
    // request, and post them again under new GUIDs, as their own event and as other events.
    let deliveries = story::feature_story("test");
    let merge = deliveries
        .iter()
        .rfind(|d| d.event == "pull_request" && d.body.windows(8).any(|w| w == b"\"closed\""))
        .expect("the story merges");
    let change_request = deliveries
        .iter()
        .find(|d| {
            d.event == "pull_request_review"
                && d.body.windows(19).any(|w| w == b"\"changes_requested\"")
        })
        .expect("the story requests changes");
    let record = |seq: u64| format!("/api/records/{}/{seq}", story::ACCOUNT);
    for (i, (original, event)) in [
        (merge, "pull_request"),
        (merge, "pull_request_review"),
        (change_request, "pull_request_review"),
        (change_request, "pull_request"),
        (change_request, "issue_comment"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = server
            .deliver(event, &format!("replay-{i}"), &original.body)
            .await;
        assert_eq!(r.status(), 200, "a replay is answered 200");
        let receipt: Value = r.json().await.unwrap();
        let seq = receipt["replay_of"]["seq"]
            .as_u64()
            .expect("replay_of names the original");
        assert_eq!(receipt["replay_of"]["log"], story::ACCOUNT);
        // The original is the entry with that body and its real delivery id.
        let shown: Value = server
            .get(&record(seq), Some(ADMIN_TOKEN))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown["delivery_id"], original.delivery_id.as_str());
        assert!(receipt.get("entry_hash").is_none());
    }
    settle(&pool).await;
    assert_eq!(count(&pool, "log_entries").await, entries, "nothing stored");
    assert_eq!(count(&pool, "decisions").await, decisions);
    assert_eq!(observable(&server).await, before, "no page changed");
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_under_another_events_name_is_kept_but_not_projected() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    // A real review payload, made unique (so it is no replay), sent as a pull_request event:
    // GitHub would never send that shape under that name.
    let review = common::variant(&common::fixture("pull_request_review/submitted.1.json"), 1);
    let r = server.deliver("pull_request", "misnamed-1", &review).await;
    assert_eq!(r.status(), 201, "the signed bytes are kept");
    let pool = db.app_pool().await;
    project_all(&pool).await;
    assert_eq!(count(&pool, "decisions").await, 0);
    let problem: String = sqlx::query_scalar("SELECT problem FROM projection_problems")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        problem
            .starts_with("event name pull_request does not match the payload: it has no `number`"),
        "{problem}"
    );
    server.shutdown().await;
}

async fn decisions_of(pool: &sqlx::PgPool, repo: &str) -> Vec<(Option<String>, Option<String>)> {
    sqlx::query_as("SELECT actor, body FROM decisions WHERE repo = $1 ORDER BY seq")
        .bind(repo)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn nul_characters_and_oversized_text_are_cleaned_and_every_account_keeps_projecting() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    // A signed review whose body holds a NUL and is four times GitHub's size limit, whose PR
    // title holds a NUL, and whose reviewer login is a thousand emoji.
    let mut poison: Value =
        serde_json::from_slice(&common::fixture("pull_request_review/submitted.1.json")).unwrap();
    poison["review"]["body"] = Value::from(format!("before\u{0}after {}", "x ".repeat(150_000)));
    poison["pull_request"]["title"] = Value::from("Title\u{0} with NUL");
    poison["review"]["user"]["login"] = Value::from("😀".repeat(1000));
    let r = server
        .deliver(
            "pull_request_review",
            "nul-1",
            &serde_json::to_vec(&poison).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 201);
    // Then an ordinary delivery of another account.
    let other = common::in_repository(
        &common::fixture("pull_request_review/submitted.1.json"),
        "other-org",
        "payments",
    );
    assert_eq!(
        server
            .deliver("pull_request_review", "ok-1", &other)
            .await
            .status(),
        201
    );

    let pool = db.app_pool().await;
    project_all(&pool).await;
    assert_eq!(count(&pool, "projection_problems").await, 0);
    let poisoned = decisions_of(&pool, "Codertocat/Hello-World").await;
    assert_eq!(poisoned.len(), 1);
    let (actor, body) = &poisoned[0];
    let body = body.as_deref().unwrap();
    assert!(
        body.starts_with("beforeafter x x"),
        "NUL removed, text kept"
    );
    assert!(body.ends_with(verdict::projections::clean::CUT_MARK));
    assert!(body.len() <= verdict::projections::clean::MAX_BODY_BYTES + 100);
    assert_eq!(
        actor.as_deref().unwrap().len(),
        1024,
        "a short text is cut to 1 KB"
    );
    let title: String =
        sqlx::query_scalar("SELECT title FROM pull_requests WHERE repo = 'Codertocat/Hello-World'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(title, "Title with NUL");
    assert_eq!(decisions_of(&pool, "other-org/payments").await.len(), 1);
    // The log keeps the exact bytes.
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM log_entries WHERE delivery_id = 'nul-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, serde_json::to_vec(&poison).unwrap());
    server.shutdown().await;
}

#[tokio::test]
async fn an_entry_the_database_refuses_is_skipped_alone_and_reproject_succeeds() {
    let db = TestDb::new().await;
    // Whatever verdict cleans, some value may still be refused: stand in for it with a
    // constraint that refuses one reviewer.
    sqlx::query(
        "ALTER TABLE decisions ADD CONSTRAINT test_poison CHECK (actor IS DISTINCT FROM 'poison-actor')",
    )
    .execute(&db.admin_pool().await)
    .await
    .unwrap();
    let server = db.server(&[common::SECRET]).await;
    let review = |login: &str, n: u64| {
        let mut v: Value =
            serde_json::from_slice(&common::fixture("pull_request_review/submitted.1.json"))
                .unwrap();
        v["review"]["user"]["login"] = Value::from(login);
        common::variant(&serde_json::to_vec(&v).unwrap(), n)
    };
    for (i, login) in ["rev-a", "poison-actor", "rev-b"].iter().enumerate() {
        let r = server
            .deliver(
                "pull_request_review",
                &format!("r-{i}"),
                &review(login, i as u64),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let other = common::in_repository(&review("rev-c", 9), "other-org", "payments");
    assert_eq!(
        server
            .deliver("pull_request_review", "o-1", &other)
            .await
            .status(),
        201
    );

    let pool = db.app_pool().await;
    project_all(&pool).await;
    let actors: Vec<Option<String>> = decisions_of(&pool, "Codertocat/Hello-World")
        .await
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(
        actors,
        [Some("rev-a".to_string()), Some("rev-b".to_string())]
    );
    assert_eq!(decisions_of(&pool, "other-org/payments").await.len(), 1);
    let (seq, problem): (i64, String) =
        sqlx::query_as("SELECT seq, problem FROM projection_problems")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(seq, 1);
    assert!(
        problem.contains("refused") && problem.contains("test_poison"),
        "{problem}"
    );

    let (ok, out) = common::verdict_cli(&["reproject"], &[("DATABASE_URL", &db.url)]);
    assert!(ok, "{out}");
    assert!(
        out.contains("4 entries") && out.contains("3 decision records"),
        "{out}"
    );
    assert!(out.contains("1 entries not understood"), "{out}");
    server.shutdown().await;
}
