//! Several verdict processes on one database, a crash mid-load, and a database that goes
//! away: no fork, no gap, and nothing acknowledged is ever lost.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{SECRET, TestDb, fixture};
use sqlx::Row;
use verdict::intake::signature::sign;
use verdict::log::verify::verify_log;

struct ServeProcess {
    child: Child,
    base: String,
}

impl ServeProcess {
    async fn start(db: &TestDb) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", &db.url)
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            // Processes of one test share a data directory, so they sign with one key.
            .env(
                "VERDICT_DATA_DIR",
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("serve-{}", db.name)),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let process = ServeProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/healthz", process.base)).send().await
                && r.status() == 200
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("verdict serve did not become healthy");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(client: &reqwest::Client, base: &str, delivery: &str, body: &[u8]) -> Option<u16> {
    client
        .post(format!("{base}/webhooks/github"))
        .header("X-GitHub-Event", "pull_request_review")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", sign(SECRET.as_bytes(), body))
        .body(body.to_vec())
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_processes_never_fork_or_gap_and_a_crash_loses_nothing_acknowledged() {
    let db = TestDb::new().await;
    let servers = vec![
        ServeProcess::start(&db).await,
        ServeProcess::start(&db).await,
        ServeProcess::start(&db).await,
    ];
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let body = fixture("pull_request_review/submitted.1.json");
    let client = reqwest::Client::new();

    // 12 writers, 4 per process, 40 deliveries each, all for the same account's log.
    let mut tasks = Vec::new();
    for w in 0..12 {
        let (client, base, body) = (client.clone(), bases[w % 3].clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let delivery = format!("w{w}-{i}");
                let body = common::variant(&body, (w * 1000 + i) as u64);
                if let Some(201) = post(&client, &base, &delivery, &body).await {
                    acked.push(delivery);
                }
            }
            acked
        }));
    }
    // Crash one process mid-load, the hard way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut servers = servers;
    let mut victim = servers.remove(2);
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();

    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() >= 12 * 40 * 2 / 3,
        "the surviving processes kept acknowledging ({})",
        acked.len()
    );

    let pool = db.app_pool().await;
    let stored: Vec<String> = sqlx::query("SELECT delivery_id FROM log_entries")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for d in &acked {
        assert!(stored.contains(d), "acknowledged delivery {d} was lost");
    }
    let v = verify_log(&pool, "codertocat", None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        v.size as usize,
        stored.len(),
        "one log, gapless, holding every stored delivery"
    );
    let (min, max): (i64, i64) = sqlx::query_as("SELECT min(seq), max(seq) FROM log_entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((min, max as usize), (0, stored.len() - 1));
}

#[tokio::test]
async fn a_database_outage_answers_503_stores_nothing_and_recovers() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let body = |n| common::variant(&fixture("issue_comment/created.1.json"), n);
    assert_eq!(
        server
            .deliver("issue_comment", "before", &body(0))
            .await
            .status(),
        201
    );

    // Take the database away from outside it, as an outage would.
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_path("/postgres");
    let admin = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let name = db.name.clone();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();

    let during = server.deliver("issue_comment", "during", &body(1)).await;
    assert_eq!(during.status(), 503);
    assert_eq!(during.headers()["retry-after"], "5");
    assert!(
        during
            .text()
            .await
            .unwrap()
            .contains("database is unavailable")
    );
    let health = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let ready = server
        .client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], false, "{ready}");
    assert!(
        ready["problems"][0]
            .as_str()
            .unwrap()
            .contains("database unreachable")
    );
    let live = server
        .client
        .get(format!("{}/livez", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "the process itself is fine");

    // The database comes back.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
    )))
    .execute(&admin)
    .await
    .unwrap();

    let after = server.deliver("issue_comment", "after", &body(2)).await;
    assert_eq!(after.status(), 201);
    // GitHub (or the operator) redelivers the failed one: it is stored now.
    assert_eq!(
        server
            .deliver("issue_comment", "during", &body(1))
            .await
            .status(),
        201
    );

    let pool = db.app_pool().await;
    let ids: Vec<String> = sqlx::query_scalar("SELECT delivery_id FROM log_entries ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, ["before", "after", "during"]);
    verify_log(&pool, "codertocat", None, |_, _| {})
        .await
        .unwrap();
    server.shutdown().await;
}
