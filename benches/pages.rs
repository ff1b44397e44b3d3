//! Page latency on a feature with many decisions: server-side render time of the feature
//! page (HTML and JSON), a filtered and a late page of it, and a record page, each beside
//! the `/healthz` round trip (HTTP + one trivial query) measured in the same run as the
//! floor. Targets (issue #3): feature page p95 ≤ 50 ms with 10,000 decisions; record page
//! ≤ 5 ms.
//!
//! `cargo bench --bench pages` (DATABASE_URL, or a private cluster under target/).
//! BENCH_FEATURE_PRS (default 100) × BENCH_DECISIONS_PER_PR (default 100) decisions;
//! BENCH_REQUESTS (default 300) requests per row; BENCH_KEEP_DB=1 keeps the database to
//! look at query plans.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use verdict::db;
use verdict::intake::WebhookSecrets;
use verdict::intake::signature::sign;
use verdict::server::{self, ServerConfig};
use verdict::story;

const SECRET: &str = "bench-secret";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The story's deliveries by event, to copy from.
fn template(event: &str, nth: usize) -> Value {
    let d = story::feature_story("bench")
        .into_iter()
        .filter(|d| d.event == event)
        .nth(nth)
        .unwrap();
    serde_json::from_slice(&d.body).unwrap()
}

