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
                &common::variant(&fixture("issue_comment/created.1.json"), i),
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
                    sha256('forged-{seq}'), body, body_readable FROM log_entries WHERE seq = 2"
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

/// The chain is checked once per statement (the sequencer inserts a batch in one): entries may
/// link to others of the same statement, in any row order, and one bad entry refuses them all.
#[tokio::test]
async fn a_batch_is_checked_whole() {
    let db = seeded().await;
    let app = db.app_pool().await;
    // Entry `seq` copied from entry 2 with the given prev_hash / entry_hash expressions.
    let row = |seq: i64, prev: &str, hash: &str| {
        format!(
            "SELECT log_id, {seq}::bigint, kind, {prev}, {hash}, received_at, 'batch-{seq}',
                    event, sha256('batch-{seq}'), body, body_readable FROM log_entries WHERE seq = 2"
        )
    };
    // Inserts `rows` in one statement as verdict_app.
    let insert = |rows: Vec<String>| {
        let sql = format!(
            "INSERT INTO log_entries (log_id, seq, kind, prev_hash, entry_hash, received_at,
                 delivery_id, event, body_sha256, body, body_readable) {}",
            rows.join(" UNION ALL ")
        );
        let app = app.clone();
        async move { sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&app).await }
    };
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM log_entries")
            .fetch_one(&db.admin_pool().await)
            .await
            .unwrap()
    };

    // Entries 3 and 4, entry 4 listed first and linking to entry 3 of the same statement.
    insert(vec![
        row(4, "sha256('three')", "sha256('four')"),
        row(3, "entry_hash", "sha256('three')"),
    ])
    .await
    .expect("a batch whose entries link to each other is accepted");
    assert_eq!(count().await, 5);

    // Entries 5, 6, 7 where 6 does not link to 5: nothing of the statement is stored.
    let err = insert(vec![
        row(5, "sha256('four')", "sha256('five')"),
        row(6, "sha256('not five')", "sha256('six')"),
        row(7, "sha256('six')", "sha256('seven')"),
    ])
    .await
    .unwrap_err();
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(db_err.code().as_deref(), Some("23000"), "{err}");
    assert!(
        db_err
            .message()
            .contains("entry 6: prev_hash does not match the hash of entry 5"),
        "{err}"
    );
    assert_eq!(count().await, 5, "a refused statement stores nothing");

    // A gap inside a batch (5, then 7) is named too.
    let err = insert(vec![
        row(5, "sha256('four')", "sha256('five')"),
        row(7, "sha256('six')", "sha256('seven')"),
    ])
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("entry 7: previous entry 6 is missing"),
        "{err}"
    );
    assert_eq!(count().await, 5);
}

/// A GitHub delivery whose body is already in the log under another delivery id is a replay:
/// the database refuses it whoever inserts it, so no process can store one.
#[tokio::test]
async fn the_database_refuses_a_replayed_body_for_everyone() {
    let db = seeded().await;
    for pool in [db.app_pool().await, db.admin_pool().await] {
        // Entry 3, correctly chained after entry 2, carrying entry 1's body.
        let err = sqlx::query(
            "INSERT INTO log_entries (log_id, seq, kind, prev_hash, entry_hash, received_at,
                 delivery_id, event, body_sha256, body, body_readable)
             SELECT two.log_id, 3, one.kind, two.entry_hash, sha256('three'), one.received_at,
                    'replayed', 'pull_request', one.body_sha256, one.body, one.body_readable
               FROM log_entries one JOIN log_entries two ON two.log_id = one.log_id AND two.seq = 2
              WHERE one.seq = 1",
        )
        .execute(&pool)
        .await
        .unwrap_err();
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.code().as_deref(), Some("23505"), "{err}");
        assert!(
            db_err
                .message()
                .contains("entry 3: the same body is already entry 1 of this log"),
            "{err}"
        );
    }
    // Another kind may carry any body: only GitHub deliveries can be replayed.
    let app = db.app_pool().await;
    sqlx::query(
        "INSERT INTO log_entries (log_id, seq, kind, prev_hash, entry_hash, received_at,
             delivery_id, event, body_sha256, body, body_readable)
         SELECT two.log_id, 3, 'verdict-test', two.entry_hash, sha256('three'), one.received_at,
                'other-kind', 'x', one.body_sha256, one.body, one.body_readable
           FROM log_entries one JOIN log_entries two ON two.log_id = one.log_id AND two.seq = 2
          WHERE one.seq = 1",
    )
    .execute(&app)
    .await
    .expect("another kind with the same body is no replay");
}

