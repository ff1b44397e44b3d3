//! Key continuity: `serve` refuses a key that did not sign the logs' checkpoints; with
//! `--rotate-key` it records the handover, signed by both keys, and verifiers that trust the
//! old key (`monitor`, `verify`, `verify-proof`) follow it. `monitor` also checks the newest
//! entry the checkpoint covers, and reads logs of private repositories with a token.

mod common;

use std::sync::Arc;

use common::{ADMIN_TOKEN, ServerOptions, TestDb, TestServer, project_all};
use verdict::log::checkpoint::{CheckpointSigner, NoteVerifier};
use verdict::log::verify::{Check, verify_log};
use verdict::server::ServeError;
use verdict::story;

async fn storied(db: &TestDb, signer: Option<Arc<CheckpointSigner>>) -> TestServer {
    let server = db
        .start(ServerOptions {
            signer,
            ..Default::default()
        })
        .await;
    server.deliver_story().await;
    server
        .checkpoint_at_least(story::ACCOUNT, story::feature_story("x").len() as u64)
        .await;
    server
}

fn key(signer: &CheckpointSigner) -> String {
    signer.verifier_key(story::ACCOUNT)
}

#[tokio::test]
async fn serve_refuses_a_key_that_did_not_sign_the_checkpoints() {
    let db = TestDb::new().await;
    storied(&db, None).await.shutdown().await;
    let stranger = Arc::new(CheckpointSigner::generate("verdict.test").unwrap());
    let refused = db
        .try_start(ServerOptions {
            signer: Some(stranger.clone()),
            ..Default::default()
        })
        .await;
    match refused {
        Err(ServeError::Keys(e)) => {
            let message = e.to_string();
            assert!(
                message.contains("log acme's newest checkpoint"),
                "{message}"
            );
            assert!(message.contains("--rotate-key"), "{message}");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a server with another key started"),
    }
    // Naming an old key that did not sign them either does not help.
    let refused = db
        .try_start(ServerOptions {
            signer: Some(stranger.clone()),
            rotate_from: Some(Arc::new(
                CheckpointSigner::generate("verdict.test").unwrap(),
            )),
            ..Default::default()
        })
        .await;
    assert!(matches!(
        refused,
        Err(ServeError::Keys(
            verdict::log::keys::ContinuityError::WrongOldKey { .. }
        ))
    ));
    // The right key still starts.
    db.start(ServerOptions::default()).await.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_followed_by_monitor_verify_and_verify_proof() {
    let db = TestDb::new().await;
    let old = db.signer.clone();
    let before = storied(&db, None).await;
    let saved = before
        .get(
            &format!("/api/logs/{}/checkpoint", story::ACCOUNT),
            Some(ADMIN_TOKEN),
        )
        .await
        .text()
        .await
        .unwrap();
    let saved_size: u64 = saved.lines().nth(1).unwrap().parse().unwrap();
    before.shutdown().await;

    // Hand over to a new key: one rotation entry, signed by both.
    let new = Arc::new(CheckpointSigner::generate("verdict.test").unwrap());
    let server = db
        .start(ServerOptions {
            signer: Some(new.clone()),
            rotate_from: Some(old.clone()),
            ..Default::default()
        })
        .await;
    let rotations = server
        .get(
            &format!("/api/logs/{}/key-rotations", story::ACCOUNT),
            Some(ADMIN_TOKEN),
        )
        .await
        .text()
        .await
        .unwrap();
    let parsed = verdict::log::keys::parse_concatenated(&rotations).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].size, saved_size);
    assert_eq!(parsed[0].old, NoteVerifier::parse(&key(&old)).unwrap());
    assert_eq!(parsed[0].new, NoteVerifier::parse(&key(&new)).unwrap());
    // The rotation is an entry of the log; the next checkpoint (covering it) is the new key's.
    let note = server
        .checkpoint_at_least(story::ACCOUNT, saved_size + 1)
        .await;
    NoteVerifier::parse(&key(&new))
        .unwrap()
        .open_checkpoint(&note)
        .expect("signed by the new key");
    assert!(
        NoteVerifier::parse(&key(&old))
            .unwrap()
            .open_checkpoint(&note)
            .is_err()
    );
    assert_eq!(server.get("/healthz", None).await.status(), 200);

    // A witness that trusts the old key follows the handover and learns the new key.
    let (o, _) = verdict::log::monitor::observe(&server.base, &saved, Some(&key(&old)), None)
        .await
        .unwrap();
    assert_eq!(o.saved.size, saved_size);
    assert!(o.current.size > saved_size);
    assert_eq!(o.rotated_to.as_deref(), Some(key(&new).as_str()));

    // verify, trusting the old key, follows it too.
    let pool = db.app_pool().await;
    let v = verify_log(
        &pool,
        story::ACCOUNT,
        Check {
            head: None,
            key: Some(NoteVerifier::parse(&key(&old)).unwrap()),
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(v.signed, Some(o.current.size));

    // So does a record proof checked offline with the old key and the rotations.
    project_all(&pool).await;
    let proof = server
        .get(
            &format!("/records/{}/1/proof", story::ACCOUNT),
            Some(ADMIN_TOKEN),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(verdict::log::bundle::verify_proof_file(&proof, &key(&old), None).is_err());
    verdict::log::bundle::verify_proof_file_following(&proof, &key(&old), &parsed, None)
        .expect("followed from the old key");
    server.shutdown().await;

    // From now on the new key is the one: the old one is refused.
    db.start(ServerOptions {
        signer: Some(new.clone()),
        ..Default::default()
    })
    .await
    .shutdown()
    .await;
    assert!(matches!(
        db.try_start(ServerOptions {
            signer: Some(old),
            ..Default::default()
        })
        .await,
        Err(ServeError::Keys(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_reads_private_logs_with_a_token_and_checks_the_newest_entry() {
    let db = TestDb::new().await;
    let server = db.start(ServerOptions::default()).await;
    let private = story::private_story("keys");
    for d in &private {
        assert!(
            server
                .deliver(d.event, &d.delivery_id, &d.body)
                .await
                .status()
                .is_success()
        );
    }
    let account = story::ACCOUNT;
    let note = server
        .checkpoint_at_least(account, private.len() as u64)
        .await;
    let k = key(&db.signer);

    // Every repository of the log is private: without a token the log is not there.
    let anonymous = verdict::log::monitor::observe(&server.base, &note, Some(&k), None).await;
    assert!(
        matches!(
            anonymous,
            Err(verdict::log::monitor::MonitorError::Status { status: 404, .. })
        ),
        "{anonymous:?}"
    );
    let (o, _) = verdict::log::monitor::observe(&server.base, &note, Some(&k), Some(ADMIN_TOKEN))
        .await
        .unwrap();
    assert_eq!(o.current.size, private.len() as u64);

    // The newest entry goes, behind an intact checkpoint (triggers bypassed): noticed.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!(
            "SET session_replication_role = replica;
             DELETE FROM log_entries WHERE seq = {}",
            private.len() - 1
        )),
    )
    .await
    .unwrap();
    match verdict::log::monitor::observe(&server.base, &note, Some(&k), Some(ADMIN_TOKEN)).await {
        Err(e @ verdict::log::monitor::MonitorError::NewestEntry { .. }) => {
            assert!(e.to_string().contains("is not the entry it signed"), "{e}");
        }
        other => panic!("a truncated log behind an intact checkpoint passed: {other:?}"),
    }
    server.shutdown().await;
}