/// `prs` pull requests closing issue #41, each with `per_pr` decisions (opened, reviews and
/// comments, merged), as (event, delivery id, body).
fn feature_deliveries(prs: usize, per_pr: usize) -> Vec<(&'static str, String, Vec<u8>)> {
    let opened = template("pull_request", 0);
    let merged = template("pull_request", 4);
    let approved = template("pull_request_review", 1);
    let changes = template("pull_request_review", 0);
    let comment = template("issue_comment", 0);
    let mut out = vec![];
    let issue = story::feature_story("bench").remove(0);
    out.push((issue.event, issue.delivery_id, issue.body));
    let t0: chrono::DateTime<chrono::Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut tick = 0i64;
    let mut at = || {
        tick += 1;
        (t0 + chrono::Duration::seconds(tick * 37))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    for p in 0..prs {
        let number = 1000 + p as i64;
        let pr_at = |mut v: Value, time: &str| {
            v["number"] = json!(number);
            v["pull_request"]["number"] = json!(number);
            v["pull_request"]["updated_at"] = json!(time);
            v
        };
        let t = at();
        let mut v = pr_at(opened.clone(), &t);
        v["pull_request"]["created_at"] = json!(t);
        out.push((
            "pull_request",
            format!("o-{number}"),
            serde_json::to_vec(&v).unwrap(),
        ));
        for i in 0..per_pr.saturating_sub(2) {
            let t = at();
            let (event, v) = match i % 3 {
                0 | 1 => {
                    let mut v = pr_at(
                        if i % 3 == 0 {
                            changes.clone()
                        } else {
                            approved.clone()
                        },
                        &t,
                    );
                    v["review"]["id"] = json!(number * 10_000 + i as i64);
                    v["review"]["submitted_at"] = json!(t);
                    v["review"]["body"] = json!(format!(
                        "Review {i} of #{number}: looks **fine** except the retry loop"
                    ));
                    ("pull_request_review", v)
                }
                _ => {
                    let mut v = comment.clone();
                    v["issue"]["number"] = json!(number);
                    v["comment"]["created_at"] = json!(t);
                    v["comment"]["body"] = json!(format!("Comment {i} on #{number}"));
                    ("issue_comment", v)
                }
            };
            out.push((
                event,
                format!("d-{number}-{i}"),
                serde_json::to_vec(&v).unwrap(),
            ));
        }
        let t = at();
        let mut v = pr_at(merged.clone(), &t);
        v["pull_request"]["merged_at"] = json!(t);
        out.push((
            "pull_request",
            format!("m-{number}"),
            serde_json::to_vec(&v).unwrap(),
        ));
    }
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn measure(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    for _ in 0..5 {
        client.get(url).send().await.unwrap().bytes().await.unwrap();
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

async fn run() {
    let admin = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => db::local_cluster::LocalCluster::start(
            &Path::new(env!("CARGO_TARGET_TMPDIR")).join("postgres"),
        )
        .expect("PostgreSQL for the benchmark: set DATABASE_URL or install the server")
        .url("postgres"),
    };
    let name = format!("verdict_bench_pages_{}", std::process::id());
    let mut u = url::Url::parse(&admin).unwrap();
    u.set_path(&format!("/{name}"));
    let url = u.to_string();
    db::create_database_if_missing(&admin, &name).await.unwrap();
    db::migrate(&url).await.unwrap();

    let prs: usize = env_or("BENCH_FEATURE_PRS", 100);
    let per_pr: usize = env_or("BENCH_DECISIONS_PER_PR", 100);
    let requests: usize = env_or("BENCH_REQUESTS", 300);
    let running = server::start(ServerConfig {
        database_url: url.clone(),
        secrets: WebhookSecrets::from_list(&[SECRET]),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_connections: 8,
        features: verdict::projections::features::FeatureLinking::labels(
            verdict::projections::features::DEFAULT_LABEL_PREFIX,
        ),
        access: Default::default(),
        signer: std::sync::Arc::new(
            verdict::log::checkpoint::CheckpointSigner::generate("verdict.bench").unwrap(),
        ),
        build_tree: true,
        judge: true,
        feedback: Default::default(),
        limits: Default::default(),
        catch_up: None,
        metrics_listen: None,
        rotate_from: None,
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();

    let deliveries = feature_deliveries(prs, per_pr);
    eprintln!("delivering {} webhooks...", deliveries.len());
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for (event, id, body) in deliveries {
        let (client, base, permit) = (
            client.clone(),
            base.clone(),
            sem.clone().acquire_owned().await.unwrap(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/webhooks/github"))
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", id)
                .header("X-Hub-Signature-256", sign(SECRET.as_bytes(), &body))
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let pool = db::app_pool(&url, 2).await.unwrap();
    let projector = verdict::projections::projector::Projector::new(pool.clone(), "feature:");
    eprintln!("projecting...");
    loop {
        projector.catch_up().await.unwrap();
        if verdict::projections::projector::backlog(&pool)
            .await
            .unwrap()
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let feature_path = format!("/{}/features/{}", story::REPO, story::FEATURE_KEY);
    let api: Value = client
        .get(format!("{base}/api{feature_path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = api["decisions"]["total"].as_i64().unwrap();
    let last_page = (total + 49) / 50;
    eprintln!(
        "feature has {total} decisions over {} pull requests",
        api["totals"]["pull_requests"]
    );

    let rows: Vec<(&str, String, Option<f64>)> = vec![
        (
            "baseline: GET /healthz (HTTP + SELECT 1)",
            "/healthz".into(),
            None,
        ),
        (
            "feature page, HTML, page 1",
            feature_path.clone(),
            Some(50.0),
        ),
        (
            "feature page, JSON, page 1",
            format!("/api{feature_path}"),
            Some(50.0),
        ),
        (
            "feature page, HTML, last page",
            format!("{feature_path}?page={last_page}"),
            Some(50.0),
        ),
        (
            "feature page, HTML, actor + text filter",
            format!("{feature_path}?actor=Codertocat&q=retry"),
            Some(50.0),
        ),
        (
            "pull request page (100 decisions), HTML",
            format!("/{}/pull/1050", story::REPO),
            None,
        ),
        ("record page, HTML", "/records/acme/5000".into(), Some(5.0)),
        (
            "record page, JSON",
            "/api/records/acme/5000".into(),
            Some(5.0),
        ),
    ];
    println!(
        "\n{total} decisions in the feature; {requests} sequential requests per row; latency in ms\n"
    );
    println!("| request | p50 | p95 | p99 | max | target (p95) | met |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut floor = 0.0;
    for (label, path, target) in rows {
        let lat = measure(&client, &format!("{base}{path}"), requests).await;
        let p95 = pct(&lat, 0.95);
        if target.is_none() && path == "/healthz" {
            floor = p95;
        }
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            pct(&lat, 0.5),
            p95,
            pct(&lat, 0.99),
            pct(&lat, 1.0),
            target
                .map(|t| format!("≤ {t} ms"))
                .unwrap_or_else(|| "—".into()),
            match target {
                Some(t) if p95 <= t => "yes",
                Some(_) => "NO",
                None => "",
            }
        );
    }
    println!("\nbaseline p95 {floor:.2} ms is the HTTP and database floor every row includes.");
    running.shutdown().await.unwrap();
    pool.close().await;
    if std::env::var("BENCH_KEEP_DB").is_ok() {
        eprintln!("kept database {name} (BENCH_KEEP_DB)");
        return;
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}
