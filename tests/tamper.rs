//! `verify` catches every kind of tampering a superuser could do behind the triggers' back.

mod common;

use std::sync::Arc;

use common::{SECRET, TestDb, fixture};
use sqlx::{Connection, Executor, PgConnection};
use verdict::log::checkpoint::{CheckpointSigner, NoteVerifier};
use verdict::log::verify::{Check, ExpectedHead, Problem, VerifyError, verify_log};

const LOG: &str = "codertocat";

/// A database with one log of 8 entries, all covered by a signed checkpoint; and the key
/// that signed it.
async fn log_of_eight() -> (TestDb, Arc<CheckpointSigner>) {
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
    server.checkpoint_at_least(LOG, 8).await;
    let signer = server.signer.clone();
    server.shutdown().await;
    (db, signer)
}

/// Deletes the tree and every checkpoint: tampering that leaves no signature behind, so only
/// a head printed earlier can catch it.
async fn without_checkpoints(db: &TestDb) {
    tamper(db, "DELETE FROM checkpoints; DELETE FROM merkle_nodes;").await;
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
    let (db, _key) = log_of_eight().await;
    let h = head(&db).await;
    assert_eq!(h.size, 8);
    let pool = db.app_pool().await;
    // A head from when the log was smaller is still contained in it.
    let v = verify_log(&pool, LOG, Some(h), |_, _| {}).await.unwrap();
    assert_eq!(v.size, 8);
}

#[tokio::test]
async fn a_changed_body_byte_is_caught() {
    let (db, _key) = log_of_eight().await;
    tamper(
        &db,
        "UPDATE log_entries SET body = set_byte(body, 10, get_byte(body, 10) # 1) WHERE seq = 3",
    )
    .await;
    assert_eq!(problem(&db, None).await, Problem::BodyHash { seq: 3 });
}

#[tokio::test]
async fn a_deleted_entry_is_caught() {
    let (db, _key) = log_of_eight().await;
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
    let (db, _key) = log_of_eight().await;
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
    let (db, _key) = log_of_eight().await;
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
async fn a_truncated_tail_is_caught_by_the_checkpoint_that_covered_it() {
    let (db, _key) = log_of_eight().await;
    tamper(&db, "DELETE FROM log_entries WHERE seq >= 5").await;
    // The smallest checkpoint beyond the log names it: the one of size 8, or one the signer
    // made between deliveries (6 or 7) when they came slowly.
    match problem(&db, None).await {
        Problem::CheckpointBeyondLog { size, log_size: 5 } if (6..=8).contains(&size) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_truncation_that_also_deleted_the_checkpoints_is_caught_given_an_earlier_head() {
    let (db, _key) = log_of_eight().await;
    let earlier = head(&db).await;
    tamper(&db, "DELETE FROM log_entries WHERE seq >= 5").await;
    without_checkpoints(&db).await;
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

/// Rewrites the whole chain from entry 4 with a changed body, recomputing every hash.
async fn rewrite_from_entry_4(db: &TestDb) {
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
}

#[tokio::test]
async fn a_consistently_rewritten_history_is_caught_by_the_checkpoints() {
    let (db, _key) = log_of_eight().await;
    rewrite_from_entry_4(&db).await;
    // Every entry hashes and links correctly, but the first checkpoint past entry 3 signed
    // another Merkle root.
    match problem(&db, None).await {
        Problem::CheckpointRoot { size } => assert!((5..=8).contains(&size), "{size}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_consistently_rewritten_history_without_checkpoints_is_caught_given_an_earlier_head() {
    let (db, _key) = log_of_eight().await;
    let earlier = head(&db).await;
    rewrite_from_entry_4(&db).await;
    without_checkpoints(&db).await;
    // Internally consistent now...
    assert_eq!(head(&db).await.size, 8);
    // ...but the earlier head exposes it.
    assert!(matches!(
        problem(&db, Some(earlier)).await,
        Problem::HeadMismatch { seq: 7, .. }
    ));
}

#[tokio::test]
async fn the_newest_checkpoint_must_carry_the_servers_signature() {
    let (db, key) = log_of_eight().await;
    let pool = db.app_pool().await;
    let check = |key: &CheckpointSigner| Check {
        head: None,
        key: Some(NoteVerifier::parse(&key.verifier_key(LOG)).unwrap()),
    };
    let v = verify_log(&pool, LOG, check(&key), |_, _| {})
        .await
        .unwrap();
    assert_eq!(v.signed, Some(8));
    assert!(v.checkpoints >= 1);
    // Re-signed by someone else's key (roots and sizes unchanged): refused.
    let other = CheckpointSigner::generate("verdict.test").unwrap();
    let forged = other.sign_checkpoint(LOG, 8, &{
        let root: Vec<u8> =
            sqlx::query_scalar("SELECT root_hash FROM checkpoints WHERE tree_size = 8")
                .fetch_one(&pool)
                .await
                .unwrap();
        root.try_into().unwrap()
    });
    tamper(
        &db,
        &format!("UPDATE checkpoints SET note = '{forged}' WHERE tree_size = 8"),
    )
    .await;
    match verify_log(&pool, LOG, check(&key), |_, _| {}).await {
        Err(VerifyError::Bad {
            problem: Problem::CheckpointSignature { size: 8, .. },
            ..
        }) => {}
        other => panic!("a checkpoint signed by another key passed: {other:?}"),
    }
}

#[tokio::test]
async fn the_cli_prints_the_head_and_names_the_first_bad_entry() {
    let (db, key) = log_of_eight().await;
    let bin = env!("CARGO_BIN_EXE_verdict");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("checkpoint-signing.key");
    std::fs::write(&key_file, key.to_key_text()).unwrap();
    let key_file = key_file.to_str().unwrap();
    let ok = std::process::Command::new(bin)
        .args([
            "verify",
            "--database-url",
            &db.url,
            "--signing-key",
            key_file,
        ])
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
    assert!(
        stdout.contains("the newest (8) is signed by the given key"),
        "{stdout}"
    );

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
            "--signing-key",
            key_file,
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
            "--signing-key",
            key_file,
        ])
        .output()
        .unwrap();
    assert!(!truncated.status.success());
    let out = String::from_utf8_lossy(&truncated.stdout);
    assert!(
        out.contains(
            "FAILED log codertocat: a stored checkpoint signed 8 entries but the log has 7 (log truncated)"
        ),
        "{out}"
    );

    tamper(
        &db,
        "UPDATE log_entries SET body = body || ' '::bytea WHERE seq = 1",
    )
    .await;
    let bad = std::process::Command::new(bin)
        .args([
            "verify",
            "--database-url",
            &db.url,
            "--signing-key",
            key_file,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("entry 1: the body does not match"), "{out}");
}
