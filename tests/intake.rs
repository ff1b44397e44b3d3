//! POST /webhooks/github against a real PostgreSQL: what is stored, what is refused.

mod common;

use common::{SECRET, TestDb, fixture, fixture_payloads};
use sqlx::Row;
use verdict::log::store;
use verdict::log::verify::verify_log;

#[tokio::test]
async fn every_real_payload_is_stored_byte_exact_and_every_chain_verifies() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let payloads = fixture_payloads();
    assert!(
        payloads.len() >= 329,
        "expected all 329 octokit examples, found {}",
        payloads.len()
    );

    let mut sent = Vec::new();
    // The examples hold a few byte-identical pairs (two files, one body): the second copy of a
    // body in a log is a replay, answered with the first and not stored.
    let mut first_of_body: std::collections::HashMap<Vec<u8>, serde_json::Value> =
        Default::default();
    let mut replays = 0;
    for (i, (event, path)) in payloads.iter().enumerate() {
        let body = std::fs::read(path).unwrap();
        let delivery = format!("fixture-{i}");
        let res = server.deliver(event, &delivery, &body).await;
        if let Some(first) = first_of_body.get(&body) {
            assert_eq!(res.status(), 200, "{}", path.display());
            let receipt: serde_json::Value = res.json().await.unwrap();
            assert_eq!(
                receipt["replay_of"],
                serde_json::json!({"log": first["log"], "seq": first["seq"]}),
                "{}",
                path.display()
            );
            replays += 1;
            continue;
        }
        assert_eq!(
            res.status(),
            201,
            "{}: {}",
            path.display(),
            res.text().await.unwrap()
        );
        let receipt: serde_json::Value = res.json().await.unwrap();
        first_of_body.insert(body.clone(), receipt.clone());
        sent.push((delivery, event.clone(), body, receipt));
    }
    assert_eq!(replays, 5, "the examples hold five byte-identical pairs");

    let pool = db.app_pool().await;
    for (delivery, event, body, receipt) in &sent {
        let row = sqlx::query(
            "SELECT l.name, e.seq, e.event, e.body, e.body_readable, e.signature, e.hook_id,
                    e.installation_target_type, e.installation_target_id, e.entry_hash
               FROM log_entries e JOIN logs l ON l.id = e.log_id WHERE e.delivery_id = $1",
        )
        .bind(delivery.clone())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(row.get::<String, _>(0), receipt["log"].as_str().unwrap());
        assert_eq!(
            row.get::<i64, _>(1) as u64,
            receipt["seq"].as_u64().unwrap()
        );
        assert_eq!(&row.get::<String, _>(2), event);
        assert_eq!(
            &row.get::<Vec<u8>, _>(3),
            body,
            "delivery {delivery} not byte-exact"
        );
        assert!(row.get::<bool, _>(4), "real payloads are readable JSON");
        assert_eq!(
            row.get::<String, _>(5),
            verdict::intake::signature::sign(SECRET.as_bytes(), body)
        );
        assert_eq!(row.get::<String, _>(6), "123456");
        assert_eq!(row.get::<String, _>(7), "integration");
        assert_eq!(row.get::<String, _>(8), "42");
        assert_eq!(
            hex::encode(row.get::<Vec<u8>, _>(9)),
            receipt["entry_hash"].as_str().unwrap()
        );
    }

    let heads = store::heads(&pool).await.unwrap();
    assert!(
        heads.len() > 1,
        "payloads of several accounts make several logs"
    );
    let total: u64 = heads.iter().map(|h| h.size).sum();
    assert_eq!(total, sent.len() as u64);
    for head in heads {
        let verified = verify_log(&pool, &head.name, None, |_, _| {})
            .await
            .unwrap();
        assert_eq!(verified.size, head.size);
        assert_eq!(verified.head_hash, head.head_hash);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_signatures_are_refused_with_401_and_store_nothing() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let body = fixture("pull_request/opened.1.json");

    let missing = server
        .deliver_signed(None, "pull_request", "d-1", &body)
        .await;
    assert_eq!(missing.status(), 401);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("missing X-Hub-Signature-256")
    );

    let wrong = server
        .deliver_signed(Some("not-the-secret"), "pull_request", "d-2", &body)
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("does not match"));

    // A valid signature over different bytes: the body was altered in transit.
    let res = server
        .client
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "d-3")
        .header(
            "X-Hub-Signature-256",
            verdict::intake::signature::sign(SECRET.as_bytes(), &body),
        )
        .body([&body[..], b" "].concat())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let garbled = server
        .client
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "d-4")
        .header("X-Hub-Signature-256", "sha256=nothex")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 401);
    assert!(garbled.text().await.unwrap().contains("malformed"));

    assert_eq!(entry_count(&db).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn rotated_secrets_all_verify_while_configured() {
    let db = TestDb::new().await;
    // Each delivery its own body, as GitHub's are (the same body twice would be a replay).
    let body = |n| common::variant(&fixture("issue_comment/created.1.json"), n);
    let server = db.server(&["old-secret", "new-secret"]).await;
    for (i, secret) in ["old-secret", "new-secret"].iter().enumerate() {
        let res = server
            .deliver_signed(
                Some(secret),
                "issue_comment",
                &format!("rot-{i}"),
                &body(i as u64),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    server.shutdown().await;

    // Rotation done: the old secret is removed and no longer verifies.
    let server = db.server(&["new-secret"]).await;
    let res = server
        .deliver_signed(Some("old-secret"), "issue_comment", "rot-2", &body(2))
        .await;
    assert_eq!(res.status(), 401);
    let res = server
        .deliver_signed(Some("new-secret"), "issue_comment", "rot-3", &body(3))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(entry_count(&db).await, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn missing_github_headers_are_400() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let body = fixture("ping/event.1.json");
    let sig = verdict::intake::signature::sign(SECRET.as_bytes(), &body);
    let url = format!("{}/webhooks/github", server.base);

    let no_event = server
        .client
        .post(&url)
        .header("X-GitHub-Delivery", "h-1")
        .header("X-Hub-Signature-256", &sig)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_event.status(), 400);
    assert_eq!(
        no_event.text().await.unwrap().trim(),
        "missing X-GitHub-Event header: this endpoint only accepts GitHub webhook deliveries"
    );

    let no_delivery = server
        .client
        .post(&url)
        .header("X-GitHub-Event", "ping")
        .header("X-Hub-Signature-256", &sig)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_delivery.status(), 400);
    assert!(
        no_delivery
            .text()
            .await
            .unwrap()
            .contains("X-GitHub-Delivery")
    );

    let bad_delivery = server.deliver("ping", "not/a guid", &body).await;
    assert_eq!(bad_delivery.status(), 400);

    assert_eq!(entry_count(&db).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_redelivery_answers_2xx_and_adds_nothing() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let body = fixture("pull_request_review/submitted.1.json");
    let first = server
        .deliver("pull_request_review", "same-guid", &body)
        .await;
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();

    let again = server
        .deliver("pull_request_review", "same-guid", &body)
        .await;
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], first["seq"]);
    assert_eq!(again["log"], first["log"]);

    // Concurrent copies of one new delivery: exactly one entry.
    let burst = common::variant(&body, 1);
    let copies = (0..8).map(|_| server.deliver("pull_request_review", "burst-guid", &burst));
    let statuses: Vec<u16> = futures_util::future::join_all(copies)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(entry_count(&db).await, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_bodies_are_413_and_store_nothing() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let big = vec![b' '; 25 * 1024 * 1024 + 1];
    let res = server.deliver("push", "big-1", &big).await;
    assert_eq!(res.status(), 413);
    assert!(res.text().await.unwrap().contains("25 MB"));

    // Without Content-Length (chunked) the size is unknown up front: GitHub always sends
    // one, so the request is refused before any of its body is read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..26).map(|_| Ok(vec![b' '; 1024 * 1024])).collect();
    let res = server
        .client
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "big-2")
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 411);
    assert!(res.text().await.unwrap().contains("Content-Length"));

    // Exactly at the cap is accepted (GitHub's own maximum).
    let at_cap = vec![b' '; 25 * 1024 * 1024];
    let res = server.deliver("push", "cap-1", &at_cap).await;
    assert_eq!(res.status(), 201);
    assert_eq!(entry_count(&db).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_is_kept_and_flagged() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let body = b"{\"action\": \"opened\", truncated".to_vec();
    let res = server.deliver("pull_request", "broken-1", &body).await;
    assert_eq!(res.status(), 201);
    let receipt: serde_json::Value = res.json().await.unwrap();
    assert_eq!(receipt["log"], verdict::intake::account::FALLBACK_LOG);

    let row =
        sqlx::query("SELECT body, body_readable FROM log_entries WHERE delivery_id = 'broken-1'")
            .fetch_one(&db.app_pool().await)
            .await
            .unwrap();
    assert_eq!(row.get::<Vec<u8>, _>(0), body);
    assert!(!row.get::<bool, _>(1));

    // The server is fine afterwards.
    let ok = server
        .deliver("ping", "after-broken", &fixture("ping/event.1.json"))
        .await;
    assert_eq!(ok.status(), 201);
    server.shutdown().await;
}

#[tokio::test]
async fn ping_and_unknown_events_are_kept() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let ping = server
        .deliver("ping", "ping-1", &fixture("ping/event.1.json"))
        .await;
    assert_eq!(ping.status(), 201);
    let unknown = server
        .deliver(
            "some_future_event",
            "future-1",
            br#"{"action":"invented","organization":{"login":"Acme"}}"#,
        )
        .await;
    assert_eq!(unknown.status(), 201);
    let receipt: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(receipt["log"], "acme");
    assert_eq!(entry_count(&db).await, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn healthz_answers_once_ready() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let res = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.shutdown().await;
}

async fn entry_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM log_entries")
        .fetch_one(&db.app_pool().await)
        .await
        .unwrap()
}
