//! Operating verdict (issue 16): metrics a real Prometheus parser reads, health that tells the
//! truth, the container's healthcheck command, `verdict status`, log formats, and a failed
//! start that leaves nothing running.

mod common;

use common::{ADMIN_TOKEN, SECRET, ServerOptions, TestDb, fixture, verdict_cli};
use serde_json::Value;

/// The samples of a scrape, parsed by prometheus-parse (Prometheus' text format 0.0.4).
fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a Prometheus text exposition")
}

/// The value of `metric` whose labels include `labels`.
fn value(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| {
            x.metric == metric
                && labels
                    .iter()
                    .all(|(k, v)| x.labels.get(k).is_some_and(|got| got == *v))
        })
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_a_known_set_of_deliveries() {
    let db = TestDb::new().await;
    let server = db
        .start(ServerOptions {
            metrics_listen: Some(free_port()),
            ..Default::default()
        })
        .await;
    let body = |n| common::variant(&fixture("issue_comment/created.1.json"), n);
    for n in 0..3 {
        let r = server
            .deliver("issue_comment", &format!("m-{n}"), &body(n))
            .await;
        assert_eq!(r.status(), 201);
    }
    // A redelivery, a replay of a stored body under a new GUID, a forged signature, and a
    // delivery without its event header.
    assert_eq!(
        server
            .deliver("issue_comment", "m-0", &body(0))
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .deliver("issue_comment", "m-replay", &body(1))
            .await
            .status(),
        200
    );
    let forged = server
        .client
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Event", "issue_comment")
        .header("X-GitHub-Delivery", "m-forged")
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(body(9))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let headless = server
        .client
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Delivery", "m-headless")
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(body(8))
        .send()
        .await
        .unwrap();
    assert_eq!(headless.status(), 400);
    server.checkpoint_at_least("codertocat", 3).await;

    // Operators only on the main address.
    assert_eq!(server.get("/metrics", None).await.status(), 401);
    let r = server.get("/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let s = scrape(&r.text().await.unwrap());
    let outcome = |o: &str| value(&s, "verdict_deliveries_total", &[("outcome", o)]);
    assert_eq!(outcome("stored"), Some(3.0));
    assert_eq!(outcome("duplicate"), Some(1.0));
    assert_eq!(outcome("replay"), Some(1.0));
    assert_eq!(outcome("bad_signature"), Some(1.0));
    assert_eq!(outcome("bad_header"), Some(1.0));
    // Three appends timed from receipt to commit, in batches holding three entries in all.
    assert_eq!(
        value(&s, "verdict_append_duration_seconds_count", &[]),
        Some(3.0)
    );
    assert_eq!(value(&s, "verdict_append_batch_size_sum", &[]), Some(3.0));
    let log = [("log", "codertocat")];
    assert_eq!(value(&s, "verdict_log_entries", &log), Some(3.0));
    assert_eq!(value(&s, "verdict_unsigned_entries", &log), Some(0.0));
    assert!(value(&s, "verdict_checkpoint_age_seconds", &log).is_some_and(|a| a >= 0.0));
    assert!(value(&s, "verdict_projection_lag_entries", &log).is_some());
    assert_eq!(
        value(&s, "verdict_outbox_messages", &[("state", "pending")]),
        Some(0.0)
    );
    assert!(value(&s, "verdict_db_pool_connections", &[]).is_some_and(|n| n >= 1.0));
    assert!(value(&s, "verdict_db_pool_connections_in_use", &[]).is_some());
    // Requests timed by route template, not by concrete path.
    assert_eq!(
        value(
            &s,
            "verdict_http_request_duration_seconds_count",
            &[("route", "/webhooks/github"), ("status", "201")]
        ),
        Some(3.0)
    );
    assert!(
        s.samples
            .iter()
            .all(|x| !x.labels.get("route").is_some_and(|r| r.contains("m-0"))),
        "no concrete paths as labels"
    );
    // The scraper's own address needs no token.
    let scraper = server.metrics_base.clone().unwrap();
    let r = reqwest::get(format!("{scraper}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let s = scrape(&r.text().await.unwrap());
    assert_eq!(
        value(&s, "verdict_deliveries_total", &[("outcome", "stored")]),
        Some(3.0)
    );
    assert_eq!(
        reqwest::get(format!("{scraper}/acme"))
            .await
            .unwrap()
            .status(),
        404,
        "nothing but /metrics there"
    );
    server.shutdown().await;
}

// The CLI talks to this process's server: the runtime must keep serving while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_while_the_signer_is_stuck_and_names_it() {
    let db = TestDb::new().await;
    // A signer that cannot store what it signs (in this test's database only): stuck.
    let admin = db.admin_pool().await;
    sqlx::query("REVOKE INSERT ON merkle_nodes, checkpoints FROM verdict_app")
        .execute(&admin)
        .await
        .unwrap();
    let server = db
        .start(ServerOptions {
            limits: verdict::web::serving::Limits {
                stuck_after: std::time::Duration::from_secs(1),
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    assert_eq!(server.get("/livez", None).await.status(), 200);
    let ready = server.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    // An entry nobody signs: once it waited past the bound, the server is not ready.
    let r = server
        .deliver(
            "issue_comment",
            "stuck-1",
            &fixture("issue_comment/created.1.json"),
        )
        .await;
    assert_eq!(r.status(), 201);
    let mut last = Value::Null;
    for _ in 0..100 {
        let r = server.get("/readyz", None).await;
        let status = r.status();
        last = r.json().await.unwrap();
        if status == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last["ready"], false, "{last}");
    assert_eq!(last["database"], true);
    let problem = last["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("log codertocat: 1 entries unsigned")
            && problem.contains("signer is stuck"),
        "{problem}"
    );
    // /healthz gives the same answer, as text; /livez still answers.
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status(), 503);
    assert!(health.text().await.unwrap().contains("signer is stuck"));
    assert_eq!(server.get("/livez", None).await.status(), 200);
    // The container's check says the same, by exit code.
    let (ok, out) = verdict_cli(&["healthcheck", "--url", &server.base], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("not ready (503"), "{out}");
    // `verdict status` shows the log's state.
    let (ok, out) = verdict_cli(&["status"], &[("DATABASE_URL", &db.url)]);
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("codertocat"))
        .unwrap_or_else(|| panic!("{out}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[1..4], ["1", "0", "1"], "{out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_passes_on_a_ready_server_and_fails_on_no_server() {
    let db = TestDb::new().await;
    let server = db.server(&[SECRET]).await;
    let (ok, out) = verdict_cli(&["healthcheck", "--url", &server.base], &[]);
    assert!(ok, "{out}");
    // VERDICT_LISTEN's port, on the loopback address, as inside a container.
    let port = server.base.rsplit(':').next().unwrap();
    let (ok, out) = verdict_cli(
        &["healthcheck"],
        &[("VERDICT_LISTEN", &format!("0.0.0.0:{port}"))],
    );
    assert!(ok, "{out}");
    server.shutdown().await;
    let nobody = free_port();
    let (ok, out) = verdict_cli(
        &[
            "healthcheck",
            "--url",
            &format!("http://{nobody}"),
            "--timeout",
            "2",
        ],
        &[],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("no answer from"), "{out}");
}

#[tokio::test]
async fn log_lines_are_plain_in_a_file_and_json_when_asked() {
    let db = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = |format: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"));
        cmd.args(["serve", "--listen", &addr])
            .env("DATABASE_URL", &db.url)
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("VERDICT_LOG", "verdict=info");
        if let Some(f) = format {
            cmd.env("VERDICT_LOG_FORMAT", f);
        }
        cmd.output().unwrap()
    };
    // The address is taken: serve fails after logging a line or two.
    let plain = run(None);
    assert!(!plain.status.success());
    let text = String::from_utf8_lossy(&plain.stderr);
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI colour codes in a pipe: {text:?}"
    );
    assert!(text.contains("INFO") || text.contains("WARN"), "{text}");
    let json = run(Some("json"));
    let text = String::from_utf8_lossy(&json.stderr);
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(!lines.is_empty(), "{text}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
}

#[tokio::test]
async fn a_failed_start_leaves_no_private_cluster_running() {
    if std::env::var("VERDICT_PG_BIN").is_err() && std::fs::read_dir("/usr/lib/postgresql").is_err()
    {
        panic!("this test starts a private cluster: install Debian's postgresql package");
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // The listen address is taken: serve starts the private cluster, fails to bind, and must
    // stop the cluster again.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--listen", &addr, "--data-dir", data])
        .env_remove("DATABASE_URL")
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("VERDICT_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&addr), "says which address: {stderr}");
    let pid_file = dir.path().join("postgres/postmaster.pid");
    assert!(
        !pid_file.exists(),
        "the private cluster is still running after a failed start: {stderr}"
    );
    // Without a webhook secret, no cluster is even started.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
        .env_remove("DATABASE_URL")
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GITHUB_WEBHOOK_SECRET"));
    assert!(!dir.path().join("postgres").exists());
}
