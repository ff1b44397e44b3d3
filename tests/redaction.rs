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

/// A decision record as the projections hold it.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Record {
    ordinal: i32,
    kind: String,
    actor: Option<String>,
    occurred_at: chrono::DateTime<chrono::Utc>,
    commit_sha: Option<String>,
    pr_number: Option<i64>,
    body: Option<String>,
    details: String,
}

/// What the projections say of every pull request and every decision record's text, to
/// compare what a redaction left with what a rebuild from the log derives.
async fn projected_texts(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('pr %s#%s %s | %s | %s', repo, number, title, body, updated_at)
           FROM pull_requests
         UNION ALL
         SELECT format('decision %s/%s/%s %s %s | %s | %s', log_id, seq, ordinal, kind, actor,
                       body, details)
           FROM decisions
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Rebuilds the projections from the log and checks they say what the redactions left, once
/// the projector has caught up (a redaction may come before it reached the entry).
async fn rebuild_agrees(db: &TestDb, admin: &PgPool) {
    project_all(&db.app_pool().await).await;
    let live = projected_texts(admin).await;
    let (ok, out) = verdict_cli(&["reproject"], &[("DATABASE_URL", &db.url)]);
    assert!(ok, "{out}");
    let rebuilt = projected_texts(admin).await;
    let differ: Vec<(&String, &String)> =
        live.iter().zip(&rebuilt).filter(|(a, b)| a != b).collect();
    assert_eq!(live.len(), rebuilt.len());
    assert!(differ.is_empty(), "live vs rebuilt: {differ:#?}");
}

/// The decision records entry `seq` of acme derived.
async fn records_of(pool: &PgPool, seq: i64) -> Vec<Record> {
    records_in(pool, "acme", seq).await
}

/// The decision records entry `seq` of `log` derived.
async fn records_in(pool: &PgPool, log: &str, seq: i64) -> Vec<Record> {
    sqlx::query_as(
        "SELECT d.ordinal, d.kind, d.actor, d.occurred_at, d.commit_sha, d.pr_number, d.body,
                d.details::text AS details
           FROM decisions d JOIN logs l ON l.id = d.log_id
          WHERE l.name = $2 AND d.seq = $1 ORDER BY d.ordinal",
    )
    .bind(seq)
    .bind(log)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `verdict verify` of `log` (or of every log) with the key that signed the checkpoints.
fn verify(db: &TestDb, log: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.key");
    std::fs::write(&signing, db.signer.to_key_text()).unwrap();
    let mut args = vec!["verify", "--signing-key", signing.to_str().unwrap()];
    if let Some(log) = log {
        args.extend(["--log", log]);
    }
    verdict_cli(&args, &[("DATABASE_URL", &db.url)])
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
    let before = records_of(&admin, seq).await;
    assert!(
        before
            .iter()
            .any(|r| r.body.as_deref().is_some_and(|b| b.contains(marker))),
        "{before:?}"
    );

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
    assert!(out.contains("its skeleton stays"), "{out}");
    // The decision records stay: who did what, when, on which commit; their texts redacted.
    let after = records_of(&admin, seq).await;
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            (&a.kind, &a.actor, a.occurred_at, &a.commit_sha, a.pr_number),
            (&b.kind, &b.actor, b.occurred_at, &b.commit_sha, b.pr_number)
        );
        assert_eq!(
            a.body.as_deref(),
            b.body.as_ref().map(|_| "[redacted]"),
            "{a:?}"
        );
    }
    // The pull request's description, which later deliveries still carry, stays.
    let description: Option<String> =
        sqlx::query_scalar("SELECT body FROM pull_requests WHERE number = 42")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(
        description
            .as_deref()
            .is_some_and(|d| d.contains("saved-card payment form")),
        "{description:?}"
    );
    // A rebuild from the log (through the skeleton) derives exactly the same.
    rebuild_agrees(&db, &admin).await;
    assert_eq!(records_of(&admin, seq).await, after);
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
    let (ok, out) = verify(&db, Some("acme"));
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
    assert!(
        page.contains("What is shown is its <b>skeleton</b>"),
        "{page}"
    );
    // The erased body is accounted for: the entry still verifies on its page.
    assert!(page.contains("badge ok\">entry verifies"), "{page}");
    assert!(page.contains("✓ recomputed"), "{page}");
    // /redactions lists it for whoever may see the repository it names.
    let listed: Value = server
        .get("/api/redactions", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["entries_erased"], 1, "{listed}");
    let item = &listed["redactions"][0];
    assert_eq!(item["reason"], "card details pasted into a review");
    assert_eq!(item["kept"], "skeleton");
    assert_eq!(item["record_url"], "/records/acme/17");
    assert_eq!(item["targets"][0]["seq"], seq);
    let list = server.get("/redactions", None).await.text().await.unwrap();
    assert!(
        list.contains("card details pasted into a review")
            && list.contains(&format!("href=\"/records/acme/{seq}\"")),
        "{list}"
    );
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
    // --erase-records removes the skeleton and the records with it, on the record again.
    let (ok, out) = redact(
        &db,
        &[
            "--seq",
            &seq.to_string(),
            "--reason",
            "the reviewer's name must go too",
            "--erase-records",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(records_of(&admin, seq).await, Vec::<Record>::new());
    let copies: i64 = sqlx::query_scalar("SELECT count(*) FROM redacted_copies")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(copies, 0);
    rebuild_agrees(&db, &admin).await;
    assert_eq!(records_of(&admin, seq).await, Vec::<Record>::new());
    let page = server
        .get(&format!("/records/acme/{seq}"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("name must go too"), "{page}");
    assert!(
        page.contains("with them the decision records derived from it"),
        "{page}"
    );
    let (ok, out) = verify(&db, Some("acme"));
    assert!(ok && out.contains("1 entry redacted"), "{out}");
    let (ok, out) = redact(&db, &["--seq", &seq.to_string(), "--reason", "thrice"]);
    assert!(!ok && out.contains("already redacted"), "{out}");
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
    rebuild_agrees(&db, &admin).await;
    assert_eq!(text(admin.clone()).await.as_deref(), Some("[redacted]"));
    let page = server
        .get(&format!("/records/acme/{seq}"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("what is shown is a redacted copy"), "{page}");
    let (ok, out) = verify(&db, Some("acme"));
    assert!(ok && out.contains("1 entry redacted"), "{out}");
    // A copy changed outside the redaction path (the words put back) is caught.
    let mut conn = admin.acquire().await.unwrap();
    for sql in [
        "ALTER TABLE redacted_copies DISABLE TRIGGER redacted_copies_guard",
        "UPDATE redacted_copies SET body = convert_to(replace(convert_from(body, 'UTF8'), \
         '[redacted]', 'the words again'), 'UTF8')",
        "ALTER TABLE redacted_copies ENABLE TRIGGER redacted_copies_guard",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);
    let (ok, out) = verify(&db, Some("acme"));
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "entry {seq}: the redacted copy kept in place of its body is not the one"
        )),
        "{out}"
    );
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
    let (ok, out) = verify(&db, Some("acme"));
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
    rebuild_agrees(&db, &admin).await;
    assert_eq!(everywhere(&admin, description).await, Vec::<String>::new());
    let (ok, out) = verify(&db, Some("acme"));
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
    // One redaction entry per batch, naming what that run erased (both stars, unless a run
    // fell between the deliveries); verify accepts exactly that.
    let batches: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT body FROM log_entries WHERE kind = 'verdict-redaction'")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert!((1..=2).contains(&batches.len()), "{}", batches.len());
    let mut named = 0;
    for batch in &batches {
        let batch: Value = serde_json::from_slice(batch).unwrap();
        named += batch["targets"].as_array().unwrap().len();
        assert!(batch["reason"].as_str().unwrap().starts_with("retention"));
    }
    assert_eq!(named, 2);
    server.shutdown().await;
    let (ok, out) = verify(&db, None);
    assert!(ok, "{out}");
    assert!(out.contains("2 entries redacted"), "{out}");
}

#[tokio::test]
async fn retention_of_decision_events_keeps_their_records_through_skeletons() {
    let rules = verdict::feedback::config::RuleConfig::parse(
        "[retention]\nafter_days = 0\nevents = [\"pull_request_review\", \"star\"]\n\
         drop_decision_events = true\nevery_seconds = 1\n",
    )
    .unwrap();
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
    let mut review: Value =
        serde_json::from_slice(&common::fixture("pull_request_review/submitted.1.json")).unwrap();
    let words = "Looks fine, but my phone number is 555-0199";
    review["review"]["body"] = Value::from(words);
    let review = serde_json::to_vec(&review).unwrap();
    for (event, id, body) in [
        ("pull_request_review", "review", review.clone()),
        ("star", "star", common::fixture("star/created.1.json")),
    ] {
        let r = server.deliver(event, id, &body).await;
        assert_eq!(r.status(), 201, "{event}");
    }
    let admin = db.admin_pool().await;
    let mut erased = 0;
    for _ in 0..100 {
        erased =
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM log_entries WHERE body IS NULL")
                .fetch_one(&admin)
                .await
                .unwrap();
        if erased == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(erased, 2);
    // A retention batch names no repository: operators see it on /redactions, others do not.
    let listed = |token: Option<&'static str>| {
        let server = &server;
        async move {
            let v: Value = server
                .get("/api/redactions", token)
                .await
                .json()
                .await
                .unwrap();
            v["entries_erased"].as_u64().unwrap()
        }
    };
    assert_eq!(listed(Some(common::ADMIN_TOKEN)).await, 2);
    assert_eq!(listed(None).await, 0);
    server.shutdown().await;
    assert_eq!(
        everywhere(&admin, words.as_bytes()).await,
        Vec::<String>::new()
    );
    // The review's record stays (its words redacted); the star, which derived nothing, keeps
    // no skeleton.
    let batches: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT body FROM log_entries WHERE kind = 'verdict-redaction'")
            .fetch_all(&admin)
            .await
            .unwrap();
    let mut kept: Vec<(u64, bool)> = Vec::new();
    for batch in &batches {
        let batch: Value = serde_json::from_slice(batch).unwrap();
        for t in batch["targets"].as_array().unwrap() {
            kept.push((t["seq"].as_u64().unwrap(), t["copy_sha256"].is_string()));
        }
    }
    kept.sort();
    assert_eq!(kept, [(0, true), (1, false)]);
    let log: String = sqlx::query_scalar(
        "SELECT l.name FROM logs l JOIN log_entries e ON e.log_id = l.id
          WHERE e.event = 'pull_request_review'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    let records = records_in(&admin, &log, 0).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].actor.as_deref(), Some("Codertocat"));
    assert_eq!(records[0].body.as_deref(), Some("[redacted]"));
    rebuild_agrees(&db, &admin).await;
    assert_eq!(records_in(&admin, &log, 0).await, records);
    let (ok, out) = verify(&db, None);
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
    // Erasing the records goes with the whole body only.
    let mixed = server
        .client
        .post(&url)
        .bearer_auth(common::ADMIN_TOKEN)
        .json(
            &serde_json::json!({"reason": "x", "by": "y", "fields": "comment.body",
            "erase_records": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), 400);
    assert!(mixed.text().await.unwrap().contains("whole body"));
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

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledgement_note_is_redacted_and_the_acknowledgement_stays() {
    let (db, server) = common::judged_story_server().await;
    let open: Value = server
        .get("/api/findings?acknowledged=no", None)
        .await
        .json()
        .await
        .unwrap();
    let finding = open["findings"][0]["record_url"].as_str().unwrap();
    let note = "accepted; call Dana on 555-0142 about it";
    let created = server
        .client
        .post(format!(
            "{}/api{}/acknowledgements",
            server.base,
            finding.replace("/records/", "/findings/")
        ))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&serde_json::json!({"by": "Priya", "note": note}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let receipt: Value = created.json().await.unwrap();
    let ack_seq = receipt["record_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let admin = db.admin_pool().await;
    let acks = |pool: PgPool| async move {
        for _ in 0..100 {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT by_name, note FROM finding_acks ORDER BY seq")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            if !rows.is_empty() {
                return rows;
            }
            project_all(&pool).await;
        }
        panic!("the acknowledgement was never projected");
    };
    assert_eq!(
        acks(admin.clone()).await,
        [("Priya".to_string(), note.to_string())]
    );
    // Findings and other entries verdict derives are not erased: their sources are.
    let finding_seq = finding.rsplit('/').next().unwrap();
    let (ok, out) = redact(&db, &["--seq", finding_seq, "--reason", "x"]);
    assert!(
        !ok && out.contains("verdict derived from other entries"),
        "{out}"
    );

    // A deletion request for the person who acknowledged finds the note.
    let (ok, out) = verdict_cli(
        &[
            "redact",
            "--user",
            "priya",
            "--dry-run",
            "--reason",
            "x",
            "--by",
            "y",
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("acme/{ack_seq} ")) && out.contains("note"),
        "{out}"
    );
    let (ok, out) = redact(&db, &["--seq", &ack_seq, "--reason", "a phone number"]);
    assert!(ok, "{out}");
    assert_eq!(
        everywhere(&admin, note.as_bytes()).await,
        Vec::<String>::new()
    );
    let expected = [("Priya".to_string(), "[redacted]".to_string())];
    assert_eq!(acks(admin.clone()).await, expected);
    server.shutdown().await;
    let (ok, out) = verdict_cli(&["reproject"], &[("DATABASE_URL", &db.url)]);
    assert!(ok, "{out}");
    assert_eq!(acks(admin.clone()).await, expected);
}
