//! The no-DATABASE_URL path: verdict starts its own PostgreSQL from the installed binaries.
//! Runs even when DATABASE_URL is set, so CI covers both paths.

use std::process::Command;

use sqlx::Connection;
use verdict::db::local_cluster::LocalCluster;

#[tokio::test]
async fn a_private_cluster_starts_is_reused_and_stops() {
    let dir = tempfile::Builder::new()
        .prefix("verdict-cluster-")
        .tempdir_in("/tmp")
        .unwrap();
    let cluster = LocalCluster::start(&dir.path().join("pg")).expect("private cluster starts");
    assert!(cluster.started_here());
    let mut conn = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();

    // A second start attaches to the running server instead of starting another.
    let again = LocalCluster::start(&dir.path().join("pg")).unwrap();
    assert!(!again.started_here());
    assert_eq!(again.url("x"), cluster.url("x"));

    cluster.stop().unwrap();
    assert!(
        sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .is_err()
    );
}

#[test]
fn migrate_without_database_url_creates_and_migrates_a_private_database() {
    let dir = tempfile::Builder::new()
        .prefix("verdict-data-")
        .tempdir_in("/tmp")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("migrations applied"), "{stdout}");
    // It stopped the cluster it started: nothing is left running in the data directory.
    assert!(!dir.path().join("postgres/data/postmaster.pid").exists());
}

#[test]
fn with_no_server_binaries_the_error_says_what_to_install() {
    let dir = tempfile::Builder::new()
        .prefix("verdict-nobin-")
        .tempdir_in("/tmp")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env("VERDICT_PG_BIN", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apt-get install postgresql") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}
