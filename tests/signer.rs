//! The signer checks before it signs: tampering a superuser could do behind the triggers'
//! back (entries truncated and grown again, an entry moved in from another log, checkpoints
//! or tree nodes deleted) never ends in a checkpoint that contradicts an earlier one. It
//! raises an integrity alarm (/healthz 503, /api/logs) and signs nothing, while deliveries
//! are still accepted; what was merely deleted is rebuilt from the log.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{ADMIN_TOKEN, SECRET, TestDb, TestServer, fixture};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use verdict::log::checkpoint::{Checkpoint, NoteVerifier};
use verdict::log::merkle;

const LOG: &str = "codertocat";

/// Delivers `n` distinct real payloads of the Codertocat account, numbered from `from`.
async fn deliver(server: &TestServer, from: usize, n: usize) {
    let files = [
        "pull_request/opened.1.json",
        "pull_request_review/submitted.1.json",
        "pull_request_review_comment/created.1.json",
        "issue_comment/created.1.json",
    ];
    for i in from..from + n {
        let r = server
            .deliver(
                "pull_request",
                &format!("s-{i}"),
                &common::variant(&fixture(files[i % 4]), i as u64),
            )
            .await;
        assert_eq!(
            r.status(),
            201,
            "deliveries are accepted whatever the tree's state"
        );
    }
}

/// Runs `sql` as a superuser with triggers bypassed.
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

async fn checkpoint(server: &TestServer, log: &str) -> Checkpoint {
    let note = server.checkpoint_at_least(log, 1).await;
    NoteVerifier::parse(&server.signer.verifier_key(log))
        .unwrap()
        .open_checkpoint(&note)
        .unwrap()
}

async fn newest_signed_size(db: &TestDb, log: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(max(c.tree_size), 0) FROM checkpoints c JOIN logs l ON l.id = c.log_id
          WHERE l.name = $1",
    )
    .bind(log)
    .fetch_one(&db.app_pool().await)
    .await
    .unwrap()
}

