//! `verify` catches every kind of tampering a superuser could do behind the triggers' back.

mod common;

use common::{SECRET, TestDb, fixture};
use sqlx::{Connection, Executor, PgConnection};
use verdict::log::verify::{ExpectedHead, Problem, VerifyError, verify_log};

const LOG: &str = "codertocat";

/// A database with one log of 8 entries.
async fn log_of_eight() -> TestDb {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let files = [
        "pull_request/opened.1.json",
        "pull_request_review/submitted.1.json",
        "pull_request_review_comment/created.1.json",
        "issue_comment/created.1.json",
    ];
    for i in 0..8 {
        let res = server
            .deliver(
                "pull_request",
                &format!("t-{i}"),
                &common::variant(&fixture(files[i % 4]), i as u64),
            )
            .await;
        assert_eq!(res.status(), 201);
        let receipt: serde_json::Value = res.json().await.unwrap();
        assert_eq!(receipt["log"], LOG);
    }
    server.shutdown().await;
    db
}

/// Runs `sql` as a superuser with triggers bypassed (`session_replication_role = replica`).
async fn tamper(db: &TestDb, sql: &str) {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    conn.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
        .await
        .unwrap();
    conn.close().await.unwrap();
}

async fn problem(db: &TestDb, expected: Option<ExpectedHead>) -> Problem {
    let pool = db.app_pool().await;
    match verify_log(&pool, LOG, expected, |_, _| {}).await {
        Err(VerifyError::Bad { problem, .. }) => problem,
        other => panic!("tampering went unnoticed: {other:?}"),
    }
}

async fn head(db: &TestDb) -> ExpectedHead {
    let pool = db.app_pool().await;
    let v = verify_log(&pool, LOG, None, |_, _| {}).await.unwrap();
    ExpectedHead {
        size: v.size,
        hash: v.head_hash.unwrap(),
    }
}

#[tokio::test]
async fn an_untouched_log_verifies_against_its_own_head() {
    let db = log_of_eight().await;
    let h = head(&db).await;
    assert_eq!(h.size, 8);
    let pool = db.app_pool().await;
    // A head from when the log was smaller is still contained in it.
    let v = verify_log(&pool, LOG, Some(h), |_, _| {}).await.unwrap();
    assert_eq!(v.size, 8);
}

#[tokio::test]
async fn a_changed_body_byte_is_caught() {
    let db = log_of_eight().await;
    tamper(
        &db,
        "UPDATE log_entries SET body = set_byte(body, 10, get_byte(body, 10) # 1) WHERE seq = 3",
    )
    .await;
    assert_eq!(problem(&db, None).await, Problem::BodyHash { seq: 3 });
}

#[tokio::test]
async fn a_deleted_entry_is_caught() {
    let db = log_of_eight().await;
    tamper(&db, "DELETE FROM log_entries WHERE seq = 3").await;
    assert_eq!(
        problem(&db, None).await,
        Problem::Gap {
            expected: 3,
            found: 4
        }
    );
}

#[tokio::test]
async fn two_swapped_entries_are_caught() {
    let db = log_of_eight().await;
    tamper(
        &db,
        "UPDATE log_entries SET seq = 1000 WHERE seq = 2;
         UPDATE log_entries SET seq = 2 WHERE seq = 5;
         UPDATE log_entries SET seq = 5 WHERE seq = 1000;",
    )
    .await;
    assert_eq!(problem(&db, None).await, Problem::EntryHash { seq: 2 });
}

#[tokio::test]
async fn a_rewritten_hash_is_caught() {
    let db = log_of_eight().await;
    tamper(
        &db,
        "UPDATE log_entries SET entry_hash = sha256('forged') WHERE seq = 6",
    )
    .await;
    assert_eq!(problem(&db, None).await, Problem::EntryHash { seq: 6 });
    // Rewriting the next entry's link to match does not help: its own hash covers the link.
    tamper(
        &db,
        "UPDATE log_entries SET prev_hash = sha256('forged') WHERE seq = 7",
    )
    .await;
    assert_eq!(problem(&db, None).await, Problem::EntryHash { seq: 6 });
}