/// A 2xx must mean durable: verdict's connections wait for the WAL flush on commit even on a
/// database whose default is asynchronous commit.
#[tokio::test]
async fn commits_are_synchronous_whatever_the_database_default() {
    let db = TestDb::new().await;
    let admin = db.admin_pool().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" SET synchronous_commit = off",
        db.name
    )))
    .execute(&admin)
    .await
    .unwrap();
    let plain = PgPool::connect(&db.url).await.unwrap();
    let default: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&plain)
        .await
        .unwrap();
    assert_eq!(
        default, "off",
        "the database default applies to other clients"
    );
    let app = db.app_pool().await;
    let ours: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(ours, "on");
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

/// One connection logged in as `url`'s user, with no `SET ROLE` of verdict's.
async fn raw(url: &str) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_servers_login_cannot_reset_its_role_to_anything_more_powerful() {
    let db = seeded().await;
    let runtime = db.runtime_url().await;
    let login = verdict::db::roles::login(&runtime).await.unwrap();
    assert_eq!(login.user, "verdict_runtime");
    assert!(!login.superuser && !login.owner);
    assert_eq!(login.warning(), None);
    // The test cluster's admin is a superuser: serving as it is warned about.
    let admin = verdict::db::roles::login(&db.url).await.unwrap();
    assert!(admin.superuser);
    assert!(admin.warning().unwrap().contains("superuser"));

    let mut conn = raw(&runtime).await;
    use sqlx::Executor;
    conn.execute("RESET ROLE").await.unwrap();
    let (user, superuser): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((user.as_str(), superuser), ("verdict_runtime", false));
    for sql in [
        "SET ROLE postgres",
        "SET ROLE verdict_owner",
        "SET session_replication_role = replica",
        "ALTER TABLE log_entries DISABLE TRIGGER ALL",
        "DROP TRIGGER log_entries_no_truncate ON log_entries",
        "UPDATE log_entries SET body = ''::bytea",
        "DELETE FROM log_entries",
        "TRUNCATE log_entries",
        "DELETE FROM checkpoints",
        "ALTER ROLE verdict_runtime SUPERUSER",
    ] {
        let refused = conn.execute(sql).await;
        assert!(refused.is_err(), "{sql} was allowed after RESET ROLE");
    }
    // What it is for still works.
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM log_entries")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries, 3);
}

#[tokio::test]
async fn migrate_prints_the_servers_login_and_serve_runs_on_it_alone() {
    let db = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["migrate", "--data-dir", dir.path().to_str().unwrap()])
        .env("DATABASE_URL", &db.url)
        .env("VERDICT_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let app_url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("VERDICT_APP_DATABASE_URL="))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    assert!(
        app_url.starts_with("postgres://verdict_runtime:"),
        "{app_url}"
    );
    // The password is kept in the data directory, readable by its owner only.
    let kept = dir.path().join("runtime-database-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(app_url.contains(std::fs::read_to_string(&kept).unwrap().trim()));

    // serve with that URL only: no migration rights, no superuser, and it serves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The seeding server may already have signed checkpoints with the test key; serve
    // must continue with that key rather than start a new one.
    let key = dir.path().join("seeding-signing.key");
    std::fs::write(&key, db.signer.to_key_text()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--signing-key", key.to_str().unwrap()])
        .env_remove("DATABASE_URL")
        .env("VERDICT_APP_DATABASE_URL", &app_url)
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("VERDICT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(healthy, "serve did not start: {stderr}");
    assert!(!stderr.contains("superuser"), "{stderr}");
}