/// Waits for /healthz to answer 503 naming `log`; returns its text.
async fn alarm(server: &TestServer, log: &str) -> String {
    for _ in 0..200 {
        let r = server.get("/healthz", None).await;
        if r.status() == 503 {
            let text = r.text().await.unwrap();
            assert!(
                text.contains(&format!("integrity alarm: log {log}")),
                "{text}"
            );
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no integrity alarm was raised");
}

async fn api_alarm(server: &TestServer, log: &str) -> Value {
    let logs: Value = server
        .get("/api/logs", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    logs.as_array()
        .unwrap()
        .iter()
        .find(|l| l["account"] == log)
        .unwrap()["integrity_alarm"]
        .clone()
}

#[tokio::test]
async fn a_truncation_plus_new_deliveries_raises_the_alarm_and_signs_nothing() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    deliver(&server, 0, 8).await;
    server.checkpoint_at_least(LOG, 8).await;
    assert_eq!(server.get("/healthz", None).await.status(), 200);

    // Entries 5..7 go; new deliveries take their places in the sequence.
    tamper(
        &db,
        "DELETE FROM log_entries WHERE seq >= 5 AND log_id = (SELECT id FROM logs WHERE name = 'codertocat')",
    )
    .await;
    deliver(&server, 100, 4).await;
    let text = alarm(&server, LOG).await;
    assert!(
        text.contains("entry 7 is not the entry checkpoint 8 signed"),
        "{text}"
    );
    let api = api_alarm(&server, LOG).await;
    assert!(
        api["problem"].as_str().unwrap().contains("rewritten"),
        "{api}"
    );
    // Nothing beyond the old checkpoint was signed, then or since.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(newest_signed_size(&db, LOG).await, 8);
    // Deliveries are still accepted and stored.
    deliver(&server, 200, 1).await;
    assert_eq!(newest_signed_size(&db, LOG).await, 8);
    server.shutdown().await;
}

#[tokio::test]
async fn an_entry_moved_in_from_another_log_is_not_signed() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    deliver(&server, 0, 4).await;
    server.checkpoint_at_least(LOG, 4).await;
    // Another account's log, with one entry.
    let mut other: Value = serde_json::from_slice(&fixture("pull_request/opened.1.json")).unwrap();
    other["repository"]["owner"]["login"] = "acme".into();
    other["repository"]["full_name"] = "acme/web".into();
    other["sender"]["login"] = "acme-bot".into();
    let r = server
        .deliver(
            "pull_request",
            "other-0",
            &serde_json::to_vec(&other).unwrap(),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["log"], "acme");
    server.checkpoint_at_least("acme", 1).await;

    // Move it to the end of codertocat's log, linked to its last entry so the chain holds:
    // only its hash, which commits to the log's name, gives it away.
    tamper(
        &db,
        "UPDATE log_entries SET log_id = (SELECT id FROM logs WHERE name = 'codertocat'), seq = 4,
                prev_hash = (SELECT entry_hash FROM log_entries e JOIN logs l ON l.id = e.log_id
                              WHERE l.name = 'codertocat' AND e.seq = 3)
          WHERE log_id = (SELECT id FROM logs WHERE name = 'acme') AND seq = 0",
    )
    .await;
    let text = alarm(&server, LOG).await;
    assert!(text.contains("moved in from another log"), "{text}");
    assert_eq!(newest_signed_size(&db, LOG).await, 4);
    server.shutdown().await;
}

#[tokio::test]
async fn deleted_checkpoints_and_tree_nodes_are_rebuilt_consistently() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    deliver(&server, 0, 4).await;
    server.checkpoint_at_least(LOG, 4).await;
    deliver(&server, 4, 4).await;
    server.checkpoint_at_least(LOG, 8).await;
    let eight = checkpoint(&server, LOG).await;
    assert_eq!(eight.size, 8);

    // The newer checkpoints go (their tree nodes stay): the builder used to stall on
    // duplicate nodes for good. It signs again, consistently with what it signed before.
    tamper(&db, "DELETE FROM checkpoints WHERE tree_size > 4").await;
    deliver(&server, 8, 1).await;
    let nine = server.checkpoint_at_least(LOG, 9).await;
    let nine = NoteVerifier::parse(&server.signer.verifier_key(LOG))
        .unwrap()
        .open_checkpoint(&nine)
        .unwrap();
    let proof: Value = server
        .get(
            &format!("/api/logs/{LOG}/proof/consistency?from=8&to=9"),
            Some(ADMIN_TOKEN),
        )
        .await
        .json()
        .await
        .unwrap();
    let hashes: Vec<Vec<u8>> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
        .collect();
    merkle::verify_consistency(8, 9, &hashes, &eight.root, &nine.root)
        .expect("the re-grown tree extends the checkpoint signed before the deletion");

    // Every tree node goes: proofs cannot be answered until the tree is rebuilt from the
    // log, which the next extension does (checking every stored checkpoint on the way).
    tamper(&db, "DELETE FROM merkle_nodes").await;
    let broken = server
        .get(
            &format!("/api/logs/{LOG}/proof/inclusion?index=0&size=9"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(broken.status(), 503);
    deliver(&server, 9, 1).await;
    let ten = server.checkpoint_at_least(LOG, 10).await;
    let ten = NoteVerifier::parse(&server.signer.verifier_key(LOG))
        .unwrap()
        .open_checkpoint(&ten)
        .unwrap();
    let proof: Value = server
        .get(
            &format!("/api/logs/{LOG}/proof/inclusion?index=0&size=10"),
            Some(ADMIN_TOKEN),
        )
        .await
        .json()
        .await
        .unwrap();
    let leaf = B64.decode(proof["leaf_hash"].as_str().unwrap()).unwrap();
    let hashes: Vec<Vec<u8>> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
        .collect();
    merkle::verify_inclusion(0, 10, &leaf, &hashes, &ten.root).unwrap();
    assert_eq!(server.get("/healthz", None).await.status(), 200, "no alarm");
    assert_eq!(api_alarm(&server, LOG).await, Value::Null);
    server.shutdown().await;
}

#[tokio::test]
async fn a_log_that_receives_nothing_is_still_checked() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    deliver(&server, 0, 6).await;
    server.checkpoint_at_least(LOG, 6).await;
    // A stored tree node on the path to the checkpoint's root is changed, and nothing new
    // arrives: the sweep notices.
    tamper(
        &db,
        "UPDATE merkle_nodes SET hash = sha256(hash) WHERE level = 2 AND idx = 0",
    )
    .await;
    let builder = verdict::log::tree::TreeBuilder::new(db.app_pool().await, server.signer.clone());
    builder.sweep().await.unwrap();
    let text = alarm(&server, LOG).await;
    assert!(text.contains("nodes were changed"), "{text}");
    server.shutdown().await;
}
