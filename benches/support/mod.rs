//! What the benchmarks share: a database of their own and a real `verdict serve` process.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use verdict::db;

/// A `verdict serve` child process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// (current, peak) resident memory of the server process, in KiB.
    pub fn rss_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// `host:port`, for raw sockets.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }
}

/// The admin URL (`DATABASE_URL`, or a private cluster under target/) and a fresh, migrated
/// database named `prefix_<pid>` on it.
pub async fn bench_database(prefix: &str) -> (String, String) {
    let admin = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => db::local_cluster::LocalCluster::start(
            &Path::new(env!("CARGO_TARGET_TMPDIR")).join("postgres"),
        )
        .expect("PostgreSQL for the benchmark: set DATABASE_URL or install the server")
        .url("postgres"),
    };
    let name = format!("{prefix}_{}", std::process::id());
    let mut u = url::Url::parse(&admin).unwrap();
    u.set_path(&format!("/{name}"));
    let url = u.to_string();
    db::create_database_if_missing(&admin, &name).await.unwrap();
    db::migrate(&url).await.unwrap();
    (admin, url)
}

/// Starts `verdict serve` on `url` with `secret` and extra `args`; returns once it answers.
pub async fn start_server(url: &str, secret: &str, args: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("DATABASE_URL", url)
        .env("GITHUB_WEBHOOK_SECRET", secret)
        .env("VERDICT_ADMIN_TOKEN", "bench")
        .env(
            "VERDICT_DATA_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-serve"),
        )
        .env(
            "VERDICT_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..400 {
        if reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("verdict serve did not start");
}

/// The `p` quantile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

/// Drops the benchmark's database `url` from the server at `admin`.
pub async fn drop_database(admin: &str, url: &str) {
    use sqlx::{Connection, Executor};
    let name = url.rsplit('/').next().unwrap().to_string();
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
    }
}