#[tokio::test]
async fn a_truncated_tail_is_caught_given_an_earlier_head() {
    let db = log_of_eight().await;
    let earlier = head(&db).await;
    tamper(&db, "DELETE FROM log_entries WHERE seq >= 5").await;
    // On its own the shorter log is consistent...
    assert_eq!(head(&db).await.size, 5);
    // ...but not with the head printed before.
    assert_eq!(
        problem(&db, Some(earlier)).await,
        Problem::Truncated {
            size: 5,
            expected: 8
        }
    );
}

#[tokio::test]
async fn a_consistently_rewritten_history_is_caught_given_an_earlier_head() {
    let db = log_of_eight().await;
    let earlier = head(&db).await;
    // Rewrite the whole chain from entry 4 with a changed body, recomputing every hash.
    let pool = db.admin_pool().await;
    let entries = sqlx::query("SELECT seq, kind, prev_hash, entry_hash, received_at, delivery_id, event, hook_id, installation_target_type, installation_target_id, signature, body_sha256, body, body_readable FROM log_entries ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut prev = [0u8; 32];
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    conn.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    for row in &entries {
        let mut e = verdict::log::store::StoredEntry::from_row(row);
        if e.seq == 4 {
            e.body = b"{\"rewritten\": true}".to_vec();
        }
        let body_sha = verdict::log::entry::body_hash(&e.body);
        let mut fields = e.fields(LOG);
        fields.prev_hash = prev;
        fields.body_sha256 = body_sha;
        let hash = fields.entry_hash();
        sqlx::query("UPDATE log_entries SET body = $1, body_sha256 = $2, prev_hash = $3, entry_hash = $4 WHERE seq = $5")
            .bind(e.body.clone())
            .bind(body_sha.to_vec())
            .bind(prev.to_vec())
            .bind(hash.to_vec())
            .bind(e.seq as i64)
            .execute(&mut conn)
            .await
            .unwrap();
        prev = hash;
    }
    // Internally consistent now...
    assert_eq!(head(&db).await.size, 8);
    // ...but the earlier head exposes it.
    assert!(matches!(
        problem(&db, Some(earlier)).await,
        Problem::HeadMismatch { seq: 7, .. }
    ));
}

#[tokio::test]
async fn the_cli_prints_the_head_and_names_the_first_bad_entry() {
    let db = log_of_eight().await;
    let bin = env!("CARGO_BIN_EXE_verdict");
    let ok = std::process::Command::new(bin)
        .args(["verify", "--database-url", &db.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let h = head(&db).await;
    let printed = format!("ok log {LOG} size 8 head 8:{}", hex::encode(h.hash));
    assert!(stdout.contains(&printed), "{stdout}");

    // The printed head is accepted back.
    let again = std::process::Command::new(bin)
        .args([
            "verify",
            "--database-url",
            &db.url,
            "--log",
            LOG,
            "--head",
            &format!("8:{}", hex::encode(h.hash)),
        ])
        .output()
        .unwrap();
    assert!(again.status.success());

    tamper(&db, "DELETE FROM log_entries WHERE seq = 7").await;
    let truncated = std::process::Command::new(bin)
        .args([
            "verify",
            "--database-url",
            &db.url,
            "--log",
            LOG,
            "--head",
            &format!("8:{}", hex::encode(h.hash)),
        ])
        .output()
        .unwrap();
    assert!(!truncated.status.success());
    let out = String::from_utf8_lossy(&truncated.stdout);
    assert!(
        out.contains("FAILED log codertocat: the log has 7 entries but an earlier head had 8"),
        "{out}"
    );

    tamper(
        &db,
        "UPDATE log_entries SET body = body || ' '::bytea WHERE seq = 1",
    )
    .await;
    let bad = std::process::Command::new(bin)
        .args(["verify", "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("entry 1: the body does not match"), "{out}");
}
