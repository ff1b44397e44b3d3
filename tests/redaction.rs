//! Redaction (issue 17): erase a body and keep every proof. The bytes leave every column of
//! the database, `verify` and `verify-bundle` pass and say so, proofs taken before still
//! verify; partial redaction keeps a redacted copy; nothing else can erase a body, and a body
//! missing without its redaction entry is still tampering.

mod common;

use serde_json::Value;
use sqlx::{PgPool, Row};

use common::{TestDb, project_all, verdict_cli};

/// The seq of the story entry whose body contains `marker`.
async fn entry_with(pool: &PgPool, marker: &str) -> (i64, Vec<u8>) {
    sqlx::query_as(
        "SELECT e.seq, e.body FROM log_entries e JOIN logs l ON l.id = e.log_id
          WHERE l.name = 'acme' AND position($1::bytea in e.body) > 0 ORDER BY e.seq LIMIT 1",
    )
    .bind(marker.as_bytes())
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Every (table, column) of type text, bytea, json(b) or varchar holding `needle`.
async fn everywhere(pool: &PgPool, needle: &[u8]) -> Vec<String> {
    let columns = sqlx::query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns
          WHERE table_schema = 'public'
            AND data_type IN ('text', 'bytea', 'jsonb', 'json', 'character varying')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut found = Vec::new();
    for c in columns {
        let (table, column, kind): (String, String, String) = (c.get(0), c.get(1), c.get(2));
        let expr = if kind == "bytea" {
            format!("\"{column}\"")
        } else {
            format!("convert_to(\"{column}\"::text, 'UTF8')")
        };
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{table}\" WHERE position($1::bytea in {expr}) > 0"
        )))
        .bind(needle)
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

fn redact(db: &TestDb, args: &[&str]) -> (bool, String) {
    let mut all = vec!["redact", "--log", "acme", "--by", "Priya (privacy officer)"];
    all.extend_from_slice(args);
    verdict_cli(&all, &[("DATABASE_URL", &db.url)])
}

