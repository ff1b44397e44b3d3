//! The verifiable log end to end: the tree and checkpoints follow the log, the proof API
//! answers what RFC 6962 verifiers accept (and refuses impossible requests), a record's
//! proof file verifies offline, a bundle verifies without the database and fails on any
//! rewrite, and `monitor` proves a newer checkpoint extends a saved one.

mod common;

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{TestDb, TestServer, project_all};
use serde_json::Value;
use verdict::log::checkpoint::{NoteVerifier, write_key_file};
use verdict::log::entry::{EntryFields, body_hash};
use verdict::log::merkle;

async fn story() -> (TestDb, TestServer, NoteVerifier) {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    project_all(&db.app_pool().await).await;
    server.checkpoint_at_least("acme", 17).await;
    let key = server
        .get("/api/logs/acme/key", None)
        .await
        .text()
        .await
        .unwrap();
    let verifier = NoteVerifier::parse(&key).unwrap();
    (db, server, verifier)
}

async fn json(server: &TestServer, path: &str) -> (u16, Value) {
    let r = server.get(path, None).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

fn hashes(v: &Value) -> Vec<Vec<u8>> {
    v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
        .collect()
}

fn verdict(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .envs(env.iter().copied())
        .env("VERDICT_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn checkpoints_and_proofs_verify_against_the_stored_log() {
    let (db, server, verifier) = story().await;
    let (status, logs) = json(&server, "/api/logs").await;
    assert_eq!(status, 200);
    assert_eq!(logs[0]["account"], "acme");
    assert_eq!(logs[0]["size"], 17);
    assert_eq!(logs[0]["checkpoint_size"], 17);
    assert_eq!(logs[0]["origin"], "verdict.test/acme");

    let note = server
        .get("/api/logs/acme/checkpoint", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(note.starts_with("verdict.test/acme\n17\n"), "{note}");
    assert!(note.contains("\n\n— verdict.test/acme "), "{note}");
    let checkpoint = verifier.open_checkpoint(&note).unwrap();

    // The signed root is the RFC 6962 root over the stored entry hashes.
    let entry_hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT entry_hash FROM log_entries ORDER BY seq")
            .fetch_all(&db.admin_pool().await)
            .await
            .unwrap();
    let leaves: Vec<[u8; 32]> = entry_hashes.iter().map(|h| merkle::leaf_hash(h)).collect();
    assert_eq!(checkpoint.root, merkle::root(&leaves));

    for size in [1u64, 5, 16, 17] {
        let root = merkle::root(&leaves[..size as usize]);
        for index in 0..size {
            let (status, p) = json(
                &server,
                &format!("/api/logs/acme/proof/inclusion?index={index}&size={size}"),
            )
            .await;
            assert_eq!(status, 200, "{p}");
            assert_eq!(p["tree_size"], size);
            let leaf = B64.decode(p["leaf_hash"].as_str().unwrap()).unwrap();
            assert_eq!(leaf, leaves[index as usize]);
            merkle::verify_inclusion(index, size, &leaf, &hashes(&p), &root).unwrap();
        }
        for from in 0..=size {
            let (status, p) = json(
                &server,
                &format!("/api/logs/acme/proof/consistency?from={from}&to={size}"),
            )
            .await;
            assert_eq!(status, 200, "{p}");
            let old = merkle::root(&leaves[..from as usize]);
            merkle::verify_consistency(from, size, &hashes(&p), &old, &root).unwrap();
        }
    }
    // By delivery GUID, against the newest checkpoint by default.
    let (_, p) = json(
        &server,
        "/api/logs/acme/proof/inclusion?delivery=story-test-03",
    )
    .await;
    assert_eq!(
        (p["index"].as_u64(), p["tree_size"].as_u64()),
        (Some(3), Some(17))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn impossible_proof_requests_are_refused_with_the_reason() {
    let (_db, server, _) = story().await;
    for (path, status, reason) in [
        (
            "/api/logs/acme/proof/inclusion?index=17",
            400,
            "not inside a tree of size 17",
        ),
        (
            "/api/logs/acme/proof/inclusion?index=3&size=3",
            400,
            "not inside a tree of size 3",
        ),
        (
            "/api/logs/acme/proof/inclusion?index=1&size=18",
            400,
            "larger than the log's signed tree",
        ),
        (
            "/api/logs/acme/proof/inclusion",
            400,
            "exactly one of index=N or delivery=GUID",
        ),
        (
            "/api/logs/acme/proof/inclusion?index=1&delivery=x",
            400,
            "exactly one",
        ),
        (
            "/api/logs/acme/proof/inclusion?index=-1",
            400,
            "not a whole number",
        ),
        (
            "/api/logs/acme/proof/inclusion?delivery=nope",
            404,
            "no delivery \"nope\"",
        ),
        (
            "/api/logs/acme/proof/consistency?from=5&to=3",
            400,
            "a log only grows",
        ),
        (
            "/api/logs/acme/proof/consistency?from=1&to=99",
            400,
            "larger than the log's signed tree",
        ),
        ("/api/logs/acme/proof/consistency", 400, "from=N"),
        (
            "/api/logs/nobody/proof/inclusion?index=0",
            404,
            "no log for account \"nobody\"",
        ),
        ("/api/logs/nobody/checkpoint", 404, "no log for account"),
        ("/api/logs/nobody/key", 404, "no log for account"),
    ] {
        let (got, body) = json(&server, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(reason),
            "{path}: {body}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_downloaded_record_proof_verifies_offline_and_detects_changes() {
    let (_db, server, verifier) = story().await;
    let key = server.signer.verifier_key("acme");
    let page = server
        .get("/records/acme/6", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("href=\"/records/acme/6/proof\""),
        "the record page offers the proof"
    );
    let r = server.get("/records/acme/6/proof", None).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("acme-6.tlog-proof")
    );
    let proof = r.text().await.unwrap();
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nextra "),
        "{proof}"
    );
    assert!(proof.contains("\nindex 6\n"));

    let body = &verdict::story::feature_story("test")[6].body;
    let report = verdict::log::bundle::verify_proof_file(&proof, &key, Some(body)).unwrap();
    assert_eq!(
        (report.entry.seq, report.entry.log_name.as_str()),
        (6, "acme")
    );
    assert_eq!(report.checkpoint.size, 17);
    assert_eq!(verifier.name, report.checkpoint.origin);

    // Through the CLI, as an auditor would run it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme-6.tlog-proof");
    std::fs::write(&file, &proof).unwrap();
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body).unwrap();
    let (ok, out) = verdict(
        &[
            "verify-proof",
            file.to_str().unwrap(),
            "--key",
            &key,
            "--body",
            body_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("ok entry 6 of log acme is included in checkpoint verdict.test/acme size 17"),
        "{out}"
    );

    // Another body, another position, another key, a changed proof hash: all refused.
    assert!(verdict::log::bundle::verify_proof_file(&proof, &key, Some(b"{}")).is_err());
    let moved = proof.replace("\nindex 6\n", "\nindex 7\n");
    assert!(verdict::log::bundle::verify_proof_file(&moved, &key, None).is_err());
    let stranger = verdict::log::checkpoint::CheckpointSigner::generate("verdict.test").unwrap();
    assert!(
        verdict::log::bundle::verify_proof_file(&proof, &stranger.verifier_key("acme"), None)
            .is_err()
    );
    let lines: Vec<&str> = proof.lines().collect();
    let flipped = proof.replacen(lines[3], &B64.encode([0u8; 32]), 1);
    let (ok, out) = verdict(
        &[
            "verify-proof",
            &{
                let f = dir.path().join("flipped");
                std::fs::write(&f, flipped).unwrap();
                f.to_str().unwrap().to_string()
            },
            "--key",
            &key,
        ],
        &[],
    );
    assert!(!ok && out.contains("FAILED"), "{out}");
    server.shutdown().await;
}

/// Rewrites entry `at` of a bundle (its body and every hash after it) so the chain is
/// perfectly consistent again: only the signed checkpoint can tell.
fn rewrite_history(bundle: &str, at: usize) -> String {
    let mut lines: Vec<Value> = bundle
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let account = lines[0]["account"].as_str().unwrap().to_string();
    let mut prev: Option<[u8; 32]> = None;
    for e in lines.iter_mut().skip(1) {
        let seq = e["seq"].as_u64().unwrap();
        if seq as usize == at {
            e["body"] = Value::String(B64.encode(b"{\"rewritten\":true}"));
            e["body_sha256"] = Value::String(hex::encode(body_hash(b"{\"rewritten\":true}")));
        }
        if seq as usize >= at {
            if let Some(p) = prev {
                e["prev_hash"] = Value::String(hex::encode(p));
            }
            let s = |k: &str| e[k].as_str().map(str::to_string);
            let (kind, delivery, event) = (
                s("kind").unwrap(),
                s("delivery_id").unwrap(),
                s("event").unwrap(),
            );
            let (hook, ttype, tid, sig) = (
                s("hook_id"),
                s("installation_target_type"),
                s("installation_target_id"),
                s("signature"),
            );
            let fields = EntryFields {
                log_name: &account,
                seq,
                prev_hash: hex::decode(e["prev_hash"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
                received_at: serde_json::from_value(e["received_at"].clone()).unwrap(),
                kind: &kind,
                delivery_id: &delivery,
                event: &event,
                hook_id: hook.as_deref(),
                installation_target_type: ttype.as_deref(),
                installation_target_id: tid.as_deref(),
                signature: sig.as_deref(),
                body_sha256: hex::decode(e["body_sha256"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            };
            let h = fields.entry_hash();
            e["entry_hash"] = Value::String(hex::encode(h));
            prev = Some(h);
        } else {
            prev = Some(
                hex::decode(e["entry_hash"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            );
        }
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn an_exported_bundle_verifies_without_the_database_and_fails_on_any_rewrite() {
    let (db, server, _) = story().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing.key");
    write_key_file(&key_file, &server.signer).unwrap();
    let bundle = dir.path().join("acme.jsonl");
    let (ok, out) = verdict(
        &[
            "export",
            "--log",
            "acme",
            "--out",
            bundle.to_str().unwrap(),
            "--signing-key",
            key_file.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(ok, "{out}");
    assert!(out.contains("exported 17 entries of log acme"), "{out}");
    server.shutdown().await;
    drop(db); // The auditor has no database.

    let key = server_key(&key_file);
    let check = |path: &std::path::Path, key: Option<&str>| {
        let mut args = vec!["verify-bundle", path.to_str().unwrap()];
        match key {
            Some("bundle") => args.push("--trust-bundle-key"),
            Some(k) => args.extend(["--key", k]),
            None => {}
        }
        verdict(
            &args,
            &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
        )
    };
    let (ok, out) = check(&bundle, Some(&key));
    assert!(ok, "{out}");
    assert!(out.contains("ok log acme size 17 head 17:"), "{out}");
    assert!(
        out.contains("ok checkpoint verdict.test/acme size 17"),
        "{out}"
    );
    // Without a key of one's own, the bundle proves nothing about who signed it: refused
    // unless the auditor says so.
    let (ok, out) = check(&bundle, None);
    assert!(!ok && out.contains("--trust-bundle-key"), "{out}");
    let (ok, out) = check(&bundle, Some("bundle"));
    assert!(ok && out.contains("key inside the bundle"), "{out}");
    // A bundle re-signed with someone else's key (and that key put in its header) passes
    // only for an auditor who trusts the bundle's own key.
    let mallory = verdict::log::checkpoint::CheckpointSigner::generate("verdict.test").unwrap();
    let mut lines: Vec<String> = std::fs::read_to_string(&bundle)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut header: Value = serde_json::from_str(&lines[0]).unwrap();
    let signed = NoteVerifier::parse(&key)
        .unwrap()
        .open_checkpoint(header["checkpoint"].as_str().unwrap())
        .unwrap();
    header["checkpoint"] = mallory
        .sign_checkpoint("acme", signed.size, &signed.root)
        .into();
    header["verifier_key"] = mallory.verifier_key("acme").into();
    lines[0] = header.to_string();
    let resigned = dir.path().join("resigned.jsonl");
    std::fs::write(&resigned, lines.join("\n") + "\n").unwrap();
    let (ok, _) = check(&resigned, Some("bundle"));
    assert!(ok, "intact, under the bundle's own key");
    let (ok, out) = check(&resigned, Some(&key));
    assert!(
        !ok && out.contains("no signature by verdict.test/acme"),
        "{out}"
    );

    let text = std::fs::read_to_string(&bundle).unwrap();
    // Every entry spells its receive time with exactly six fractional digits.
    for line in text.lines().skip(1) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let at = entry["received_at"].as_str().unwrap();
        let fraction = at.split_once('.').map(|(_, f)| f).unwrap_or_default();
        assert!(
            fraction.len() == 7 && fraction.ends_with('Z'),
            "received_at {at} is not RFC 3339 with six fractional digits"
        );
    }
    let mut header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["entries"], 17);
    header["entries"] = 18.into();
    let padded_header = text.replacen(text.lines().next().unwrap(), &header.to_string(), 1);
    let variants = [
        (
            "a header announcing more entries than follow",
            padded_header,
        ),
        (
            "a changed body byte",
            text.replacen(
                "\"event\":\"pull_request_review\"",
                "\"event\":\"pull_request_reviev\"",
                1,
            ),
        ),
        (
            "a deleted entry",
            text.lines()
                .enumerate()
                .filter(|(i, _)| *i != 5)
                .map(|(_, l)| format!("{l}\n"))
                .collect(),
        ),
        (
            "a truncated tail",
            text.lines().take(10).map(|l| format!("{l}\n")).collect(),
        ),
        ("a consistently rehashed history", rewrite_history(&text, 4)),
    ];
    for (what, changed) in variants {
        let f = dir.path().join("changed.jsonl");
        std::fs::write(&f, changed).unwrap();
        let (ok, out) = check(&f, Some(&key));
        assert!(
            !ok && out.contains("FAILED"),
            "{what} went unnoticed: {out}"
        );
        if what.contains("announcing") {
            assert!(
                out.contains("announces 18 entries but the bundle holds 17"),
                "{out}"
            );
        }
        if what.contains("rehashed") {
            assert!(out.contains("not the ones that were signed"), "{out}");
        }
    }
    let stranger = verdict::log::checkpoint::CheckpointSigner::generate("verdict.test").unwrap();
    let (ok, out) = check(&bundle, Some(&stranger.verifier_key("acme")));
    assert!(
        !ok && out.contains("no signature by verdict.test/acme"),
        "{out}"
    );
}

fn server_key(key_file: &std::path::Path) -> String {
    verdict::log::checkpoint::read_key_file(key_file)
        .unwrap()
        .verifier_key("acme")
}

// The CLI talks to this process's server: the runtime must keep serving while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn monitor_proves_the_log_only_grew_and_catches_a_forked_history() {
    let (db, server, _) = story().await;
    let key = server.signer.verifier_key("acme");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("acme.checkpoint");
    let first = server.checkpoint_at_least("acme", 17).await;
    std::fs::write(&saved, &first).unwrap();

    for i in 0..3 {
        let d = &verdict::story::feature_story("more")[i];
        assert!(
            server
                .deliver(d.event, &d.delivery_id, &common::variant(&d.body, 1))
                .await
                .status()
                .is_success()
        );
    }
    server.checkpoint_at_least("acme", 20).await;
    let (ok, out) = verdict(
        &[
            "monitor",
            "--checkpoint",
            saved.to_str().unwrap(),
            "--server",
            &server.base,
            "--key",
            &key,
            "--update",
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("ok log acme: the current tree (size 20"),
        "{out}"
    );
    assert!(out.contains("extends the saved one (size 17"), "{out}");
    assert!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .starts_with("verdict.test/acme\n20\n")
    );

    // A checkpoint of another history, validly signed (a server that forked its log).
    let forked = server.signer.sign_checkpoint("acme", 10, &[9u8; 32]);
    std::fs::write(&saved, forked).unwrap();
    let (ok, out) = verdict(
        &[
            "monitor",
            "--checkpoint",
            saved.to_str().unwrap(),
            "--server",
            &server.base,
            "--key",
            &key,
        ],
        &[],
    );
    assert!(
        !ok && out.contains("does not extend the saved one"),
        "{out}"
    );
    drop(db);
    server.shutdown().await;
}

#[tokio::test]
async fn the_tree_and_checkpoints_are_append_only_like_the_log() {
    let (db, server, _) = story().await;
    let app = db.app_pool().await;
    let admin = db.admin_pool().await;
    for sql in [
        "UPDATE merkle_nodes SET hash = hash",
        "DELETE FROM merkle_nodes",
        "TRUNCATE merkle_nodes",
        "UPDATE checkpoints SET note = note",
        "DELETE FROM checkpoints",
        "TRUNCATE checkpoints",
    ] {
        let as_app = sqlx::query(sql).execute(&app).await;
        assert!(as_app.is_err(), "verdict_app could run {sql}");
        let as_admin = sqlx::query(sql).execute(&admin).await;
        let err = as_admin
            .expect_err(&format!("a superuser could run {sql}"))
            .to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    server.shutdown().await;
}
