//! `verdict demo`, the README's run command: it replays the story through the signed HTTP
//! endpoint, verifies the log, lists the decisions and findings, shows the alerts its local
//! receiver got, and prints the feature page's address.

mod common;

use std::process::Command;

use common::TestDb;

fn run_demo(url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["demo", "--no-wait", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", url)
        .env("VERDICT_LOG", "warn")
        .output()
        .expect("verdict runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_demo_replays_the_story_and_prints_the_feature_page() {
    let db = TestDb::new().await;
    let first = run_demo(&db.url);
    // The public story and the private one: 17 deliveries each, and 3 findings each.
    assert_eq!(first.matches("-> 201 Created").count(), 34, "{first}");
    assert!(first.contains("ok log acme size 40 head 40:"), "{first}");
    for rule in [
        "merged-with-changes-requested",
        "stale-approval",
        "dismissed-then-merged",
    ] {
        assert!(first.contains(rule), "{rule} in\n{first}");
    }
    // It shows where to try acknowledging: a finding's own page (after the 40 deliveries'
    // positions: findings come after the story they judge).
    let hint = first
        .lines()
        .find(|l| l.starts_with("try acknowledging a finding"))
        .unwrap_or_else(|| panic!("no acknowledging hint in\n{first}"));
    assert!(hint.contains("/records/acme/"), "{hint}");
    let listed: Vec<&str> = first
        .lines()
        .filter(|l| l.contains("acme/storefront") && l.contains(" UTC "))
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    let expected: Vec<&str> = verdict::story::STORY_ORDER
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(listed, expected, "{first}");
    let feature_url = first
        .lines()
        .find(|l| {
            l.trim_start().starts_with("http://")
                && l.ends_with("/acme/storefront/features/issue-41")
        })
        .unwrap_or_else(|| panic!("no feature page address in:\n{first}"));
    assert!(feature_url.trim().starts_with("http://127.0.0.1:"));
    // It says how to try the access model: the stand-in's two people, one of whom may read
    // the private repository.
    assert!(first.contains("Sign in with GitHub"), "{first}");
    assert!(
        first.contains("@maria-pm")
            && first.contains("@dev-kai")
            && first.contains("acme/billing/features/issue-41"),
        "{first}"
    );
    // Each finding reached the demo's local alert receiver, signed with the alert secret.
    let alerts: Vec<&str> = first
        .lines()
        .skip_while(|l| !l.starts_with("alerts the local receiver got"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(alerts.len(), 6, "{first}");
    assert_eq!(
        alerts.iter().filter(|l| l.contains("acme/billing")).count(),
        3,
        "{first}"
    );
    for rule in [
        "merged-with-changes-requested",
        "stale-approval",
        "dismissed-then-merged",
    ] {
        let alert = alerts
            .iter()
            .find(|l| l.contains(rule))
            .unwrap_or_else(|| panic!("no alert for {rule} in\n{first}"));
        assert!(alert.contains("signature ok"), "{alert}");
        assert!(alert.contains("/records/acme/"), "{alert}");
    }

    // A second run is a redelivery of the same story: acknowledged, nothing appended, and the
    // judge finds nothing new.
    let second = run_demo(&db.url);
    assert_eq!(second.matches("-> 200 OK").count(), 34, "{second}");
    assert!(second.contains("ok log acme size 40 head 40:"), "{second}");
    assert!(
        second.contains("none new: these findings were alerted on an earlier run"),
        "{second}"
    );
}

fn verdict_cli(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("VERDICT_LOG", "warn")
        .output()
        .expect("verdict runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn rules_rerun_judges_the_whole_history_and_never_repeats_a_finding() {
    let db = TestDb::new().await;
    // A server without the judge: the story is in the log, unjudged.
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    server.checkpoint_at_least("acme", 17).await;
    server.shutdown().await;
    let first = verdict_cli(&db.url, &["rules", "rerun"]);
    assert!(first.contains("3 new findings appended"), "{first}");
    let again = verdict_cli(&db.url, &["rules", "rerun"]);
    assert!(again.contains("0 new findings appended"), "{again}");
    // Checked with the server's key (the one the checkpoints were signed with).
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    std::fs::write(&key, db.signer.to_key_text()).unwrap();
    let verified = verdict_cli(
        &db.url,
        &[
            "verify",
            "--log",
            "acme",
            "--signing-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(verified.contains("ok log acme size 20"), "{verified}");
    assert!(
        verified.contains("the newest (17) is signed by the given key"),
        "{verified}"
    );
}
