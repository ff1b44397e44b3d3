//! The log is append-only because PostgreSQL says so: privileges for verdict's role,
//! triggers for everyone, and a chain check on every insert.

mod common;

use common::{SECRET, TestDb, fixture};
use sqlx::PgPool;

async fn seeded() -> TestDb {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    for i in 0..3 {
        let res = server
            .deliver(
                "issue_comment",
                &format!("seed-{i}"),
                &fixture("issue_comment/created.1.json"),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    server.shutdown().await;
    db
}

async fn sql_error(pool: &PgPool, sql: &'static str) -> (String, String) {
    let err = sqlx::query(sql)
        .execute(pool)
        .await
        .expect_err(&format!("{sql} must be refused"));
    let db_err = err.as_database_error().expect("a database error");
    (
        db_err.code().unwrap_or_default().to_string(),
        db_err.message().to_string(),
    )
}

#[tokio::test]
async fn the_app_role_may_not_update_delete_or_truncate() {
    let db = seeded().await;
    let app = db.app_pool().await;
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(role, "verdict_app");
    for sql in [
        "UPDATE log_entries SET event = 'x'",
        "DELETE FROM log_entries",
        "TRUNCATE log_entries",
        "UPDATE logs SET name = 'x'",
        "DELETE FROM logs",
        "TRUNCATE logs CASCADE",
    ] {
        let (code, message) = sql_error(&app, sql).await;
        assert_eq!(code, "42501", "{sql}: {message}");
        assert!(message.contains("permission denied"), "{sql}: {message}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM log_entries")
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn triggers_refuse_changes_even_for_the_owner_and_superuser() {
    let db = seeded().await;
    let admin = db.admin_pool().await;
    let is_super: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(
        is_super,
        "the test connects as a superuser to show even it is refused"
    );
    for sql in [
        "UPDATE log_entries SET event = 'x'",
        "DELETE FROM log_entries WHERE seq = 2",
        "TRUNCATE log_entries",
        "UPDATE logs SET name = 'x'",
        "DELETE FROM logs",
    ] {
        let (_, message) = sql_error(&admin, sql).await;
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE tablename = 'log_entries'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(owner, "verdict_owner");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM log_entries")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn inserts_that_would_fork_or_gap_the_chain_are_rejected() {
    let db = seeded().await;
    let app = db.app_pool().await;
    // Copies entry 2's columns with a new delivery id at a chosen seq / prev_hash.
    let forge = |seq: i64, prev: &'static str| {
        let sql = format!(
            "INSERT INTO log_entries (log_id, seq, kind, prev_hash, entry_hash, received_at,
                 delivery_id, event, body_sha256, body, body_readable)
             SELECT log_id, {seq}, kind, {prev}, entry_hash, received_at, 'forged-{seq}', event,
                    body_sha256, body, body_readable FROM log_entries WHERE seq = 2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
    };
    // A second entry 2 (fork): the primary key refuses it.
    let fork = forge(2, "prev_hash").execute(&app).await.unwrap_err();
    assert!(
        fork.as_database_error().unwrap().is_unique_violation(),
        "{fork}"
    );
    // Entry 4 with no entry 3 (gap).
    let gap = forge(4, "entry_hash").execute(&app).await.unwrap_err();
    assert!(gap.to_string().contains("is missing"), "{gap}");
    // Entry 3 not linked to entry 2's hash.
    let unlinked = forge(3, "prev_hash").execute(&app).await.unwrap_err();
    assert!(
        unlinked.to_string().contains("prev_hash does not match"),
        "{unlinked}"
    );
    // A first entry must link to 32 zero bytes.
    let genesis = sqlx::query(
        "INSERT INTO logs (name) VALUES ('other');
         ",
    )
    .execute(&app)
    .await;
    assert!(genesis.is_ok());
    let bad_genesis = sqlx::query(
        "INSERT INTO log_entries (log_id, seq, kind, prev_hash, entry_hash, received_at,
             delivery_id, event, body_sha256, body, body_readable)
         SELECT (SELECT id FROM logs WHERE name = 'other'), 0, kind, entry_hash, entry_hash,
                received_at, 'forged-genesis', event, body_sha256, body, body_readable
           FROM log_entries WHERE seq = 2",
    )
    .execute(&app)
    .await
    .unwrap_err();
    assert!(
        bad_genesis.to_string().contains("prev_hash does not match"),
        "{bad_genesis}"
    );
}

#[tokio::test]
async fn migrations_are_idempotent_and_rerunnable() {
    let db = TestDb::new().await;
    // Already migrated from the template: running again applies nothing and fails nothing.
    verdict::db::migrate(&db.url).await.unwrap();
    verdict::db::migrate(&db.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db.admin_pool().await)
        .await
        .unwrap();
    assert_eq!(applied as usize, verdict::db::MIGRATOR.iter().count());
}