// The CLI talks to this process's server: the runtime must keep serving while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_redacted_body_is_gone_from_the_database_and_every_proof_still_verifies() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    let admin = db.admin_pool().await;
    project_all(&db.app_pool().await).await;
    let marker = "A wrong digit today only fails at the payment provider";
    let (seq, body) = entry_with(&admin, marker).await;
    assert!(everywhere(&admin, marker.as_bytes()).await.len() >= 2);
    // Proofs and a checkpoint taken before the erasure.
    server.checkpoint_at_least("acme", 17).await;
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("before.tlog-proof");
    let r = server
        .get(&format!("/records/acme/{seq}/proof"), None)
        .await;
    std::fs::write(&proof, r.bytes().await.unwrap()).unwrap();
    let key = server.signer.verifier_key("acme");

    let (ok, out) = redact(
        &db,
        &[
            "--seq",
            &seq.to_string(),
            "--reason",
            "card details pasted into a review",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("recorded as entry 17"), "{out}");
    // The bytes are nowhere: not the body, not its text in any projection.
    assert_eq!(everywhere(&admin, &body).await, Vec::<String>::new());
    assert_eq!(
        everywhere(&admin, marker.as_bytes()).await,
        Vec::<String>::new()
    );

    // verify passes and reports it; the proof taken before still verifies; a new one too.
    let signing = dir.path().join("signing.key");
    std::fs::write(&signing, db.signer.to_key_text()).unwrap();
    server.checkpoint_at_least("acme", 18).await;
    let (ok, out) = verdict_cli(
        &[
            "verify",
            "--log",
            "acme",
            "--signing-key",
            signing.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok, "{out}");
    assert!(out.contains("1 entry redacted (body hash kept)"), "{out}");
    let (ok, out) = verdict_cli(
        &["verify-proof", proof.to_str().unwrap(), "--key", &key],
        &[],
    );
    assert!(ok, "the proof from before the erasure: {out}");
    let after = dir.path().join("after.tlog-proof");
    let r = server
        .get(&format!("/records/acme/{seq}/proof"), None)
        .await;
    assert_eq!(r.status(), 200);
    std::fs::write(&after, r.bytes().await.unwrap()).unwrap();
    let (ok, out) = verdict_cli(
        &["verify-proof", after.to_str().unwrap(), "--key", &key],
        &[],
    );
    assert!(ok, "{out}");

    // The bundle carries the entry without its body, and verifies.
    let bundle = dir.path().join("acme.jsonl");
    let (ok, out) = verdict_cli(
        &[
            "export",
            "--log",
            "acme",
            "--out",
            bundle.to_str().unwrap(),
            "--signing-key",
            signing.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&bundle).unwrap();
    let line: Value = serde_json::from_str(text.lines().nth(seq as usize + 1).unwrap()).unwrap();
    assert_eq!(line["body"], Value::Null);
    let (ok, out) = verdict_cli(
        &["verify-bundle", bundle.to_str().unwrap(), "--key", &key],
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("1 entry redacted"), "{out}");
    // A body missing from the bundle without a redaction entry is tampering.
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let other = if seq == 3 { 4 } else { 3 };
    lines[other + 1]["body"] = Value::Null;
    let forged = dir.path().join("forged.jsonl");
    std::fs::write(
        &forged,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let (ok, out) = verdict_cli(
        &["verify-bundle", forged.to_str().unwrap(), "--key", &key],
        &[],
    );
    assert!(
        !ok && out.contains(&format!("entry {other}: the body is missing")),
        "{out}"
    );

    // The page says who, when and why; the body answers 410; the decision is gone.
    let (_, page) = (
        (),
        server
            .get(&format!("/records/acme/{seq}"), None)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(page.contains("id=\"redacted\""), "{page}");
    assert!(page.contains("by Priya (privacy officer): card details pasted into a review"));
    assert!(page.contains("href=\"/records/acme/17\">the redaction entry</a>"));
    assert_eq!(
        server
            .get(&format!("/records/acme/{seq}/body"), None)
            .await
            .status(),
        410
    );
    let (_, redaction) = (
        (),
        server
            .get("/records/acme/17", None)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(redaction.contains("id=\"redaction\""), "{redaction}");
    // Redacting again is refused, and so is redacting the record of an erasure.
    let (ok, out) = redact(&db, &["--seq", &seq.to_string(), "--reason", "again"]);
    assert!(!ok && out.contains("already redacted"), "{out}");
    let (ok, out) = redact(&db, &["--seq", "17", "--reason", "hide it"]);
    assert!(!ok && out.contains("never erased"), "{out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partial_redaction_keeps_a_redacted_copy_that_pages_and_rebuilds_read() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    let admin = db.admin_pool().await;
    project_all(&db.app_pool().await).await;
    let marker = "This needs a feature flag before it reaches customers.";
    let (seq, _) = entry_with(&admin, marker).await;
    let field: String = {
        let (_, body) = entry_with(&admin, marker).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        if v["comment"]["body"].as_str() == Some(marker) {
            "comment.body".into()
        } else {
            "review.body".into()
        }
    };
    let (ok, out) = redact(
        &db,
        &[
            "--seq",
            &seq.to_string(),
            "--reason",
            "customer's name",
            "--fields",
            &field,
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        everywhere(&admin, marker.as_bytes()).await,
        Vec::<String>::new()
    );
    // The copy's hash is on the record.
    let (copy, sha): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT body, body_sha256 FROM redacted_copies")
            .fetch_one(&admin)
            .await
            .unwrap();
    let record: Value = server
        .get("/api/records/acme/17", None)
        .await
        .json()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["copy_sha256"], hex::encode(&sha));
    use sha2::Digest;
    assert_eq!(sha2::Sha256::digest(&copy)[..], sha[..]);
    // The decision record stays, its text redacted; a rebuild says the same.
    let text = |pool: PgPool| async move {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT body FROM decisions WHERE seq = $1 AND body IS NOT NULL",
        )
        .bind(seq)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(text(admin.clone()).await.as_deref(), Some("[redacted]"));
    let (ok, out) = verdict_cli(&["reproject"], &[("DATABASE_URL", &db.url)]);
    assert!(ok, "{out}");
    assert_eq!(text(admin.clone()).await.as_deref(), Some("[redacted]"));
    let page = server
        .get(&format!("/records/acme/{seq}"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("what is shown is a redacted copy"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.key");
    std::fs::write(&signing, db.signer.to_key_text()).unwrap();
    let (ok, out) = verdict_cli(
        &[
            "verify",
            "--log",
            "acme",
            "--signing-key",
            signing.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok && out.contains("1 entry redacted"), "{out}");
    // Unknown fields erase nothing and are refused.
    let (ok, out) = redact(
        &db,
        &["--seq", "3", "--reason", "x", "--fields", "nothing.here"],
    );
    assert!(!ok && out.contains("nothing would be erased"), "{out}");
    server.shutdown().await;
}

#[tokio::test]
async fn only_the_redaction_path_erases_and_a_missing_body_is_still_tampering() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    server.shutdown().await;
    let admin = db.admin_pool().await;
    let app = db.app_pool().await;
    // Not as the owner or a superuser, not through the function without a redaction entry.
    for (who, pool) in [("superuser", &admin), ("app", &app)] {
        for sql in [
            "UPDATE log_entries SET body = NULL WHERE seq = 3",
            "DELETE FROM log_entries WHERE seq = 3",
            "SELECT verdict_redact_body((SELECT id FROM logs WHERE name = 'acme'), 3, NULL)",
        ] {
            let refused = sqlx::query(sql).execute(pool).await;
            assert!(refused.is_err(), "{who}: {sql} was allowed");
        }
    }
    // Setting the switch by hand does not help either: the redaction entry is what counts.
    let mut tx = admin.begin().await.unwrap();
    sqlx::query("SELECT set_config('verdict.redacting', (SELECT id FROM logs WHERE name = 'acme') || ':3', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let refused = sqlx::query("UPDATE log_entries SET body = NULL WHERE seq = 3")
        .execute(&mut *tx)
        .await;
    assert!(refused.is_err());
    drop(tx);
    // A superuser who disables the trigger can blank a body, and verify says so.
    let mut conn = admin.acquire().await.unwrap();
    for sql in [
        "ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only",
        "UPDATE log_entries SET body = NULL WHERE seq = 3",
        "ALTER TABLE log_entries ENABLE TRIGGER log_entries_append_only",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.key");
    std::fs::write(&signing, db.signer.to_key_text()).unwrap();
    let (ok, out) = verdict_cli(
        &[
            "verify",
            "--log",
            "acme",
            "--signing-key",
            signing.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "entry 3: the body is missing and no redaction entry in the log accounts for it"
        ),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_request_redacts_everything_a_person_wrote_after_showing_the_plan() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    server.shutdown().await;
    let admin = db.admin_pool().await;
    project_all(&db.app_pool().await).await;
    let marker = "Please validate the card number";
    assert!(!everywhere(&admin, marker.as_bytes()).await.is_empty());
    let plan = verdict::log::redaction::plan_for_user(&admin, "rev-omar")
        .await
        .unwrap();
    assert!(!plan.is_empty());
    assert!(
        plan.iter()
            .all(|p| p.fields.iter().all(|f| f.ends_with(".body")))
    );
    let request = |dry: bool| {
        let mut args = vec![
            "redact",
            "--user",
            "rev-omar",
            "--reason",
            "GDPR art. 17 request",
            "--by",
            "Priya (privacy officer)",
        ];
        if dry {
            args.push("--dry-run");
        }
        verdict_cli(&args, &[("DATABASE_URL", &db.url)])
    };
    let (ok, out) = request(true);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{} entr", plan.len())) && out.contains("dry run: nothing changed"),
        "{out}"
    );
    assert!(
        !everywhere(&admin, marker.as_bytes()).await.is_empty(),
        "a dry run changes nothing"
    );
    let (ok, out) = request(false);
    assert!(ok, "{out}");
    assert_eq!(
        everywhere(&admin, marker.as_bytes()).await,
        Vec::<String>::new()
    );
    assert!(
        verdict::log::redaction::plan_for_user(&admin, "rev-omar")
            .await
            .unwrap()
            .is_empty(),
        "nothing of theirs is left to redact"
    );
    // Others' words stay.
    assert!(
        !everywhere(&admin, b"This needs a feature flag")
            .await
            .is_empty()
    );
    // The author of PR 42 asks too: their description leaves every delivery that carried it
    // and the pull request's projected description.
    let description = b"Adds the saved-card payment form.";
    assert!(
        everywhere(&admin, description)
            .await
            .contains(&"pull_requests.body".to_string())
    );
    let (ok, out) = verdict_cli(
        &[
            "redact",
            "--user",
            "dev-lena",
            "--reason",
            "request #2",
            "--by",
            "Priya",
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok, "{out}");
    assert_eq!(everywhere(&admin, description).await, Vec::<String>::new());
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.key");
    std::fs::write(&signing, db.signer.to_key_text()).unwrap();
    let (ok, out) = verdict_cli(
        &[
            "verify",
            "--log",
            "acme",
            "--signing-key",
            signing.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok, "{out}");
    let erased: i64 = sqlx::query_scalar("SELECT count(*) FROM log_entries WHERE body IS NULL")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(erased >= plan.len() as i64);
    assert!(
        out.contains(&format!("{erased} entries redacted (body hash kept)")),
        "{out}"
    );
}

#[tokio::test]
async fn retention_drops_due_bodies_on_schedule_and_keeps_decision_events() {
    let rules = verdict::feedback::config::RuleConfig::parse(
        "[retention]\nafter_days = 0\nevents = [\"uninterpreted\"]\nevery_seconds = 1\n",
    )
    .unwrap();
    // Decision-bearing events are refused unless said in so many words.
    let refused = verdict::feedback::config::RuleConfig::parse(
        "[retention]\nafter_days = 30\nevents = [\"pull_request_review\"]\n",
    )
    .unwrap_err();
    assert!(refused.contains("drop_decision_events"), "{refused}");
    let db = TestDb::new().await;
    let server = db
        .start(common::ServerOptions {
            feedback: verdict::feedback::FeedbackConfig {
                rules,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    for (event, id, path) in [
        ("star", "keep-no-1", "star/created.1.json"),
        (
            "pull_request_review",
            "keep-yes",
            "pull_request_review/submitted.1.json",
        ),
        ("star", "keep-no-2", "star/deleted.1.json"),
    ] {
        let r = server.deliver(event, id, &common::fixture(path)).await;
        assert_eq!(r.status(), 201, "{event}");
    }
    let admin = db.admin_pool().await;
    // The server's schedule drops the star bodies (nothing decision-bearing).
    let mut erased = Vec::new();
    for _ in 0..100 {
        erased = sqlx::query_scalar::<_, String>(
            "SELECT event FROM log_entries WHERE body IS NULL ORDER BY seq",
        )
        .fetch_all(&admin)
        .await
        .unwrap();
        if erased.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(erased, ["star", "star"]);
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM log_entries WHERE event = 'pull_request_review' AND body IS NOT NULL",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(kept, 1);
    // One redaction entry per batch, naming both; verify accepts exactly that.
    let batches: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT body FROM log_entries WHERE kind = 'verdict-redaction'")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(batches.len(), 1);
    let batch: Value = serde_json::from_slice(&batches[0]).unwrap();
    assert_eq!(batch["targets"].as_array().unwrap().len(), 2);
    assert!(batch["reason"].as_str().unwrap().starts_with("retention"));
    server.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.key");
    std::fs::write(&signing, db.signer.to_key_text()).unwrap();
    let (ok, out) = verdict_cli(
        &["verify", "--signing-key", signing.to_str().unwrap()],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok, "{out}");
    assert!(out.contains("2 entries redacted"), "{out}");
}

#[tokio::test]
async fn operators_redact_from_the_record_page_and_the_api() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    // Anonymous visitors see public repositories once the projections know them.
    project_all(&db.app_pool().await).await;
    // The form is on the page for operators only.
    let page = server
        .get("/records/acme/3", Some(common::ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("action=\"/records/acme/3/redact\""), "{page}");
    let anonymous = server
        .get("/records/acme/3", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!anonymous.contains("/redact\""));
    let url = format!("{}/api/records/acme/3/redactions", server.base);
    let refused = server
        .client
        .post(&url)
        .json(&serde_json::json!({"reason": "x", "by": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let done = server
        .client
        .post(&url)
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&serde_json::json!({"reason": "token in a comment", "by": "Priya"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    let receipt: Value = done.json().await.unwrap();
    assert_eq!(receipt["target_seq"], 3);
    let record: Value = server
        .get("/api/records/acme/3", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(record["redaction"]["by"], "Priya", "{record}");
    assert_eq!(record["redaction"]["reason"], "token in a comment");
    // Twice is refused with the reason.
    let again = server
        .client
        .post(&url)
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&serde_json::json!({"reason": "again", "by": "Priya"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already redacted"));
    server.shutdown().await;
}
